//! Compaction of a replicated partition (in-process cluster): compacted
//! entries still reach a follower that lags, by replication and by
//! snapshot, and compaction never touches records that are not committed
//! (a leader cut off from its majority keeps its uncommitted writes out of
//! the cleaner, so their truncation cannot take a key's last committed
//! value with them).

mod cluster;

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::Cluster;
use spool_raft::{AnswerWhen, PartitionReplica};
use spool_record::{BatchBuilder, Compression};

const PATIENCE: Duration = Duration::from_secs(30);

/// One batch holding one record of `key` with `value`.
fn keyed_batch(key: &str, value: &str) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(1_000, Some(key.as_bytes()), Some(value.as_bytes()), &[]);
    builder.build()
}

/// The committed records of `replica` as (offset, key, value).
fn committed(replica: &PartitionReplica) -> Vec<(u64, String, String)> {
    cluster::read_committed_keyed(replica, 0)
}

/// The latest value of each key among `records`.
fn latest(records: &[(u64, String, String)]) -> BTreeMap<String, String> {
    records
        .iter()
        .map(|(_, key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Writes `count` records over ten keys through the leader.
async fn write_keys(cluster: &Cluster, prefix: &str, count: usize) {
    for i in 0..count {
        let leader = cluster.wait_for_leader(PATIENCE).await;
        let batch = keyed_batch(&format!("k{}", i % 10), &format!("{prefix}-{i}"));
        cluster
            .replica(leader)
            .append(batch, PATIENCE)
            .await
            .unwrap();
    }
}

/// Waits until `node` holds exactly the leader's committed records.
async fn wait_for_same_records(cluster: &Cluster, leader: u64, node: u64) {
    let deadline = std::time::Instant::now() + PATIENCE;
    let want = committed(&cluster.replica(leader));
    loop {
        let got = committed(&cluster.replica(node));
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {node} holds {} records, the leader {}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_entries_reach_a_lagging_follower_by_replication_and_by_snapshot() {
    let mut cluster = Cluster::start(&[1, 2, 3], 41).await;
    let leader = cluster.wait_for_leader(PATIENCE).await;
    let follower = *[1, 2, 3].iter().find(|&&n| n != leader).unwrap();

    // By replication: the follower is down while the leader's segments
    // are written and compacted; it then receives compacted entries.
    cluster.crash(follower).await;
    write_keys(&cluster, "first", 300).await;
    let written = committed(&cluster.replica(leader));
    let outcome = cluster.replica(leader).log().clean().unwrap();
    assert!(
        outcome.records_removed > 0,
        "nothing compacted: {outcome:?}"
    );
    let compacted = committed(&cluster.replica(leader));
    assert!(compacted.len() < written.len());
    assert_eq!(
        latest(&compacted),
        latest(&written),
        "compaction kept each key's latest"
    );
    cluster.start_node(follower).await;
    wait_for_same_records(&cluster, leader, follower).await;

    // By snapshot: the leader purges what the follower lacks.
    cluster.crash(follower).await;
    write_keys(&cluster, "second", 300).await;
    cluster.replica(leader).log().clean().unwrap();
    cluster::snapshot_and_purge(&cluster.replica(leader), PATIENCE).await;
    cluster.start_node(follower).await;
    wait_for_same_records(&cluster, leader, follower).await;
    let on_follower = committed(&cluster.replica(follower));
    assert_eq!(on_follower.last().unwrap().2, "second-299");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_never_removes_a_committed_record_for_an_uncommitted_one() {
    let cluster = Cluster::start(&[1, 2, 3], 42).await;
    let leader = cluster.wait_for_leader(PATIENCE).await;
    let replica = cluster.replica(leader);
    replica
        .append(keyed_batch("account", "committed"), PATIENCE)
        .await
        .unwrap();
    let committed_end = replica.high_watermark();
    // Cut off from its majority, the leader still appends (acks=leader
    // answers from its own log), rolling several segments of records
    // that can never commit, all of the same key.
    cluster.network.isolate(leader);
    for i in 0..200 {
        replica
            .append_batches(
                vec![keyed_batch("account", &format!("uncommitted-{i}")).into()],
                AnswerWhen::LeaderAppended,
                Duration::from_secs(2),
            )
            .await
            .unwrap();
    }
    assert_eq!(replica.high_watermark(), committed_end);
    replica.log().clean().unwrap();
    let seen = committed(&replica);
    assert_eq!(
        seen.last().map(|(_, _, v)| v.as_str()),
        Some("committed"),
        "the cleaner removed a committed record in favour of uncommitted ones: {seen:?}"
    );
    cluster.network.heal();
    cluster.shutdown().await;
}
