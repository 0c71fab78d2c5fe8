//! Idempotent producers on a replicated partition (in-process cluster):
//! the leader drops a retried batch before proposing it, a new leader
//! knows every producer its predecessor committed, a duplicate of a batch
//! still on its way waits for the original's offsets, and a replica that
//! catches up by snapshot receives the producer table with it.

mod cluster;

use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster::Cluster;
use spool_raft::producers::{BatchOffsets, ProducerEntry};
use spool_raft::AnswerWhen;
use spool_raft::ReplicationError;
use spool_record::{BatchBuilder, Compression};

const PATIENCE: Duration = Duration::from_secs(30);
const PRODUCER: i64 = 5;

/// A batch of `count` records of [`PRODUCER`], numbered from `sequence`.
fn batch(sequence: i32, count: usize) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None).producer(PRODUCER, 0, sequence);
    for i in 0..count {
        let value = format!("seq-{}", i64::from(sequence) + i as i64);
        builder.push(1_000, None, Some(value.as_bytes()), &[]);
    }
    Bytes::from(builder.build())
}

/// Appends `batches` through whichever running node leads, retrying while
/// the leadership moves, as a producer would.
async fn append(
    cluster: &Cluster,
    batches: &[Bytes],
) -> Result<Vec<BatchOffsets>, ReplicationError> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let leader = cluster.wait_for_leader(PATIENCE).await;
        let outcome = cluster
            .replica(leader)
            .append_batches(batches.to_vec(), AnswerWhen::Committed, PATIENCE)
            .await;
        match outcome {
            Err(ReplicationError::NotLeader { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => return other,
        }
    }
}

fn last_sequence(cluster: &Cluster, node: u64) -> Option<i32> {
    let states = cluster.replica(node).producer_states();
    states.get(PRODUCER).and_then(ProducerEntry::last_sequence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_appended_once_even_after_a_leader_change() {
    let mut cluster = Cluster::start(&[1, 2, 3], 23).await;
    let first = append(&cluster, &[batch(0, 2)]).await.unwrap();
    assert_eq!(append(&cluster, &[batch(0, 2)]).await.unwrap(), first);

    // A duplicate sent while its original is still on its way waits for
    // the original's offsets.
    let repeated = [batch(2, 3)];
    let (original, duplicate) =
        tokio::join!(append(&cluster, &repeated), append(&cluster, &repeated));
    assert_eq!(original.unwrap(), duplicate.unwrap());
    let end = first[0].next + 3;
    cluster.wait_for_convergence(end, PATIENCE).await;

    // The leader dies; its successor was only ever a follower, and knows
    // the producer from what it applied.
    let old_leader = cluster.wait_for_leader(PATIENCE).await;
    cluster.crash(old_leader).await;
    assert_eq!(append(&cluster, &[batch(0, 2)]).await.unwrap(), first);
    let next = append(&cluster, &[batch(5, 1)]).await.unwrap();
    assert_eq!(next[0].base, end, "nothing was appended twice");
    match append(&cluster, &[batch(9, 1)]).await {
        Err(ReplicationError::OutOfOrderSequence { expected, got, .. }) => {
            assert_eq!((expected, got), (6, 9))
        }
        other => panic!("a gap must be refused, got {other:?}"),
    }

    // The restarted node rebuilds the table from its applied state.
    cluster.start_node(old_leader).await;
    cluster.wait_for_convergence(end + 1, PATIENCE).await;
    for node in cluster.running() {
        assert_eq!(last_sequence(&cluster, node), Some(5), "node {node}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_installs_a_snapshot_receives_the_producer_table() {
    let mut cluster = Cluster::start(&[1, 2, 3], 29).await;
    let leader = cluster.wait_for_leader(PATIENCE).await;
    let follower = cluster
        .running()
        .into_iter()
        .find(|&n| n != leader)
        .unwrap();
    cluster.crash(follower).await;
    let mut sequence = 0;
    for _ in 0..10 {
        append(&cluster, &[batch(sequence, 4)]).await.unwrap();
        sequence += 4;
    }
    let leader = cluster.wait_for_leader(PATIENCE).await;
    let applied = cluster::snapshot_and_purge(&cluster.replica(leader), PATIENCE).await;

    cluster.start_node(follower).await;
    let follower_raft = cluster.replica(follower).raft().clone();
    follower_raft
        .wait(Some(PATIENCE))
        .metrics(|m| m.snapshot == Some(applied), "snapshot installed")
        .await
        .unwrap();
    assert_eq!(last_sequence(&cluster, follower), Some(sequence - 1));
    cluster.shutdown().await;
}
