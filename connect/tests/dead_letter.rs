//! Error handling on an embedded broker, as Kafka Connect's: with
//! `errors.tolerance=all` a record that cannot be converted or
//! transformed goes to the dead-letter topic with Kafka's context headers
//! while every other record goes on in order, and its offset is committed
//! with the others; with the default `none` the task fails with the error
//! in its trace.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spool_client::{Client, ConsumerRecord, ProducerConfig, ProducerRecord};
use spool_connect::{State, Worker};

use common::{
    all_running, broker, props, read_records, read_topic, start_worker, wait_for_lines,
    wait_for_status, PATIENCE,
};

/// The text of each header, by name, in order.
fn headers(record: &ConsumerRecord) -> Vec<(String, String)> {
    record
        .headers
        .iter()
        .map(|(name, value)| {
            let text = value.as_deref().map(String::from_utf8_lossy);
            (name.clone(), text.unwrap_or_default().into_owned())
        })
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no header {name} in {headers:?}"))
}

async fn produce(client: &Client, topic: &str, values: &[&str]) {
    let producer = client.producer(ProducerConfig::default());
    for (i, value) in values.iter().enumerate() {
        let mut record = ProducerRecord::new(topic, value.as_bytes().to_vec()).key(format!("k{i}"));
        if value.starts_with("not json") {
            record = record.header("trace", "abc");
        }
        producer.send_and_wait(record).await.unwrap();
    }
}

/// Waits until the metrics of task 0 of `name` satisfy `done`.
async fn wait_for_metrics(
    worker: &Worker,
    name: &str,
    done: impl Fn(&spool_connect::worker::TaskErrorMetrics) -> bool,
) -> spool_connect::worker::TaskErrorMetrics {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let metrics = worker.task_error_metrics(name).await.unwrap();
        if let Some(task) = metrics.get(&0) {
            if done(task) {
                return *task;
            }
        }
        assert!(Instant::now() < deadline, "{metrics:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_sends_an_undecodable_record_to_the_dead_letter_topic_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["orders"]).await;
    let values = [
        r#"{"n":1}"#,
        r#"{"n":2}"#,
        "not json {",
        r#"{"n":3}"#,
        r#"{"n":4}"#,
    ];
    produce(&client, "orders", &values).await;
    let output = dir.path().join("out.txt");
    let output_name = output.display().to_string();
    let sink = props(&[
        ("connector.class", "FileStreamSink"),
        ("file", output_name.as_str()),
        ("topics", "orders"),
        ("key.converter", "string"),
        ("value.converter", "json"),
        ("value.converter.schemas.enable", "false"),
        ("errors.tolerance", "all"),
        ("errors.log.enable", "true"),
        ("errors.log.include.messages", "true"),
        ("errors.deadletterqueue.topic.name", "orders-dlq"),
        ("errors.deadletterqueue.context.headers.enable", "true"),
    ]);
    let worker = start_worker(&client, dir.path()).await;
    worker
        .add_connector("orders-sink", sink.clone())
        .await
        .unwrap();

    // Every valid record, in order; the poison one is not in the file.
    let expected = "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n";
    assert_eq!(wait_for_lines(&output, 4).await, expected);

    let letters = read_records(&client, "orders-dlq", 1).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(
        letter.value.as_deref(),
        Some(&b"not json {"[..]),
        "the bytes as read"
    );
    assert_eq!(letter.key.as_deref(), Some(&b"k2"[..]));
    let found = headers(letter);
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "trace",
            "__connect.errors.topic",
            "__connect.errors.partition",
            "__connect.errors.offset",
            "__connect.errors.connector.name",
            "__connect.errors.task.id",
            "__connect.errors.stage",
            "__connect.errors.class.name",
            "__connect.errors.exception.class.name",
            "__connect.errors.exception.message",
            "__connect.errors.exception.stacktrace",
        ]
    );
    assert_eq!(
        header(&found, "trace"),
        "abc",
        "the original headers come first"
    );
    assert_eq!(header(&found, "__connect.errors.topic"), "orders");
    assert_eq!(header(&found, "__connect.errors.partition"), "0");
    assert_eq!(header(&found, "__connect.errors.offset"), "2");
    assert_eq!(
        header(&found, "__connect.errors.connector.name"),
        "orders-sink"
    );
    assert_eq!(header(&found, "__connect.errors.task.id"), "0");
    assert_eq!(header(&found, "__connect.errors.stage"), "VALUE_CONVERTER");
    assert_eq!(
        header(&found, "__connect.errors.class.name"),
        "org.apache.kafka.connect.json.JsonConverter"
    );
    assert_eq!(
        header(&found, "__connect.errors.exception.class.name"),
        "org.apache.kafka.connect.errors.DataException"
    );
    let message = header(&found, "__connect.errors.exception.message");
    assert!(
        message.starts_with("JsonConverter cannot convert a record of `orders`: not JSON"),
        "{message}"
    );
    let trace = header(&found, "__connect.errors.exception.stacktrace");
    assert!(trace.starts_with(message), "{trace}");

    let metrics = wait_for_metrics(&worker, "orders-sink", |m| m.total_records_skipped == 1).await;
    assert_eq!(metrics.total_record_errors, 1);
    assert_eq!(metrics.deadletterqueue_produce_requests, 1);
    assert_eq!(metrics.deadletterqueue_produce_failures, 0);
    assert_eq!(metrics.total_errors_logged, 1);

    // The poison record's offset was committed with the others: a new
    // instance reads on after it, and neither the file nor the dead-letter
    // topic gets anything twice. A record after the restart shows that
    // the new instance reads: anything read again would come before it.
    worker.stop_connector("orders-sink").await.unwrap();
    worker.add_connector("orders-sink", sink).await.unwrap();
    produce(&client, "orders", &[r#"{"n":5}"#]).await;
    let expected = format!("{expected}{{\"n\":5}}\n");
    assert_eq!(wait_for_lines(&output, 5).await, expected);
    assert_eq!(read_records(&client, "orders-dlq", 1).await.len(), 1);
    let status = worker.connector_status("orders-sink").await.unwrap();
    assert!(all_running(&status), "{status:?}");

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

/// A file source whose `Cast` cannot cast `x`, with `extra` keys.
fn casting_source(
    file: &str,
    topic: &str,
    extra: &[(&str, &str)],
) -> spool_connect::api::ConfigMap {
    let mut config = props(&[
        ("connector.class", "FileStreamSource"),
        ("file", file),
        ("topic", topic),
        ("value.converter", "json"),
        ("value.converter.schemas.enable", "false"),
        ("transforms", "toInt"),
        (
            "transforms.toInt.type",
            "org.apache.kafka.connect.transforms.Cast$Value",
        ),
        ("transforms.toInt.spec", "int32"),
    ]);
    config.extend(props(extra));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_sends_a_record_its_transform_fails_on_to_the_dead_letter_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["numbers"]).await;
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "1\n2\nx\n4\n").unwrap();
    let input_name = input.display().to_string();
    let worker = start_worker(&client, dir.path()).await;
    let source = casting_source(
        &input_name,
        "numbers",
        &[
            ("errors.tolerance", "all"),
            ("errors.deadletterqueue.topic.name", "numbers-dlq"),
            ("errors.deadletterqueue.context.headers.enable", "true"),
        ],
    );
    worker.add_connector("numbers-src", source).await.unwrap();

    // The lines cast to JSON numbers; `x` is not among them.
    assert_eq!(read_topic(&client, "numbers", 3).await, ["1", "2", "4"]);

    // The dead letter is the line as the value converter writes it, with
    // where it came from in the source system.
    let letters = read_records(&client, "numbers-dlq", 1).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.value.as_deref(), Some(&b"\"x\""[..]));
    assert_eq!(letter.key, None);
    let found = headers(letter);
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "__connect.errors.topic",
            "__connect.errors.source.partition",
            "__connect.errors.source.offset",
            "__connect.errors.connector.name",
            "__connect.errors.task.id",
            "__connect.errors.stage",
            "__connect.errors.class.name",
            "__connect.errors.exception.class.name",
            "__connect.errors.exception.message",
            "__connect.errors.exception.stacktrace",
        ]
    );
    assert_eq!(header(&found, "__connect.errors.topic"), "numbers");
    let partition: Value =
        serde_json::from_str(header(&found, "__connect.errors.source.partition")).unwrap();
    assert_eq!(partition, json!({"filename": input_name}));
    assert_eq!(
        header(&found, "__connect.errors.source.offset"),
        r#"{"position":6}"#
    );
    assert_eq!(
        header(&found, "__connect.errors.connector.name"),
        "numbers-src"
    );
    assert_eq!(header(&found, "__connect.errors.task.id"), "0");
    assert_eq!(header(&found, "__connect.errors.stage"), "TRANSFORMATION");
    assert_eq!(
        header(&found, "__connect.errors.class.name"),
        "org.apache.kafka.connect.transforms.Cast$Value"
    );
    assert_eq!(
        header(&found, "__connect.errors.exception.class.name"),
        "org.apache.kafka.connect.errors.DataException"
    );
    assert_eq!(
        header(&found, "__connect.errors.exception.message"),
        "transform `toInt` (Cast$Value) cannot transform a record of `numbers`: Value (x) was \
         out of range for requested data type"
    );
    let metrics = wait_for_metrics(&worker, "numbers-src", |m| m.total_records_skipped == 1).await;
    assert_eq!(metrics.deadletterqueue_produce_requests, 1);

    // The skipped line's offset went with the others: the stored position
    // is past the last line.
    worker.stop_connector("numbers-src").await.unwrap();
    let stored: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("connect.offsets")).unwrap())
            .unwrap();
    assert_eq!(stored["numbers-src"][0]["offset"], json!({"position": 8}));

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tolerance_a_failed_record_fails_the_task_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["numbers", "orders"]).await;
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "1\nx\n").unwrap();
    let input_name = input.display().to_string();
    produce(&client, "orders", &[r#"{"n":1}"#, "not json {"]).await;
    let output = dir.path().join("out.txt").display().to_string();
    let worker = start_worker(&client, dir.path()).await;
    worker
        .add_connector("numbers-src", casting_source(&input_name, "numbers", &[]))
        .await
        .unwrap();
    let sink = props(&[
        ("connector.class", "FileStreamSink"),
        ("file", output.as_str()),
        ("topics", "orders"),
        ("value.converter", "json"),
        ("value.converter.schemas.enable", "false"),
        ("errors.tolerance", "none"),
    ]);
    worker.add_connector("orders-sink", sink).await.unwrap();

    let failed = |s: &spool_connect::ConnectorStatus| {
        s.tasks
            .first()
            .is_some_and(|t| t.info.state == State::Failed)
    };
    let source = wait_for_status(&worker, "numbers-src", failed).await;
    let trace = source.tasks[0].info.trace.clone().unwrap_or_default();
    assert!(
        trace.contains("Tolerance exceeded in error handler"),
        "{trace}"
    );
    assert!(
        trace.contains("Value (x) was out of range for requested data type"),
        "{trace}"
    );
    assert!(trace.contains("TRANSFORMATION"), "{trace}");
    let sink = wait_for_status(&worker, "orders-sink", failed).await;
    let trace = sink.tasks[0].info.trace.clone().unwrap_or_default();
    assert!(
        trace.contains("Tolerance exceeded in error handler"),
        "{trace}"
    );
    assert!(
        trace.contains("JsonConverter cannot convert a record of `orders`"),
        "{trace}"
    );
    assert_eq!(sink.connector.state, State::Running, "only the task failed");
    let metrics = worker.task_error_metrics("orders-sink").await.unwrap();
    assert_eq!(metrics[&0].total_record_errors, 1);
    assert_eq!(metrics[&0].total_records_skipped, 0);

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_error_handling_keys_refuse_the_connector_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &[]).await;
    let worker = start_worker(&client, dir.path()).await;
    let base = [
        ("connector.class", "FileStreamSink"),
        ("file", "out.txt"),
        ("topics", "orders"),
    ];
    for (key, value, named) in [
        ("errors.tolerance", "most", "errors.tolerance"),
        ("errors.retry.timeout", "soon", "errors.retry.timeout"),
        ("errors.deadletterqueue.topic.name", "orders", "topics"),
    ] {
        let mut config = props(&base);
        config.insert(key.to_string(), value.to_string());
        match worker.add_connector("bad", config).await {
            Err(spool_connect::ConnectError::InvalidConfig { key, .. }) => {
                assert_eq!(key, named)
            }
            other => panic!("{key}={value}: {other:?}"),
        }
    }
    assert!(worker.connectors().await.unwrap().is_empty());
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}
