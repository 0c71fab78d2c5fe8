//! Joins through the test driver: a stream with a table (inner and
//! left, through derived tables, after a key change), and a stream with a
//! global table looked up by a key the record names.

use spool_streams::{
    Consumed, Joined, Materialized, Produced, StreamsBuilder, TestTopic, TopologyTestDriver, Utf8,
};

fn pairs(driver: &mut TopologyTestDriver, topic: &str) -> Vec<(String, String)> {
    let out = TestTopic::new(topic, Utf8, Utf8);
    driver
        .read(&out)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

/// Clicks keyed by user joined with the users table (user → name).
fn click_join(left: bool) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    let users = builder.table(
        "users",
        Consumed::with(Utf8, Utf8),
        Materialized::with(Utf8, Utf8).named("users-store"),
    );
    let clicks = builder.stream("clicks", Consumed::with(Utf8, Utf8));
    let joined = match left {
        false => clicks.join(
            &users,
            |page: &String, name: &String| format!("{name} saw {page}"),
            Joined::with(Utf8, Utf8),
        ),
        true => clicks.left_join(
            &users,
            |page: &String, name: Option<&String>| {
                format!("{} saw {page}", name.map_or("nobody", |n| n))
            },
            Joined::with(Utf8, Utf8),
        ),
    };
    joined.to("enriched", Produced::with(Utf8, Utf8));
    let topology = builder.build().unwrap();
    // The join reads the table's store, so both are one sub-topology
    // (one task per partition of the co-partitioned topics).
    assert_eq!(topology.sub_topologies().len(), 1);
    let description = topology.describe().to_string();
    assert!(
        description.contains("JOIN-0000000003 (stores: [users-store])"),
        "{description}"
    );
    TopologyTestDriver::new(&topology)
}

#[test]
fn a_stream_table_join_enriches_with_the_row_at_the_time_and_drops_the_unmatched() {
    let mut driver = click_join(false);
    let (users, clicks) = (
        TestTopic::new("users", Utf8, Utf8),
        TestTopic::new("clicks", Utf8, Utf8),
    );
    driver
        .pipe(&clicks, &"u1".into(), &"/early".into(), 1)
        .unwrap();
    driver.pipe(&users, &"u1".into(), &"Ann".into(), 2).unwrap();
    driver
        .pipe(&clicks, &"u1".into(), &"/home".into(), 3)
        .unwrap();
    driver
        .pipe(&users, &"u1".into(), &"Annie".into(), 4)
        .unwrap();
    driver
        .pipe(&clicks, &"u1".into(), &"/cart".into(), 5)
        .unwrap();
    driver
        .pipe(&clicks, &"u2".into(), &"/home".into(), 6)
        .unwrap();
    driver.pipe_raw("users", Some(b"u1"), None, 7).unwrap();
    driver
        .pipe(&clicks, &"u1".into(), &"/gone".into(), 8)
        .unwrap();
    assert_eq!(
        pairs(&mut driver, "enriched"),
        vec![
            ("u1".into(), "Ann saw /home".into()),
            ("u1".into(), "Annie saw /cart".into()),
        ]
    );
}

#[test]
fn a_left_join_keeps_every_record() {
    let mut driver = click_join(true);
    let (users, clicks) = (
        TestTopic::new("users", Utf8, Utf8),
        TestTopic::new("clicks", Utf8, Utf8),
    );
    driver.pipe(&users, &"u1".into(), &"Ann".into(), 1).unwrap();
    driver
        .pipe(&clicks, &"u1".into(), &"/home".into(), 2)
        .unwrap();
    driver
        .pipe(&clicks, &"u2".into(), &"/home".into(), 3)
        .unwrap();
    assert_eq!(
        pairs(&mut driver, "enriched"),
        vec![
            ("u1".into(), "Ann saw /home".into()),
            ("u2".into(), "nobody saw /home".into()),
        ]
    );
}

#[test]
fn a_join_reads_a_derived_table_through_its_filter_and_map() {
    let builder = StreamsBuilder::new();
    let users = builder
        .table(
            "users",
            Consumed::with(Utf8, Utf8),
            Materialized::with(Utf8, Utf8),
        )
        .filter(|_, name| !name.starts_with('_'))
        .map_values(|_, name| name.to_uppercase());
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .join(
            &users,
            |page: &String, name: &String| format!("{name}:{page}"),
            Joined::with(Utf8, Utf8),
        )
        .to("enriched", Produced::with(Utf8, Utf8));
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    let (users, clicks) = (
        TestTopic::new("users", Utf8, Utf8),
        TestTopic::new("clicks", Utf8, Utf8),
    );
    driver.pipe(&users, &"u1".into(), &"ann".into(), 1).unwrap();
    driver
        .pipe(&users, &"u2".into(), &"_bot".into(), 2)
        .unwrap();
    driver.pipe(&clicks, &"u1".into(), &"/a".into(), 3).unwrap();
    driver.pipe(&clicks, &"u2".into(), &"/b".into(), 4).unwrap();
    assert_eq!(
        pairs(&mut driver, "enriched"),
        vec![("u1".into(), "ANN:/a".into())]
    );
}

#[test]
fn a_rekeyed_stream_is_repartitioned_before_its_join() {
    let builder = StreamsBuilder::new();
    let users = builder.table(
        "users",
        Consumed::with(Utf8, Utf8),
        Materialized::with(Utf8, Utf8),
    );
    builder
        // Orders keyed by order id, with the user as the value.
        .stream("orders", Consumed::with(Utf8, Utf8))
        .select_key(|_, user: &String| user.clone())
        .join(
            &users,
            |user: &String, name: &String| format!("{name} ({user})"),
            Joined::with(Utf8, Utf8).named("orders-by-user"),
        )
        .to("enriched", Produced::with(Utf8, Utf8));
    let topology = builder.build().unwrap();
    let description = topology.describe().to_string();
    assert!(
        description.contains("(topic: orders-by-user-repartition)"),
        "{description}"
    );
    assert_eq!(topology.sub_topologies().len(), 2);
    let mut driver = TopologyTestDriver::new(&topology);
    let (users, orders) = (
        TestTopic::new("users", Utf8, Utf8),
        TestTopic::new("orders", Utf8, Utf8),
    );
    driver.pipe(&users, &"u7".into(), &"Bo".into(), 1).unwrap();
    driver.pipe(&orders, &"o1".into(), &"u7".into(), 2).unwrap();
    assert_eq!(
        pairs(&mut driver, "enriched"),
        vec![("u7".into(), "Bo (u7)".into())]
    );
}

fn global_join(left: bool) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    let countries = builder.global_table(
        "countries",
        Consumed::with(Utf8, Utf8),
        Materialized::with(Utf8, Utf8).named("countries-store"),
    );
    assert_eq!(countries.store_name(), "countries-store");
    // Orders keyed by order id, the value "<country code>:<item>".
    let orders = builder.stream("orders", Consumed::with(Utf8, Utf8));
    let code = |_: &String, v: &String| v.split(':').next().unwrap_or("").to_string();
    let joined = match left {
        false => orders.join_global(&countries, code, |v: &String, c: &String| {
            format!("{v} to {c}")
        }),
        true => orders.left_join_global(&countries, code, |v: &String, c: Option<&String>| {
            format!("{v} to {}", c.map_or("?", |c| c))
        }),
    };
    joined.to("shipments", Produced::with(Utf8, Utf8));
    let topology = builder.build().unwrap();
    let description = topology.describe().to_string();
    assert!(
        description.contains("Global store: countries-store (topic: countries"),
        "{description}"
    );
    // The global store belongs to no task.
    assert_eq!(topology.sub_topologies().len(), 1);
    assert!(topology.sub_topologies()[0].stores.is_empty());
    TopologyTestDriver::new(&topology)
}

#[test]
fn a_global_table_join_looks_up_the_key_the_record_names_and_keeps_the_records_key() {
    let mut driver = global_join(false);
    let (countries, orders) = (
        TestTopic::new("countries", Utf8, Utf8),
        TestTopic::new("orders", Utf8, Utf8),
    );
    driver
        .pipe(&countries, &"fr".into(), &"France".into(), 1)
        .unwrap();
    driver
        .pipe(&orders, &"o1".into(), &"fr:book".into(), 2)
        .unwrap();
    driver
        .pipe(&orders, &"o2".into(), &"xx:pen".into(), 3)
        .unwrap();
    driver.pipe_raw("countries", Some(b"fr"), None, 4).unwrap();
    driver
        .pipe(&orders, &"o3".into(), &"fr:cup".into(), 5)
        .unwrap();
    assert_eq!(
        pairs(&mut driver, "shipments"),
        vec![("o1".into(), "fr:book to France".into())]
    );
    let stored = driver.store_entries("countries-store", Utf8, Utf8).unwrap();
    assert!(stored.is_empty(), "the tombstone deleted fr: {stored:?}");
}

#[test]
fn a_left_global_join_keeps_the_unmatched() {
    let mut driver = global_join(true);
    let orders = TestTopic::new("orders", Utf8, Utf8);
    driver
        .pipe(&orders, &"o2".into(), &"xx:pen".into(), 3)
        .unwrap();
    assert_eq!(
        pairs(&mut driver, "shipments"),
        vec![("o2".into(), "xx:pen to ?".into())]
    );
}

#[test]
fn a_topic_read_as_a_global_table_and_a_stream_is_refused() {
    let builder = StreamsBuilder::new();
    builder.global_table(
        "countries",
        Consumed::with(Utf8, Utf8),
        Materialized::with(Utf8, Utf8),
    );
    builder
        .stream("countries", Consumed::with(Utf8, Utf8))
        .to("out", Produced::with(Utf8, Utf8));
    let error = builder.build().err().expect("refused").to_string();
    assert!(
        error.contains("topic `countries` is read by a global table and by a source"),
        "{error}"
    );
}
