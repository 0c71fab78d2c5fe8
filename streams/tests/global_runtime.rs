//! A global table on an embedded broker: loaded whole before processing
//! starts, kept up to date while the application runs, and resumed from
//! the offsets its RocksDB store recorded after a restart (nothing read
//! twice).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spool_broker::Node;
use spool_client::proto::IsolationLevel;
use spool_client::{Client, ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};
use spool_streams::{
    Consumed, KafkaStreams, Materialized, ProcessingGuarantee, Produced, StreamsBuilder,
    StreamsConfig, Topology, Utf8,
};

fn enrich_orders() -> Topology {
    let builder = StreamsBuilder::new();
    let countries = builder.global_table(
        "countries",
        Consumed::with(Utf8, Utf8),
        Materialized::with(Utf8, Utf8).named("countries"),
    );
    builder
        .stream("orders", Consumed::with(Utf8, Utf8))
        .left_join_global(
            &countries,
            |_, country: &String| country.clone(),
            |country: &String, name: Option<&String>| {
                format!("{country}={}", name.map_or("?", |n| n))
            },
        )
        .to("shipments", Produced::with(Utf8, Utf8));
    builder.build().unwrap()
}

async fn send(client: &Client, topic: &str, pairs: &[(&str, &str)]) {
    let producer = client.producer(Default::default());
    let records = pairs
        .iter()
        .map(|(k, v)| ProducerRecord::new(topic, v.to_string()).key(k.to_string()))
        .collect();
    producer.send_batch(records).await.unwrap().await.unwrap();
}

/// Reads `shipments` from the beginning until `count` records arrived;
/// returns them by order id.
async fn shipments(client: &Client, count: usize) -> BTreeMap<String, String> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    consumer.assign((0..2).map(|p| TopicPartition::new("shipments", p)));
    let (mut seen, mut total) = (BTreeMap::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while total < count {
        assert!(Instant::now() < deadline, "shipments so far: {seen:?}");
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            seen.insert(key, value);
            total += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_table_is_loaded_before_processing_kept_current_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path().join("broker")).await.unwrap();
    let client = node.client();
    for topic in ["countries", "orders", "shipments"] {
        client.admin().create_topic(topic, 2, &[]).await.unwrap();
    }
    // Three partitions' worth of keys, spread by hash over both.
    send(
        &client,
        "countries",
        &[("fr", "France"), ("de", "Germany"), ("it", "Italy")],
    )
    .await;
    send(
        &client,
        "orders",
        &[("o1", "fr"), ("o2", "de"), ("o3", "it"), ("o4", "es")],
    )
    .await;

    let mut config = StreamsConfig::new("shipping");
    config.state_dir = dir.path().join("state");
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    let app = KafkaStreams::start(enrich_orders(), client.clone(), config.clone())
        .await
        .unwrap();
    // Loaded before the first order was processed: every order found its
    // country but the one not in the table.
    let seen = shipments(&client, 4).await;
    assert_eq!(seen["o1"], "fr=France");
    assert_eq!(seen["o2"], "de=Germany");
    assert_eq!(seen["o3"], "it=Italy");
    assert_eq!(seen["o4"], "es=?");
    assert_eq!(app.metrics().global_records_loaded, 3);

    // A country added while the application runs is found by later
    // orders.
    send(&client, "countries", &[("es", "Spain")]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.metrics().global_records_loaded < 4 {
        assert!(Instant::now() < deadline, "{:?}", app.metrics());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send(&client, "orders", &[("o5", "es")]).await;
    assert_eq!(shipments(&client, 5).await["o5"], "es=Spain");
    app.close().await.unwrap();

    // Restarted, the RocksDB store resumes where it stopped: nothing is
    // read again, and what it holds still serves lookups.
    send(&client, "countries", &[("pt", "Portugal")]).await;
    let app = KafkaStreams::start(enrich_orders(), client.clone(), config)
        .await
        .unwrap();
    assert_eq!(
        app.metrics().global_records_loaded,
        1,
        "only Portugal is new"
    );
    send(&client, "orders", &[("o6", "fr"), ("o7", "pt")]).await;
    let seen = shipments(&client, 7).await;
    assert_eq!(seen["o6"], "fr=France");
    assert_eq!(seen["o7"], "pt=Portugal");
    app.close().await.unwrap();

    // What the state directory holds, as `spool streams describe
    // --state-dir` shows it: the global store with its position in both
    // partitions, and the order task's (stateless: no store).
    let stores =
        spool_streams::state::stores_on_disk(&dir.path().join("state"), "shipping").unwrap();
    assert_eq!(stores.len(), 1, "{stores:?}");
    assert_eq!(
        (stores[0].task.as_str(), stores[0].store.as_str()),
        ("global", "countries")
    );
    assert_eq!(stores[0].positions.values().sum::<u64>(), 5, "{stores:?}");
    assert!(stores[0].bytes > 0);
}
