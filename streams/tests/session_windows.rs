//! Session windows through the test driver: sessions grow and merge as
//! records arrive, merged sessions are deleted downstream, late records
//! are dropped, and sessions no record can reach leave the store.

use std::time::Duration;

use spool_streams::{
    BigEndian, Consumed, Grouped, Materialized, Nullable, Produced, RawBytes, SessionWindowed,
    SessionWindows, StreamsBuilder, TestTopic, TopologyTestDriver, Utf8,
};

/// Sessions of a 10 ms inactivity gap, taking records 20 ms late.
fn windows() -> SessionWindows {
    SessionWindows::with_inactivity_gap_and_grace(
        Duration::from_millis(10),
        Duration::from_millis(20),
    )
}

fn pipe_all(driver: &mut TopologyTestDriver, records: &[(&str, &str, i64)]) {
    let clicks = TestTopic::new("clicks", Utf8, Utf8);
    for (key, value, time) in records {
        driver
            .pipe(&clicks, &key.to_string(), &value.to_string(), *time)
            .unwrap();
    }
}

#[test]
fn sessions_grow_merge_and_delete_the_sessions_they_replace() {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .windowed_by_session(windows())
        .count(Materialized::with(Utf8, BigEndian).named("sessions"))
        .to_stream()
        .to(
            "session-counts",
            Produced::with(SessionWindowed(Utf8), Nullable(BigEndian)),
        );
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    pipe_all(
        &mut driver,
        &[
            ("a", "x", 0),
            ("a", "x", 5),
            ("a", "x", 30),
            ("a", "x", 15),
            ("a", "x", 22), // bridges [0, 15] and [30, 30]
            ("b", "x", 1),  // late, but not before 30 - 20 - 10: taken
        ],
    );
    let out: Vec<(String, i64, i64, Option<i64>)> = driver
        .read(&TestTopic::new(
            "session-counts",
            SessionWindowed(Utf8),
            Nullable(BigEndian),
        ))
        .unwrap()
        .into_iter()
        .map(|r| (r.key.key, r.key.start, r.key.end, r.value))
        .collect();
    let expected: Vec<(String, i64, i64, Option<i64>)> = [
        (0, 0, Some(1)),
        (0, 0, None),
        (0, 5, Some(2)),
        (30, 30, Some(1)),
        (0, 5, None),
        (0, 15, Some(3)),
        (0, 15, None),
        (30, 30, None),
        (0, 30, Some(5)),
    ]
    .into_iter()
    .map(|(start, end, count)| ("a".to_string(), start, end, count))
    .chain([("b".to_string(), 1, 1, Some(1))])
    .collect();
    assert_eq!(out, expected);
    assert_eq!(driver.skipped_records(), 0);

    // Stream time 100: a session ending before 100 - 20 - 10 can no
    // longer be reached and leaves the store, and a record whose session
    // would end there is dropped; the new one stays (its row and its
    // expiry index entry).
    pipe_all(&mut driver, &[("c", "x", 100), ("d", "x", 60)]);
    assert_eq!(driver.skipped_records(), 1, "d at 60 is dropped");
    let stored: Vec<(Vec<u8>, Vec<u8>)> = driver
        .store_entries("sessions", RawBytes, RawBytes)
        .unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
}

#[test]
fn session_aggregates_merge_with_the_merger_and_reduce_combines() {
    let builder = StreamsBuilder::new();
    let sessions = builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .windowed_by_session(windows());
    sessions
        .aggregate(
            String::new,
            |_, page: String, pages: String| format!("{pages}{page}"),
            |_, one: String, other: String| format!("{one}|{other}"),
            Materialized::with(Utf8, Utf8).named("paths"),
        )
        .to_stream()
        .to(
            "paths",
            Produced::with(SessionWindowed(Utf8), Nullable(Utf8)),
        );
    sessions
        .reduce(
            |a: String, b: String| std::cmp::max(a, b),
            Materialized::with(Utf8, Utf8).named("latest"),
        )
        .to_stream()
        .to(
            "max-page",
            Produced::with(SessionWindowed(Utf8), Nullable(Utf8)),
        );
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    pipe_all(
        &mut driver,
        &[("a", "p", 0), ("a", "r", 30), ("a", "q", 15)],
    );
    let last = |driver: &mut TopologyTestDriver, topic: &str| {
        let out = driver
            .read(&TestTopic::new(
                topic,
                SessionWindowed(Utf8),
                Nullable(Utf8),
            ))
            .unwrap();
        let last = out.last().unwrap();
        (last.key.start, last.key.end, last.value.clone())
    };
    // `q` at 15 is within 10 of neither 0 nor 30: three sessions.
    assert_eq!(last(&mut driver, "paths"), (15, 15, Some("q".to_string())));
    pipe_all(&mut driver, &[("a", "s", 8), ("a", "t", 22)]);
    // 8 joins [0, 0] and [15, 15] into "|p|q" + "s"; 22 joins that and
    // [30, 30]. As in Kafka Streams, the merge starts from `initial()`
    // and takes the sessions in order of their ends.
    assert_eq!(
        last(&mut driver, "paths"),
        (0, 30, Some("||p|qs|rt".to_string()))
    );
    assert_eq!(
        last(&mut driver, "max-page"),
        (0, 30, Some("t".to_string()))
    );
}
