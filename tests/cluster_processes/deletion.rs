//! DeleteRecords on a replicated partition: the log start moves on every
//! replica, through a leader's death and through a follower that was down
//! when it moved (and may catch up by snapshot), and the records below it
//! never come back.

use std::time::{Duration, Instant};

use crate::harness::*;

/// Waits until `node` reports `expected` as its log start.
async fn wait_for_log_start(cluster: &Cluster, node: u64, expected: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let start = log_start(cluster, node).await;
        if start == Ok(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {node}'s log start never became {expected}: {start:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_stay_deleted_on_every_replica_through_restarts_and_failover() {
    let mut cluster = Cluster::start_configured(&[1, 2, 3], "retention_check_interval_ms = 200\n");
    // Small segments, so that the deletion leaves whole segments below the
    // new log start for retention to delete (and openraft to purge).
    create_topic_with(
        &cluster,
        &[("segment.bytes", "1024"), ("retention.ms", "-1")],
    )
    .await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "before", 10, &mut acknowledged).await;
    let first_leader = leader(&cluster).await;
    let stopped = *[1, 2, 3].iter().find(|&&n| n != first_leader).unwrap();
    wait_for_offset(&cluster, stopped, 9).await;
    cluster.kill(stopped);
    produce_values(&cluster, "during", 60, &mut acknowledged).await;

    let leader_now = leader(&cluster).await;
    let refused = delete_records(&cluster, leader_now, 1_000).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("OffsetOutOfRange")),
        "a deletion past the high watermark is refused: {refused:?}"
    );
    assert_eq!(delete_records(&cluster, leader_now, 45).await, Ok(45));
    // Lower than the log start: nothing changes, the answer is the start.
    assert_eq!(delete_records(&cluster, leader_now, 20).await, Ok(45));
    let other = *[1, 2, 3]
        .iter()
        .find(|&&n| n != leader_now && n != stopped)
        .unwrap();
    wait_for_log_start(&cluster, other, 45).await;

    cluster.start_broker(stopped);
    produce_values(&cluster, "after", 10, &mut acknowledged).await;
    wait_for_log_start(&cluster, stopped, 45).await;
    let kept: Vec<(u64, String)> = acknowledged
        .iter()
        .filter(|(offset, _)| *offset >= 45)
        .cloned()
        .collect();
    let logs = check_retained(&cluster, &kept).await;
    for (node, records) in &logs {
        assert_eq!(
            records.first().map(|(offset, _)| *offset),
            Some(45),
            "node {node} serves records below the deleted offset"
        );
    }

    // A new leader keeps the log start it applied.
    cluster.kill(leader(&cluster).await);
    produce_values(&cluster, "failover", 5, &mut acknowledged).await;
    let new_leader = leader(&cluster).await;
    assert_eq!(log_start(&cluster, new_leader).await, Ok(45));
}
