//! The file connectors on an embedded broker: a file copied through a
//! topic into another file exactly, and a source restarted on its offsets
//! file producing only the lines it had not produced (no loss, no
//! duplicate), whether the connector or the whole worker restarts.

mod common;

use serde_json::{json, Value};
use spool_connect::State;

use common::{
    all_running, broker, props, read_topic, start_worker, wait_for_lines, wait_for_status,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_through_a_topic_into_another_file_line_for_line() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["lines"]).await;
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    // Lines of different lengths, some empty, so batches and reads end
    // mid-line.
    let text: String = (0..10_000)
        .map(|i| format!("line {i:05} {}\n", "x".repeat(i % 97)))
        .collect();
    std::fs::write(&input, &text).unwrap();
    let input_name = input.display().to_string();
    let output_name = output.display().to_string();

    let worker = start_worker(&client, dir.path()).await;
    worker
        .add_connector(
            "file-source",
            props(&[
                ("connector.class", "FileStreamSource"),
                ("file", input_name.as_str()),
                ("topic", "lines"),
            ]),
        )
        .await
        .unwrap();
    worker
        .add_connector(
            "file-sink",
            props(&[
                (
                    "connector.class",
                    "org.apache.kafka.connect.file.FileStreamSinkConnector",
                ),
                ("file", output_name.as_str()),
                ("topics", "lines"),
            ]),
        )
        .await
        .unwrap();

    assert_eq!(wait_for_lines(&output, 10_000).await, text);
    for name in ["file-source", "file-sink"] {
        let status = worker.connector_status(name).await.unwrap();
        assert!(all_running(&status), "{status:?}");
        assert_eq!(status.tasks.len(), 1);
    }
    // The worker's default converter is Kafka's JsonConverter with
    // schemas: each record is an envelope around its line.
    let records = read_topic(&client, "lines", 10_000).await;
    assert_eq!(records.len(), 10_000);
    let first: Value = serde_json::from_str(&records[0]).unwrap();
    assert_eq!(
        first,
        json!({"schema": {"type": "string", "optional": false}, "payload": "line 00000 "})
    );
    let last: Value = serde_json::from_str(&records[9_999]).unwrap();
    assert_eq!(last["payload"], text.lines().last().unwrap());

    worker.shutdown().await.unwrap();
    assert!(
        worker.connectors().await.is_err(),
        "a stopped worker refuses work"
    );
    node.shutdown().await.unwrap();
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_source_produces_only_the_lines_it_had_not() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["tail"]).await;
    let input = dir.path().join("app.log");
    let first: Vec<String> = (0..100).map(|i| format!("first-{i:03}")).collect();
    std::fs::write(
        &input,
        first.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let input_name = input.display().to_string();
    // Plain strings in the topic, so its records are the lines.
    let source = props(&[
        (
            "connector.class",
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
        ),
        ("file", input_name.as_str()),
        ("topic", "tail"),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
    ]);

    let worker = start_worker(&client, dir.path()).await;
    worker.add_connector("tail", source.clone()).await.unwrap();
    assert_eq!(read_topic(&client, "tail", 100).await, first);
    worker.stop_connector("tail").await.unwrap();

    // Kafka's offsets: the file as the source partition, the byte just
    // past the last line as the position.
    let offsets_file = dir.path().join("connect.offsets");
    let stored: Value = serde_json::from_slice(&std::fs::read(&offsets_file).unwrap()).unwrap();
    assert_eq!(
        stored["tail"][0]["partition"],
        json!({"filename": input_name})
    );
    let length = std::fs::metadata(&input).unwrap().len();
    assert_eq!(stored["tail"][0]["offset"], json!({"position": length}));

    // Restarted on the same worker: only the new lines, and not the last
    // one, whose newline has not been written yet.
    let second: Vec<String> = (0..50).map(|i| format!("second-{i:03}")).collect();
    let appended: String = second.iter().map(|l| format!("{l}\n")).collect();
    append(&input, &format!("{appended}partial-"));
    worker.add_connector("tail", source.clone()).await.unwrap();
    let mut expected: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(read_topic(&client, "tail", 150).await, expected);
    worker.shutdown().await.unwrap();

    // Restarted in a new worker on the same offsets file: the completed
    // line and the one after it, nothing before.
    append(&input, "line\nthird-000\n");
    let worker = start_worker(&client, dir.path()).await;
    worker.add_connector("tail", source).await.unwrap();
    expected.extend(["partial-line".to_string(), "third-000".to_string()]);
    assert_eq!(read_topic(&client, "tail", 152).await, expected);
    let status = wait_for_status(&worker, "tail", all_running).await;
    assert_eq!(status.tasks[0].info.state, State::Running);

    // Paused, the source produces nothing; resumed, it goes on.
    worker.pause_connector("tail").await.unwrap();
    wait_for_status(&worker, "tail", |s| s.tasks[0].info.state == State::Paused).await;
    append(&input, "while-paused\n");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(read_topic(&client, "tail", 152).await.len(), 152);
    worker.resume_connector("tail").await.unwrap();
    expected.push("while-paused".to_string());
    assert_eq!(read_topic(&client, "tail", 153).await, expected);

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}
