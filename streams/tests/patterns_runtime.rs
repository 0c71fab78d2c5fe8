//! Pattern sources and partitioners on an embedded broker: a pattern
//! resolved to the topics that exist at start (co-partitioned, one task
//! per partition), and records written to the partitions a partitioner
//! chose.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spool_broker::Node;
use spool_client::proto::IsolationLevel;
use spool_client::{Client, ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};
use spool_streams::{
    Consumed, KafkaStreams, ProcessingGuarantee, Produced, StreamsBuilder, StreamsConfig, Topology,
    Utf8,
};

fn route_events() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream_pattern("events-.*", Consumed::with(Utf8, Utf8))
        .to(
            "routed",
            // By the key's length, which the default hash would not do.
            Produced::with(Utf8, Utf8)
                .with_partitioner(|key: &String, _, count| Some(key.len() as u32 % count)),
        );
    builder.build().unwrap()
}

async fn send(client: &Client, topic: &str, keys: &[&str]) {
    let producer = client.producer(Default::default());
    let records = keys
        .iter()
        .map(|k| ProducerRecord::new(topic, format!("{topic}/{k}")).key(k.to_string()))
        .collect();
    producer.send_batch(records).await.unwrap().await.unwrap();
}

/// Every record of `routed`, as value → partition, once `count` arrived.
async fn routed(client: &Client, count: usize) -> BTreeMap<String, u32> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    consumer.assign((0..3).map(|p| TopicPartition::new("routed", p)));
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < count {
        assert!(Instant::now() < deadline, "routed so far: {seen:?}");
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            seen.insert(value, r.partition);
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_reads_the_matching_topics_and_a_partitioner_places_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path().join("broker")).await.unwrap();
    let client = node.client();
    for (topic, partitions) in [
        ("events-a", 2),
        ("events-b", 2),
        ("other", 1),
        ("routed", 3),
    ] {
        client
            .admin()
            .create_topic(topic, partitions, &[])
            .await
            .unwrap();
    }
    send(&client, "events-a", &["x", "yy", "zzz"]).await;
    send(&client, "events-b", &["p", "qqqq"]).await;
    send(&client, "other", &["ignored"]).await;

    let mut config = StreamsConfig::new("router");
    config.state_dir = dir.path().join("state");
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = KafkaStreams::start(route_events(), client.clone(), config)
        .await
        .unwrap();
    let seen = routed(&client, 5).await;
    assert_metrics_served(&app).await;
    let expected: BTreeMap<String, u32> = [
        ("events-a/x", 1),
        ("events-a/yy", 2),
        ("events-a/zzz", 0),
        ("events-b/p", 1),
        ("events-b/qqqq", 1),
    ]
    .into_iter()
    .map(|(v, p)| (v.to_string(), p))
    .collect();
    assert_eq!(seen, expected);
    app.close().await.unwrap();
}

/// The metrics endpoint and `task_metrics` show the five records
/// processed, by the two tasks (one per partition of the pattern's
/// topics), with nothing left to fetch.
async fn assert_metrics_served(app: &KafkaStreams) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .task_metrics()
        .iter()
        .map(|(_, m)| m.records_processed)
        .sum::<u64>()
        < 5
    {
        assert!(Instant::now() < deadline, "{:?}", app.task_metrics());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tasks = app.task_metrics();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert!(tasks.iter().all(|(_, m)| m.records_lag == 0), "{tasks:?}");
    let address = app.metrics_address().expect("the endpoint listens");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("spool_streams_records_processed_total{application=\"router\"} 5"),
        "{page}"
    );
    for task in ["0_0", "0_1"] {
        let line =
            format!("spool_streams_task_records_lag{{application=\"router\",task=\"{task}\"}} 0");
        assert!(page.contains(&line), "{line} in {page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_matching_no_topic_or_a_missing_partitioned_sink_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path().join("broker")).await.unwrap();
    let client = node.client();
    let mut config = StreamsConfig::new("router");
    config.state_dir = dir.path().join("state");

    let error = KafkaStreams::start(route_events(), client.clone(), config.clone())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("source pattern `^(?:events-.*)$` matches no topic"),
        "{error}"
    );

    client
        .admin()
        .create_topic("events-a", 1, &[])
        .await
        .unwrap();
    let error = KafkaStreams::start(route_events(), client.clone(), config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("output topic `routed` chooses its partitions")
            && error.contains("does not exist"),
        "{error}"
    );
}

/// A topic created after the start that the pattern matches is read once
/// the instance looks again (`metadata_max_age`), with what the first
/// topic had kept: its records are routed once each, exactly once.
/// Without the watcher, the records of `events-late` never arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_picks_up_a_topic_created_after_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path().join("broker")).await.unwrap();
    let client = node.client();
    for (topic, partitions) in [("events-a", 2), ("routed", 3)] {
        client
            .admin()
            .create_topic(topic, partitions, &[])
            .await
            .unwrap();
    }
    send(&client, "events-a", &["x", "yy"]).await;
    let mut config = StreamsConfig::new("late-router");
    config.state_dir = dir.path().join("state");
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    config.commit_interval = Some(Duration::from_millis(100));
    config.metadata_max_age = Duration::from_millis(500);
    let app = KafkaStreams::start(route_events(), client.clone(), config)
        .await
        .unwrap();
    routed(&client, 2).await;

    client
        .admin()
        .create_topic("events-late", 2, &[])
        .await
        .unwrap();
    send(&client, "events-late", &["p", "qqqq", "rrr"]).await;
    send(&client, "events-a", &["zzz"]).await;
    let seen = routed(&client, 6).await;
    let expected = [
        "events-a/x",
        "events-a/yy",
        "events-a/zzz",
        "events-late/p",
        "events-late/qqqq",
        "events-late/rrr",
    ];
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
    // Once each: everything `routed` holds, read to its end.
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    consumer.assign((0..3).map(|p| TopicPartition::new("routed", p)));
    let mut all = Vec::new();
    loop {
        let records = consumer.poll(Duration::from_millis(500)).await.unwrap();
        if records.is_empty() {
            break;
        }
        all.extend(
            records
                .into_iter()
                .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
        );
    }
    all.sort();
    assert_eq!(all, expected);
    assert!(!app.has_failed_thread());
    app.close().await.unwrap();
}
