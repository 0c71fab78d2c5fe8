//! Kafka clients against three broker processes: every broker announces
//! its Kafka listener to the cluster metadata, so a Kafka client
//! bootstrapped from one broker is sent to each partition's leader,
//! wherever it is, and follows the leadership when a leader is killed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::{json_lines, kafka_clients};
use crate::harness::*;

const KAFKA_TOPIC: &str = "kafka-events";

fn keys(lines: &str) -> Vec<String> {
    json_lines(lines)
        .iter()
        .map(|record| record["key"].as_str().unwrap().to_string())
        .collect()
}

/// Reads `count` records of the topic in a fresh group through `bootstrap`.
fn read_keys(bootstrap: &str, group: &str, count: usize) -> Vec<String> {
    let count = count.to_string();
    let args = [
        "consume",
        "confluent",
        bootstrap,
        KAFKA_TOPIC,
        &count,
        group,
    ];
    keys(&kafka_clients(&args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_clients_reach_every_leader_and_follow_a_killed_one() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    let admin = cluster.client(1).await.admin();
    let deadline = Instant::now() + PATIENCE;
    while let Err(e) = admin.create_replicated_topic(KAFKA_TOPIC, 3, 3, &[]).await {
        assert!(
            Instant::now() < deadline,
            "the topic was never created: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bootstrap = cluster.running[&1].kafka_address.clone().unwrap();
    // Every broker's listener reaches the metadata within a few seconds.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let listed = std::process::Command::new("kcat")
            .args(["-b", &bootstrap, "-L", "-t", KAFKA_TOPIC])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        if listed.contains(" 3 brokers:") {
            break;
        }
        assert!(Instant::now() < deadline, "brokers missing: {listed}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    kafka_clients(&["produce", "confluent", &bootstrap, KAFKA_TOPIC, "a", "30"]);
    let first: BTreeSet<String> = read_keys(&bootstrap, "first", 30).into_iter().collect();
    assert_eq!(first.len(), 30, "{first:?}");

    // Kill a broker other than the bootstrap one that leads a partition.
    let client = cluster.client(1).await;
    let meta = client.topic_metadata(KAFKA_TOPIC).await.unwrap();
    let victim = meta
        .partitions
        .iter()
        .map(|p| u64::from(p.leader))
        .find(|&leader| leader != 1)
        .unwrap_or(2);
    cluster.kill(victim);
    kafka_clients(&["produce", "confluent", &bootstrap, KAFKA_TOPIC, "b", "30"]);
    let all = read_keys(&bootstrap, "second", 60);
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        (all.len(), distinct.len()),
        (60, 60),
        "after killing broker {victim}: {all:?}"
    );
}
