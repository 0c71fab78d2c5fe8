//! Single-message transforms on an embedded broker: a file source whose
//! chain hoists each line into an object, stamps it, routes it to
//! another topic and tags it, each step under a predicate, produces
//! exactly the records the chain describes; records a `Filter` drops are
//! never produced but their offsets still advance; and a bad chain
//! refuses the connector, naming the key.

mod common;

use serde_json::{json, Value};
use spool_connect::api::ConfigMap;
use spool_connect::ConnectError;

use common::{all_running, broker, props, read_records, start_worker, wait_for_status};

/// A file source of `file` into `topic` with the chain under test.
fn chained_source(file: &str, topic: &str) -> ConfigMap {
    props(&[
        ("connector.class", "FileStreamSource"),
        ("file", file),
        ("topic", topic),
        ("value.converter", "json"),
        ("value.converter.schemas.enable", "false"),
        ("transforms", "hoist,stamp,route,tag,drop"),
        ("transforms.hoist.type", "HoistField$Value"),
        ("transforms.hoist.field", "line"),
        (
            "transforms.stamp.type",
            "org.apache.kafka.connect.transforms.InsertField$Value",
        ),
        ("transforms.stamp.topic.field", "from"),
        ("transforms.stamp.static.field", "via"),
        ("transforms.stamp.static.value", "spool"),
        ("transforms.stamp.predicate", "isRaw"),
        (
            "transforms.route.type",
            "org.apache.kafka.connect.transforms.RegexRouter",
        ),
        ("transforms.route.regex", "raw-(.*)"),
        ("transforms.route.replacement", "clean-$1"),
        ("transforms.tag.type", "InsertHeader"),
        ("transforms.tag.header", "pipeline"),
        ("transforms.tag.value.literal", "v1"),
        ("transforms.tag.predicate", "isRaw"),
        ("transforms.tag.negate", "true"),
        (
            "transforms.drop.type",
            "org.apache.kafka.connect.transforms.Filter",
        ),
        ("transforms.drop.predicate", "isNoise"),
        ("predicates", "isRaw,isNoise"),
        (
            "predicates.isRaw.type",
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        ),
        ("predicates.isRaw.pattern", "raw-.*"),
        ("predicates.isNoise.type", "TopicNameMatches"),
        ("predicates.isNoise.pattern", ".*-noise"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_with_predicates_shapes_a_file_into_exact_records() {
    let dir = tempfile::tempdir().unwrap();
    // Only the routed topic exists: a record not routed, or not dropped,
    // would fail its task.
    let (node, client) = broker(dir.path(), &["clean-events"]).await;
    let events = dir.path().join("events.txt");
    std::fs::write(&events, "alpha\nbeta\n\ngamma\n").unwrap();
    let noise = dir.path().join("noise.txt");
    std::fs::write(&noise, "one\ntwo\n").unwrap();
    let (events_name, noise_name) = (events.display().to_string(), noise.display().to_string());
    let worker = start_worker(&client, dir.path()).await;
    worker
        .add_connector("events", chained_source(&events_name, "raw-events"))
        .await
        .unwrap();
    worker
        .add_connector("noise", chained_source(&noise_name, "raw-noise"))
        .await
        .unwrap();

    let records = read_records(&client, "clean-events", 4).await;
    let values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.as_deref().unwrap_or_default().to_vec()).unwrap())
        .collect();
    assert_eq!(
        values,
        [
            r#"{"from":"raw-events","line":"alpha","via":"spool"}"#,
            r#"{"from":"raw-events","line":"beta","via":"spool"}"#,
            r#"{"from":"raw-events","line":"","via":"spool"}"#,
            r#"{"from":"raw-events","line":"gamma","via":"spool"}"#,
        ]
    );
    for record in &records {
        assert_eq!(record.key, None);
        let headers: Vec<(&str, Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
            .collect();
        assert_eq!(headers, [("pipeline", Some(&b"v1"[..]))]);
    }

    // Every noise line was dropped, yet its connector runs and its offset
    // is past the last line.
    for name in ["events", "noise"] {
        let status = wait_for_status(&worker, name, all_running).await;
        assert!(all_running(&status), "{status:?}");
    }
    worker.stop_connector("noise").await.unwrap();
    let stored: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("connect.offsets")).unwrap())
            .unwrap();
    assert_eq!(stored["noise"][0]["offset"], json!({"position": 8}));
    assert!(client.topic_metadata("clean-noise").await.is_err());

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_chain_refuses_the_connector_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &[]).await;
    let worker = start_worker(&client, dir.path()).await;
    let file = dir.path().join("in.txt").display().to_string();
    let cases = [
        (
            "transforms.route.type",
            "com.example.Route",
            "transforms.route.type",
        ),
        ("transforms.route.regex", "(", "transforms.route.regex"),
        (
            "transforms.route.replacement",
            "$2",
            "transforms.route.replacement",
        ),
        ("predicates.isRaw.pattern", "[", "predicates.isRaw.pattern"),
        (
            "transforms.tag.predicate",
            "isOld",
            "transforms.tag.predicate",
        ),
        ("transforms", "hoist,hoist", "transforms"),
    ];
    for (key, value, named) in cases {
        let mut config = chained_source(&file, "raw-events");
        config.insert(key.to_string(), value.to_string());
        match worker.add_connector("bad", config).await {
            Err(ConnectError::InvalidConfig { key, reason }) => {
                assert_eq!(key, named, "{reason}")
            }
            other => panic!("{key}={value}: {other:?}"),
        }
    }
    assert!(worker.connectors().await.unwrap().is_empty());

    // Kafka Connect's validate endpoint reports the chain's error on its
    // key too.
    let mut config = chained_source(&file, "raw-events");
    config.insert("transforms.hoist.type".into(), "Hoist".into());
    let results = worker.validate(&config).unwrap();
    let hoist = results
        .iter()
        .find(|r| r.name == "transforms.hoist.type")
        .unwrap();
    assert!(
        hoist.errors[0].contains("no transformation class `Hoist`"),
        "{hoist:?}"
    );

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}
