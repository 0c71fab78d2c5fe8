//! Helpers of the integration tests: an embedded broker, config maps,
//! and readers that wait for a topic or a file to hold what they expect.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use spool_broker::Node;
use spool_client::{Client, ConsumerConfig, ConsumerRecord, OffsetReset, TopicPartition};
use spool_connect::rest::Herder;
use spool_connect::{ConnectorStatus, State, Worker, WorkerConfig};

/// How long a test waits for data before it fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A broker on `dir` with `topics` (one partition each, so their order is
/// the order of the records).
pub async fn broker(dir: &Path, topics: &[&str]) -> (Node, Client) {
    let node = Node::embedded(dir.join("broker")).await.unwrap();
    let client = node.client();
    for topic in topics {
        client.admin().create_topic(topic, 1, &[]).await.unwrap();
    }
    (node, client)
}

/// A worker flushing every 100 ms, so tests see offsets and sink files
/// soon, with offsets in `dir`.
pub async fn start_worker(client: &Client, dir: &Path) -> Worker {
    let mut config = WorkerConfig::new(dir.join("connect.offsets"));
    config.offset_flush_interval = Duration::from_millis(100);
    Worker::start(client.clone(), config).await.unwrap()
}

#[allow(unused_imports)]
pub use spool_connect::api::config_map as props;

/// The values of `topic`'s partition 0 from its start, as text: waits
/// until `expected` arrived, then half a second more, so a duplicate that
/// follows is seen too.
pub async fn read_topic(client: &Client, topic: &str, expected: usize) -> Vec<String> {
    let records = read_records(client, topic, expected).await;
    records.iter().map(|r| text(r.value.as_deref())).collect()
}

/// Waits until `topic` exists (the worker creates dead-letter topics).
pub async fn wait_for_topic(client: &Client, topic: &str) {
    let deadline = Instant::now() + PATIENCE;
    while client.topic_metadata(topic).await.is_err() {
        assert!(Instant::now() < deadline, "no topic {topic}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The records of `topic`'s partition 0, with their headers, once
/// `expected` arrived and half a second more (so an extra one is seen).
pub async fn read_records(client: &Client, topic: &str, expected: usize) -> Vec<ConsumerRecord> {
    wait_for_topic(client, topic).await;
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    });
    consumer.assign([TopicPartition::new(topic, 0)]);
    let mut records = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while records.len() < expected {
        assert!(
            Instant::now() < deadline,
            "{topic} holds {} records, not {expected}",
            records.len()
        );
        records.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        records.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
    }
    records
}

fn text(bytes: Option<&[u8]>) -> String {
    String::from_utf8(bytes.unwrap_or_default().to_vec()).unwrap()
}

/// The text of `path` once it has `lines` lines, read again half a second
/// later, so lines written twice are seen too.
pub async fn wait_for_lines(path: &Path, lines: usize) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let count = text.bytes().filter(|b| *b == b'\n').count();
        if count >= lines {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {count} lines, not {lines}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::read_to_string(path).unwrap()
}

/// The status of connector `name` once `done` holds for it, as a
/// standalone or a distributed worker tells it.
pub async fn wait_for_status(
    worker: &(impl Clone + Into<Herder>),
    name: &str,
    done: impl Fn(&ConnectorStatus) -> bool,
) -> ConnectorStatus {
    let worker: Herder = worker.clone().into();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = worker.connector_status(name).await.unwrap();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the connector and every task of it run.
pub fn all_running(status: &ConnectorStatus) -> bool {
    status.connector.state == State::Running
        && !status.tasks.is_empty()
        && status.tasks.iter().all(|t| t.info.state == State::Running)
}
