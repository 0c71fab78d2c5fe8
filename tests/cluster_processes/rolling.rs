//! A rolling restart under load, as an operator does one: each of three
//! broker processes in turn stopped with SIGTERM (a clean exit is
//! asserted) and started again, while an idempotent producer, a
//! transactional producer (committing two transactions in three and
//! aborting the third) and a read_committed consumer group run against
//! the whole cluster (a bootstrap list of all three brokers).
//!
//! The history checker then reads the topic from the start with
//! read_committed: every acknowledged record exactly once (0 lost, 0
//! duplicated), each partition's idempotent records in the order they
//! were sent, every committed transaction whole and no aborted one (0
//! aborted reads); the group's consumer saw every committed record and
//! no aborted one either. How long the group's consumer went without a
//! record around each restart is printed: the stall a rolling restart
//! costs a consumer.
//!
//! Protection tested: the transaction coordinator skipping a marker only
//! for a partition gone from its own metadata (`partition_exists` in the
//! broker's markers.rs), and clients retrying UNKNOWN_TOPIC_OR_PARTITION.
//! Before them, a restarted broker still reading the metadata answered
//! that error to a marker, the coordinator took it as "topic deleted", and
//! 5 runs of 13 lost committed records or read aborted ones.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use spool_client::{
    Client, ConsumerConfig, GroupSettings, OffsetReset, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use spool_protocol::proto::IsolationLevel;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::harness::*;

const ROLLING: &str = "rolling";
const PARTITIONS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_duplicates_and_aborts_nothing() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    let bootstrap: Vec<&str> = cluster.addresses.values().map(String::as_str).collect();
    let client = Client::connect(&bootstrap.join(",")).await.unwrap();
    create_rolling_topic(&client).await;

    let (stop, stopped) = watch::channel(false);
    let idempotent = tokio::spawn(idempotent_load(client.clone(), stopped.clone()));
    let transactional = tokio::spawn(transactional_load(client.clone(), stopped.clone()));
    let (group, arrivals) = group_reader(client.clone(), stopped);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut restarts = Vec::new();
    for node in [1, 2, 3] {
        let began = Instant::now();
        let log = tokio::task::block_in_place(|| cluster.stop(node));
        assert!(log.contains("stopped cleanly"), "broker {node}: {log}");
        cluster.start_broker(node);
        wait_until_serving(&cluster, node).await;
        restarts.push((node, began, Instant::now()));
        // Caught up before the next one goes down.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    stop.send_replace(true);
    let sent = idempotent.await.unwrap();
    let transactions = transactional.await.unwrap();
    let read_by_group = group.await.unwrap();

    report_stalls(&arrivals.borrow(), &restarts);
    check_history(&client, &sent, &transactions, &read_by_group).await;
}

async fn create_rolling_topic(client: &Client) {
    let deadline = Instant::now() + PATIENCE;
    while let Err(e) = client
        .admin()
        .create_replicated_topic(ROLLING, PARTITIONS, 3, &[])
        .await
    {
        assert!(Instant::now() < deadline, "topic never created: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until broker `node` answers metadata requests again.
async fn wait_until_serving(cluster: &Cluster, node: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let asked = async { cluster.client(node).await.topic_metadata(ROLLING).await };
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), asked).await {
            return;
        }
        assert!(Instant::now() < deadline, "broker {node} never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `i<n>` keyed by `n`, fifty at a time, until stopped; answers
/// each partition's acknowledged values in the order they were sent. A
/// record the producer gives up on fails the test: a restart must cost
/// latency, never a record.
async fn idempotent_load(client: Client, stopped: watch::Receiver<bool>) -> SentValues {
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_millis(2),
        ..Default::default()
    });
    let mut sent = SentValues::new();
    let mut n = 0u64;
    while !*stopped.borrow() {
        let mut acks = Vec::new();
        for _ in 0..50 {
            let record = ProducerRecord::new(ROLLING, format!("i{n}")).key(n.to_string());
            acks.push((format!("i{n}"), producer.send(record).await.unwrap()));
            n += 1;
        }
        for (value, ack) in acks {
            let placed = ack
                .await
                .unwrap_or_else(|e| panic!("{value} was lost: {e}"));
            sent.entry(placed.partition).or_default().push(value);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sent
}

/// Each partition's acknowledged idempotent values, in sending order.
type SentValues = BTreeMap<u32, Vec<String>>;

/// The values of committed and of aborted transactions.
#[derive(Default)]
struct Transactions {
    committed: BTreeSet<String>,
    aborted: BTreeSet<String>,
}

/// Transactions of one record per partition (`t<k>-p<p>`), every third
/// aborted, until stopped. An end call that fails fails the test: the
/// producer retries through a restart.
async fn transactional_load(client: Client, stopped: watch::Receiver<bool>) -> Transactions {
    let producer = client.producer(ProducerConfig {
        transactional_id: Some("rolling-writer".into()),
        linger: Duration::from_millis(1),
        ..Default::default()
    });
    producer.init_transactions().await.unwrap();
    let mut transactions = Transactions::default();
    let mut k = 0u64;
    while !*stopped.borrow() {
        producer.begin_transaction().unwrap();
        let values: Vec<String> = (0..PARTITIONS).map(|p| format!("t{k}-p{p}")).collect();
        let mut acks = Vec::new();
        for (p, value) in (0..PARTITIONS).zip(&values) {
            let record = ProducerRecord::new(ROLLING, value.clone()).partition(p);
            acks.push(producer.send(record).await.unwrap());
        }
        let (ended, into) = match k % 3 {
            2 => (
                producer.abort_transaction().await,
                &mut transactions.aborted,
            ),
            _ => (
                producer.commit_transaction().await,
                &mut transactions.committed,
            ),
        };
        ended.unwrap_or_else(|e| panic!("transaction {k} did not end: {e}"));
        if k % 3 != 2 {
            // A commit that went through had every send of it written.
            for (value, ack) in values.iter().zip(acks) {
                let placed = ack.await;
                assert!(
                    placed.is_ok(),
                    "{value} committed, but its send failed: {placed:?}"
                );
            }
        }
        into.extend(values);
        k += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    transactions
}

/// A read_committed consumer of group `rolling-readers`, committing after
/// every poll; it reads until stopped and then until nothing more comes.
/// Answers every value it read (a value read twice, after a rebalance
/// before a commit, counts once), and a watch of when records arrived.
fn group_reader(
    client: Client,
    stopped: watch::Receiver<bool>,
) -> (JoinHandle<BTreeSet<String>>, watch::Receiver<Vec<Instant>>) {
    let (arrived, arrivals) = watch::channel(Vec::new());
    let reader = tokio::spawn(async move {
        let mut consumer = client.consumer(ConsumerConfig {
            offset_reset: OffsetReset::Earliest,
            isolation: IsolationLevel::ReadCommitted,
            max_wait: Duration::from_millis(100),
            ..Default::default()
        });
        consumer.subscribe([ROLLING], GroupSettings::new("rolling-readers"));
        let mut values = BTreeSet::new();
        let mut quiet_since = Instant::now();
        while !*stopped.borrow() || quiet_since.elapsed() < Duration::from_secs(3) {
            let records = match consumer.poll(Duration::from_millis(200)).await {
                Ok(records) => records,
                Err(e) => {
                    eprintln!("group poll failed, polling again: {e}");
                    continue;
                }
            };
            if records.is_empty() {
                continue;
            }
            quiet_since = Instant::now();
            arrived.send_modify(|times| times.push(quiet_since));
            for record in records {
                values.insert(String::from_utf8_lossy(&record.value.unwrap()).into_owned());
            }
            if let Err(e) = consumer.commit_sync().await {
                eprintln!("group commit failed, the next one covers it: {e}");
            }
        }
        values
    });
    (reader, arrivals)
}

/// Prints the longest time the group's consumer went without a record
/// during each restart (and a little after it).
fn report_stalls(arrivals: &[Instant], restarts: &[(u64, Instant, Instant)]) {
    for (node, began, serving) in restarts {
        let window_end = *serving + Duration::from_secs(3);
        let mut last = *began;
        let mut longest = Duration::ZERO;
        for at in arrivals
            .iter()
            .filter(|at| **at > *began && **at <= window_end)
        {
            longest = longest.max(at.duration_since(last));
            last = *at;
        }
        longest = longest.max(window_end.saturating_duration_since(last));
        eprintln!(
            "restart of broker {node}: down and back in {:?}; the group's consumer \
             went at most {longest:?} without a record",
            serving.duration_since(*began)
        );
    }
}

/// The history checker (see the module's comment).
async fn check_history(
    client: &Client,
    sent: &SentValues,
    transactions: &Transactions,
    read_by_group: &BTreeSet<String>,
) {
    let acknowledged: usize = sent.values().map(Vec::len).sum();
    assert!(
        acknowledged > 1000,
        "too little load to check: {acknowledged}"
    );
    assert!(transactions.committed.len() > 30, "too few transactions");
    let log = read_log(client).await;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for values in log.values() {
        for value in values {
            *counts.entry(value.as_str()).or_default() += 1;
        }
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "read twice: {duplicated:?}");
    for (partition, values) in sent {
        let idempotent: Vec<&String> = log[partition]
            .iter()
            .filter(|v| v.starts_with('i'))
            .collect();
        assert!(
            idempotent.iter().copied().eq(values.iter()),
            "partition {partition}: {} of {} acknowledged records, or out of order",
            idempotent.len(),
            values.len()
        );
    }
    let lost: Vec<_> = transactions
        .committed
        .iter()
        .filter(|v| !counts.contains_key(v.as_str()))
        .collect();
    if !lost.is_empty() {
        dump_batches(client).await;
    }
    assert!(lost.is_empty(), "committed but not in the log: {lost:?}");
    let missed: Vec<_> = transactions
        .committed
        .iter()
        .filter(|v| !read_by_group.contains(*v))
        .collect();
    assert!(
        missed.is_empty(),
        "committed but not read by the group: {missed:?}"
    );
    let aborted_reads: Vec<_> = transactions
        .aborted
        .iter()
        .filter(|v| counts.contains_key(v.as_str()) || read_by_group.contains(*v))
        .collect();
    if !aborted_reads.is_empty() {
        dump_batches(client).await;
    }
    assert!(
        aborted_reads.is_empty(),
        "aborted but read: {aborted_reads:?}"
    );
    let unread = sent
        .values()
        .flatten()
        .filter(|v| !read_by_group.contains(*v));
    assert_eq!(unread.count(), 0, "the group missed acknowledged records");
    eprintln!(
        "history: {acknowledged} idempotent records, {} committed and {} aborted \
         transactional ones; 0 lost, 0 duplicated, 0 aborted reads",
        transactions.committed.len(),
        transactions.aborted.len()
    );
}

/// Every partition's values from the start, read_committed, once nothing
/// new has arrived for two seconds.
async fn read_log(client: &Client) -> BTreeMap<u32, Vec<String>> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        max_wait: Duration::from_millis(100),
        ..Default::default()
    });
    consumer.assign((0..PARTITIONS).map(|p| TopicPartition::new(ROLLING, p)));
    let mut log: BTreeMap<u32, Vec<String>> = (0..PARTITIONS).map(|p| (p, Vec::new())).collect();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + PATIENCE;
    while quiet_since.elapsed() < Duration::from_secs(2) {
        assert!(Instant::now() < deadline, "the log never stopped growing");
        for record in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            quiet_since = Instant::now();
            let value = String::from_utf8_lossy(&record.value.unwrap()).into_owned();
            log.entry(record.partition).or_default().push(value);
        }
    }
    log
}

/// Prints every transactional batch of every partition: where each
/// transaction's records and markers landed, to tell a failure apart.
async fn dump_batches(client: &Client) {
    for partition in 0..PARTITIONS {
        let mut offset = 0;
        loop {
            let request = fetch_request(ROLLING, partition, offset);
            let response = client.fetch(request).await.unwrap();
            let records = &response.topics[0].partitions[0].records;
            if records.is_empty() {
                break;
            }
            for batch in spool_record::BatchIter::new(records) {
                let batch = batch.unwrap();
                offset = batch.next_offset();
                if !batch.attributes().is_transactional() {
                    continue;
                }
                let control = batch.attributes().is_control();
                let first = batch.records().unwrap().iter().next().map(|r| {
                    let r = r.unwrap();
                    match control {
                        // A marker's key: version, then 0 abort or 1 commit.
                        true => match r.key.unwrap_or_default().get(3) {
                            Some(1) => "COMMIT".to_string(),
                            _ => "ABORT".to_string(),
                        },
                        false => String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned(),
                    }
                });
                eprintln!(
                    "p{partition} @{} pid {} epoch {} seq {} {}",
                    batch.base_offset(),
                    batch.producer_id(),
                    batch.producer_epoch(),
                    batch.base_sequence(),
                    first.unwrap_or_default()
                );
            }
        }
    }
}
