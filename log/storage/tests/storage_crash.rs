//! Crash recovery: torn tails, flipped bits, damaged indexes. After every
//! reopen exactly the valid prefix of the log remains, appends continue from
//! its end, and no read returns bad bytes.

use std::fs;
use std::path::{Path, PathBuf};

use spool_storage::config::LogConfig;
use spool_storage::testing::{open, read_all, values_batch, Rec};
use spool_storage::StorageError;
use spool_storage::{ManualClock, PartitionLog};

const SEGMENT: &str = "00000000000000000000.log";

/// Appends `batches` batches of 3 records each and returns the byte position
/// where each batch starts in the (single) segment file.
fn fill(log: &PartitionLog, batches: usize) -> Vec<u64> {
    let mut starts = Vec::new();
    for b in 0..batches {
        starts.push(log.size_bytes());
        let values: Vec<Vec<u8>> = (0..3)
            .map(|r| format!("batch {b} record {r}").into_bytes())
            .collect();
        log.append(&mut values_batch(&values, 1000 + b as i64), 1)
            .unwrap();
    }
    starts
}

/// Every file of a log directory: name and contents.
type Files = Vec<(PathBuf, Vec<u8>)>;

fn snapshot(dir: &Path) -> Files {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (PathBuf::from(p.file_name().unwrap()), fs::read(&p).unwrap()))
        .collect()
}

fn restore(files: &[(PathBuf, Vec<u8>)], dir: &Path) {
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

fn expected_records(batches: usize) -> Vec<(u64, Vec<u8>)> {
    (0..batches)
        .flat_map(|b| {
            (0..3).map(move |r| {
                (
                    (b * 3 + r) as u64,
                    format!("batch {b} record {r}").into_bytes(),
                )
            })
        })
        .collect()
}

fn values(records: Vec<Rec>) -> Vec<(u64, Vec<u8>)> {
    records
        .into_iter()
        .map(|r| (r.offset, r.value.unwrap()))
        .collect()
}

fn crashed_log(batches: usize) -> (tempfile::TempDir, Vec<u64>, Files) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), LogConfig::default(), &clock);
    let starts = fill(&log, batches);
    log.flush().unwrap();
    drop(log); // no close: recovery must validate the active segment
    let files = snapshot(dir.path());
    (dir, starts, files)
}

#[test]
fn torn_tail_at_every_byte_of_the_last_batch() {
    let batches = 5;
    let (_dir, starts, files) = crashed_log(batches);
    let full = files
        .iter()
        .find(|(n, _)| n == Path::new(SEGMENT))
        .unwrap()
        .1
        .len() as u64;
    let last_start = starts[batches - 1];
    for cut in last_start..=full {
        let dir = tempfile::tempdir().unwrap();
        restore(&files, dir.path());
        let log_file = dir.path().join(SEGMENT);
        fs::OpenOptions::new()
            .write(true)
            .open(&log_file)
            .unwrap()
            .set_len(cut)
            .unwrap();

        let log = open(dir.path(), LogConfig::default(), &ManualClock::new(0));
        let complete = if cut == full { batches } else { batches - 1 };
        assert_eq!(
            values(read_all(&log, 4096)),
            expected_records(complete),
            "cut at {cut}"
        );
        assert_eq!(log.log_end_offset(), complete as u64 * 3, "cut at {cut}");
        assert_eq!(
            log.recovery_report().bytes_truncated,
            if cut == full { 0 } else { cut - last_start }
        );
        assert_eq!(
            fs::metadata(&log_file).unwrap().len(),
            if cut == full { full } else { last_start }
        );

        // Appends continue right after the valid prefix.
        let info = log
            .append(&mut values_batch(&[b"after".to_vec()], 5), 1)
            .unwrap();
        assert_eq!(info.base_offset, complete as u64 * 3);
    }
}

#[test]
fn flipped_bit_in_an_earlier_batch_keeps_exactly_the_prefix_before_it() {
    let batches = 6;
    let victim = 2;
    let (_dir, starts, files) = crashed_log(batches);
    let segment = &files
        .iter()
        .find(|(n, _)| n == Path::new(SEGMENT))
        .unwrap()
        .1;
    let (from, to) = (starts[victim] as usize, starts[victim + 1] as usize);
    for bit in from * 8..to * 8 {
        let dir = tempfile::tempdir().unwrap();
        restore(&files, dir.path());
        let mut damaged = segment.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        fs::write(dir.path().join(SEGMENT), &damaged).unwrap();

        let log = open(dir.path(), LogConfig::default(), &ManualClock::new(0));
        let got = values(read_all(&log, 4096));
        assert!(log.recovery_report().dropped_data(), "bit {bit}");
        if TERM_FIELD.contains(&(bit / 8 - from)) {
            // The leader stamps the term after the producer computed the CRC,
            // so the CRC cannot cover it. A term that went down is caught at
            // the victim; one that went up looks like a new leader and is
            // caught at the next batch, whose term is then lower. Either way
            // no record after the victim survives and no record changes.
            let kept = got.len() / 3;
            assert!(
                kept == victim || kept == victim + 1,
                "bit {bit}: kept {kept} batches"
            );
            assert_eq!(got, expected_records(kept), "bit {bit}");
        } else {
            assert_eq!(got, expected_records(victim), "bit {bit}");
            assert_eq!(log.log_end_offset(), victim as u64 * 3, "bit {bit}");
        }
    }
}

/// Bytes 12..16 of a batch: the Raft term.
const TERM_FIELD: std::ops::Range<usize> = 12..16;

#[test]
fn corruption_behind_the_checkpoint_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    // Index every batch, so reopening trusts all but the last batch.
    let config = LogConfig::from_pairs([("index.interval.bytes", "0")]).unwrap();
    let log = open(dir.path(), config.clone(), &clock);
    let starts = fill(&log, 4);
    log.close().unwrap();
    drop(log);
    // Bit rot in data the checkpoint vouches for: recovery trusts it, so the
    // read path must catch it.
    let path = dir.path().join(SEGMENT);
    let mut bytes = fs::read(&path).unwrap();
    bytes[starts[1] as usize + 40] ^= 0x10;
    fs::write(&path, &bytes).unwrap();

    let log = open(dir.path(), config, &clock);
    assert!(!log.recovery_report().dropped_data());
    let before = log.read(0, 1 << 20).unwrap();
    assert_eq!(
        values(spool_storage::testing::decode(&before.bytes)),
        expected_records(1),
        "the read stops before the bad batch"
    );
    match log.read(3, 1 << 20) {
        Err(StorageError::CorruptBatch { reason, .. }) => {
            assert!(reason.contains("CRC"), "{reason}")
        }
        other => panic!("expected a corrupt-batch error, got {other:?}"),
    }
    let after = log.read(6, 1 << 20).unwrap();
    assert_eq!(spool_storage::testing::decode(&after.bytes)[0].offset, 6);
}

#[test]
fn torn_tail_after_clean_segments_keeps_the_clean_ones() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let config = spool_storage::testing::small_segments();
    let log = open(dir.path(), config.clone(), &clock);
    fill(&log, 20);
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), config.clone(), &clock);
    assert_eq!(
        log.recovery_report().segments_scanned,
        0,
        "a clean close leaves nothing to scan"
    );
    let starts_second_run = fill(&log, 3);
    let _ = starts_second_run;
    let segments = log.segment_base_offsets();
    assert!(segments.len() > 3);
    drop(log);
    let active = dir
        .path()
        .join(format!("{:020}.log", segments.last().unwrap()));
    let len = fs::metadata(&active).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 1)
        .unwrap();

    let log = open(dir.path(), config, &clock);
    assert!(log.recovery_report().segments_scanned >= 1);
    assert_eq!(log.log_end_offset(), 22 * 3);
    let got = values(read_all(&log, 500));
    assert_eq!(got.len(), 22 * 3);
    assert_eq!(
        got.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (0..66).collect::<Vec<u64>>()
    );
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let config = spool_storage::testing::small_segments();
    let log = open(dir.path(), config.clone(), &clock);
    fill(&log, 30);
    let expected = values(read_all(&log, 700));
    let ts_answer = log.offset_for_timestamp(1010).unwrap();
    log.close().unwrap();
    drop(log);
    let mut indexes: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "index" || e == "timeindex")
        })
        .collect();
    indexes.sort();
    assert!(indexes.len() >= 6);
    fs::remove_file(&indexes[0]).unwrap();
    fs::write(&indexes[2], b"garbage!").unwrap();
    let mut bytes = fs::read(&indexes[4]).unwrap();
    bytes.iter_mut().for_each(|b| *b = 0xff);
    fs::write(&indexes[4], &bytes).unwrap();

    let log = open(dir.path(), config, &clock);
    assert!(!log.recovery_report().dropped_data());
    assert_eq!(values(read_all(&log, 700)), expected);
    assert_eq!(log.offset_for_timestamp(1010).unwrap(), ts_answer);
    assert_eq!(ts_answer, Some(30));
}

#[test]
fn leftovers_of_interrupted_work_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), LogConfig::default(), &clock);
    fill(&log, 2);
    log.close().unwrap();
    drop(log);
    fs::write(
        dir.path().join("00000000000000000000.log.cleaned"),
        b"half a cleaned segment",
    )
    .unwrap();
    fs::write(dir.path().join("00000000000000000099.index"), b"orphan").unwrap();
    let log = open(dir.path(), LogConfig::default(), &clock);
    assert_eq!(values(read_all(&log, 4096)), expected_records(2));
    assert!(!dir.path().join("00000000000000000000.log.cleaned").exists());
    assert!(!dir.path().join("00000000000000000099.index").exists());
}
