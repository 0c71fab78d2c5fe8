//! Windowed aggregations through the test driver: tumbling and hopping
//! counts, late records dropped after the grace period, closed windows
//! deleted from the store, Kafka's windowed key layout on the output
//! topic, and a re-keyed stream repartitioned before its windows.

use std::time::Duration;

use spool_streams::{
    BigEndian, Codec, Consumed, Grouped, Materialized, Nullable, Produced, StreamsBuilder,
    TestTopic, TimeWindowed, TimeWindows, TopologyTestDriver, Utf8, Windowed,
};

const SECOND: Duration = Duration::from_secs(1);

fn windowed_counts(windows: TimeWindows) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .windowed_by(windows)
        .count(Materialized::with(Utf8, BigEndian).named("clicks-per-window"))
        .to_stream()
        .to(
            "counts",
            Produced::with(
                TimeWindowed::new(Utf8, Duration::from_millis(windows.size_ms() as u64)),
                Nullable(BigEndian),
            ),
        );
    TopologyTestDriver::new(&builder.build().unwrap())
}

fn click(driver: &mut TopologyTestDriver, user: &str, at: i64) {
    let clicks = TestTopic::new("clicks", Utf8, Utf8);
    driver.pipe(&clicks, &user.into(), &"/".into(), at).unwrap();
}

/// (key, start, end, count) of every output record, in order.
fn counts(driver: &mut TopologyTestDriver, size: Duration) -> Vec<(String, i64, i64, i64)> {
    let out = TestTopic::new("counts", TimeWindowed::new(Utf8, size), BigEndian);
    driver
        .read(&out)
        .unwrap()
        .into_iter()
        .map(|r| (r.key.key, r.key.start, r.key.end, r.value))
        .collect()
}

#[test]
fn tumbling_windows_count_each_record_once_per_key_and_window() {
    let mut driver = windowed_counts(TimeWindows::of_size_and_grace(10 * SECOND, 60 * SECOND));
    click(&mut driver, "ann", 1_000);
    click(&mut driver, "ann", 9_999);
    click(&mut driver, "bob", 5_000);
    click(&mut driver, "ann", 10_000);
    assert_eq!(
        counts(&mut driver, 10 * SECOND),
        vec![
            ("ann".into(), 0, 10_000, 1),
            ("ann".into(), 0, 10_000, 2),
            ("bob".into(), 0, 10_000, 1),
            ("ann".into(), 10_000, 20_000, 1),
        ]
    );
}

#[test]
fn hopping_windows_count_a_record_in_every_window_holding_it() {
    let windows = TimeWindows::of_size_and_grace(10 * SECOND, 60 * SECOND).advance_by(5 * SECOND);
    let mut driver = windowed_counts(windows);
    click(&mut driver, "ann", 7_000);
    click(&mut driver, "ann", 12_000);
    assert_eq!(
        counts(&mut driver, 10 * SECOND),
        vec![
            ("ann".into(), 0, 10_000, 1),
            ("ann".into(), 5_000, 15_000, 1),
            ("ann".into(), 5_000, 15_000, 2),
            ("ann".into(), 10_000, 20_000, 1),
        ]
    );
}

#[test]
fn a_record_for_a_closed_window_is_dropped_and_closed_windows_leave_the_store() {
    let mut driver = windowed_counts(TimeWindows::of_size_and_grace(10 * SECOND, 5 * SECOND));
    click(&mut driver, "ann", 1_000);
    click(&mut driver, "bob", 12_000);
    // Stream time 12 s: window [0, 10 s) takes records until 15 s.
    click(&mut driver, "ann", 2_000);
    click(&mut driver, "bob", 15_000);
    // Stream time 15 s: [0, 10 s) closed; this one is dropped.
    click(&mut driver, "ann", 3_000);
    assert_eq!(driver.skipped_records(), 1);
    assert_eq!(
        counts(&mut driver, 10 * SECOND),
        vec![
            ("ann".into(), 0, 10_000, 1),
            ("bob".into(), 10_000, 20_000, 1),
            ("ann".into(), 0, 10_000, 2),
            ("bob".into(), 10_000, 20_000, 2),
        ]
    );
    // The store keeps windows by start, then key: only the open one is
    // left.
    let stored = driver
        .store_entries("clicks-per-window", spool_streams::RawBytes, BigEndian)
        .unwrap();
    let stored: Vec<(Vec<u8>, i64)> = stored;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].0.ends_with(b"bob"), "{stored:?}");
    assert_eq!(stored[0].1, 2);
}

#[test]
fn the_output_key_is_laid_out_as_kafka_streams_time_windowed_serializer_writes_it() {
    let codec = TimeWindowed::new(Utf8, 10 * SECOND);
    let key = Windowed {
        key: "ann".to_string(),
        start: 20_000,
        end: 30_000,
    };
    let mut bytes = Vec::new();
    codec.encode(&key, &mut bytes).unwrap();
    let mut expected = b"ann".to_vec();
    expected.extend_from_slice(&20_000i64.to_be_bytes());
    assert_eq!(bytes, expected);
    assert_eq!(codec.decode(&bytes).unwrap(), key);
    assert!(codec.decode(b"short").is_err());
}

#[test]
fn a_rekeyed_stream_is_repartitioned_before_its_windows_and_bad_windows_are_refused() {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .select_key(|_, page: &String| page.clone())
        .group_by_key(Grouped::with(Utf8, Utf8).named("by-page"))
        .windowed_by(TimeWindows::of_size_with_no_grace(SECOND))
        .reduce(|a, b| format!("{a}+{b}"), Materialized::with(Utf8, Utf8))
        .to_stream()
        .to(
            "pages",
            Produced::with(TimeWindowed::new(Utf8, SECOND), Nullable(Utf8)),
        );
    let topology = builder.build().unwrap();
    let description = topology.describe().to_string();
    assert!(
        description.contains("(topic: by-page-repartition)"),
        "{description}"
    );
    let mut driver = TopologyTestDriver::new(&topology);
    let clicks = TestTopic::new("clicks", Utf8, Utf8);
    driver
        .pipe(&clicks, &"u1".into(), &"/a".into(), 100)
        .unwrap();
    driver
        .pipe(&clicks, &"u2".into(), &"/a".into(), 200)
        .unwrap();
    let out = TestTopic::new("pages", TimeWindowed::new(Utf8, SECOND), Utf8);
    let values: Vec<String> = driver
        .read(&out)
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(values, vec!["/a", "/a+/a"]);

    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .windowed_by(TimeWindows::of_size_with_no_grace(SECOND).advance_by(2 * SECOND))
        .count(Materialized::with(Utf8, BigEndian));
    let error = builder.build().err().expect("refused").to_string();
    assert!(error.contains("the advance in 1..=size"), "{error}");
}
