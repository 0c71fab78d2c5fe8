//! A transactional workload for the fault tests: producers that write
//! transactions (data batches, then a commit or abort marker, as a
//! coordinator would write it) straight to the partition's replicas, and
//! a read_committed reader, all recording into a [`History`].
//!
//! The coordinator is left out on purpose: these tests ask what the
//! replicated partition does with transactional batches and markers under
//! faults (the last stable offset, the aborted index, retried batches);
//! the broker-level tests cover the coordinator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use spool_client::AbortedFilter;
use spool_protocol::proto::AbortedTransaction;
use spool_raft::PartitionReplica;
use spool_record::{control_marker, BatchBuilder, BatchIter, Compression};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::history::History;
use super::{ClusterClient, Workload};

/// Records per transaction: enough that a fault lands inside one.
const RECORDS_PER_TRANSACTION: usize = 3;
/// How long a marker may take to land before the test gives up: markers
/// are retried through every fault, as the coordinator retries them.
const MARKER_PATIENCE: Duration = Duration::from_secs(60);

/// Starts one transactional producer per id in `producer_ids` (their
/// transactions interleave, so an aborted one sits between committed ones)
/// and one read_committed reader following the leader, as a [`Workload`]
/// whose progress counts ended transactions. Stopped, each producer ends
/// its open transaction first.
pub fn start(client: ClusterClient, producer_ids: &[i64]) -> Workload {
    let history = Arc::new(Mutex::new(History::default()));
    let (stop, stopped) = watch::channel(false);
    let (ended, transactions) = watch::channel(0usize);
    let mut tasks: Vec<JoinHandle<()>> = producer_ids
        .iter()
        .map(|&producer_id| {
            let producer = TransactionalProducer {
                client: client.clone(),
                history: Arc::clone(&history),
                producer_id,
                epoch: 0,
            };
            let (stopped, ended) = (stopped.clone(), ended.clone());
            tokio::spawn(producer.run(stopped, ended))
        })
        .collect();
    let reader = {
        let history = Arc::clone(&history);
        tokio::spawn(async move {
            let mut position = 0u64;
            while !*stopped.borrow() {
                if let Some(replica) = client.leader_replica() {
                    let (records, next) = read_stable(&replica, position);
                    history.lock().read_stable("reader", position, &records);
                    position = next;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tasks.push(reader);
    Workload::from_tasks(history, transactions, "transactions ended", stop, tasks)
}

struct TransactionalProducer {
    client: ClusterClient,
    history: Arc<Mutex<History>>,
    producer_id: i64,
    epoch: i16,
}

impl TransactionalProducer {
    async fn run(mut self, stopped: watch::Receiver<bool>, ended: watch::Sender<usize>) {
        let mut count = 0usize;
        while !*stopped.borrow() {
            self.one_transaction(count).await;
            count += 1;
            ended.send_modify(|n| *n += 1);
        }
    }

    /// Writes one transaction: every third is aborted on purpose, and one
    /// whose write failed for good is aborted as the coordinator would
    /// abort it (the write may or may not be in the log).
    async fn one_transaction(&mut self, count: usize) {
        let values: Vec<String> = (0..RECORDS_PER_TRANSACTION)
            .map(|i| format!("p{}-t{count}-{i}", self.producer_id))
            .collect();
        let mut all_written = true;
        for (sequence, value) in values.iter().enumerate() {
            self.history.lock().sent(value);
            let batch = transactional_batch(value, self.producer_id, self.epoch, sequence as i32);
            match self
                .client
                .produce_batch(batch, Duration::from_secs(5))
                .await
            {
                Ok(placed) => self.history.lock().acknowledged(placed.base_offset, value),
                Err(_) => {
                    all_written = false;
                    break;
                }
            }
        }
        let commit = all_written && count % 3 != 2;
        // The marker carries the next epoch, as the coordinator's does: a
        // late write of this transaction is then fenced.
        self.epoch += 1;
        let marker = control_marker(self.producer_id, self.epoch, commit, 1_000);
        let deadline = Instant::now() + MARKER_PATIENCE;
        while let Err(e) = self
            .client
            .produce_batch(marker.clone(), Duration::from_secs(5))
            .await
        {
            assert!(Instant::now() < deadline, "a marker never landed: {e}");
        }
        self.history.lock().transaction_ended(&values, commit);
    }
}

/// One transactional batch of `producer_id` at `epoch` holding `value`.
fn transactional_batch(value: &str, producer_id: i64, epoch: i16, sequence: i32) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(producer_id, epoch, sequence)
        .transactional(true);
    builder.push(1_000, None, Some(value.as_bytes()), &[]);
    builder.build()
}

/// What a read_committed consumer of `replica` gets from `offset` up to
/// the last stable offset: control batches and aborted transactions
/// dropped by the consumer's own filter. Answers the records and the
/// position after them.
pub fn read_stable(replica: &PartitionReplica, mut offset: u64) -> (Vec<(u64, String)>, u64) {
    let mut records = Vec::new();
    loop {
        let (read, _stable, aborted) = replica.read_stable(offset, 64 * 1024).unwrap();
        if read.bytes.is_empty() {
            return (records, offset);
        }
        let aborted = aborted
            .into_iter()
            .map(|a| AbortedTransaction {
                producer_id: a.producer_id,
                first_offset: a.first_offset,
            })
            .collect();
        let mut filter = AbortedFilter::new(aborted);
        for batch in BatchIter::new(&read.bytes) {
            let batch = batch.unwrap();
            if !filter.keeps(&batch) {
                continue;
            }
            for record in batch.records().unwrap().iter() {
                let record = record.unwrap();
                if record.offset >= offset {
                    let value = String::from_utf8_lossy(record.value.unwrap_or_default());
                    records.push((record.offset, value.into_owned()));
                }
            }
        }
        offset = read.next_offset;
    }
}
