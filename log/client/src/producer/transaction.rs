//! The transactional producer: Kafka's `initTransactions`,
//! `beginTransaction`, `sendOffsetsToTransaction`, `commitTransaction` and
//! `abortTransaction`, plus two-phase commit (`prepare_transaction`, and
//! `init_transactions_keep_prepared` in the instance that resumes it).
//!
//! The sender adds each partition to the open transaction before its
//! first batch goes out (`sender::add_to_transaction`); ending a
//! transaction first flushes every record, then asks the coordinator, whose
//! answer carries the epoch of the next transaction (bumped by each end,
//! so that a late write of the ended one is fenced).

use std::time::Duration;

use super::accumulator::ProducerIdentity;
use super::Producer;
use crate::TopicPartition;
use crate::{ClientError, Result};
use spool_protocol::proto::*;

/// Where the producer's transactions stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TxnPhase {
    /// `init_transactions` not called yet.
    Uninitialized,
    Ready,
    Open,
    /// Prepared for two-phase commit: only commit or abort remain.
    Prepared,
}

/// The consumer group a consume-transform-produce loop reads for, as its
/// offsets are committed inside the transaction: fenced by the
/// generation and member (Kafka's `ConsumerGroupMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadata {
    pub group_id: String,
    /// -1 for a producer outside the group protocol (no fencing by group).
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl GroupMetadata {
    /// A group named without membership: offsets are not fenced by it.
    pub fn new(group_id: impl Into<String>) -> GroupMetadata {
        GroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// How long the producer retries a coordinator that is moving or a
/// transaction that is still completing.
const COORDINATOR_PATIENCE: Duration = Duration::from_secs(30);

impl Producer {
    fn transactional_id(&self) -> Result<String> {
        self.shared.config.transactional_id.clone().ok_or_else(|| {
            invalid_state("the producer has no transactional id (ProducerConfig::transactional_id)")
        })
    }

    fn identity(&self) -> Result<ProducerIdentity> {
        self.shared
            .accumulator
            .lock()
            .identity
            .ok_or_else(|| invalid_state("call init_transactions first"))
    }

    fn phase(&self) -> TxnPhase {
        *self.shared.transaction.lock()
    }

    fn set_phase(&self, phase: TxnPhase) {
        *self.shared.transaction.lock() = phase;
    }

    /// Takes the identity the coordinator gave: sequences start over.
    fn start_epoch(&self, producer_id: i64, epoch: i32) -> Result<()> {
        let epoch = i16::try_from(epoch)
            .map_err(|_| invalid_state("the coordinator gave an epoch out of range"))?;
        self.shared
            .accumulator
            .lock()
            .start_epoch(ProducerIdentity {
                id: producer_id,
                epoch,
            });
        Ok(())
    }

    /// For `send`: a transactional producer sends only inside a transaction.
    pub(super) fn check_transaction_open(&self) -> Result<()> {
        match (&self.shared.config.transactional_id, self.phase()) {
            (None, _) | (Some(_), TxnPhase::Open) => Ok(()),
            _ => Err(invalid_state("call begin_transaction before sending")),
        }
    }

    /// Registers the transactional id with its coordinator: gets the
    /// producer id and a new epoch, which fences every earlier instance
    /// with the same id, and has the coordinator abort a transaction such
    /// an instance left open (Kafka's `initTransactions`).
    pub async fn init_transactions(&self) -> Result<()> {
        self.init(false).await.map(|_| ())
    }

    /// [`Producer::init_transactions`] for two-phase commit: a transaction
    /// an earlier instance prepared (`prepare_transaction`) is kept and
    /// becomes this instance's, to commit or abort. Answers whether there
    /// was one.
    pub async fn init_transactions_keep_prepared(&self) -> Result<bool> {
        self.init(true).await
    }

    async fn init(&self, keep_prepared: bool) -> Result<bool> {
        let request = InitProducerIdRequest {
            transactional_id: self.transactional_id()?,
            transaction_timeout_ms: u32::try_from(
                self.shared.config.transaction_timeout.as_millis(),
            )
            .unwrap_or(u32::MAX),
            keep_prepared_txn: keep_prepared,
        };
        let client = &self.shared.client;
        let answer = self
            .retry(|| async {
                let r = client.init_producer_id(request.clone()).await?;
                ClientError::from_code(r.error, &r.message).map_or(Ok(r), Err)
            })
            .await?;
        self.start_epoch(answer.producer_id, answer.producer_epoch)?;
        self.set_phase(match answer.has_prepared_txn {
            true => TxnPhase::Prepared,
            false => TxnPhase::Ready,
        });
        Ok(answer.has_prepared_txn)
    }

    /// Opens a transaction: records sent until it ends belong to it.
    pub fn begin_transaction(&self) -> Result<()> {
        match self.phase() {
            TxnPhase::Ready => {
                self.set_phase(TxnPhase::Open);
                Ok(())
            }
            TxnPhase::Uninitialized => Err(invalid_state("call init_transactions first")),
            TxnPhase::Open | TxnPhase::Prepared => {
                Err(invalid_state("a transaction is already open"))
            }
        }
    }

    /// Commits consumer offsets as part of the open transaction: they take
    /// effect if, and when, it commits (Kafka's `sendOffsetsToTransaction`).
    /// `offsets` are the next offsets to read.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(TopicPartition, u64)],
        group: &GroupMetadata,
    ) -> Result<()> {
        if self.phase() != TxnPhase::Open {
            return Err(invalid_state("no transaction is open"));
        }
        let id = self.transactional_id()?;
        let identity = self.identity()?;
        let client = &self.shared.client;
        let add = AddOffsetsToTxnRequest {
            transactional_id: id.clone(),
            producer_id: identity.id,
            producer_epoch: i32::from(identity.epoch),
            group_id: group.group_id.clone(),
        };
        self.retry(|| async { answered(client.add_offsets_to_txn(add.clone()).await?) })
            .await?;
        let topics = crate::group::commit_topics(offsets.iter().cloned());
        let commit = TxnOffsetCommitRequest {
            transactional_id: id,
            group_id: group.group_id.clone(),
            producer_id: identity.id,
            producer_epoch: i32::from(identity.epoch),
            generation_id: group.generation_id,
            member_id: group.member_id.clone(),
            group_instance_id: group.group_instance_id.clone().unwrap_or_default(),
            topics,
        };
        self.retry(|| async { answered(client.txn_offset_commit(commit.clone()).await?) })
            .await
    }

    /// Sends every record of the open transaction, then commits it: its
    /// records and offsets become visible to read_committed consumers at
    /// once. Fails, leaving only `abort_transaction`, if any record of it
    /// failed.
    pub async fn commit_transaction(&self) -> Result<()> {
        self.end(true, false).await
    }

    /// Aborts the open (or prepared) transaction: its records are never
    /// shown to read_committed consumers, its offsets never take effect.
    pub async fn abort_transaction(&self) -> Result<()> {
        self.end(false, false).await
    }

    /// Two-phase commit, first phase: sends every record of the open
    /// transaction and makes it durable as prepared. The coordinator then
    /// never aborts it by timeout; this producer, or one that resumes it
    /// with [`Producer::init_transactions_keep_prepared`] after a crash,
    /// commits or aborts it.
    pub async fn prepare_transaction(&self) -> Result<()> {
        self.end(false, true).await
    }

    async fn end(&self, commit: bool, prepare: bool) -> Result<()> {
        let phase = self.phase();
        let allowed = match (prepare, commit) {
            (true, _) => phase == TxnPhase::Open,
            (false, _) => matches!(phase, TxnPhase::Open | TxnPhase::Prepared),
        };
        if !allowed {
            return Err(invalid_state("no transaction is open"));
        }
        self.flush().await?;
        let failure = self.shared.accumulator.lock().transaction_failure.clone();
        if let (Some(failure), true) = (failure, commit || prepare) {
            return Err(invalid_state(&format!(
                "the transaction cannot commit: {failure}; abort it"
            )));
        }
        let identity = self.identity()?;
        let request = EndTxnRequest {
            transactional_id: self.transactional_id()?,
            producer_id: identity.id,
            producer_epoch: i32::from(identity.epoch),
            commit,
            prepare,
            keep_epoch: false,
        };
        let client = &self.shared.client;
        let answer = self
            .retry(|| async {
                let r = client.end_txn(request.clone()).await?;
                ClientError::from_code(r.error, &r.message).map_or(Ok(r), Err)
            })
            .await?;
        if prepare {
            self.set_phase(TxnPhase::Prepared);
            return Ok(());
        }
        self.start_epoch(identity.id, answer.producer_epoch)?;
        self.set_phase(TxnPhase::Ready);
        Ok(())
    }
}

fn invalid_state(message: &str) -> ClientError {
    ClientError::Broker {
        code: ErrorCode::InvalidTxnState,
        message: message.to_string(),
    }
}

fn answered(response: TxnResponse) -> Result<()> {
    ClientError::from_code(response.error, &response.message).map_or(Ok(()), Err)
}

impl Producer {
    /// Runs `call` until it succeeds, fails for good, or
    /// [`COORDINATOR_PATIENCE`] passes. An answer that does not come within
    /// `request_timeout` counts as a retriable failure: a response lost on
    /// a live connection must not hang the transaction (a retried request
    /// is answered as the first: see the coordinator).
    async fn retry<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let timeout = self.shared.config.request_timeout;
        let deadline = tokio::time::Instant::now() + COORDINATOR_PATIENCE.max(timeout);
        loop {
            let answered = tokio::time::timeout(timeout, call())
                .await
                .unwrap_or_else(|_| {
                    Err(ClientError::Timeout(format!(
                        "no answer from the transaction coordinator within {timeout:?}"
                    )))
                });
            match answered {
                Err(e) if e.is_retriable() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                outcome => return outcome,
            }
        }
    }
}
