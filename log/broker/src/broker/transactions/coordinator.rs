//! The transaction coordinator: the broker that leads a transactional id's
//! partition of `__transaction_state` keeps its state, hands out its
//! producer id and epochs, and ends its transactions by writing markers.
//!
//! Every change is written to the log (and committed) before it is acted
//! on or answered: a coordinator that fails leaves its successor the
//! decision, which it then carries out. In particular a decided
//! transaction (`PrepareCommit`/`PrepareAbort`) is completed by whichever
//! broker leads the partition next, from its sweep (see `sweep`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::state::{Refusal, TxnMetadata, TxnState};
use super::store::TxnStore;
use crate::broker::shards::Shard;
use crate::broker::shards::Shards;
use crate::broker::Broker;
use crate::{BrokerError, Result};
use spool_protocol::coordinator::TRANSACTIONS_TOPIC;
use spool_protocol::proto::ErrorCode;
use spool_raft::ReplicationError;

/// Transaction settings of a broker.
#[derive(Clone, Debug)]
pub struct TransactionConfig {
    /// Partitions of `__transaction_state`, fixed when the cluster first
    /// creates it (default 4: coordinators spread over up to four brokers;
    /// each partition is a Raft group, and a transaction writes a few
    /// small records, so few are needed).
    pub partitions: u32,
    /// Replicas of each (default 3; fewer on smaller clusters).
    pub replication_factor: u32,
    /// Longest transaction timeout a producer may ask for (default 15
    /// minutes, Kafka's `transaction.max.timeout.ms`).
    pub max_timeout: Duration,
    /// How often open transactions past their timeout are aborted and
    /// decided ones left by a failed coordinator completed (default 1 s;
    /// Kafka checks every 10 s, but a stuck transaction holds back every
    /// read_committed consumer of its partitions).
    pub sweep_interval: Duration,
    /// Fault injection for tests, never set in production: `EndTxn` fails
    /// right after the decision is written, before any marker, as if the
    /// coordinator crashed there.
    #[doc(hidden)]
    pub crash_after_decision: bool,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            partitions: 4,
            replication_factor: 3,
            max_timeout: Duration::from_secs(15 * 60),
            sweep_interval: Duration::from_secs(1),
            crash_after_decision: false,
        }
    }
}

/// A transaction's default timeout when the producer names none: Kafka's
/// `transaction.timeout.ms` default.
pub const DEFAULT_TXN_TIMEOUT_MS: u32 = 60_000;

/// How long one state write waits for its commit.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A loaded shard of `__transaction_state`.
pub type TxnShard = Shard<TxnStore>;

/// The coordinator's memory: the loaded shards and one lock per
/// transactional id, under which each request reads, changes and writes
/// the id's state.
pub struct TransactionCoordinator {
    pub config: TransactionConfig,
    /// The shards of `__transaction_state` this broker loaded.
    pub(super) shards: Shards<TxnStore>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl TransactionCoordinator {
    pub fn new(config: TransactionConfig) -> TransactionCoordinator {
        TransactionCoordinator {
            config,
            shards: Shards::new(TRANSACTIONS_TOPIC),
            locks: Mutex::default(),
        }
    }

    /// The lock of transactional id `id`.
    pub(super) fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock();
        // Locks nobody holds or waits for are dropped now and then, so ids
        // seen once do not pile up.
        if locks.len() > 10_000 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        Arc::clone(locks.entry(id.to_string()).or_default())
    }
}

impl From<Refusal> for BrokerError {
    fn from(refusal: Refusal) -> BrokerError {
        BrokerError::Coded {
            code: refusal.code,
            message: refusal.message,
        }
    }
}

impl Broker {
    /// Gives `id` a producer id and a new epoch, fencing its earlier
    /// instances: an open transaction is aborted (or, with
    /// `keep_prepared`, a prepared one kept for the new instance) and a
    /// decided one completed first. Answers the producer id, the epoch and
    /// whether a prepared transaction was kept.
    pub(super) async fn init_transactional(
        &self,
        shard: &TxnShard,
        id: &str,
        timeout_ms: u32,
        keep_prepared: bool,
    ) -> Result<(i64, i16, bool)> {
        let lock = self.transactions.lock_of(id);
        let _held = lock.lock().await;
        let mut metadata = match shard.get(id) {
            Some(metadata) => metadata,
            None => TxnMetadata {
                producer_id: self.producer_ids.allocate()?,
                epoch: -1,
                timeout_ms,
                state: TxnState::Empty,
                partitions: Default::default(),
                groups: Default::default(),
                start_ms: 0,
            },
        };
        let kept = keep_prepared && metadata.state == TxnState::Prepared;
        if metadata.state.is_open() && !kept {
            metadata.decide(false, true)?;
            shard.write(id, &metadata, WRITE_TIMEOUT).await?;
        }
        if metadata.state.is_deciding() {
            self.complete_decided(shard, id, &mut metadata).await?;
        }
        if metadata.epoch >= i16::MAX - 1 {
            // Epochs are exhausted: a fresh producer id starts over.
            metadata.producer_id = self.producer_ids.allocate()?;
            metadata.epoch = -1;
        }
        metadata.epoch += 1;
        metadata.timeout_ms = timeout_ms;
        shard.write(id, &metadata, WRITE_TIMEOUT).await?;
        Ok((metadata.producer_id, metadata.epoch, kept))
    }

    /// Writes the markers of the decided transaction of `id`, then its
    /// completion. Call with the id's lock held.
    pub(super) async fn complete_decided(
        &self,
        shard: &TxnShard,
        id: &str,
        metadata: &mut TxnMetadata,
    ) -> Result<()> {
        let commit = metadata.state == TxnState::PrepareCommit;
        self.write_markers(
            metadata.producer_id,
            metadata.epoch,
            commit,
            &metadata.partitions,
            || shard.is_current(),
        )
        .await?;
        // Checked again after the markers: had this broker lost the shard
        // meanwhile, another coordinator may have completed the
        // transaction and the producer opened its next one, which this
        // write would overwrite.
        if !shard.is_current() {
            return Err(ReplicationError::Replication(
                "this broker no longer leads the transaction's coordinator partition".into(),
            )
            .into());
        }
        metadata.complete();
        shard.write(id, metadata, WRITE_TIMEOUT).await
    }

    /// Adds partitions (and, for `group`, its offsets partition) to the
    /// transaction of `id`, opening one if none is open.
    pub(super) async fn add_to_transaction(
        &self,
        shard: &TxnShard,
        id: &str,
        producer: (i64, i16),
        partitions: Vec<(String, u32)>,
        group: Option<String>,
    ) -> Result<()> {
        let lock = self.transactions.lock_of(id);
        let _held = lock.lock().await;
        let mut metadata = shard.get(id).ok_or_else(|| unknown_id(id))?;
        metadata.check_producer(producer.0, producer.1)?;
        let mut changed = metadata.add_partitions(partitions, self.now_ms())?;
        if let Some(group) = group {
            changed |= metadata.groups.insert(group);
        }
        if changed {
            shard.write(id, &metadata, WRITE_TIMEOUT).await?;
        }
        Ok(())
    }

    /// Ends (or, with `prepare`, prepares) the transaction of `id`;
    /// answers the epoch of the producer's next transaction.
    ///
    /// The answer comes once the decision is durable, as Kafka answers
    /// `EndTxn`: the markers and the completion are written after, by a
    /// task that holds the id's lock until they are, so the producer's
    /// next request for the id (its next transaction's first partitions)
    /// waits for them instead of being refused. Read_committed consumers
    /// see the records once the markers land; a group's offsets read
    /// with `require_stable` wait for them too (`UnstableOffsetCommit`).
    /// A marker that cannot be written is left to the sweep, which
    /// completes every decided transaction of the shards it leads.
    pub(super) async fn end_transaction(
        &self,
        shard: &Arc<TxnShard>,
        id: &str,
        producer: (i64, i16),
        commit: bool,
        prepare: bool,
        bump_epoch: bool,
    ) -> Result<i16> {
        let held = self.transactions.lock_of(id).lock_owned().await;
        let mut metadata = shard.get(id).ok_or_else(|| unknown_id(id))?;
        if !prepare && metadata.completed_by(producer.0, producer.1, commit) {
            return Ok(metadata.epoch);
        }
        let epoch_gap = i32::from(metadata.epoch) - i32::from(producer.1);
        if metadata.state.is_deciding()
            && producer.0 == metadata.producer_id
            && (epoch_gap == 1 || epoch_gap == 0)
        {
            // A retry while a new coordinator completes the decision.
            return Err(Refusal::new(
                ErrorCode::ConcurrentTransactions,
                "the transaction is completing; retry",
            )
            .into());
        }
        metadata.check_producer(producer.0, producer.1)?;
        if prepare {
            if metadata.state != TxnState::Ongoing {
                return Err(Refusal::new(
                    ErrorCode::InvalidTxnState,
                    format!(
                        "only an ongoing transaction can be prepared (state {})",
                        metadata.state.name()
                    ),
                )
                .into());
            }
            metadata.state = TxnState::Prepared;
            shard.write(id, &metadata, WRITE_TIMEOUT).await?;
            return Ok(metadata.epoch);
        }
        if !metadata.state.is_open() {
            // Nothing was added since the last transaction: nothing to
            // mark, and the epoch stays.
            return Ok(metadata.epoch);
        }
        metadata.decide(commit, bump_epoch)?;
        shard.write(id, &metadata, WRITE_TIMEOUT).await?;
        if self.transactions.config.crash_after_decision {
            return Err(ReplicationError::Replication(
                "fault injection: the coordinator stopped after its decision".into(),
            )
            .into());
        }
        let epoch = metadata.epoch;
        match self.me.upgrade() {
            Some(broker) => {
                let (shard, id) = (Arc::clone(shard), id.to_string());
                tokio::spawn(async move {
                    let _held = held;
                    // Bounded, so that a peer that never answers does not
                    // hold the id (and the sweep waiting on it) for good.
                    let completing = broker.complete_decided(&shard, &id, &mut metadata);
                    let outcome = tokio::time::timeout(COMPLETION_PATIENCE, completing).await;
                    if let Err(e) = outcome.unwrap_or_else(|_| Err(completion_timed_out())) {
                        tracing::warn!(id = %id, error = %e, "writing a decided transaction's markers failed; the next sweep retries");
                    }
                });
            }
            // The broker is going away: whoever leads the shard next
            // completes the decision from its sweep.
            None => drop(held),
        }
        Ok(epoch)
    }

    /// Whether `partition` belongs to the open transaction of `id` by
    /// `producer`: asked by a partition's leader before it appends the
    /// transaction's first records there.
    pub(super) fn verify_in_transaction(
        &self,
        shard: &TxnShard,
        id: &str,
        producer: (i64, i16),
        partition: (String, u32),
    ) -> Result<()> {
        let metadata = shard.get(id).ok_or_else(|| unknown_id(id))?;
        metadata.check_producer(producer.0, producer.1)?;
        if metadata.state != TxnState::Ongoing || !metadata.partitions.contains(&partition) {
            return Err(Refusal::new(
                ErrorCode::InvalidTxnState,
                format!(
                    "partition {}-{} was not added to the open transaction of `{id}`",
                    partition.0, partition.1
                ),
            )
            .into());
        }
        Ok(())
    }

    /// Aborts the open (or prepared) transaction of `id`, as an operator
    /// asks; the producer is fenced by the bumped epoch.
    pub(super) async fn abort_by_operator(&self, shard: &TxnShard, id: &str) -> Result<()> {
        let lock = self.transactions.lock_of(id);
        let _held = lock.lock().await;
        let mut metadata = shard.get(id).ok_or_else(|| unknown_id(id))?;
        if metadata.state.is_open() {
            metadata.decide(false, true)?;
            shard.write(id, &metadata, WRITE_TIMEOUT).await?;
        }
        if metadata.state.is_deciding() {
            return self.complete_decided(shard, id, &mut metadata).await;
        }
        Err(Refusal::new(
            ErrorCode::InvalidTxnState,
            format!(
                "`{id}` has no open transaction (state {})",
                metadata.state.name()
            ),
        )
        .into())
    }

    /// One sweep of a shard: aborts transactions past their timeout and
    /// completes those a failed coordinator decided but did not finish.
    pub(super) async fn sweep_shard(&self, shard: &TxnShard) {
        let now = self.now_ms();
        for (id, metadata) in shard.all() {
            if !metadata.timed_out(now) && !metadata.state.is_deciding() {
                continue;
            }
            let lock = self.transactions.lock_of(&id);
            // A decided transaction whose lock is held is being completed
            // by whoever holds it (most often the task `EndTxn` left);
            // should that fail, the next sweep finds it still decided.
            let _held = match metadata.timed_out(now) {
                true => lock.lock_owned().await,
                false => match lock.try_lock_owned() {
                    Ok(held) => held,
                    Err(_) => continue,
                },
            };
            let Some(mut metadata) = shard.get(&id) else {
                continue;
            };
            let outcome = async {
                if metadata.timed_out(self.now_ms()) {
                    tracing::info!(id = %id, producer = metadata.producer_id, "aborting a transaction past its timeout");
                    metadata.decide(false, true)?;
                    shard.write(&id, &metadata, WRITE_TIMEOUT).await?;
                }
                if metadata.state.is_deciding() {
                    self.complete_decided(shard, &id, &mut metadata).await?;
                }
                Ok::<(), BrokerError>(())
            };
            if let Err(e) = outcome.await {
                tracing::warn!(id = %id, error = %e, "completing a transaction failed; the next sweep retries");
            }
        }
    }
}

/// How long the markers and completion written after `EndTxn` may take
/// before their task gives the id's lock up and leaves them to the sweep:
/// the markers' own patience and the completion's write, with room.
const COMPLETION_PATIENCE: Duration = Duration::from_secs(60);

fn completion_timed_out() -> BrokerError {
    ReplicationError::Replication(format!(
        "the markers and completion took longer than {COMPLETION_PATIENCE:?}"
    ))
    .into()
}

fn unknown_id(id: &str) -> BrokerError {
    Refusal::new(
        ErrorCode::TransactionalIdNotFound,
        format!("transactional id `{id}` is unknown: call InitProducerId first"),
    )
    .into()
}
