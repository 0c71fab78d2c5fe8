//! Appends, validation errors, time lookups, fsync policies and the
//! background manager.

use std::sync::Arc;
use std::time::Duration;

use spool_record::{BatchBuilder, Compression};
use spool_storage::config::LogConfig;
use spool_storage::testing::{batch, open, read_all, values_batch};
use spool_storage::StorageError;
use spool_storage::{LogManager, ManagerConfig, ManualClock, PartitionLog, SystemClock};

fn config(pairs: &[(&str, &str)]) -> LogConfig {
    LogConfig::from_pairs(pairs.iter().copied()).unwrap()
}

#[test]
fn bad_appends_are_rejected_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        config(&[("max.message.bytes", "200")]),
        &ManualClock::new(0),
    );
    log.append(&mut values_batch(&[b"ok".to_vec()], 1), 1)
        .unwrap();

    let mut too_big = values_batch(&[vec![0; 300]], 1);
    assert!(matches!(
        log.append(&mut too_big, 1),
        Err(StorageError::BatchTooLarge { max: 200, .. })
    ));

    let mut bad_crc = values_batch(&[b"x".to_vec()], 1);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let err = log.append(&mut bad_crc, 1).unwrap_err().to_string();
    assert!(err.contains("CRC mismatch"), "{err}");

    let mut torn = values_batch(&[b"x".to_vec()], 1);
    torn.truncate(torn.len() - 3);
    assert!(log
        .append(&mut torn, 1)
        .unwrap_err()
        .to_string()
        .contains("declares"));

    assert!(log.append(&mut [], 1).is_err());
    assert!(log.append(&mut [0xAB; 100], 1).is_err(), "garbage");

    // A good batch followed by a bad one: neither is appended.
    let mut mixed = values_batch(&[b"good".to_vec()], 1);
    let mut bad = values_batch(&[b"bad".to_vec()], 1);
    bad[30] ^= 0xff;
    mixed.extend_from_slice(&bad);
    assert!(log.append(&mut mixed, 1).is_err());

    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(read_all(&log, 1000).len(), 1);
}

#[test]
fn several_batches_in_one_append_get_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), &ManualClock::new(0));
    let mut bytes = values_batch(&[b"a".to_vec(), b"b".to_vec()], 1);
    bytes.extend(values_batch(&[b"c".to_vec()], 2));
    let mut builder = BatchBuilder::new(Compression::Lz4);
    builder.push(3, None, Some(b"d"), &[]);
    builder.push(3, None, Some(b"e"), &[]);
    bytes.extend(builder.build());
    let info = log.append(&mut bytes, 9).unwrap();
    assert_eq!(
        (info.base_offset, info.next_offset - 1, info.max_timestamp),
        (0, 4, 3)
    );
    let values: Vec<_> = read_all(&log, 10)
        .into_iter()
        .map(|r| (r.offset, r.value.unwrap()))
        .collect();
    let expected: Vec<(u64, Vec<u8>)> = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_bytes().to_vec()))
        .collect();
    assert_eq!(values, expected);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        config(&[("segment.bytes", "400"), ("index.interval.bytes", "100")]),
        &ManualClock::new(0),
    );
    // Timestamps are not monotonic: 10, 30, 20 | 40, 35 | 50 ...
    let timestamps: Vec<i64> = (0..60)
        .map(|i| i * 10 + if i % 3 == 2 { -15 } else { 0 })
        .collect();
    for chunk in timestamps.chunks(3) {
        let recs: Vec<_> = chunk
            .iter()
            .map(|ts| (None, Some(&b"v"[..]), *ts))
            .collect();
        log.append(&mut batch(&recs), 1).unwrap();
    }
    assert!(log.segment_base_offsets().len() > 3);
    for target in -5..620 {
        let expected = timestamps
            .iter()
            .position(|ts| *ts >= target)
            .map(|i| i as u64);
        assert_eq!(
            log.offset_for_timestamp(target).unwrap(),
            expected,
            "target {target}"
        );
    }
    log.delete_before(10).unwrap();
    assert_eq!(
        log.offset_for_timestamp(0).unwrap(),
        Some(10),
        "never below the log start"
    );
}

#[test]
fn fsync_policies_decide_the_flushed_offset() {
    let clock = ManualClock::new(0);
    let every = open(
        tempfile::tempdir().unwrap().path(),
        config(&[("flush.bytes", "0")]),
        &clock,
    );
    every
        .append(&mut values_batch(&[b"a".to_vec()], 1), 1)
        .unwrap();
    assert_eq!(every.flushed_offset(), 1);

    let dir = tempfile::tempdir().unwrap();
    let by_bytes = open(dir.path(), config(&[("flush.bytes", "200")]), &clock);
    by_bytes
        .append(&mut values_batch(&[vec![1; 50]], 1), 1)
        .unwrap();
    assert_eq!(by_bytes.flushed_offset(), 0, "under the byte threshold");
    by_bytes
        .append(&mut values_batch(&[vec![1; 150]], 1), 1)
        .unwrap();
    assert_eq!(by_bytes.flushed_offset(), 2);

    let dir = tempfile::tempdir().unwrap();
    let by_time = open(dir.path(), config(&[("flush.ms", "100")]), &clock);
    by_time
        .append(&mut values_batch(&[b"a".to_vec()], 1), 1)
        .unwrap();
    assert!(!by_time.flush_if_due().unwrap());
    clock.advance(100);
    assert!(by_time.flush_if_due().unwrap());
    assert_eq!(by_time.flushed_offset(), 1);

    let dir = tempfile::tempdir().unwrap();
    let explicit = open(dir.path(), LogConfig::default(), &clock);
    explicit
        .append(&mut values_batch(&[b"a".to_vec()], 1), 1)
        .unwrap();
    clock.advance(1_000_000);
    assert!(!explicit.flush_if_due().unwrap());
    assert_eq!(explicit.flushed_offset(), 0);
    assert_eq!(explicit.flush().unwrap(), 1);
}

#[test]
fn segments_roll_by_size_and_age() {
    let clock = ManualClock::new(0);
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        config(&[("segment.bytes", "400"), ("segment.ms", "1000")]),
        &clock,
    );
    for _ in 0..3 {
        log.append(&mut values_batch(&[vec![0; 100]], 0), 1)
            .unwrap();
    }
    assert_eq!(
        log.segment_base_offsets(),
        vec![0, 2],
        "three 166-byte batches do not fit in 400"
    );
    clock.advance(999);
    log.append(&mut values_batch(&[vec![0; 10]], 0), 1).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    clock.advance(1);
    log.append(&mut values_batch(&[vec![0; 10]], 0), 1).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4]);
}

#[test]
fn manager_flushes_on_time_and_closes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<SystemClock> = Arc::new(SystemClock);
    let log = Arc::new(
        PartitionLog::open(dir.path(), config(&[("flush.ms", "20")]), clock.clone()).unwrap(),
    );
    let manager = LogManager::start(ManagerConfig {
        flush_check_interval: Duration::from_millis(5),
        ..Default::default()
    });
    manager.insert("t-0", Arc::clone(&log));
    log.append(&mut values_batch(&[b"a".to_vec()], 1), 1)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log.flushed_offset() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the manager never flushed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(manager.names(), vec!["t-0".to_string()]);
    manager.shutdown().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default(), clock).unwrap();
    assert_eq!(log.recovery_report().segments_scanned, 0);
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn background_flush_keeps_one_fsync_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        PartitionLog::open(
            dir.path(),
            config(&[("flush.bytes", "4096")]),
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    log.start_background_flush();
    log.start_background_flush(); // idempotent
    for _ in 0..200 {
        log.append(&mut values_batch(&[vec![7; 1000]], 1), 1)
            .unwrap();
    }
    let end = log.log_end_offset();
    assert_eq!(log.flush().unwrap(), end);
    // A flush is requested whenever 4096 bytes have come since the last
    // request, and no request is merged away: one fsync per request, plus
    // at most one for the explicit flush.
    let batch_size = log.size_bytes() / 200;
    let requests = 200 / 4096u64.div_ceil(batch_size);
    // Up to two background flushes may still be running or queued behind
    // the explicit one; wait for them before counting.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log.flush_count() < requests && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(50));
    let fsyncs = log.flush_count();
    assert!(
        fsyncs == requests || fsyncs == requests + 1,
        "{fsyncs} fsyncs for {requests} requests"
    );
    let weak = Arc::downgrade(&log);
    drop(log);
    // The flusher may be finishing a flush; after that it lets go.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while weak.upgrade().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the flusher keeps the log alive"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn raft_meta_batches_take_no_offset_and_never_reach_readers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    // Small segments, so the meta batches also land at segment edges.
    let log = open(dir.path(), spool_storage::testing::small_segments(), &clock);
    let meta = || BatchBuilder::raft_meta(b"entry").build();
    let mut expected = Vec::new();
    for round in 0..20u8 {
        let values: Vec<Vec<u8>> = (0..3).map(|i| vec![round, i]).collect();
        let info = log.append_raft_entries(&mut meta(), 2).unwrap();
        assert_eq!(
            info.base_offset, info.next_offset,
            "a meta batch takes no offset"
        );
        let info = log
            .append_raft_entries(&mut values_batch(&values, 5), 2)
            .unwrap();
        assert_eq!(info.base_offset, u64::from(round) * 3, "offsets stay dense");
        expected.extend(values);
    }
    log.append_raft_entries(&mut meta(), 2).unwrap();
    assert_eq!(log.log_end_offset(), 60);

    let check = |log: &PartitionLog| {
        let records = read_all(log, 100);
        let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..60).collect::<Vec<u64>>(), "no gap, no repeat");
        let values: Vec<Vec<u8>> = records.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(values, expected);
        for offset in 0..60 {
            let read = log.read(offset, 1).unwrap();
            for batch in spool_record::BatchIter::new(&read.bytes) {
                assert!(
                    !batch.unwrap().is_raft_meta(),
                    "read at {offset} served a meta batch"
                );
            }
        }
        assert!(log.read(60, 1000).unwrap().bytes.is_empty());
    };
    check(&log);
    drop(log);
    // Recovery scans the meta batches like any other.
    let log = open(dir.path(), spool_storage::testing::small_segments(), &clock);
    check(&log);

    // The producer path refuses them.
    let error = log.append(&mut meta(), 2).unwrap_err().to_string();
    assert!(
        error.contains("reserved for the replication layer"),
        "{error}"
    );
    assert_eq!(log.log_end_offset(), 60);
}

/// Found by fuzzing (fuzz/, `produce_validation`): a producer batch whose
/// header declares the largest last offset delta (`i32::MAX`) overflowed
/// the 32-bit record count check, a panic in a debug build. It is refused.
#[test]
fn a_batch_declaring_the_largest_offset_delta_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), &ManualClock::new(0));
    let mut bytes = values_batch(&[b"v".to_vec()], 1);
    // Kafka's v2 header: the last offset delta at byte 23, the CRC at 17
    // covering everything from the attributes at 21.
    bytes[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let error = log.validate_producer_batches(&bytes).unwrap_err();
    assert!(matches!(error, StorageError::InvalidBatch(_)), "{error}");
    assert!(log.append(&mut bytes, 1).is_err());
    assert_eq!(log.log_end_offset(), 0);
}
