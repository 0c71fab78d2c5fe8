//! `KTable::suppress` through the test driver: a windowed count's final
//! result per window once it closes (emit-final), a rate limit per key,
//! and suppression of a table without windows refused.

use std::time::Duration;

use spool_streams::{
    BigEndian, Consumed, Grouped, Materialized, Nullable, Produced, StreamsBuilder, Suppressed,
    TestTopic, TimeWindowed, TimeWindows, TopologyTestDriver, Utf8,
};

const SIZE: Duration = Duration::from_millis(10);

fn pipe_all(driver: &mut TopologyTestDriver, records: &[(&str, i64)]) {
    let clicks = TestTopic::new("clicks", Utf8, Utf8);
    for (key, time) in records {
        driver
            .pipe(&clicks, &key.to_string(), &"x".to_string(), *time)
            .unwrap();
    }
}

#[test]
fn until_window_closes_forwards_each_windows_final_count_once() {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .windowed_by(TimeWindows::of_size_and_grace(
            SIZE,
            Duration::from_millis(5),
        ))
        .count(Materialized::with(Utf8, BigEndian).named("counts"))
        .suppress(
            Suppressed::until_window_closes(TimeWindowed::new(Utf8, SIZE), BigEndian)
                .named("final-counts"),
        )
        .to_stream()
        .to(
            "final",
            Produced::with(TimeWindowed::new(Utf8, SIZE), Nullable(BigEndian)),
        );
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    let final_counts = TestTopic::new("final", TimeWindowed::new(Utf8, SIZE), Nullable(BigEndian));
    pipe_all(
        &mut driver,
        &[("a", 1), ("a", 3), ("a", 7), ("b", 8), ("a", 12)],
    );
    assert!(
        driver.read(&final_counts).unwrap().is_empty(),
        "nothing before [0, 10) closes at 15"
    );
    pipe_all(&mut driver, &[("x", 15), ("a", 4), ("y", 30)]);
    let out: Vec<(String, i64, Option<i64>)> = driver
        .read(&final_counts)
        .unwrap()
        .into_iter()
        .map(|r| (r.key.key, r.key.start, r.value))
        .collect();
    let expected: Vec<(String, i64, Option<i64>)> =
        [("a", 0, 3), ("b", 0, 1), ("a", 10, 1), ("x", 10, 1)]
            .into_iter()
            .map(|(k, start, n)| (k.to_string(), start, Some(n)))
            .collect();
    assert_eq!(out, expected);
    assert_eq!(
        driver.skipped_records(),
        1,
        "a at 4 came after its window closed"
    );
}

#[test]
fn until_time_limit_forwards_a_keys_latest_value_once_per_limit() {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .count(Materialized::with(Utf8, BigEndian).named("counts"))
        .suppress(Suppressed::until_time_limit(SIZE, Utf8, BigEndian))
        .to_stream()
        .to("limited", Produced::with(Utf8, Nullable(BigEndian)));
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    pipe_all(
        &mut driver,
        &[
            ("a", 0),
            ("a", 3),
            ("a", 5),
            ("b", 9),
            ("c", 10),
            ("a", 11),
            ("z", 21),
        ],
    );
    let out: Vec<(String, Option<i64>, i64)> = driver
        .read(&TestTopic::new("limited", Utf8, Nullable(BigEndian)))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    let expected: Vec<(String, Option<i64>, i64)> =
        [("a", 3, 5), ("b", 1, 9), ("c", 1, 10), ("a", 4, 11)]
            .into_iter()
            .map(|(k, n, t)| (k.to_string(), Some(n), t))
            .collect();
    assert_eq!(out, expected);
}

#[test]
fn until_window_closes_below_a_table_without_windows_is_refused() {
    let builder = StreamsBuilder::new();
    builder
        .table(
            "windowed-input",
            Consumed::with(TimeWindowed::new(Utf8, SIZE), Utf8),
            Materialized::with(TimeWindowed::new(Utf8, SIZE), Utf8),
        )
        .suppress(Suppressed::until_window_closes(
            TimeWindowed::new(Utf8, SIZE),
            Utf8,
        ))
        .to_stream()
        .to(
            "out",
            Produced::with(TimeWindowed::new(Utf8, SIZE), Nullable(Utf8)),
        );
    let refused = builder.build().err().expect("built").to_string();
    assert!(refused.contains("no windowed aggregation"), "{refused}");
}

/// A held update goes out with the value its key had before the first
/// held update as the old value: regrouped below, a key moving from one
/// value to another leaves the old group's count. (Forwarded with no old
/// value, "x" kept its count of 1.)
#[test]
fn until_time_limit_forwards_the_value_before_as_the_old_one() {
    let builder = StreamsBuilder::new();
    builder
        .table(
            "choices",
            Consumed::with(Utf8, Utf8),
            Materialized::with(Utf8, Utf8).named("choices-store"),
        )
        .suppress(Suppressed::until_time_limit(SIZE, Utf8, Utf8))
        .group_by(
            |_, choice: &String| (choice.clone(), ()),
            Grouped::with(Utf8, spool_streams::Unit).named("by-choice"),
        )
        .count(Materialized::with(Utf8, BigEndian).named("per-choice"))
        .to("choice-counts", Produced::with(Utf8, BigEndian));
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    let choices = TestTopic::new("choices", Utf8, Utf8);
    let input = [
        ("u", "x", 0),
        ("v", "y", 5),
        ("w", "z", 12), // u's x goes out (due at 10)
        ("u", "y", 20), // held, with x as the value before
        ("t", "z", 40), // u's y goes out (due at 30)
    ];
    for (user, choice, time) in input {
        driver
            .pipe(&choices, &user.to_string(), &choice.to_string(), time)
            .unwrap();
    }
    let counts: Vec<(String, Option<i64>)> = driver
        .read(&TestTopic::new("choice-counts", Utf8, Nullable(BigEndian)))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    let last = |choice: &str| {
        counts
            .iter()
            .rev()
            .find(|(k, _)| k == choice)
            .and_then(|(_, n)| *n)
    };
    assert_eq!(last("y"), Some(2), "{counts:?}");
    assert_eq!(last("x"), Some(0), "{counts:?}");
}
