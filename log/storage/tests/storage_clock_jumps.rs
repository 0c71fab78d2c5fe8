//! A log under clocks that step (issue 22, item 5): the log's own clock
//! stepping forward and back rolls a segment at most once, and timestamps
//! that go back (a producer whose clock was stepped) keep time lookups
//! exact and monotonic. The broker's steady clock, which keeps a stepped
//! system clock from reaching the logs at all, is tested in
//! `log/broker/tests/clock_jumps.rs`.

use spool_storage::config::LogConfig;
use spool_storage::testing::{open, values_batch};
use spool_storage::{ManualClock, PartitionLog};

const DAY_MS: u64 = 24 * 3600 * 1000;

fn append(log: &PartitionLog, timestamp: i64) {
    log.append(&mut values_batch(&[vec![b'v'; 100]], timestamp), 1)
        .unwrap();
}

/// Protection tested: `segment.ms` counting from the active segment's first
/// append (`active_since_ms`, restarted by every roll). Counted from the
/// log's first append instead, every append after the forward step rolled
/// a segment of its own: a storm of one-batch segments.
#[test]
fn a_stepped_clock_rolls_a_segment_at_most_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(100 * DAY_MS);
    let config = LogConfig::from_pairs([("segment.ms", "3600000")]).unwrap();
    let log = open(dir.path(), config, &clock);
    for _ in 0..20 {
        append(&log, 1);
    }
    assert_eq!(log.segment_base_offsets().len(), 1);

    clock.advance(30 * DAY_MS);
    for _ in 0..20 {
        append(&log, 1);
    }
    assert_eq!(
        log.segment_base_offsets(),
        vec![0, 20],
        "one roll for the step forward, the first append after it"
    );

    clock.set(40 * DAY_MS);
    for _ in 0..20 {
        append(&log, 1);
    }
    assert_eq!(
        log.segment_base_offsets(),
        vec![0, 20],
        "no roll while the clock is behind the active segment's start"
    );
}

/// Timestamps stepped back and forth across several segments: every lookup
/// gives the first record at or after its time (Kafka's ListOffsets by
/// time), so a later time never gives an earlier offset. A regression
/// check, not a protection check: keying the time index by each batch's
/// own timestamp instead of the largest one before it did not make it
/// fail (the lookup's scan from the index entry still found every answer
/// here).
#[test]
fn time_lookups_stay_exact_and_monotonic_when_timestamps_step_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let config =
        LogConfig::from_pairs([("segment.bytes", "2048"), ("index.interval.bytes", "128")])
            .unwrap();
    let log = open(dir.path(), config, &clock);
    // A producer whose clock steps back by an hour twice and forward once,
    // and runs an hour ahead for one record (stepped forward, then back).
    let mut timestamps = Vec::new();
    let mut now: i64 = 10_000_000;
    for i in 0..120 {
        now += 1_000;
        if i == 30 || i == 80 {
            now -= 3_600_000;
        }
        if i == 100 {
            now += 7_200_000;
        }
        let stamped = if i == 45 { now + 3_600_000 } else { now };
        timestamps.push(stamped);
        append(&log, stamped);
    }
    assert!(log.segment_base_offsets().len() > 3, "several segments");
    let lowest = *timestamps.iter().min().unwrap();
    let highest = *timestamps.iter().max().unwrap();
    let mut previous = 0;
    for target in (lowest - 5_000..=highest + 5_000).step_by(2_500) {
        let expected = timestamps
            .iter()
            .position(|&t| t >= target)
            .map(|i| i as u64);
        let found = log.offset_for_timestamp(target).unwrap();
        assert_eq!(found, expected, "lookup of {target}");
        if let Some(offset) = found {
            assert!(
                offset >= previous,
                "lookup of {target} went back to {offset}"
            );
            previous = offset;
        }
    }
}
