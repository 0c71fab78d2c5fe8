//! Bad input to the worker: configs refused with the key that is wrong
//! and nothing started, and a task that fails at run time marked FAILED
//! with its cause while the other connectors go on.

mod common;

use spool_connect::{ConnectError, State};

use common::{all_running, broker, props, read_topic, start_worker, wait_for_status};

/// The key an `InvalidConfig` names, and its message.
fn invalid_key(error: ConnectError) -> (String, String) {
    let text = error.to_string();
    match error {
        ConnectError::InvalidConfig { key, .. } => (key, text),
        other => panic!("not a config error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connector_configs_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &[]).await;
    let worker = start_worker(&client, dir.path()).await;
    let file = dir.path().join("in.txt").display().to_string();
    let file = file.as_str();

    let cases = [
        (
            props(&[("connector.class", "com.example.NoSuchConnector")]),
            "connector.class",
            "com.example.NoSuchConnector",
        ),
        (
            props(&[("connector.class", "FileStreamSource"), ("topic", "t")]),
            "file",
            "missing required configuration \"file\"",
        ),
        (
            props(&[("connector.class", "FileStreamSource"), ("file", file)]),
            "topic",
            "missing required configuration \"topic\"",
        ),
        (
            props(&[
                ("connector.class", "FileStreamSource"),
                ("file", ""),
                ("topic", "t"),
            ]),
            "file",
            "must not be empty",
        ),
        (
            props(&[("connector.class", "FileStreamSink"), ("file", file)]),
            "topics",
            "missing required configuration \"topics\"",
        ),
        (
            props(&[
                ("connector.class", "FileStreamSource"),
                ("file", file),
                ("topic", "t"),
                ("tasks.max", "0"),
            ]),
            "tasks.max",
            "at least 1",
        ),
        (
            props(&[
                ("connector.class", "FileStreamSource"),
                ("file", file),
                ("topic", "t"),
                ("value.converter", "avro"),
            ]),
            "value.converter",
            "avro",
        ),
        (
            props(&[
                ("name", "other"),
                ("connector.class", "FileStreamSource"),
                ("file", file),
                ("topic", "t"),
            ]),
            "name",
            "other",
        ),
    ];
    for (config, key, says) in cases {
        let error = worker.add_connector("bad", config).await.unwrap_err();
        let (named, text) = invalid_key(error);
        assert_eq!(named, key, "{text}");
        assert!(text.contains(key) && text.contains(says), "{text}");
    }
    assert!(
        worker.connectors().await.unwrap().is_empty(),
        "nothing was added"
    );
    assert!(matches!(
        worker.connector_status("bad").await,
        Err(ConnectError::UnknownConnector(name)) if name == "bad"
    ));

    // The same checks, every key at once, as Kafka Connect's validate
    // endpoint reports them.
    let results = worker
        .validate(&props(&[
            ("connector.class", "FileStreamSource"),
            ("topic", "t"),
        ]))
        .unwrap();
    let find = |name: &str| results.iter().find(|v| v.name == name).unwrap();
    assert_eq!(find("file").errors.len(), 1);
    assert!(find("topic").errors.is_empty());
    assert_eq!(find("batch.size").value.as_deref(), Some("2000"));
    assert_eq!(find("tasks.max").value.as_deref(), Some("1"));

    // A valid connector is added once; its name is then taken.
    let good = props(&[
        ("connector.class", "FileStreamSource"),
        ("file", file),
        ("topic", "t"),
    ]);
    worker.add_connector("good", good.clone()).await.unwrap();
    assert!(matches!(
        worker.add_connector("good", good).await,
        Err(ConnectError::ConnectorExists(name)) if name == "good"
    ));
    assert_eq!(worker.connectors().await.unwrap(), ["good"]);
    worker.stop_connector("good").await.unwrap();
    assert!(worker.connectors().await.unwrap().is_empty());

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_is_failed_with_its_cause_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["good"]).await;
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\nb\n").unwrap();
    let input = input.display().to_string();
    let worker = start_worker(&client, dir.path()).await;
    let source = |topic: &str| {
        props(&[
            ("connector.class", "FileStreamSource"),
            ("file", input.as_str()),
            ("topic", topic),
            ("value.converter", "string"),
        ])
    };
    // The broker has no topic `missing`: producing to it fails.
    worker
        .add_connector("bad", source("missing"))
        .await
        .unwrap();
    worker.add_connector("good", source("good")).await.unwrap();

    let failed = wait_for_status(&worker, "bad", |s| {
        s.tasks
            .first()
            .is_some_and(|t| t.info.state == State::Failed)
    })
    .await;
    let trace = failed.tasks[0].info.trace.clone().unwrap_or_default();
    assert!(trace.contains("missing"), "{trace}");
    // As in Kafka, the connector itself still runs; only its task failed.
    assert_eq!(failed.connector.state, State::Running);

    assert_eq!(read_topic(&client, "good", 2).await, ["a", "b"]);
    let good = worker.connector_status("good").await.unwrap();
    assert!(all_running(&good), "{good:?}");

    // A failed connector stops like any other.
    worker.stop_connector("bad").await.unwrap();
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}
