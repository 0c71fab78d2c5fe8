//! Many replicated partitions on three brokers: their groups are
//! quiescent (see `spool_raft::liveness`), so while idle they keep their
//! leaders and write nothing, and when a broker dies the groups it led
//! fail over together, through the node heartbeats alone.
//!
//! 300 partitions fit CI's time on two cores with debug builds; the
//! 1,000-partition layout is measured by `scripts/bench-partition-scale.sh`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spool_client::{ProducerConfig, ProducerRecord};
use spool_protocol::proto::Acks;

use super::harness::*;

const MANY: &str = "many";
const PARTITIONS: u32 = 300;
const SETTLE: Duration = Duration::from_secs(180);

/// Each partition's (leader, last Raft index) as `spool cluster status`
/// through broker `node` shows them; `None` until every partition has a
/// leader that answers.
fn led_partitions(cluster: &Cluster, node: u64) -> Option<BTreeMap<u32, (u64, u64)>> {
    let status = cluster_status(cluster, node);
    let rows: BTreeMap<u32, (u64, u64)> = status
        .lines()
        .filter(|line| line.starts_with(&format!("{MANY} ")))
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let leader = columns.get(2)?.parse().ok()?;
            let last_index = columns.get(3)?.parse().ok()?;
            Some((columns[1].parse().ok()?, (leader, last_index)))
        })
        .collect();
    (rows.len() == PARTITIONS as usize).then_some(rows)
}

/// Waits until every partition is led, by a broker other than `not`.
async fn wait_until_all_led(
    cluster: &Cluster,
    node: u64,
    not: Option<u64>,
) -> BTreeMap<u32, (u64, u64)> {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(rows) = led_partitions(cluster, node) {
            if rows.values().all(|&(leader, _)| Some(leader) != not) {
                return rows;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not every partition led (by other than {not:?}) within {SETTLE:?}:\n{}",
            cluster_status(cluster, node)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes one record to each partition with acks=all through broker
/// `node`; returns where each landed.
async fn write_to_every_partition(cluster: &Cluster, node: u64, value: &str) -> Vec<(u32, u64)> {
    let client = cluster.client(node).await;
    let producer = client.producer(ProducerConfig {
        acks: Acks::All,
        ..ProducerConfig::default()
    });
    let mut waiting = Vec::new();
    for partition in 0..PARTITIONS {
        let record = ProducerRecord::new(MANY, value.to_string()).partition(partition);
        waiting.push(producer.send(record).await.unwrap());
    }
    let mut landed = Vec::new();
    for ack in waiting {
        let metadata = ack.await.unwrap();
        landed.push((metadata.partition, metadata.offset.unwrap()));
    }
    landed.sort();
    landed
}

fn every_partition_at(offset: u64) -> Vec<(u32, u64)> {
    (0..PARTITIONS).map(|p| (p, offset)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_idle_partitions_keep_their_leaders_and_fail_over_together() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    let deadline = Instant::now() + SETTLE;
    'created: loop {
        for &node in cluster.running.keys() {
            let admin = cluster.client(node).await.admin();
            match admin
                .create_replicated_topic(MANY, PARTITIONS, 3, &[])
                .await
            {
                Ok(()) => break 'created,
                Err(e) => assert!(Instant::now() < deadline, "topic never created: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = wait_until_all_led(&cluster, 1, None).await;

    // Idle: no group elects and none appends an entry (an election
    // appends one), although no group heartbeats on its own.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = led_partitions(&cluster, 1).expect("every partition still led");
    assert_eq!(idle, settled, "leaders or last indexes changed while idle");
    assert_eq!(
        write_to_every_partition(&cluster, 1, "first").await,
        every_partition_at(0)
    );

    // The broker leading most partitions dies while they are idle.
    let mut led_by: BTreeMap<u64, usize> = BTreeMap::new();
    for &(leader, _) in idle.values() {
        *led_by.entry(leader).or_default() += 1;
    }
    let (&victim, _) = led_by.iter().max_by_key(|(_, &count)| count).unwrap();
    cluster.kill(victim);
    let survivor = [1, 2, 3].into_iter().find(|&n| n != victim).unwrap();
    wait_until_all_led(&cluster, survivor, Some(victim)).await;
    assert_eq!(
        write_to_every_partition(&cluster, survivor, "second").await,
        every_partition_at(1)
    );

    // Back, it catches up on every partition without a write to wake
    // the groups: their leaders heartbeat a member that rejoined.
    cluster.start_broker(victim);
    let deadline = Instant::now() + SETTLE;
    loop {
        let status = cluster_status(&cluster, survivor);
        let caught_up = status
            .lines()
            .filter(|line| line.starts_with(&format!("{MANY} ")))
            .filter(|line| {
                let columns: Vec<&str> = line.split_whitespace().collect();
                columns.get(4) == Some(&"2")
                    && columns.len() == 7
                    && columns[5..].iter().all(|f| f.ends_with(":0"))
            })
            .count();
        if caught_up == PARTITIONS as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{caught_up} of {PARTITIONS} partitions caught up:\n{status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
