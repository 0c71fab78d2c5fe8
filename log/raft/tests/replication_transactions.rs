//! Transactions on a replicated partition under faults: two transactional
//! producers interleave committed and aborted transactions while the
//! leader crashes, is cut off in the minority, or the network drops and
//! delays messages. The history checker then reports, besides lost and
//! conflicting records, duplicates and aborted reads — values of an
//! aborted transaction returned to a read_committed reader, during the
//! run or from any replica's final log. All must be zero, and every
//! committed transaction must be whole in every replica's final view.

mod cluster;

use std::time::Duration;

use cluster::Cluster;

const PATIENCE: Duration = Duration::from_secs(60);
const PRODUCERS: [i64; 2] = [501, 502];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_survive_a_leader_crash_and_a_minority_leader_without_aborted_reads() {
    let mut cluster = Cluster::start(&[1, 2, 3], 23).await;
    let mut workload = cluster::transactional::start(cluster.client(), &PRODUCERS);
    workload.wait_for(8, PATIENCE).await;
    let leader = cluster.wait_for_leader(PATIENCE).await;
    cluster.crash(leader).await;
    workload.wait_for(16, PATIENCE).await;
    cluster.start_node(leader).await;
    workload.wait_for(20, PATIENCE).await;
    let leader = cluster.wait_for_leader(PATIENCE).await;
    cluster.network.isolate(leader);
    workload.wait_for(28, PATIENCE).await;
    cluster.network.heal();
    workload.wait_for(34, PATIENCE).await;
    let history = workload.stop().await;
    cluster.converge_and_check(history).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_over_a_lossy_slow_network_show_no_duplicate_or_aborted_read() {
    let cluster = Cluster::start(&[1, 2, 3], 29).await;
    cluster.network.set_loss_percent(10);
    cluster
        .network
        .set_delay(Some((Duration::from_millis(1), Duration::from_millis(8))));
    let mut workload = cluster::transactional::start(cluster.client(), &PRODUCERS);
    workload.wait_for(30, PATIENCE).await;
    let history = workload.stop().await;
    cluster.network.set_loss_percent(0);
    cluster.network.set_delay(None);
    cluster.converge_and_check(history).await;
    cluster.shutdown().await;
}

/// The checker itself: an aborted value returned to a read_committed
/// reader, a value returned twice, and a committed value missing from a
/// final view are each reported.
#[test]
fn the_history_checker_reports_aborted_reads_and_transactional_duplicates() {
    let mut history = cluster::history::History::default();
    let committed = vec!["c0".to_string(), "c1".to_string()];
    let aborted = vec!["a0".to_string()];
    for value in committed.iter().chain(&aborted) {
        history.sent(value);
    }
    history.acknowledged(0, "c0");
    history.acknowledged(1, "a0");
    history.acknowledged(2, "c1");
    history.transaction_ended(&committed, true);
    history.transaction_ended(&aborted, false);
    history.read_stable("reader", 0, &[(0, "c0".into()), (1, "a0".into())]);
    history.read_stable("reader", 2, &[(2, "c1".into()), (4, "c0".into())]);
    history.final_stable_view(1, &[(0, "c0".into())]);
    let final_log = vec![(0, "c0".into()), (1, "a0".into()), (2, "c1".into())];
    let report = history.check(&[(1, final_log)]);
    assert_eq!(report.aborted_reads, vec!["reader returned aborted `a0`"]);
    assert_eq!(report.duplicated, vec!["reader returned `c0` at {0, 4}"]);
    assert_eq!(
        report.lost,
        vec!["node 1's final view lacks committed `c1`"]
    );
}
