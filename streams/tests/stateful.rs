//! Grouping, aggregation and tables through the test driver: counts,
//! reductions and aggregates per key, automatic repartitioning of a
//! re-keyed stream (named as Kafka Streams names it), tables from topics
//! with tombstones, and what the stores hold.

use spool_streams::{
    BigEndian, Consumed, Grouped, Materialized, Produced, StreamsBuilder, TestTopic,
    TopologyTestDriver, Unit, Utf8,
};

fn word_count(builder: &StreamsBuilder) {
    builder
        .stream("lines", Consumed::with(Unit, Utf8))
        .flat_map(|_, line: String| {
            line.split_whitespace()
                .map(|w| (w.to_lowercase(), ()))
                .collect::<Vec<_>>()
        })
        .group_by_key(Grouped::with(Utf8, Unit))
        .count(Materialized::with(Utf8, BigEndian).named("counts"))
        .to_stream()
        .to(
            "word-counts",
            Produced::with(Utf8, spool_streams::Nullable(BigEndian)),
        );
}

#[test]
fn a_word_count_repartitions_by_word_and_counts_each_word() {
    let builder = StreamsBuilder::new();
    word_count(&builder);
    let topology = builder.build().unwrap();
    let description = topology.describe().to_string();
    assert!(description.contains("Sub-topology: 1"), "{description}");
    assert!(
        description.contains("(topic: counts-repartition)"),
        "{description}"
    );
    assert!(description.contains("(stores: [counts])"), "{description}");
    let subs = topology.sub_topologies();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[1].stores, vec!["counts".to_string()]);

    let mut driver = TopologyTestDriver::new(&topology);
    let lines = TestTopic::new("lines", Unit, Utf8);
    driver
        .pipe(&lines, &(), &"the cat the hat".into(), 1)
        .unwrap();
    driver.pipe(&lines, &(), &"The end".into(), 2).unwrap();
    let out = TestTopic::new("word-counts", Utf8, BigEndian);
    let counted: Vec<(String, i64, i64)> = driver
        .read(&out)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    assert_eq!(
        counted,
        vec![
            ("the".into(), 1, 1),
            ("cat".into(), 1, 1),
            ("the".into(), 2, 1),
            ("hat".into(), 1, 1),
            ("the".into(), 3, 2),
            ("end".into(), 1, 2),
        ]
    );
    let stored = driver.store_entries("counts", Utf8, BigEndian).unwrap();
    assert_eq!(
        stored,
        vec![
            ("cat".to_string(), 1i64),
            ("end".into(), 1),
            ("hat".into(), 1),
            ("the".into(), 3),
        ]
    );
}

#[test]
fn grouping_by_the_unchanged_key_needs_no_repartition() {
    let builder = StreamsBuilder::new();
    builder
        .stream("scores", Consumed::with(Utf8, BigEndian))
        .filter(|_, score: &i64| *score >= 0)
        .group_by_key(Grouped::with(Utf8, BigEndian))
        .reduce(
            |a: i64, b: i64| a.max(b),
            Materialized::with(Utf8, BigEndian).named("best"),
        )
        .to("best", Produced::with(Utf8, BigEndian));
    let topology = builder.build().unwrap();
    assert_eq!(topology.sub_topologies().len(), 1);
    let mut driver = TopologyTestDriver::new(&topology);
    let scores = TestTopic::<String, i64>::new("scores", Utf8, BigEndian);
    for (player, score) in [("ann", 5), ("bob", 7), ("ann", 3), ("ann", 9), ("bob", -1)] {
        driver
            .pipe(&scores, &player.to_string(), &score, 0)
            .unwrap();
    }
    let best: Vec<(String, Option<i64>)> = driver
        .read(&TestTopic::new(
            "best",
            Utf8,
            spool_streams::Nullable(BigEndian),
        ))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(driver.skipped_records(), 0);
    let expected = [("ann", 5), ("bob", 7), ("ann", 5), ("ann", 9)];
    let expected: Vec<(String, Option<i64>)> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), Some(*v)))
        .collect();
    assert_eq!(best, expected);
}

#[test]
fn aggregate_folds_values_and_group_by_rekeys() {
    let builder = StreamsBuilder::new();
    builder
        .stream("orders", Consumed::with(Utf8, Utf8))
        // key: order id; value: "customer:amount"
        .group_by(
            |_, v: &String| v.split(':').next().unwrap_or_default().to_string(),
            Grouped::with(Utf8, Utf8).named("by-customer"),
        )
        .aggregate(
            || 0i64,
            |_, v: String, total| {
                total
                    + v.split(':')
                        .nth(1)
                        .and_then(|a| a.parse::<i64>().ok())
                        .unwrap_or(0)
            },
            Materialized::with(Utf8, BigEndian)
                .named("totals")
                .in_memory(),
        )
        .to("totals", Produced::with(Utf8, BigEndian));
    let topology = builder.build().unwrap();
    assert!(topology
        .describe()
        .to_string()
        .contains("(topics: [by-customer-repartition])"));
    let mut driver = TopologyTestDriver::new(&topology);
    let orders = TestTopic::new("orders", Utf8, Utf8);
    for (id, v) in [("o1", "ann:10"), ("o2", "bob:5"), ("o3", "ann:7")] {
        driver
            .pipe(&orders, &id.to_string(), &v.to_string(), 0)
            .unwrap();
    }
    let stored = driver.store_entries("totals", Utf8, BigEndian).unwrap();
    assert_eq!(stored, vec![("ann".to_string(), 17i64), ("bob".into(), 5)]);
}

#[test]
fn a_table_upserts_deletes_on_tombstones_and_filters_by_value() {
    let builder = StreamsBuilder::new();
    builder
        .table(
            "prices",
            Consumed::with(Utf8, BigEndian),
            Materialized::with(Utf8, BigEndian).named("prices-store"),
        )
        .filter(|_, price: &i64| *price < 100)
        .map_values(|_, price: &i64| price * 2)
        .to("cheap-doubled", Produced::with(Utf8, BigEndian));
    let topology = builder.build().unwrap();
    let mut driver = TopologyTestDriver::new(&topology);
    let prices =
        TestTopic::<String, Option<i64>>::new("prices", Utf8, spool_streams::Nullable(BigEndian));
    driver
        .pipe(&prices, &"pen".to_string(), &Some(3), 0)
        .unwrap();
    driver
        .pipe(&prices, &"desk".to_string(), &Some(300), 0)
        .unwrap();
    driver
        .pipe(&prices, &"pen".to_string(), &Some(150), 0)
        .unwrap();
    driver
        .pipe(&prices, &"cup".to_string(), &Some(8), 0)
        .unwrap();
    driver.pipe(&prices, &"cup".to_string(), &None, 0).unwrap();
    let out: Vec<(String, Option<i64>)> = driver
        .read(&TestTopic::new(
            "cheap-doubled",
            Utf8,
            spool_streams::Nullable(BigEndian),
        ))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(
        out,
        vec![
            ("pen".to_string(), Some(6)),
            ("pen".into(), None),
            ("cup".into(), Some(16)),
            ("cup".into(), None),
        ]
    );
    assert_eq!(driver.skipped_records(), 0);
    let stored = driver
        .store_entries("prices-store", Utf8, BigEndian)
        .unwrap();
    assert_eq!(
        stored,
        vec![("desk".to_string(), 300i64), ("pen".into(), 150)]
    );
}

#[test]
fn a_table_regrouped_counts_rows_per_new_key_and_takes_moved_rows_back_out() {
    let builder = StreamsBuilder::new();
    builder
        .table(
            "user-regions",
            Consumed::with(Utf8, Utf8),
            Materialized::with(Utf8, Utf8).named("users"),
        )
        .group_by(
            |_, region: &String| (region.clone(), ()),
            Grouped::with(Utf8, Unit).named("by-region"),
        )
        .count(Materialized::with(Utf8, BigEndian).named("per-region"))
        .to("region-counts", Produced::with(Utf8, BigEndian));
    let topology = builder.build().unwrap();
    let mut driver = TopologyTestDriver::new(&topology);
    let users = TestTopic::<String, Option<String>>::new(
        "user-regions",
        Utf8,
        spool_streams::Nullable(Utf8),
    );
    let set = |driver: &mut TopologyTestDriver, user: &str, region: Option<&str>| {
        let region = region.map(str::to_string);
        driver.pipe(&users, &user.to_string(), &region, 0).unwrap();
    };
    set(&mut driver, "ann", Some("eu"));
    set(&mut driver, "bob", Some("eu"));
    set(&mut driver, "cid", Some("us"));
    set(&mut driver, "ann", Some("us")); // moves: eu 2 -> 1, us 1 -> 2
    set(&mut driver, "bob", None); // leaves: eu 1 -> 0
    assert_eq!(driver.skipped_records(), 0);
    let counts: Vec<(String, Option<i64>)> = driver
        .read(&TestTopic::new(
            "region-counts",
            Utf8,
            spool_streams::Nullable(BigEndian),
        ))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    let expected = [
        ("eu", 1),
        ("eu", 2),
        ("us", 1),
        ("eu", 1),
        ("us", 2),
        ("eu", 0),
    ];
    let expected: Vec<(String, Option<i64>)> = expected
        .iter()
        .map(|(k, n)| (k.to_string(), Some(*n)))
        .collect();
    assert_eq!(counts, expected);
    let stored = driver.store_entries("per-region", Utf8, BigEndian).unwrap();
    assert_eq!(stored, vec![("eu".to_string(), 0i64), ("us".into(), 2)]);
    assert!(topology
        .describe()
        .to_string()
        .contains("(topics: [by-region-repartition])"));
}
