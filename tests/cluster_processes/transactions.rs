//! Transactions across three broker processes: partitions led by several
//! brokers and a coordinator on yet another, so markers and partition
//! checks cross the network. The coordinator's broker and then a data
//! partition's leader are killed (SIGKILL) in the middle of transactions;
//! afterwards a read_committed consumer must see every committed
//! transaction whole and once, no aborted one, and any transaction whose
//! outcome the producer could not learn either whole or not at all.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spool_client::{ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicPartition};
use spool_protocol::proto::{FindCoordinatorRequest, IsolationLevel};

use crate::harness::*;

const TOPIC: &str = "ledger";
const TXN_ID: &str = "ledger-writer";
const PARTITIONS: u32 = 3;

/// How a transaction ended, as its producer saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Committed,
    Aborted,
    /// The end call failed: the transaction may have committed or not.
    Unknown,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_stay_atomic_when_the_coordinator_and_a_leader_are_killed() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    let admin = cluster.client(2).await.admin();
    let deadline = Instant::now() + PATIENCE;
    while let Err(e) = admin
        .create_replicated_topic(TOPIC, PARTITIONS, 3, &[])
        .await
    {
        assert!(
            Instant::now() < deadline,
            "the topic was never created: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = cluster.client(2).await;
    let producer = client.producer(ProducerConfig {
        transactional_id: Some(TXN_ID.into()),
        retries: 300,
        linger: Duration::from_millis(1),
        ..Default::default()
    });
    let deadline = Instant::now() + PATIENCE;
    while let Err(e) = producer.init_transactions().await {
        assert!(Instant::now() < deadline, "init_transactions failed: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut outcomes: BTreeMap<u32, Outcome> = BTreeMap::new();
    let mut killed = None;
    for n in 0..12u32 {
        producer.begin_transaction().unwrap();
        let mut acks = Vec::new();
        for p in 0..PARTITIONS {
            let record = ProducerRecord::new(TOPIC, format!("t{n}-p{p}")).partition(p);
            acks.push(producer.send(record).await.unwrap());
        }
        match n {
            // Mid-transaction: the coordinator dies, then a partition leader.
            4 => {
                killed = Some(coordinator_of(&client).await);
                cluster.kill(killed.unwrap_or_default());
            }
            // Restarted before the next kill: two of three down would
            // leave no majority.
            6 => {
                if let Some(node) = killed.take() {
                    cluster.start_broker(node);
                }
            }
            7 => {
                let leader = partition_leader(&client).await;
                cluster.kill(leader);
            }
            _ => {}
        }
        let commit = n % 3 != 2;
        let ended = match commit {
            true => producer.commit_transaction().await,
            false => producer.abort_transaction().await,
        };
        let outcome = match (ended, commit) {
            (Ok(()), true) => Outcome::Committed,
            (Ok(()), false) => Outcome::Aborted,
            (Err(e), _) => {
                eprintln!("transaction {n} ended with {e}; aborting what is left");
                let _ = producer.abort_transaction().await;
                Outcome::Unknown
            }
        };
        drop(acks);
        outcomes.insert(n, outcome);
    }
    eprintln!("outcomes: {outcomes:?}");
    assert!(
        outcomes
            .values()
            .filter(|o| **o == Outcome::Committed)
            .count()
            >= 6,
        "too few transactions committed to check anything: {outcomes:?}"
    );

    let reader = cluster.client(*cluster.answering().first().unwrap()).await;
    let values = read_committed(&reader).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for value in &values {
        *seen.entry(value.clone()).or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "values read twice: {duplicates:?}");
    for (n, outcome) in &outcomes {
        let present: Vec<bool> = (0..PARTITIONS)
            .map(|p| seen.contains_key(&format!("t{n}-p{p}")))
            .collect();
        match outcome {
            Outcome::Committed => assert!(
                present.iter().all(|p| *p),
                "committed transaction {n} is missing records: {present:?}"
            ),
            Outcome::Aborted => assert!(
                present.iter().all(|p| !*p),
                "aborted transaction {n} was read: {present:?}"
            ),
            Outcome::Unknown => assert!(
                present.iter().all(|p| *p) || present.iter().all(|p| !*p),
                "transaction {n} is visible in part: {present:?}"
            ),
        }
    }
}

/// The broker coordinating [`TXN_ID`].
async fn coordinator_of(client: &spool_client::Client) -> u64 {
    let found = client
        .find_coordinator(FindCoordinatorRequest {
            group_id: TXN_ID.into(),
            key_type: 1,
        })
        .await
        .unwrap();
    assert_eq!(found.error, 0, "{}", found.message);
    u64::from(found.node_id)
}

/// The broker leading partition 0 of [`TOPIC`], as metadata shows it.
async fn partition_leader(client: &spool_client::Client) -> u64 {
    let meta = client.topic_metadata(TOPIC).await.unwrap();
    u64::from(meta.partitions[0].leader)
}

/// Every value a read_committed consumer finds in the topic, once no new
/// one has arrived for two seconds.
async fn read_committed(client: &spool_client::Client) -> Vec<String> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(100),
        isolation: IsolationLevel::ReadCommitted,
        ..Default::default()
    });
    consumer.assign((0..PARTITIONS).map(|p| TopicPartition::new(TOPIC, p)));
    let mut values = Vec::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + PATIENCE;
    while quiet_since.elapsed() < Duration::from_secs(2) && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(records) if !records.is_empty() => {
                quiet_since = Instant::now();
                values.extend(records.iter().map(|r| {
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
                }));
            }
            Ok(_) => {}
            Err(e) => eprintln!("poll failed, retrying: {e}"),
        }
    }
    values
}
