//! Sliding windows through the test driver: each record's left window,
//! the right window of the record before it, windows updated by an
//! out-of-order record, closed windows left alone, a late record dropped.

use std::time::Duration;

use spool_streams::{
    BigEndian, Consumed, Grouped, Materialized, Nullable, Produced, SlidingWindows, StreamsBuilder,
    TestTopic, TimeWindowed, TopologyTestDriver, Utf8,
};

const D: Duration = Duration::from_millis(10);

fn pipe_all(driver: &mut TopologyTestDriver, records: &[(&str, i64)]) {
    let clicks = TestTopic::new("clicks", Utf8, Utf8);
    for (value, time) in records {
        driver
            .pipe(&clicks, &"a".to_string(), &value.to_string(), *time)
            .unwrap();
    }
}

#[test]
fn sliding_windows_count_the_records_within_the_difference() {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(D))
        .count(Materialized::with(Utf8, BigEndian).named("sliding-counts"))
        .to_stream()
        .to(
            "counts",
            Produced::with(TimeWindowed::new(Utf8, D), Nullable(BigEndian)),
        );
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    pipe_all(
        &mut driver,
        &[("p", 5), ("q", 8), ("r", 20), ("s", 15), ("late", 2)],
    );
    let out: Vec<(i64, i64, Option<i64>)> = driver
        .read(&TestTopic::new(
            "counts",
            TimeWindowed::new(Utf8, D),
            Nullable(BigEndian),
        ))
        .unwrap()
        .into_iter()
        .map(|r| (r.key.start, r.key.end, r.value))
        .collect();
    let expected: Vec<(i64, i64, Option<i64>)> = [
        (0, 1),  // 5: its left window, [0, 10] (none starts before the epoch)
        (0, 2),  // 8: its left window is that one too, now holding 5 and 8
        (6, 1),  // 8 falls in 5's right window, which it creates
        (10, 1), // 20: its left window; 8's right window [9, 19] misses it
        (10, 2), // 15 (late, stream time 20): updates [10, 20] ...
        (16, 1), // ... and creates its right window, which holds 20;
                 // its windows ending before 20 have closed
    ]
    .into_iter()
    .map(|(start, count)| (start, start + 10, Some(count)))
    .collect();
    assert_eq!(out, expected);
    assert_eq!(
        driver.skipped_records(),
        1,
        "2 + 10 is before stream time 20"
    );

    // At stream time 1000 only the new record (and its index entry) and
    // its window (and its index entry) are kept: closed windows and
    // records no open window can hold leave the store.
    pipe_all(&mut driver, &[("far", 1000)]);
    let stored: Vec<(Vec<u8>, Vec<u8>)> = driver
        .store_entries(
            "sliding-counts",
            spool_streams::RawBytes,
            spool_streams::RawBytes,
        )
        .unwrap();
    assert_eq!(stored.len(), 4, "{stored:?}");
}

#[test]
fn sliding_windows_take_records_in_arrival_order() {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            D,
            Duration::from_millis(100),
        ))
        .aggregate(
            String::new,
            |_, value: String, pages: String| pages + &value,
            Materialized::with(Utf8, Utf8).named("sliding-pages"),
        )
        .to_stream()
        .to(
            "pages",
            Produced::with(TimeWindowed::new(Utf8, D), Nullable(Utf8)),
        );
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    // With a long grace, the out-of-order 6 joins every window it is in,
    // added to each as it comes (Kafka Streams' arrival order); the
    // windows it creates are folded from the records in time order.
    pipe_all(&mut driver, &[("p", 5), ("r", 12), ("q", 6)]);
    let mut last = std::collections::BTreeMap::new();
    for r in driver
        .read(&TestTopic::new(
            "pages",
            TimeWindowed::new(Utf8, D),
            Nullable(Utf8),
        ))
        .unwrap()
    {
        last.insert(r.key.start, r.value.unwrap());
    }
    let expected: std::collections::BTreeMap<i64, String> = [
        (0, "pq"),  // [0, 10]: the left window of 5 and of 6
        (2, "prq"), // [2, 12]: 12's left window, then 6 added to it
        (6, "rq"),  // [6, 16]: 5's right window, then 6
        (7, "r"),   // [7, 17]: 6's right window (12's has no record)
    ]
    .into_iter()
    .map(|(start, pages)| (start, pages.to_string()))
    .collect();
    assert_eq!(last, expected);
}

/// A window's end is in it, so its final result waits until stream time
/// has passed the end: two records at 10 make one final `[0, 10] = 2`
/// (due at 10, the first was "final" while the second could still come).
#[test]
fn a_final_sliding_result_waits_until_stream_time_passes_the_end() {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(D))
        .count(Materialized::with(Utf8, BigEndian).named("sliding-counts"))
        .suppress(spool_streams::Suppressed::until_window_closes(
            TimeWindowed::new(Utf8, D),
            BigEndian,
        ))
        .to_stream()
        .to(
            "final",
            Produced::with(TimeWindowed::new(Utf8, D), Nullable(BigEndian)),
        );
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    let clicks = TestTopic::new("clicks", Utf8, Utf8);
    for (key, time) in [("a", 10), ("a", 10), ("b", 11)] {
        driver
            .pipe(&clicks, &key.to_string(), &"x".to_string(), time)
            .unwrap();
    }
    let out: Vec<(String, i64, Option<i64>)> = driver
        .read(&TestTopic::new(
            "final",
            TimeWindowed::new(Utf8, D),
            Nullable(BigEndian),
        ))
        .unwrap()
        .into_iter()
        .map(|r| (r.key.key, r.key.start, r.value))
        .collect();
    assert_eq!(out, vec![("a".to_string(), 0, Some(2))]);
}
