//! A table-table join run by the runtime on an embedded broker, exactly
//! once: each key's last joined row read with read_committed is the join
//! of both sides' last rows; and two tables whose topics are not
//! co-partitioned are refused at start, naming both topics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spool_broker::Node;
use spool_client::proto::IsolationLevel;
use spool_client::{Client, ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};
use spool_streams::{
    Consumed, KafkaStreams, Materialized, ProcessingGuarantee, Produced, StreamsBuilder,
    StreamsConfig, Topology, Utf8,
};

const KEYS: usize = 20;

fn users_with_plans() -> Topology {
    let builder = StreamsBuilder::new();
    let table = |topic: &str, store: &str| {
        builder.table(
            topic,
            Consumed::with(Utf8, Utf8),
            Materialized::with(Utf8, Utf8).named(store),
        )
    };
    let (users, plans) = (table("users", "users-store"), table("plans", "plans-store"));
    users
        .join(&plans, |name, plan| format!("{name}/{plan}"))
        .to_stream()
        .map_values(|row| row.unwrap_or_default())
        .to("profiles", Produced::with(Utf8, Utf8));
    builder.build().unwrap()
}

async fn produce(client: &Client, topic: &str, value: impl Fn(usize) -> String) {
    let producer = client.producer(Default::default());
    let records = (0..KEYS)
        .map(|i| ProducerRecord::new(topic, value(i)).key(format!("u{i}")))
        .collect();
    producer.send_batch(records).await.unwrap().await.unwrap();
}

fn config(dir: &std::path::Path) -> StreamsConfig {
    let mut config = StreamsConfig::new("profiles-app");
    config.state_dir = dir.to_path_buf();
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    config.commit_interval = Some(Duration::from_millis(100));
    config
}

/// Each key's last value in `profiles` (read_committed), once every key
/// has `expected(i)`.
async fn last_profiles(client: &Client, expected: impl Fn(usize) -> String) {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    consumer.assign((0..2).map(|p| TopicPartition::new("profiles", p)));
    let wanted: BTreeMap<String, String> =
        (0..KEYS).map(|i| (format!("u{i}"), expected(i))).collect();
    let mut last = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while last != wanted {
        assert!(Instant::now() < deadline, "profiles so far: {last:?}");
        for record in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let key = String::from_utf8(record.key.unwrap().to_vec()).unwrap();
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            last.insert(key, value);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_join_runs_exactly_once_on_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path().join("broker")).await.unwrap();
    let client = node.client();
    for topic in ["users", "plans", "profiles"] {
        client.admin().create_topic(topic, 2, &[]).await.unwrap();
    }
    produce(&client, "users", |i| format!("name-{i}")).await;
    let app = KafkaStreams::start(users_with_plans(), client.clone(), config(dir.path()))
        .await
        .unwrap();
    produce(&client, "plans", |i| format!("plan-{i}")).await;
    last_profiles(&client, |i| format!("name-{i}/plan-{i}")).await;
    // Updates of either side change the joined rows.
    produce(&client, "users", |i| format!("new-{i}")).await;
    last_profiles(&client, |i| format!("new-{i}/plan-{i}")).await;
    app.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_joined_across_unlike_partition_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path().join("broker")).await.unwrap();
    let client = node.client();
    for (topic, partitions) in [("users", 2), ("plans", 3), ("profiles", 2)] {
        client
            .admin()
            .create_topic(topic, partitions, &[])
            .await
            .unwrap();
    }
    let refused = KafkaStreams::start(users_with_plans(), client.clone(), config(dir.path())).await;
    let error = refused
        .err()
        .expect("started on unlike partition counts")
        .to_string();
    assert!(
        error.contains("users (2)") && error.contains("plans (3)"),
        "{error}"
    );
}

/// Orders joined with payments within a minute, exactly once; the
/// payments are keyed by payment id and re-keyed by the order they pay,
/// so that side goes through `<name>-right-repartition` first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_join_with_a_rekeyed_side_runs_exactly_once_on_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path().join("broker")).await.unwrap();
    let client = node.client();
    for topic in ["orders", "payments", "profiles"] {
        client.admin().create_topic(topic, 2, &[]).await.unwrap();
    }
    let builder = StreamsBuilder::new();
    let orders = builder.stream("orders", Consumed::with(Utf8, Utf8));
    let payments = builder
        .stream("payments", Consumed::with(Utf8, Utf8))
        .select_key(|_payment: &String, order: &String| order.clone());
    orders
        .join_stream(
            &payments,
            |item: &String, _order: &String| format!("{item} paid"),
            spool_streams::JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(60)),
            spool_streams::StreamJoined::with(Utf8, Utf8, Utf8).named("order-payments"),
        )
        .to("profiles", Produced::with(Utf8, Utf8));
    let topology = builder.build().unwrap();
    let description = topology.describe().to_string();
    assert!(
        description.contains("order-payments-right-repartition"),
        "{description}"
    );
    let app = KafkaStreams::start(topology, client.clone(), config(dir.path()))
        .await
        .unwrap();
    let producer = client.producer(Default::default());
    let orders: Vec<ProducerRecord> = (0..KEYS)
        .map(|i| ProducerRecord::new("orders", format!("item-{i}")).key(format!("u{i}")))
        .collect();
    producer.send_batch(orders).await.unwrap().await.unwrap();
    let payments: Vec<ProducerRecord> = (0..KEYS)
        .map(|i| ProducerRecord::new("payments", format!("u{i}")).key(format!("pay-{i}")))
        .collect();
    producer.send_batch(payments).await.unwrap().await.unwrap();
    last_profiles(&client, |i| format!("item-{i} paid")).await;
    app.close().await.unwrap();
}
