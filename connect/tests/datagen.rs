//! The data generator on an embedded broker: `iterations` records exactly,
//! the same for the same seed however many tasks make them, and a
//! connector stopped mid-way and started again goes on without repeating
//! or skipping a record.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spool_client::{Client, ConsumerRecord};
use spool_connect::api::ConfigMap;

use common::{broker, props, read_records, start_worker, PATIENCE};

fn datagen(topic: &str, extra: &[(&str, &str)]) -> ConfigMap {
    let mut config = props(&[
        ("connector.class", "Datagen"),
        ("kafka.topic", topic),
        ("key.converter", "string"),
        ("value.converter", "json"),
        ("value.converter.schemas.enable", "false"),
    ]);
    config.extend(props(extra));
    config
}

fn value(record: &ConsumerRecord) -> Value {
    serde_json::from_slice(record.value.as_deref().unwrap()).unwrap()
}

fn key(record: &ConsumerRecord) -> String {
    String::from_utf8(record.key.as_deref().unwrap().to_vec()).unwrap()
}

/// The values of `topic`'s `expected` records (and no more), in order.
async fn values(client: &Client, topic: &str, expected: usize) -> Vec<Value> {
    let records = read_records(client, topic, expected).await;
    assert_eq!(records.len(), expected, "{topic}");
    records.iter().map(value).collect()
}

fn ids(values: &[Value]) -> Vec<u64> {
    values.iter().map(|v| v["id"].as_u64().unwrap()).collect()
}

/// The stored source offset of `connector`'s task `task`, once the
/// offsets file has one that `done` accepts.
async fn stored_iteration(
    dir: &std::path::Path,
    connector: &str,
    task: u64,
    done: impl Fn(u64) -> bool,
) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read(dir.join("connect.offsets")).unwrap_or_default();
        let stored: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        let entries = stored[connector].as_array().cloned().unwrap_or_default();
        let iteration = entries
            .iter()
            .find(|e| e["partition"] == json!({"task": task}))
            .and_then(|e| e["offset"]["iteration"].as_u64());
        if let Some(iteration) = iteration.filter(|n| done(*n)) {
            return iteration;
        }
        assert!(Instant::now() < deadline, "{stored}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterations_make_that_many_records_the_same_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let topics = ["orders-a", "orders-b", "orders-c", "orders-d"];
    let (node, client) = broker(dir.path(), &topics).await;
    let worker = start_worker(&client, dir.path()).await;
    let shape = [
        ("quickstart", "orders"),
        ("iterations", "500"),
        ("keys", "7"),
        ("random.seed", "42"),
    ];
    worker
        .add_connector("gen-a", datagen("orders-a", &shape))
        .await
        .unwrap();
    worker
        .add_connector("gen-b", datagen("orders-b", &shape))
        .await
        .unwrap();
    let two_tasks: Vec<(&str, &str)> = shape.iter().copied().chain([("tasks.max", "2")]).collect();
    worker
        .add_connector("gen-c", datagen("orders-c", &two_tasks))
        .await
        .unwrap();
    let other_seed = [
        ("quickstart", "orders"),
        ("iterations", "500"),
        ("keys", "7"),
        ("random.seed", "43"),
    ];
    worker
        .add_connector("gen-d", datagen("orders-d", &other_seed))
        .await
        .unwrap();

    let records = read_records(&client, "orders-a", 500).await;
    assert_eq!(records.len(), 500);
    let a: Vec<Value> = records.iter().map(value).collect();
    assert_eq!(ids(&a), (0..500).collect::<Vec<u64>>());
    for (i, record) in records.iter().enumerate() {
        assert_eq!(key(record), format!("Item_{}", i % 7 + 1));
        assert_eq!(a[i]["itemid"], key(record).as_str());
        assert!(a[i]["address"]["zipcode"].is_i64(), "{}", a[i]);
    }
    assert_eq!(values(&client, "orders-b", 500).await, a, "the same seed");
    let mut c = values(&client, "orders-c", 500).await;
    c.sort_by_key(|v| v["id"].as_u64());
    assert_eq!(c, a, "two tasks make the same records");
    let d = values(&client, "orders-d", 500).await;
    assert_eq!(ids(&d), ids(&a));
    assert_ne!(d, a, "another seed");

    assert_eq!(
        stored_iteration(dir.path(), "gen-a", 0, |n| n == 500).await,
        500
    );
    assert_eq!(
        stored_iteration(dir.path(), "gen-c", 1, |n| n == 250).await,
        250
    );
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_generator_goes_on_without_repeating_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["views", "views-whole"]).await;
    let worker = start_worker(&client, dir.path()).await;
    // Up to 30 ms between records: 400 take seconds, time to stop mid-way.
    let shape = [
        ("quickstart", "pageviews"),
        ("iterations", "400"),
        ("random.seed", "7"),
    ];
    let slow: Vec<(&str, &str)> = shape
        .iter()
        .copied()
        .chain([("max.interval", "30")])
        .collect();
    let config = datagen("views", &slow);
    worker.add_connector("views", config.clone()).await.unwrap();
    read_records(&client, "views", 40).await;
    worker.stop_connector("views").await.unwrap();
    // Stopped gracefully: everything made is acknowledged and its offset
    // stored.
    let made = stored_iteration(dir.path(), "views", 0, |_| true).await;
    let made_count = usize::try_from(made).unwrap();
    assert!(
        (40..400).contains(&made_count),
        "{made} made before the stop"
    );
    assert_eq!(
        read_records(&client, "views", made_count).await.len(),
        made_count
    );

    worker.add_connector("views", config).await.unwrap();
    let resumed = values(&client, "views", 400).await;
    assert_eq!(ids(&resumed), (0..400).collect::<Vec<u64>>());
    // The very records an uninterrupted run makes.
    worker
        .add_connector("views-whole", datagen("views-whole", &shape))
        .await
        .unwrap();
    assert_eq!(values(&client, "views-whole", 400).await, resumed);

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}
