//! Growing the cluster and moving a partition while its leader crashes.

use std::time::{Duration, Instant};

use crate::harness::*;

/// `spool cluster move` through broker `via`, retried while the cluster
/// cannot take it yet (the new broker not registered, an election).
fn move_partition(cluster: &Cluster, via: u64, replicas: &[u64]) {
    let list = replicas
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_spool"))
            .args(["cluster", "move", TOPIC, "--partition", "0", "--replicas"])
            .args([list.as_str(), "--bootstrap", &cluster.addresses[&via]])
            .output()
            .unwrap();
        if output.status.success() {
            return;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(Instant::now() < deadline, "the move was refused: {stderr}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until the cluster's metadata knows `count` brokers.
async fn wait_for_brokers(cluster: &Cluster, count: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let client = cluster.client(1).await;
        let known = client
            .metadata(Default::default())
            .await
            .map(|m| m.brokers.len());
        if known.as_ref().is_ok_and(|&n| n >= count) {
            return;
        }
        assert!(Instant::now() < deadline, "brokers known: {known:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_moved_onto_a_joining_broker_survives_its_leader_crashing_mid_move() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "before", 30, &mut acknowledged).await;
    cluster.join_broker(4);
    wait_for_brokers(&cluster, 4).await;
    let partition_leader = leader(&cluster).await;
    let replaced = *[1, 2, 3].iter().find(|&&n| n != partition_leader).unwrap();
    let mut target: Vec<u64> = vec![partition_leader];
    target.extend(
        [1, 2, 3]
            .iter()
            .filter(|&&n| n != partition_leader && n != replaced),
    );
    target.push(4);
    // The new broker is stopped, so the move stays under way (the leader
    // waits for its new replica to catch up) until the leader crashes;
    // whoever leads next must finish it.
    cluster.pause(4);
    move_partition(&cluster, replaced, &target);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        read_all(&cluster, replaced).await.is_ok(),
        "the move cannot be done while its new replica is stopped"
    );
    cluster.kill(partition_leader);
    cluster.resume(4);
    produce_values(&cluster, "during", 20, &mut acknowledged).await;
    cluster.start_broker(partition_leader);
    produce_values(&cluster, "after", 10, &mut acknowledged).await;

    let logs = check_replicas(&cluster, &target, &acknowledged).await;
    for (node, records) in &logs {
        assert_eq!(records[0].0, 0, "node {node} holds the whole log");
    }
    // The replaced broker drops its replica once the group left it out.
    let deadline = Instant::now() + PATIENCE;
    while read_all(&cluster, replaced).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "broker {replaced} still serves the partition it was moved off"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The leader removes the replaced broker (a learner by then) once it
    // holds the new membership: two followers, the replaced one not among
    // them.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = cluster_status(&cluster, 4);
        let followers: Option<Vec<String>> = status
            .lines()
            .find(|l| l.starts_with(TOPIC))
            .map(|row| row.split_whitespace().skip(5).map(String::from).collect());
        let done = followers.as_ref().is_some_and(|f| {
            f.len() == 2 && f.iter().all(|f| !f.starts_with(&format!("{replaced}:")))
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker {replaced} is still a follower, or a follower is missing: {status}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
