//! Stream-stream joins through the test driver: orders joined with the
//! payments of the same key at most 10 ms apart. Inner, left and outer;
//! the unmatched records of left and outer joins come out only once
//! their windows closed; a record for a closed window is dropped; a
//! side's store forgets what no record can join any more.

use std::time::Duration;

use spool_streams::{
    Consumed, JoinWindows, KStream, Produced, RawBytes, StreamJoined, StreamsBuilder, TestTopic,
    TopologyTestDriver, Utf8,
};

#[derive(Clone, Copy)]
enum Kind {
    Inner,
    Left,
    Outer,
}

fn shown(side: Option<&String>) -> &str {
    side.map_or("none", String::as_str)
}

fn orders_with_payments(kind: Kind) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    let orders = builder.stream("orders", Consumed::with(Utf8, Utf8));
    let payments = builder.stream("payments", Consumed::with(Utf8, Utf8));
    let windows = JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10));
    let joined = StreamJoined::with(Utf8, Utf8, Utf8).named("orders-payments");
    let matched: KStream<String, String> = match kind {
        Kind::Inner => orders.join_stream(&payments, |o, p| format!("{o}+{p}"), windows, joined),
        Kind::Left => orders.left_join_stream(
            &payments,
            |o, p| format!("{o}+{}", shown(p)),
            windows,
            joined,
        ),
        Kind::Outer => orders.outer_join_stream(
            &payments,
            |o, p| format!("{}+{}", shown(o), shown(p)),
            windows,
            joined,
        ),
    };
    matched.to("matched", Produced::with(Utf8, Utf8));
    let topology = builder.build().unwrap();
    assert_eq!(topology.sub_topologies().len(), 1);
    TopologyTestDriver::new(&topology)
}

/// The same input through a join of `kind`: what it wrote, with times,
/// and the driver (for its stores and dropped records).
fn run(kind: Kind) -> (Vec<(String, String, i64)>, TopologyTestDriver) {
    let mut driver = orders_with_payments(kind);
    let (orders, payments) = (
        TestTopic::new("orders", Utf8, Utf8),
        TestTopic::new("payments", Utf8, Utf8),
    );
    let input = [
        (&orders, "k1", "o1", 0),
        (&payments, "k1", "p1", 5),
        (&payments, "k1", "p2", 20),
        (&orders, "k1", "o2", 15),
        (&orders, "k2", "x", 16),
        (&payments, "k3", "p3", 50),
        (&orders, "k9", "tick", 100),
        (&orders, "k1", "late", 5),
    ];
    for (topic, key, value, time) in input {
        driver
            .pipe(topic, &key.to_string(), &value.to_string(), time)
            .unwrap();
    }
    let out = driver
        .read(&TestTopic::new("matched", Utf8, Utf8))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    (out, driver)
}

fn rows(expected: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
    expected
        .iter()
        .map(|(k, v, t)| (k.to_string(), v.to_string(), *t))
        .collect()
}

#[test]
fn an_inner_stream_join_pairs_records_within_the_window() {
    let (out, driver) = run(Kind::Inner);
    assert_eq!(
        out,
        rows(&[("k1", "o1+p1", 5), ("k1", "o2+p1", 15), ("k1", "o2+p2", 20),])
    );
    assert_eq!(driver.skipped_records(), 1, "the late order is dropped");
}

#[test]
fn a_left_stream_join_emits_the_unmatched_once_their_window_closed() {
    let (out, _) = run(Kind::Left);
    assert_eq!(
        out,
        rows(&[
            ("k1", "o1+p1", 5),
            ("k1", "o2+p1", 15),
            ("k1", "o2+p2", 20),
            // Only when the tick moved stream time past 16 + 10.
            ("k2", "x+none", 16),
        ])
    );
}

#[test]
fn an_outer_stream_join_emits_the_unmatched_of_both_sides() {
    let (out, _) = run(Kind::Outer);
    assert_eq!(
        out,
        rows(&[
            ("k1", "o1+p1", 5),
            ("k1", "o2+p1", 15),
            ("k1", "o2+p2", 20),
            ("k2", "x+none", 16),
            ("k3", "none+p3", 50),
        ])
    );
}

/// At stream time 100 with windows of 10 ms either way, a side keeps its
/// records for 20 ms: only the tick (its record and its expiry index
/// entry) is left of the orders.
#[test]
fn a_sides_store_forgets_what_nothing_can_join_any_more() {
    let (_, driver) = run(Kind::Outer);
    let orders: Vec<(Vec<u8>, Vec<u8>)> = driver
        .store_entries("orders-payments-this-join-store", RawBytes, RawBytes)
        .unwrap();
    assert_eq!(orders.len(), 2, "{orders:?}");
    let payments: Vec<(Vec<u8>, Vec<u8>)> = driver
        .store_entries("orders-payments-other-join-store", RawBytes, RawBytes)
        .unwrap();
    assert!(payments.is_empty(), "{payments:?}");
    // The tick waits, unmatched, for its window to close.
    let waiting: Vec<(Vec<u8>, Vec<u8>)> = driver
        .store_entries(
            "orders-payments-outer-shared-join-store",
            RawBytes,
            RawBytes,
        )
        .unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
}

/// A window of zero either way pairs records of equal times only.
#[test]
fn a_zero_width_window_pairs_equal_times_only() {
    let builder = StreamsBuilder::new();
    let left = builder.stream("a", Consumed::with(Utf8, Utf8));
    let right = builder.stream("b", Consumed::with(Utf8, Utf8));
    let windows = JoinWindows::of_time_difference_with_no_grace(Duration::ZERO);
    left.join_stream(
        &right,
        |a: &String, b: &String| format!("{a}{b}"),
        windows,
        StreamJoined::with(Utf8, Utf8, Utf8),
    )
    .to("out", Produced::with(Utf8, Utf8));
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    let (a, b) = (
        TestTopic::new("a", Utf8, Utf8),
        TestTopic::new("b", Utf8, Utf8),
    );
    let k = "k".to_string();
    driver.pipe(&a, &k, &"a1".into(), 10).unwrap();
    driver.pipe(&b, &k, &"b1".into(), 10).unwrap();
    driver.pipe(&b, &k, &"b2".into(), 11).unwrap();
    let out: Vec<String> = driver
        .read(&TestTopic::new("out", Utf8, Utf8))
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(out, ["a1b1"]);
}
