//! The log as a Raft log: entries numbered by Raft index across segments,
//! reads by index, truncation, deletion of whole segments and restarts at a
//! chosen index, all surviving reopening.

use spool_record::{BatchBuilder, BatchIter};
use spool_storage::config::LogConfig;
use spool_storage::testing::{open, values_batch};
use spool_storage::{ManualClock, PartitionLog};

fn small_segments() -> LogConfig {
    LogConfig::from_pairs([("segment.bytes", "600"), ("index.interval.bytes", "150")]).unwrap()
}

/// Entry `i`: a meta batch carrying `i` for every third index, else a
/// data batch of one record whose value is `i`.
fn entry(i: u64) -> Vec<u8> {
    if i % 3 == 0 {
        BatchBuilder::raft_meta(&i.to_be_bytes()).build()
    } else {
        values_batch(&[i.to_be_bytes().to_vec()], 1_000)
    }
}

/// What entry bytes say they are: the number they carry.
fn numbers(bytes: &[u8]) -> Vec<u64> {
    BatchIter::new(bytes)
        .map(|batch| {
            let batch = batch.unwrap();
            let payload = if batch.is_raft_meta() {
                batch.raft_meta_payload().to_vec()
            } else {
                let records = batch.records().unwrap();
                let record = records.iter().next().unwrap().unwrap();
                record.value.unwrap().to_vec()
            };
            u64::from_be_bytes(payload.try_into().unwrap())
        })
        .collect()
}

fn append_entries(log: &PartitionLog, range: std::ops::Range<u64>) {
    for i in range {
        log.append_raft_entries(&mut entry(i), 1).unwrap();
    }
}

/// Reads every entry one request at a time and checks each is the one its
/// index names.
fn check_entries(log: &PartitionLog, first: u64, next: u64, label: &str) {
    assert_eq!(log.raft_index_range(), (first, next), "{label}");
    for i in first..next {
        let got = numbers(&log.read_raft_entries(i, i + 1, 1).unwrap());
        assert_eq!(got, vec![i], "{label}: entry {i}");
    }
    let mut from = first;
    while from < next {
        let got = numbers(&log.read_raft_entries(from, next, 10_000).unwrap());
        assert!(!got.is_empty(), "{label}: a read makes progress");
        let expected: Vec<u64> = (from..from + got.len() as u64).collect();
        assert_eq!(got, expected, "{label}: a range read is consecutive");
        from += got.len() as u64;
    }
}

#[test]
fn entries_keep_their_indexes_across_segments_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), small_segments(), &clock);
    append_entries(&log, 0..120);
    check_entries(&log, 0, 120, "live");
    assert!(
        log.read_raft_entries(120, 121, 100).is_err(),
        "past the end"
    );
    log.close().unwrap();
    drop(log);

    let log = open(dir.path(), small_segments(), &clock);
    check_entries(&log, 0, 120, "reopened from indexes");
    drop(log);

    // Damaged index files are rebuilt by scanning, Raft column included.
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "index") {
            std::fs::write(&path, b"garbage").unwrap();
        }
    }
    let log = open(dir.path(), small_segments(), &clock);
    check_entries(&log, 0, 120, "reopened with rebuilt indexes");
}

#[test]
fn truncation_removes_the_tail_and_the_next_entries_take_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), small_segments(), &clock);
    append_entries(&log, 0..90);
    let end_before = log.log_end_offset();
    log.truncate_raft_from(50).unwrap();
    check_entries(&log, 0, 50, "truncated");
    // Offsets follow the entries: 50 entries hold 33 records (every third
    // is a meta batch), so the log ends at offset 33.
    assert_eq!(log.log_end_offset(), 33);
    assert!(end_before > 33);
    append_entries(&log, 50..70);
    check_entries(&log, 0, 70, "appended after truncation");
    drop(log);
    let log = open(dir.path(), small_segments(), &clock);
    check_entries(&log, 0, 70, "reopened");
    log.truncate_raft_from(0).unwrap();
    assert_eq!(log.raft_index_range(), (0, 0));
    assert!(
        log.truncate_raft_from(5).is_ok(),
        "nothing to remove is fine"
    );
}

#[test]
fn whole_segments_before_an_index_are_deleted_and_the_start_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), small_segments(), &clock);
    append_entries(&log, 0..120);
    let first = log.delete_raft_before(60).unwrap();
    assert!(
        first <= 60 && first > 0,
        "deleted whole segments only: {first}"
    );
    check_entries(&log, first, 120, "after delete");
    assert!(log.read_raft_entries(first - 1, first, 100).is_err());
    drop(log);
    let log = open(dir.path(), small_segments(), &clock);
    check_entries(&log, first, 120, "reopened after delete");
    // Everything: only the active segment, which is kept, remains.
    let first = log.delete_raft_before(1_000).unwrap();
    check_entries(&log, first, 120, "after deleting all it may");
}

#[test]
fn an_empty_log_restarts_its_index_where_raft_says() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), small_segments(), &clock);
    log.reset_raft_index(100).unwrap();
    assert_eq!(log.raft_index_range(), (100, 100));
    append_entries(&log, 100..130);
    check_entries(&log, 100, 130, "restarted");
    let error = log.reset_raft_index(7).unwrap_err().to_string();
    assert!(error.contains("holds entries [100, 130)"), "{error}");
    drop(log);
    let log = open(dir.path(), small_segments(), &clock);
    check_entries(&log, 100, 130, "reopened");
}

#[test]
fn compaction_empties_batches_but_never_renumbers_entries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let config =
        LogConfig::from_pairs([("cleanup.policy", "compact"), ("segment.bytes", "400")]).unwrap();
    let log = open(dir.path(), config.clone(), &clock);
    // Entry i: the same key every time (so all but the last record go),
    // with meta batches between.
    let key_batch = |i: u64| {
        spool_storage::testing::batch(&[(Some(&b"k"[..]), Some(&i.to_be_bytes()[..]), 1_000)])
    };
    for i in 0..40u64 {
        let mut bytes = if i % 4 == 0 {
            BatchBuilder::raft_meta(&i.to_be_bytes()).build()
        } else {
            key_batch(i)
        };
        log.append_raft_entries(&mut bytes, 1).unwrap();
    }
    log.roll().unwrap();
    let offsets_before: Vec<u64> = (0..40)
        .map(|i| batch_base(&log.read_raft_entries(i, i + 1, 1).unwrap()))
        .collect();
    let outcome = log.clean().unwrap();
    assert!(outcome.records_removed > 0, "the cleaner removed records");
    assert_eq!(log.raft_index_range(), (0, 40));
    for i in 0..40 {
        let bytes = log.read_raft_entries(i, i + 1, 1).unwrap();
        assert_eq!(
            batch_base(&bytes),
            offsets_before[i as usize],
            "entry {i} kept its place"
        );
        if i % 4 == 0 {
            assert_eq!(
                numbers(&bytes),
                vec![i],
                "meta entries are kept as they were"
            );
        }
    }
    drop(log);
    let log = open(dir.path(), config, &clock);
    assert_eq!(log.raft_index_range(), (0, 40));
}

fn batch_base(bytes: &[u8]) -> u64 {
    let mut batches = BatchIter::new(bytes);
    let batch = batches.next().unwrap().unwrap();
    assert!(batches.next().is_none(), "one entry");
    batch.base_offset()
}

#[test]
fn a_segment_of_meta_batches_alone_is_never_rolled_away() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let config = LogConfig::from_pairs([("retention.ms", "1000")]).unwrap();
    let log = open(dir.path(), config.clone(), &clock);
    append_entries(&log, 0..1); // entry 0 is a meta batch
                                // Its file name would be the next segment's: rolling must not replace it.
    log.roll().unwrap();
    clock.advance(10_000);
    log.apply_retention().unwrap();
    check_entries(&log, 0, 1, "after roll and retention");
    append_entries(&log, 1..5);
    drop(log);
    let log = open(dir.path(), config, &clock);
    check_entries(&log, 0, 5, "reopened");
}

#[test]
fn segments_left_behind_by_a_crash_during_deletion_do_not_renumber_entries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), small_segments(), &clock);
    append_entries(&log, 0..120);
    log.close().unwrap();
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let first = log.delete_raft_before(60).unwrap();
    drop(log);
    // The checkpoint moved on, but the files came back, as if the process
    // died between the checkpoint and the unlinks.
    for (path, bytes) in &saved {
        if !path.exists() {
            std::fs::write(path, bytes).unwrap();
        }
    }
    let log = open(dir.path(), small_segments(), &clock);
    check_entries(&log, first, 120, "reopened with leftovers");
}

#[test]
fn flush_syncs_meta_batches_appended_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), small_segments(), &clock);
    append_entries(&log, 1..3); // data batches
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), small_segments(), &clock);
    let before = log.flush_count();
    log.append_raft_entries(&mut BatchBuilder::raft_meta(b"blank").build(), 2)
        .unwrap();
    log.flush().unwrap();
    assert_eq!(log.flush_count(), before + 1, "the meta batch was synced");
}
