//! A stream thread's commits: each store's writes to its changelog, then
//! the input offsets, and only then the writes into the stores, with the
//! changelog offsets they reach.
//!
//! A commit is pipelined. `start_commit` moves every store's writes aside
//! (reads still see them) and hands the sending to a background task:
//! changelog records, every output record sent since the last commit,
//! then, under exactly-once, the input offsets added to the transaction
//! (with the group's generation, so a zombie is fenced) and the
//! transaction committed; at-least-once flushes instead. Meanwhile the
//! thread goes on polling and processing into fresh overlays; what its
//! sinks write waits in the tasks, since the next transaction can begin
//! only once this one committed. `finish_commit` (when the background task
//! is done, or before anything that needs the commit behind it: a
//! rebalance, a stop) commits the offsets of an at-least-once thread and
//! applies the writes to the stores. A failure at any step fails the
//! thread: its replacement reopens the stores as the last finished commit
//! left them, and the aborted transaction's records are never read.

use std::collections::BTreeMap;
use std::time::Instant;

use spool_client::{GroupMetadata, Producer, ProducerRecord, TopicPartition};
use tokio::task::JoinHandle;

use super::task::TaskId;
use super::thread::{client_error, InFlight, Reached, Running, StreamThread};
use crate::{Result, StreamsError};

/// What the background part of a commit sends.
struct Outgoing {
    producer: Producer,
    changelog: Vec<ProducerRecord>,
    owners: Vec<(TaskId, usize)>,
    outputs: Vec<JoinHandle<spool_client::Result<()>>>,
    /// Under exactly-once: what the transaction commits besides records.
    transaction: Option<Transaction>,
}

/// The input offsets a transaction commits, and the group they belong to
/// (none when there are no offsets).
struct Transaction {
    offsets: Vec<(TopicPartition, u64)>,
    group: Option<GroupMetadata>,
}

impl StreamThread {
    /// Commits everything processed so far and waits until it is durable:
    /// before a rebalance hands partitions back, and when the thread stops.
    pub(super) async fn commit(&self, running: &mut Running) -> Result<()> {
        self.finish_commit(running).await?;
        self.start_commit(running).await?;
        self.finish_commit(running).await
    }

    /// Finishes the commit in flight if it is done, and starts the next
    /// one when the commit interval is up.
    pub(super) async fn commit_when_due(&self, running: &mut Running) -> Result<()> {
        if running
            .in_flight
            .as_ref()
            .is_some_and(|f| f.sending.is_finished())
        {
            self.finish_commit(running).await?;
        }
        if running.in_flight.is_none()
            && running.last_commit.elapsed() >= self.config.commit_interval()
        {
            self.start_commit(running).await?;
        }
        Ok(())
    }

    /// Moves every store's writes aside and starts sending them, with the
    /// offsets processed so far (see the module's comment). What the
    /// tasks' sinks wrote while the previous commit was in flight is sent
    /// first: its input offsets are in this commit.
    async fn start_commit(&self, running: &mut Running) -> Result<()> {
        debug_assert!(running.in_flight.is_none());
        self.send_outputs(running).await?;
        running.last_commit = Instant::now();
        let dirty = running.tasks.values().any(|t| t.has_uncommitted());
        if !dirty && !running.in_transaction {
            return Ok(());
        }
        let began = Instant::now();
        let (mut changelog, mut owners, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
        for (id, task) in running.tasks.iter_mut() {
            for (store, record) in task.begin_commit() {
                changelog.push(record);
                owners.push((*id, store));
            }
            offsets.extend(std::mem::take(&mut task.consumed));
        }
        let transaction = match self.config.exactly_once() {
            true => {
                self.begin(running)?;
                let group = match offsets.is_empty() {
                    true => None,
                    false => Some(running.consumer.group_metadata().ok_or_else(|| {
                        StreamsError::Stopped("the consumer left its group".into())
                    })?),
                };
                // Sent from now on: no record may join it meanwhile.
                running.in_transaction = false;
                Some(Transaction {
                    offsets: offsets.clone(),
                    group,
                })
            }
            false => None,
        };
        let outgoing = Outgoing {
            producer: running.producer.clone(),
            changelog,
            owners,
            outputs: std::mem::take(&mut running.pending),
            transaction,
        };
        running.in_flight = Some(InFlight {
            sending: tokio::spawn(outgoing.send()),
            began,
            offsets,
        });
        Ok(())
    }

    /// Waits for the commit in flight, if any, and makes it durable: the
    /// offsets of an at-least-once thread committed, then the stores'
    /// writes applied.
    pub(super) async fn finish_commit(&self, running: &mut Running) -> Result<()> {
        let Some(in_flight) = running.in_flight.take() else {
            return Ok(());
        };
        let reached = in_flight
            .sending
            .await
            .map_err(|e| StreamsError::Stopped(format!("a commit task failed: {e}")))??;
        if !self.config.exactly_once() && !in_flight.offsets.is_empty() {
            running
                .consumer
                .commit_offsets(&in_flight.offsets)
                .await
                .map_err(client_error("committing offsets"))?;
        }
        for (id, task) in running.tasks.iter_mut() {
            let stores: BTreeMap<usize, u64> = reached
                .range((*id, 0)..=(*id, usize::MAX))
                .map(|(&(_, store), &offset)| (store, offset))
                .collect();
            task.finish_commit(&stores)?;
        }
        for (tp, offset) in in_flight.offsets {
            if running.repartitions.contains(&tp.topic) {
                running.purgeable.insert(tp, offset);
            }
        }
        self.metrics.committed(in_flight.began.elapsed());
        self.purge_repartitions(running);
        Ok(())
    }

    /// Deletes what every task has committed from the repartition topics
    /// it reads, every `repartition_purge_interval`: nothing reads them
    /// again, and they would otherwise grow until retention. In the
    /// background; a failure only delays the deletion to the next round.
    fn purge_repartitions(&self, running: &mut Running) {
        if running.purgeable.is_empty()
            || running.last_purge.elapsed() < self.config.repartition_purge_interval
        {
            return;
        }
        running.last_purge = Instant::now();
        let admin = self.client.admin();
        let purge = std::mem::take(&mut running.purgeable);
        tokio::spawn(async move {
            for (tp, offset) in purge {
                if let Err(e) = admin
                    .delete_records(&tp.topic, tp.partition, Some(offset))
                    .await
                {
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, error = %e, "purging a repartition topic failed; retried later");
                }
            }
        });
    }
}

impl Outgoing {
    /// Sends the changelog records and waits for them and every output
    /// record; then commits the transaction with the offsets, or flushes.
    async fn send(self) -> Result<Reached> {
        let mut reached = Reached::new();
        if !self.changelog.is_empty() {
            let acks = self
                .producer
                .send_batch(self.changelog)
                .await
                .map_err(client_error("writing changelogs"))?;
            let metadata = acks.await.map_err(client_error("writing changelogs"))?;
            for (owner, meta) in self.owners.iter().zip(metadata) {
                if let Some(offset) = meta.offset {
                    let next = reached.entry(*owner).or_insert(0);
                    *next = (*next).max(offset + 1);
                }
            }
        }
        for output in self.outputs {
            output
                .await
                .map_err(|e| StreamsError::Stopped(format!("a send task failed: {e}")))?
                .map_err(client_error("sending outputs"))?;
        }
        match self.transaction {
            Some(Transaction { offsets, group }) => {
                if let (false, Some(group)) = (offsets.is_empty(), group) {
                    self.producer
                        .send_offsets_to_transaction(&offsets, &group)
                        .await
                        .map_err(client_error("committing offsets in the transaction"))?;
                }
                self.producer
                    .commit_transaction()
                    .await
                    .map_err(client_error("committing the transaction"))?;
            }
            None => self
                .producer
                .flush()
                .await
                .map_err(client_error("flushing"))?,
        }
        Ok(reached)
    }
}
