//! Faults below the process under a replicated partition (issue 22, items
//! 2 and 4), on the in-process cluster whose nodes each write through a
//! fault-injecting disk: a failed fsync is never acknowledged and takes
//! its replica out of the group until it is recovered from what reached
//! its disk; a power cut of a minority or of every node loses no
//! acknowledged record.

mod cluster;

use std::time::Duration;

use cluster::{Cluster, Workload};
use spool_raft::NodeId;
use spool_storage::testing::FOREVER;

const TIMEOUT: Duration = Duration::from_secs(30);

fn values(records: &[(u64, String)]) -> Vec<&str> {
    records.iter().map(|(_, v)| v.as_str()).collect()
}

/// Protection tested: the Raft log store handing the flush's error to
/// openraft (`log_io_completed(Err)` in spool-raft's `log_store.rs`), which
/// stops the replica. Reporting the append as flushed regardless, the
/// write below was acknowledged and the power cut then took it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_fsync_failed_is_never_acknowledged() {
    let mut cluster = Cluster::start(&[1], 21).await;
    for i in 0..5 {
        cluster
            .produce(&format!("kept-{i}"), TIMEOUT)
            .await
            .unwrap();
    }
    cluster.disk(1).fail_syncs(".log", FOREVER);
    let refused = cluster.produce("unsynced", Duration::from_secs(3)).await;
    assert!(refused.is_err(), "acknowledged though its fsync failed");
    assert!(cluster.disk(1).syncs_failed() >= 1);
    let failure = cluster.replica(1).log().failed_sync();
    assert!(failure.is_some(), "the log stopped taking writes");

    // Recovered from its last synced state: the disk answers again, the
    // node restarts from what reached it.
    cluster.disk(1).heal();
    let dropped = cluster.power_cut(&[1]).await;
    cluster.start_node(1).await;
    cluster.wait_for_leader(TIMEOUT).await;
    let kept: Vec<String> = (0..5).map(|i| format!("kept-{i}")).collect();
    assert_eq!(
        values(&cluster.committed_records(1)),
        kept,
        "dropped {dropped} bytes"
    );
    cluster.produce("after recovery", TIMEOUT).await.unwrap();
    cluster.shutdown().await;
}

/// A leader whose fsync fails stops leading (its Raft stops on the storage
/// error), the other two elect a leader and go on, and the failed replica,
/// restarted from what reached its disk, catches up: the history checker
/// finds every acknowledged record once, in order, on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_fsync_fails_steps_down_and_the_group_goes_on() {
    let mut cluster = Cluster::start(&[1, 2, 3], 22).await;
    let mut workload = Workload::start(cluster.client(), "fsync");
    workload.wait_for(50, TIMEOUT).await;
    let failed = cluster.wait_for_leader(TIMEOUT).await;
    cluster.disk(failed).fail_syncs(".log", FOREVER);
    let others: Vec<NodeId> = [1, 2, 3].into_iter().filter(|&n| n != failed).collect();
    let leader = cluster.wait_for_leader_among(&others, TIMEOUT).await;
    workload.wait_for(150, TIMEOUT).await;
    assert!(cluster.replica(failed).log().failed_sync().is_some());
    assert_ne!(cluster.replica(failed).leader(), Some(failed));
    eprintln!("node {failed}'s fsync failed; node {leader} leads");

    cluster.disk(failed).heal();
    cluster.power_cut(&[failed]).await;
    cluster.start_node(failed).await;
    workload.wait_for(250, TIMEOUT).await;
    let history = workload.stop().await;
    cluster.converge_and_check(history).await;
    cluster.shutdown().await;
}

/// Every node's fsyncs are slowed, which widens the window in which
/// written bytes are not yet on disk. Protection tested: acknowledging an
/// entry only once its log flush returned (spool-raft's log store calls
/// `log_io_completed` after `PartitionLog::flush`); calling it before the
/// flush made the power cut of every node lose acknowledged records.
async fn power_cuts(cuts: &[&[NodeId]], seed: u64) {
    let mut cluster = Cluster::start(&[1, 2, 3], seed).await;
    for node in 1..=3 {
        cluster.disk(node).slow_syncs(Duration::from_millis(5));
    }
    let mut workload = Workload::start(cluster.client(), "cut");
    let mut goal = 40;
    workload.wait_for(goal, TIMEOUT).await;
    for nodes in cuts {
        let dropped = cluster.power_cut(nodes).await;
        eprintln!("power cut of {nodes:?}: {dropped} unsynced bytes dropped");
        for &node in *nodes {
            cluster.start_node(node).await;
        }
        goal += 40;
        workload.wait_for(goal, TIMEOUT).await;
    }
    let history = workload.stop().await;
    cluster.converge_and_check(history).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_of_a_minority_loses_no_acknowledged_record() {
    power_cuts(&[&[1], &[2], &[3], &[1]], 23).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_of_every_node_loses_no_acknowledged_record() {
    power_cuts(&[&[1, 2, 3], &[1, 2, 3], &[1, 2, 3]], 24).await;
}
