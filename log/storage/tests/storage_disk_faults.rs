//! A disk that misbehaves under one log (issue 22, item 2), through the
//! fault-injecting file layer: a failed fsync stops the log's writes for
//! good and is never retried as if nothing happened, and the log is
//! recovered from what its syncs covered; write errors and a full disk
//! leave no hole; a power cut keeps exactly what was synced.

use std::sync::Arc;

use spool_storage::config::LogConfig;
use spool_storage::testing::{read_all, values_batch, FaultyFileIo, Rec};
use spool_storage::{FileIo, ManualClock, PartitionLog, StorageError};

fn open(dir: &std::path::Path, io: &Arc<FaultyFileIo>) -> PartitionLog {
    let io: Arc<dyn FileIo> = Arc::clone(io) as Arc<dyn FileIo>;
    PartitionLog::open_with_io(dir, LogConfig::default(), Arc::new(ManualClock::new(0)), io)
        .unwrap()
}

fn append(log: &PartitionLog, value: &str) -> Result<u64, StorageError> {
    log.append(&mut values_batch(&[value.as_bytes().to_vec()], 1), 1)
        .map(|info| info.base_offset)
}

fn values(records: &[Rec]) -> Vec<(u64, String)> {
    records
        .iter()
        .map(|r| {
            let value = r.value.clone().unwrap_or_default();
            (r.offset, String::from_utf8(value).unwrap())
        })
        .collect()
}

/// Protection tested: `PartitionLog::flush` refusing to run after a failed
/// fsync (`ensure_no_failed_sync`). Without it the second flush below
/// returns Ok and moves the flushed offset over a record that the failed
/// sync may have lost (on Linux the kernel marks the failed pages clean, so
/// a second fsync has nothing left to write), and the power cut then takes
/// a record the log called durable.
#[test]
fn a_failed_fsync_stops_the_log_and_is_never_retried() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyFileIo::new();
    let log = open(dir.path(), &disk);
    append(&log, "synced").unwrap();
    assert_eq!(log.flush().unwrap(), 1);

    append(&log, "unsynced").unwrap();
    disk.fail_syncs(".log", 1);
    let first = log.flush().unwrap_err().to_string();
    assert!(first.contains("Input/output error"), "{first}");
    assert_eq!(disk.syncs_failed(), 1);
    assert_eq!(log.flushed_offset(), 1, "a failed sync covers nothing");
    assert!(log.failed_sync().is_some());

    // The disk answers again, but what the failed sync lost is not known:
    // neither a flush nor an append may pretend otherwise.
    let again = log.flush().unwrap_err();
    assert!(
        matches!(again, StorageError::SyncFailed { .. }),
        "the second flush must not succeed: {again}"
    );
    assert_eq!(log.flushed_offset(), 1);
    let refused = append(&log, "after the failure").unwrap_err();
    assert!(
        matches!(refused, StorageError::SyncFailed { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("an fsync in"), "{refused}");

    // Recovered from its last synced state: the bytes no sync covered are
    // cut away (they may live in the page cache only), and the log opened
    // again from its files.
    assert!(
        log.discard_unsynced().unwrap() > 0,
        "the unsynced record was cut"
    );
    drop(log);
    let reopened = open(dir.path(), &disk);
    assert_eq!(
        values(&read_all(&reopened, 1 << 20)),
        vec![(0, "synced".to_string())],
        "what was flushed survives, what was not is gone"
    );
    append(&reopened, "writes again").unwrap();
    assert_eq!(reopened.flush().unwrap(), 2);
}

/// Protection tested: `Segment::append` counting batches only after their
/// bytes were written. Counting them first would leave a hole of
/// unwritten bytes inside the log, and the reads and the reopen below
/// would fail on it.
#[test]
fn write_errors_and_a_full_disk_leave_no_hole() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyFileIo::new();
    let log = open(dir.path(), &disk);
    append(&log, "a").unwrap();
    for errno in [libc::ENOSPC, libc::EIO] {
        disk.fail_writes(".log", 1, errno);
        let error = append(&log, "refused").unwrap_err();
        let expected = std::io::Error::from_raw_os_error(errno).to_string();
        assert!(error.to_string().contains(&expected), "{error}");
        assert_eq!(log.log_end_offset(), 1, "a failed write takes no offset");
    }
    assert_eq!(disk.writes_failed(), 2);
    assert_eq!(
        append(&log, "b").unwrap(),
        1,
        "the next write takes its place"
    );
    log.flush().unwrap();
    let expected = vec![(0, "a".to_string()), (1, "b".to_string())];
    assert_eq!(values(&read_all(&log, 1 << 20)), expected);
    drop(log);
    disk.power_cut().unwrap();
    let reopened = open(dir.path(), &disk);
    assert_eq!(values(&read_all(&reopened, 1 << 20)), expected);
    assert!(!reopened.recovery_report().dropped_data());
}

/// A power cut keeps every flushed record and nothing the log did not sync,
/// across segment rolls. Protection tested: recovery refusing a segment
/// that does not start where the one before it ends (`gap_before`). The
/// rolls after the flush leave new segment files that the cut empties;
/// without the check the reopened log ended at offset 80, not 60, and its
/// next append would have taken an offset past a hole of 20.
#[test]
fn a_power_cut_keeps_exactly_what_was_synced() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyFileIo::new();
    let config = LogConfig::from_pairs([("segment.bytes", "1024")]).unwrap();
    let log = PartitionLog::open_with_io(
        dir.path(),
        config.clone(),
        Arc::new(ManualClock::new(0)),
        Arc::clone(&disk) as Arc<dyn FileIo>,
    )
    .unwrap();
    for i in 0..60 {
        append(&log, &format!("synced-{i:02}-{}", "x".repeat(40))).unwrap();
    }
    assert_eq!(log.flush().unwrap(), 60);
    assert!(log.segment_base_offsets().len() > 2, "several segments");
    for i in 0..25 {
        append(&log, &format!("lost-{i:02}-{}", "x".repeat(40))).unwrap();
    }
    drop(log);
    assert!(disk.power_cut().unwrap() > 0);
    let reopened = PartitionLog::open(dir.path(), config, Arc::new(ManualClock::new(0))).unwrap();
    let records = values(&read_all(&reopened, 1 << 20));
    assert_eq!(records.len(), 60, "{records:?}");
    assert!(records.iter().all(|(_, v)| v.starts_with("synced")));
    assert_eq!(reopened.log_end_offset(), 60);
}
