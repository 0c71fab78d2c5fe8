//! Retention by time and size, and key-based compaction: each test checks
//! exactly which offsets and keys survive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use spool_storage::config::LogConfig;
use spool_storage::testing::{batch, open, read_all, values_batch};
use spool_storage::ManualClock;

fn config(pairs: &[(&str, &str)]) -> LogConfig {
    LogConfig::from_pairs(pairs.iter().copied()).unwrap()
}

fn offsets(log: &spool_storage::PartitionLog) -> Vec<u64> {
    read_all(log, 1 << 20).iter().map(|r| r.offset).collect()
}

#[test]
fn time_retention_deletes_exactly_the_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(10_000);
    let log = open(dir.path(), config(&[("retention.ms", "1000")]), &clock);
    // Four segments of 2 records each, newest timestamps 8000, 8500, 9500, 9900.
    for ts in [8_000, 8_500, 9_500, 9_900] {
        log.append(&mut values_batch(&[b"a".to_vec(), b"b".to_vec()], ts), 1)
            .unwrap();
        log.roll().unwrap();
    }
    // now - retention = 9000: the segments with max timestamps 8000 and 8500 go.
    let outcome = log.apply_retention().unwrap();
    assert_eq!(outcome.segments_deleted, 2);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(offsets(&log), vec![4, 5, 6, 7]);
    assert!(log.read(3, 100).is_err());

    // Later everything expires, including the active segment: it is rolled
    // and deleted, and the log is empty but keeps its end offset.
    log.append(&mut values_batch(&[b"c".to_vec()], 9_950), 1)
        .unwrap();
    clock.set(20_000);
    log.apply_retention().unwrap();
    assert_eq!(log.log_start_offset(), 9);
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(offsets(&log), Vec::<u64>::new());
    assert_eq!(
        log.append(&mut values_batch(&[b"d".to_vec()], 20_000), 1)
            .unwrap()
            .base_offset,
        9
    );
}

#[test]
fn size_retention_keeps_the_newest_segments_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), config(&[("retention.ms", "-1")]), &clock);
    for i in 0..5u8 {
        log.append(&mut values_batch(&[vec![i; 100]], 0), 1)
            .unwrap();
        log.roll().unwrap();
    }
    let segment_size = log.size_bytes() / 5;
    log.set_config(config(&[(
        "retention.bytes",
        &(segment_size * 2).to_string(),
    )]));
    log.apply_retention().unwrap();
    assert_eq!(offsets(&log), vec![3, 4]);
    assert_eq!(log.size_bytes(), segment_size * 2);
    assert_eq!(log.segment_base_offsets(), vec![3, 4, 5]);
}

#[test]
fn retention_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), LogConfig::default(), &clock);
    for _ in 0..4 {
        log.append(&mut values_batch(&[b"x".to_vec(), b"y".to_vec()], 0), 1)
            .unwrap();
        log.roll().unwrap();
    }
    log.delete_before(5).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![4, 6, 8]);
    drop(log);
    let log = open(dir.path(), LogConfig::default(), &clock);
    assert_eq!(log.log_start_offset(), 5);
    assert_eq!(offsets(&log), vec![5, 6, 7]);
}

fn keyed(key: &str, value: Option<&str>, ts: i64) -> Vec<u8> {
    batch(&[(Some(key.as_bytes()), value.map(str::as_bytes), ts)])
}

fn key_values(log: &spool_storage::PartitionLog) -> Vec<(u64, String, Option<String>)> {
    read_all(log, 1 << 20)
        .into_iter()
        .map(|r| {
            let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
            (r.offset, text(r.key.unwrap()), r.value.map(text))
        })
        .collect()
}

#[test]
fn compaction_keeps_the_latest_record_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(100_000);
    let cfg = config(&[
        ("cleanup.policy", "compact"),
        ("delete.retention.ms", "1000"),
        ("segment.bytes", "300"),
    ]);
    let log = open(dir.path(), cfg.clone(), &clock);
    let writes: &[(&str, Option<&str>)] = &[
        ("a", Some("a1")), // 0
        ("b", Some("b1")), // 1
        ("c", Some("c1")), // 2
        ("a", Some("a2")), // 3
        ("b", None),       // 4: tombstone for b
        ("d", Some("d1")), // 5
        ("a", Some("a3")), // 6
        ("c", Some("c2")), // 7
        ("e", Some("e1")), // 8
    ];
    for (key, value) in writes {
        log.append(&mut keyed(key, *value, 99_500), 1).unwrap();
    }
    log.roll().unwrap();
    // Writes in the active segment are not cleaned and do not count.
    log.append(&mut keyed("d", Some("d2"), 99_900), 1).unwrap();
    assert!(log.segment_base_offsets().len() > 2);
    let outcome = log.clean().unwrap();
    assert_eq!(outcome.records_removed, 4);
    let expected_after_first_pass = vec![
        (4, "b".to_string(), None),
        (5, "d".to_string(), Some("d1".to_string())),
        (6, "a".to_string(), Some("a3".to_string())),
        (7, "c".to_string(), Some("c2".to_string())),
        (8, "e".to_string(), Some("e1".to_string())),
        (9, "d".to_string(), Some("d2".to_string())),
    ];
    assert_eq!(key_values(&log), expected_after_first_pass);
    assert_eq!(log.log_end_offset(), 10);

    // The tombstone stays for delete.retention.ms after the cleaner first
    // saw its segment (at 100_000), then the next pass removes it.
    clock.set(100_999);
    log.clean().unwrap();
    assert_eq!(key_values(&log), expected_after_first_pass);
    clock.set(101_000);
    log.clean().unwrap();
    assert_eq!(key_values(&log)[0].0, 5);
    assert_eq!(key_values(&log).len(), 5);

    // Compacted data survives a crash and a reopen unchanged, and the
    // offsets after it continue.
    let before = key_values(&log);
    drop(log);
    let log = open(dir.path(), cfg, &clock);
    assert!(
        !log.recovery_report().dropped_data(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(key_values(&log), before);
    assert_eq!(
        log.append(&mut keyed("f", Some("f1"), 1), 1)
            .unwrap()
            .base_offset,
        10
    );
}

#[test]
fn compaction_rewrites_batches_and_keeps_their_offset_range() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let cfg = config(&[("cleanup.policy", "compact")]);
    let log = open(dir.path(), cfg, &clock);
    // One batch with keys x, y, x, z, y: offsets 0..5.
    let recs: Vec<spool_storage::testing::NewRecord> = ["x", "y", "x", "z", "y"]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            (
                Some(k.as_bytes()),
                Some(["v0", "v1", "v2", "v3", "v4"][i].as_bytes()),
                5,
            )
        })
        .collect();
    log.append(&mut batch(&recs), 7).unwrap();
    log.roll().unwrap();
    log.clean().unwrap();
    let read = log.read(0, 1 << 20).unwrap();
    let (stored, _) = spool_record::RecordBatch::parse(&read.bytes).unwrap();
    stored.validate().unwrap();
    assert_eq!(
        (stored.base_offset(), stored.last_offset(), stored.term()),
        (0, 4, 7)
    );
    assert_eq!(read.next_offset, 5);
    let survivors: Vec<u64> = key_values(&log).iter().map(|r| r.0).collect();
    assert_eq!(survivors, vec![2, 3, 4]);
}

#[test]
fn dirty_ratio_gates_the_cleaner() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(
        dir.path(),
        config(&[
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0.5"),
        ]),
        &clock,
    );
    assert!(log.clean_if_dirty().unwrap().is_none(), "nothing to clean");
    for _ in 0..4 {
        log.append(&mut keyed("k", Some("v"), 0), 1).unwrap();
        log.roll().unwrap();
    }
    assert_eq!(log.dirty_ratio(), 1.0);
    assert_eq!(log.clean_if_dirty().unwrap().unwrap().records_removed, 3);
    assert_eq!(log.dirty_ratio(), 0.0);
    assert!(log.clean_if_dirty().unwrap().is_none());
    let delete_only = open(
        tempfile::tempdir().unwrap().path(),
        LogConfig::default(),
        &clock,
    );
    assert!(
        delete_only.clean_if_dirty().unwrap().is_none(),
        "delete policy never compacts"
    );
}

#[test]
fn cleaning_does_not_block_or_disturb_appends_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = Arc::new(open(
        dir.path(),
        config(&[("cleanup.policy", "compact"), ("segment.bytes", "2000")]),
        &clock,
    ));
    let done = Arc::new(AtomicBool::new(false));
    let cleaner = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut passes = 0;
            while !done.load(Ordering::SeqCst) {
                log.clean().unwrap();
                passes += 1;
            }
            passes
        })
    };
    let reader = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                for r in read_all(&log, 333) {
                    let (k, v) = (r.key.unwrap(), r.value.unwrap());
                    assert_eq!(&v[..k.len()], &k[..], "a value always belongs to its key");
                }
            }
        })
    };
    for i in 0..3000u32 {
        let key = format!("key{}", i % 50);
        let value = format!("{key}:{i}");
        log.append(&mut keyed(&key, Some(&value), i64::from(i)), 1)
            .unwrap();
    }
    done.store(true, Ordering::SeqCst);
    assert!(cleaner.join().unwrap() > 0);
    reader.join().unwrap();
    log.roll().unwrap();
    log.clean().unwrap();
    let survivors = key_values(&log);
    assert_eq!(survivors.len(), 50);
    for (offset, key, value) in survivors {
        assert_eq!(value.unwrap(), format!("{key}:{offset}"));
        assert!(offset >= 2950, "only the last write of each key survives");
    }
}

#[test]
fn compaction_keeps_transactional_records_and_the_values_they_may_replace() {
    use spool_record::{control_marker, BatchBuilder, Compression};
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(100_000);
    let cfg = config(&[("cleanup.policy", "compact"), ("segment.bytes", "300")]);
    let log = open(dir.path(), cfg, &clock);
    log.append(&mut keyed("a", Some("committed"), 99_500), 1)
        .unwrap();
    // An aborted transaction rewrote the key: its record must not make the
    // committed value go away, and it stays itself (the cleaner does not
    // know the outcome).
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(7, 0, 0)
        .transactional(true);
    builder.push(99_600, Some(b"a"), Some(b"aborted"), &[]);
    log.append(&mut builder.build(), 1).unwrap();
    log.append(&mut control_marker(7, 1, false, 99_700), 1)
        .unwrap();
    for i in 0..4 {
        log.append(&mut keyed("b", Some(&format!("b{i}")), 99_800), 1)
            .unwrap();
    }
    log.roll().unwrap();
    log.append(&mut keyed("z", Some("active"), 99_900), 1)
        .unwrap();
    let outcome = log.clean().unwrap();
    assert_eq!(outcome.records_removed, 3, "only b's older values go");
    let values: Vec<(u64, String, Option<String>)> = key_values(&log);
    assert!(
        values.contains(&(0, "a".into(), Some("committed".into()))),
        "{values:?}"
    );
    assert!(
        values.contains(&(1, "a".into(), Some("aborted".into()))),
        "{values:?}"
    );
}
