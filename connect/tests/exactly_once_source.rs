//! Exactly-once sources (KIP-618) and source offsets in a topic, on an
//! embedded broker: a file produced once for read_committed consumers with
//! Kafka's records in the offsets topic; a worker crashing with a
//! transaction open and another taking over; a record the broker refuses
//! mid-stream; zombies fenced; and topic-backed offsets without
//! exactly-once, resumed, read, altered and reset.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spool_client::proto::{ErrorCode, IsolationLevel};
use spool_client::{
    Client, ConsumerConfig, ConsumerRecord, OffsetReset, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use spool_connect::api::ConfigMap;
use spool_connect::worker::{
    transactional_id, ConnectorOffset, DEFAULT_GROUP_ID, EXACTLY_ONCE_SUPPORT,
    TRANSACTION_BOUNDARY, TRANSACTION_BOUNDARY_INTERVAL_MS,
};
use spool_connect::{ConnectError, State, Worker, WorkerConfig};

use common::{all_running, broker, props, wait_for_status, wait_for_topic, PATIENCE};

const COMMITTED: IsolationLevel = IsolationLevel::ReadCommitted;
const UNCOMMITTED: IsolationLevel = IsolationLevel::ReadUncommitted;

/// A worker flushing every 100 ms; with `exactly_once`, or with offsets
/// in `topic` (name, partitions) when given; else in a file in `dir`.
fn worker_config(dir: &Path, exactly_once: bool, topic: Option<(&str, u32)>) -> WorkerConfig {
    let mut config = WorkerConfig::new(dir.join("connect.offsets"));
    config.offset_flush_interval = Duration::from_millis(100);
    config.exactly_once_source_support = exactly_once;
    if let Some((name, partitions)) = topic {
        config.offset_storage_topic = Some(name.to_string());
        config.offset_storage_partitions = partitions;
    }
    config
}

/// A file source of `input` into `topic`, the lines as plain strings.
fn file_source(input: &Path, topic: &str) -> ConfigMap {
    let file = input.display().to_string();
    props(&[
        ("connector.class", "FileStreamSource"),
        ("file", file.as_str()),
        ("topic", topic),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
    ])
}

fn lines(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:04}")).collect()
}

fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

fn text(record: &ConsumerRecord) -> String {
    String::from_utf8(record.value.as_deref().unwrap_or_default().to_vec()).unwrap()
}

/// The values of `topic`'s partition 0 as a consumer of `isolation` sees
/// them: once `expected` arrived, and half a second more, so that one
/// more (a duplicate, an aborted record) is seen too.
async fn read_values(
    client: &Client,
    topic: &str,
    expected: usize,
    isolation: IsolationLevel,
) -> Vec<String> {
    wait_for_topic(client, topic).await;
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation,
        ..ConsumerConfig::default()
    });
    consumer.assign([TopicPartition::new(topic, 0)]);
    let mut values = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while values.len() < expected {
        assert!(
            Instant::now() < deadline,
            "{topic} shows {} records, not {expected}",
            values.len()
        );
        let records = consumer.poll(Duration::from_millis(200)).await.unwrap();
        values.extend(records.iter().map(text));
    }
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        let records = consumer.poll(Duration::from_millis(100)).await.unwrap();
        values.extend(records.iter().map(text));
    }
    values
}

/// The committed records of every partition of the offsets topic, once
/// `done` holds for them.
async fn offset_records(
    client: &Client,
    topic: &str,
    partitions: u32,
    done: impl Fn(&[ConsumerRecord]) -> bool,
) -> Vec<ConsumerRecord> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: COMMITTED,
        ..ConsumerConfig::default()
    });
    consumer.assign((0..partitions).map(|p| TopicPartition::new(topic, p)));
    let mut records = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !done(&records) {
        assert!(Instant::now() < deadline, "{topic}: {records:?}");
        records.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    records
}

/// The offsets topic's key of the file source `connector` reading `input`,
/// byte for byte as Kafka Connect writes it.
fn file_key(connector: &str, input: &Path) -> String {
    let file = serde_json::to_string(&input.display().to_string()).unwrap();
    format!(r#"["{connector}",{{"filename":{file}}}]"#)
}

/// A one-key map, as source partitions and offsets are.
fn one_entry(key: &str, value: Value) -> BTreeMap<String, Value> {
    [(key.to_string(), value)].into()
}

fn task_failed(status: &spool_connect::ConnectorStatus) -> bool {
    status
        .tasks
        .first()
        .is_some_and(|t| t.info.state == State::Failed)
}

/// The offsets topic `connect-offsets` as the worker made it, holding the
/// file source `connector`'s offset `length` of `input` in Kafka's
/// format, byte for byte, and nothing else.
async fn assert_kafkas_offsets_topic(client: &Client, connector: &str, input: &Path, length: u64) {
    let info = client
        .admin()
        .describe_topic("connect-offsets")
        .await
        .unwrap();
    assert_eq!(info.partitions.len(), 25);
    assert!(
        info.configs
            .iter()
            .any(|(k, v)| k == "cleanup.policy" && v.contains("compact")),
        "{:?}",
        info.configs
    );
    let key = file_key(connector, input);
    let value = format!(r#"{{"position":{length}}}"#);
    let records = offset_records(client, "connect-offsets", 25, |records| {
        records.iter().any(|r| {
            r.key.as_deref() == Some(key.as_bytes()) && r.value.as_deref() == Some(value.as_bytes())
        })
    })
    .await;
    for record in &records {
        let key: Value = serde_json::from_slice(record.key.as_deref().unwrap()).unwrap();
        assert_eq!(
            key,
            json!([connector, {"filename": input.display().to_string()}])
        );
        let offset: Value = serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
        assert!(offset["position"].is_u64(), "{offset}");
    }
}

/// A worker without exactly-once refuses a connector that requires it, in
/// validation and when it is added, as Kafka refuses it.
async fn refuses_required_exactly_once(worker: &Worker, source: &ConfigMap) {
    let mut strict = source.clone();
    strict.insert(EXACTLY_ONCE_SUPPORT.into(), "required".into());
    let validated = worker.validate(&strict).unwrap();
    let support = validated
        .iter()
        .find(|v| v.name == EXACTLY_ONCE_SUPPORT)
        .unwrap();
    assert_eq!(support.errors.len(), 1, "{support:?}");
    let refused = worker.add_connector("strict", strict).await.unwrap_err();
    assert!(
        matches!(&refused, ConnectError::InvalidConfig { key, .. } if key == EXACTLY_ONCE_SUPPORT),
        "{refused}"
    );
}

/// Waits until connector `name`'s only offset is `offset` of `partition`.
async fn wait_for_offset(
    worker: &Worker,
    name: &str,
    partition: &BTreeMap<String, Value>,
    offset: &BTreeMap<String, Value>,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let offsets = worker.connector_offsets(name).await.unwrap().offsets;
        if offsets.first().and_then(|o| o.offset.as_ref()) == Some(offset) {
            assert_eq!(&offsets[0].partition, partition);
            return;
        }
        assert!(Instant::now() < deadline, "{offsets:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_produced_exactly_once_with_kafkas_offset_records() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["eos-lines"]).await;
    let input = dir.path().join("in.txt");
    let expected = lines("line", 1000);
    append(&input, &expected);

    // Exactly-once with every default: offsets in `connect-offsets`.
    let worker = Worker::start(client.clone(), worker_config(dir.path(), true, None))
        .await
        .unwrap();
    let mut connector = file_source(&input, "eos-lines");
    let mut defined_by_connector = connector.clone();
    defined_by_connector.insert(TRANSACTION_BOUNDARY.into(), "connector".into());
    let refused = worker
        .add_connector("eos", defined_by_connector)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ConnectError::InvalidConfig { key, .. } if key == TRANSACTION_BOUNDARY),
        "{refused}"
    );
    connector.insert(EXACTLY_ONCE_SUPPORT.into(), "required".into());
    worker.add_connector("eos", connector).await.unwrap();

    assert_eq!(
        read_values(&client, "eos-lines", 1000, COMMITTED).await,
        expected
    );
    assert!(all_running(&worker.connector_status("eos").await.unwrap()));

    // The offsets topic: made compacted with Kafka's 25 partitions, and
    // holding Kafka's key and value, byte for byte.
    let length = std::fs::metadata(&input).unwrap().len();
    assert_kafkas_offsets_topic(&client, "eos", &input, length).await;
    let offsets = worker.connector_offsets("eos").await.unwrap();
    assert_eq!(offsets.offsets.len(), 1);
    assert_eq!(
        offsets.offsets[0].offset,
        Some(one_entry("position", json!(length)))
    );

    worker.shutdown().await.unwrap();
    assert_eq!(
        read_values(&client, "eos-lines", 1000, UNCOMMITTED)
            .await
            .len(),
        1000,
        "no record was written twice, aborted or not"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_crashes_mid_transaction_is_taken_over_without_loss_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["crash-lines"]).await;
    let input = dir.path().join("in.txt");
    let (first, second, third) = (lines("first", 100), lines("second", 50), lines("third", 50));
    append(&input, &first);
    let topic = Some(("crash-offsets", 2));

    // A worker that abandons its tasks at once when stopped: a crash.
    let mut config = worker_config(dir.path(), true, topic);
    config.task_shutdown_timeout = Duration::ZERO;
    let worker = Worker::start(client.clone(), config).await.unwrap();
    let poll = file_source(&input, "crash-lines");
    worker.add_connector("crash", poll.clone()).await.unwrap();
    assert_eq!(
        read_values(&client, "crash-lines", 100, COMMITTED).await,
        first
    );

    // Long transactions, so the next lines stay in an open one.
    let mut interval = poll.clone();
    interval.insert(TRANSACTION_BOUNDARY.into(), "interval".into());
    interval.insert(TRANSACTION_BOUNDARY_INTERVAL_MS.into(), "30000".into());
    worker
        .put_connector_config("crash", interval)
        .await
        .unwrap();
    wait_for_status(&worker, "crash", all_running).await;
    append(&input, &second);
    assert_eq!(
        read_values(&client, "crash-lines", 150, UNCOMMITTED)
            .await
            .len(),
        150,
        "sent in the open transaction"
    );
    worker.shutdown().await.unwrap();
    drop(worker);
    assert_eq!(
        read_values(&client, "crash-lines", 100, COMMITTED).await,
        first,
        "nothing of the open transaction is visible"
    );

    // Another worker on the same offsets topic fences the dead task,
    // which aborts its transaction, and starts from the committed offsets.
    append(&input, &third);
    let worker = Worker::start(client.clone(), worker_config(dir.path(), true, topic))
        .await
        .unwrap();
    worker.add_connector("crash", poll).await.unwrap();
    let expected: Vec<String> = [first, second, third].concat();
    assert_eq!(
        read_values(&client, "crash-lines", 200, COMMITTED).await,
        expected
    );
    assert_eq!(
        read_values(&client, "crash-lines", 250, UNCOMMITTED)
            .await
            .len(),
        250,
        "the aborted records stay in the log, unseen by read_committed"
    );
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_refused_mid_stream_aborts_its_transaction_and_a_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &[]).await;
    // The broker refuses batches over 150 kB, for now.
    client
        .admin()
        .create_topic("big", 1, &[("max.message.bytes", "150000")])
        .await
        .unwrap();
    let input = dir.path().join("in.txt");
    let mut expected: Vec<String> = (0..1000)
        .map(|i| format!("small-{i:04}-{}", "x".repeat(90)))
        .collect();
    expected.push(format!("huge-{}", "y".repeat(200_000)));
    expected.extend(lines("after", 10));
    append(&input, &expected);

    let config = worker_config(dir.path(), true, Some(("big-offsets", 1)));
    let worker = Worker::start(client.clone(), config).await.unwrap();
    worker
        .add_connector("big", file_source(&input, "big"))
        .await
        .unwrap();
    let status = wait_for_status(&worker, "big", task_failed).await;
    let trace = status.tasks[0].info.trace.clone().unwrap_or_default();
    assert!(trace.contains("RecordTooLarge"), "{trace}");
    assert!(
        read_values(&client, "big", 0, COMMITTED).await.is_empty(),
        "the aborted transaction's records are never visible"
    );

    // The topic takes large batches now; the restarted task resumes from
    // the last committed offsets (none) and produces everything once.
    client
        .admin()
        .alter_configs("big", &[("max.message.bytes", "1048588")])
        .await
        .unwrap();
    worker.restart_task("big", 0).await.unwrap();
    assert_eq!(read_values(&client, "big", 1011, COMMITTED).await, expected);
    wait_for_status(&worker, "big", all_running).await;
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombies_are_fenced_and_their_commits_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["zombie-lines", "direct"]).await;

    // Two producers of one transactional id: the older one's commit is
    // refused, and its record never shows.
    let producer = |id: &str| {
        client.producer(ProducerConfig {
            transactional_id: Some(id.to_string()),
            ..ProducerConfig::default()
        })
    };
    let older = producer("direct");
    older.init_transactions().await.unwrap();
    older.begin_transaction().unwrap();
    older
        .send_and_wait(ProducerRecord::new("direct", "from the older"))
        .await
        .unwrap();
    let newer = producer("direct");
    newer.init_transactions().await.unwrap();
    let fenced = older.commit_transaction().await.unwrap_err();
    assert_eq!(fenced.code(), ErrorCode::InvalidProducerEpoch, "{fenced}");
    newer.begin_transaction().unwrap();
    newer
        .send_and_wait(ProducerRecord::new("direct", "from the newer"))
        .await
        .unwrap();
    newer.commit_transaction().await.unwrap();
    assert_eq!(
        read_values(&client, "direct", 1, COMMITTED).await,
        ["from the newer"]
    );

    // A task is the older one once a producer takes its transactional id:
    // its next transaction is refused and it fails, producing nothing.
    let input = dir.path().join("in.txt");
    let (first, second) = (lines("first", 10), lines("second", 5));
    append(&input, &first);
    let config = worker_config(dir.path(), true, Some(("zombie-offsets", 1)));
    let worker = Worker::start(client.clone(), config).await.unwrap();
    worker
        .add_connector("zombie", file_source(&input, "zombie-lines"))
        .await
        .unwrap();
    assert_eq!(
        read_values(&client, "zombie-lines", 10, COMMITTED).await,
        first
    );
    let id = transactional_id(DEFAULT_GROUP_ID, "zombie", 0);
    assert_eq!(id, "connect-cluster-zombie-0");
    let usurper = producer(id.as_str());
    usurper.init_transactions().await.unwrap();
    append(&input, &second);
    let status = wait_for_status(&worker, "zombie", task_failed).await;
    let trace = status.tasks[0].info.trace.clone().unwrap_or_default();
    assert!(trace.contains("InvalidProducerEpoch"), "{trace}");
    assert_eq!(
        read_values(&client, "zombie-lines", 10, COMMITTED).await,
        first
    );

    // Restarted, the task fences the usurper in turn and goes on once.
    worker.restart_task("zombie", 0).await.unwrap();
    let expected: Vec<String> = [first, second].concat();
    assert_eq!(
        read_values(&client, "zombie-lines", 15, COMMITTED).await,
        expected
    );
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_in_a_topic_resume_a_restarted_worker_and_are_read_altered_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["tail"]).await;
    let input = dir.path().join("app.log");
    let (first, second) = (lines("first", 100), lines("second", 50));
    append(&input, &first);
    let topic = Some(("my-offsets", 3));
    let source = file_source(&input, "tail");

    let worker = Worker::start(client.clone(), worker_config(dir.path(), false, topic))
        .await
        .unwrap();
    refuses_required_exactly_once(&worker, &source).await;
    worker.add_connector("tail", source.clone()).await.unwrap();
    assert_eq!(read_values(&client, "tail", 100, UNCOMMITTED).await, first);
    worker.shutdown().await.unwrap();
    assert!(
        !dir.path().join("connect.offsets").exists(),
        "the topic, not the file, holds the offsets"
    );
    let info = client.admin().describe_topic("my-offsets").await.unwrap();
    assert_eq!(info.partitions.len(), 3);

    // A new worker reads the topic and resumes: only the new lines.
    append(&input, &second);
    let worker = Worker::start(client.clone(), worker_config(dir.path(), false, topic))
        .await
        .unwrap();
    worker.add_connector("tail", source).await.unwrap();
    let mut expected: Vec<String> = [first.clone(), second.clone()].concat();
    assert_eq!(
        read_values(&client, "tail", 150, UNCOMMITTED).await,
        expected
    );

    // GET: the position past the last line, once it is committed.
    let length = std::fs::metadata(&input).unwrap().len();
    let partition = one_entry("filename", json!(input.display().to_string()));
    let at_end = one_entry("position", json!(length));
    wait_for_offset(&worker, "tail", &partition, &at_end).await;

    // PATCH: back to the end of the first lines; the second ones again.
    let first_length = first.iter().map(|l| l.len() as u64 + 1).sum::<u64>();
    let altered = ConnectorOffset {
        partition: partition.clone(),
        offset: Some(one_entry("position", json!(first_length))),
    };
    assert!(worker
        .alter_connector_offsets("tail", vec![altered])
        .await
        .unwrap());
    expected.extend(second.iter().cloned());
    assert_eq!(
        read_values(&client, "tail", 200, UNCOMMITTED).await,
        expected
    );

    // DELETE: a tombstone for the file's key; everything again.
    assert!(worker.reset_connector_offsets("tail").await.unwrap());
    expected.extend(first.iter().chain(&second).cloned());
    assert_eq!(
        read_values(&client, "tail", 350, UNCOMMITTED).await,
        expected
    );
    let key = file_key("tail", &input);
    offset_records(&client, "my-offsets", 3, |records| {
        records
            .iter()
            .any(|r| r.key.as_deref() == Some(key.as_bytes()) && r.value.is_none())
    })
    .await;
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}
