//! The write path of a partition replica: proposing record batches through
//! its Raft group and answering once they are where `acks` asked.
//!
//! A write has two phases, so that a caller can keep the order of several
//! writes while waiting for them together:
//!
//! 1. [`PartitionReplica::propose_batches`] validates the batches, checks
//!    idempotent producers' sequences against the leader's view and hands
//!    the new batches to openraft, all under the replica's proposing lock:
//!    one call's batches are consecutive entries, and calls reach the log
//!    in the order they were proposed.
//! 2. [`ProposedBatches::answered`] waits until each batch is committed
//!    (or, for `acks=leader`, in the leader's log) and says where it is.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::ClientWriteError;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::idempotence::{original_offsets, Decision};
use super::{BatchPayload, PartitionRaftConfig, PartitionReplica, SharedProducers};
use crate::producers::{BatchOffsets, ProducerBatch};
use crate::{ReplicationError, Result};
use spool_record::RecordBatch;

/// Where a committed batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommittedBatch {
    pub base_offset: u64,
    /// The offset after the batch.
    pub next_offset: u64,
}

/// When a write to a replicated partition is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerWhen {
    /// Once the leader's own log holds the batches (in the page cache,
    /// before any sync): Kafka's `acks=1`. Such a write is lost if the
    /// leader fails before a majority holds it; readers still see it only
    /// once it is committed.
    LeaderAppended,
    /// Once committed: on disk on a majority of the voters.
    Committed,
}

/// What answers a proposed entry.
type ProposalReceiver = oneshot::Receiver<openraft::raft::ClientWriteResult<PartitionRaftConfig>>;

/// One batch of a request on its way to an answer.
enum Pending {
    Proposed(ProposalReceiver),
    /// Answered once the leader's log holds it; the commit's answer tells
    /// why, should it never get there.
    Appended(oneshot::Receiver<BatchOffsets>, ProposalReceiver),
    /// A duplicate whose original's offsets are known.
    Known(BatchOffsets),
    /// A duplicate of a batch still on its way.
    Original(ProducerBatch),
}

/// Batches handed to Raft, whose answers are still to come.
pub struct ProposedBatches {
    pending: Vec<Pending>,
    producers: SharedProducers,
    high_watermark: watch::Receiver<u64>,
    /// `group on node`, for errors.
    label: String,
    deadline: Instant,
    timeout: Duration,
}

impl PartitionReplica {
    /// Appends one record batch through Raft and answers once it is
    /// committed: on disk on a majority of the voters. Fails with
    /// [`ReplicationError::NotLeader`] on a follower, and with a timeout when no
    /// commit came within `timeout` (a leader cut off from its majority):
    /// such a batch may still commit later, as in Kafka.
    pub async fn append(&self, batch: Vec<u8>, timeout: Duration) -> Result<CommittedBatch> {
        let offsets = self
            .append_batches(vec![Bytes::from(batch)], AnswerWhen::Committed, timeout)
            .await?;
        let placed = offsets.first().ok_or_else(|| {
            ReplicationError::Replication("a committed append reported no offsets".into())
        })?;
        Ok(CommittedBatch {
            base_offset: placed.base,
            next_offset: placed.next,
        })
    }

    /// [`PartitionReplica::append`] for several batches, one Raft entry
    /// each, proposed in order without waiting in between (openraft
    /// batches them into few appends and replication rounds) and with no
    /// other call's entries between them. Answers with where each batch
    /// is once all are committed, or with `AnswerWhen::LeaderAppended`
    /// once all are in this leader's log; fails if any fails (earlier ones
    /// may then be committed).
    ///
    /// A batch of an idempotent producer that the partition already holds
    /// (or that this leader proposed) is not proposed again: it is
    /// answered with the original's offsets. One out of sequence, or of a
    /// fenced epoch, fails the call before anything is proposed.
    pub async fn append_batches(
        &self,
        batches: Vec<Bytes>,
        answer: AnswerWhen,
        timeout: Duration,
    ) -> Result<Vec<BatchOffsets>> {
        self.propose_batches(batches, answer, timeout)
            .await?
            .answered()
            .await
    }

    /// The first phase of [`PartitionReplica::append_batches`]: once this
    /// returns, the batches are in openraft's hands in the order of the
    /// calls, and `timeout` runs on for the answers.
    pub async fn propose_batches(
        &self,
        batches: Vec<Bytes>,
        answer: AnswerWhen,
        timeout: Duration,
    ) -> Result<ProposedBatches> {
        let deadline = Instant::now() + timeout;
        if batches.is_empty() {
            return Err(ReplicationError::InvalidRequest(
                "no batches to append".into(),
            ));
        }
        // Validated here, once: the log stores of the leader and followers
        // check only framing and CRC, and an entry they refused would stop
        // the group.
        let mut producers = Vec::with_capacity(batches.len());
        for batch in &batches {
            self.log.validate_producer_batches(batch)?;
            producers.push(ProducerBatch::of(&RecordBatch::parse(batch)?.0)?);
        }
        let propose = async {
            let mut pending = Vec::with_capacity(batches.len());
            let _proposing = self.proposing.lock().await;
            self.producer_view
                .prepare(&self.raft, &self.producers, timeout)
                .await?;
            let decisions = self
                .producer_view
                .admit(&producers, self.log.now_ms() as i64)?;
            let proposing = self.producer_view.proposing();
            for (batch, decision) in batches.into_iter().zip(decisions) {
                pending.push(match decision {
                    Decision::Propose => self.propose(batch, answer).await?,
                    Decision::Duplicate(_, Some(offsets)) => Pending::Known(offsets),
                    Decision::Duplicate(batch, None) => Pending::Original(batch),
                });
            }
            proposing.done();
            Ok::<_, ReplicationError>(pending)
        };
        let pending = match tokio::time::timeout_at(deadline, propose).await {
            Ok(pending) => pending?,
            Err(_) => return Err(self.no_answer_within(timeout)),
        };
        Ok(ProposedBatches {
            pending,
            producers: Arc::clone(&self.producers),
            high_watermark: self.high_watermark.clone(),
            label: self.label(),
            deadline,
            timeout,
        })
    }

    /// Raises every replica's log start to `offset` (Kafka's
    /// DeleteRecords) by a log-start entry, answered once it is committed
    /// and applied here with the log start it left: never above the high
    /// watermark, never lower than before.
    pub async fn raise_log_start(&self, offset: u64, timeout: Duration) -> Result<u64> {
        let proposal = async {
            let payload = BatchPayload::new(super::entry::log_start_batch(offset));
            let receiver = self
                .raft
                .client_write_ff(payload)
                .await
                .map_err(|e| self.replication_error(e))?;
            committed(receiver, &self.label()).await
        };
        match tokio::time::timeout(timeout, proposal).await {
            Ok(applied) => Ok(applied?.base),
            Err(_) => Err(self.no_answer_within(timeout)),
        }
    }

    /// Proposes one batch, to be answered as `answer` says.
    async fn propose(&self, batch: Bytes, answer: AnswerWhen) -> Result<Pending> {
        let write = |payload| async {
            self.raft
                .client_write_ff(payload)
                .await
                .map_err(|e| self.replication_error(e))
        };
        Ok(match answer {
            AnswerWhen::Committed => Pending::Proposed(write(BatchPayload::new(batch)).await?),
            AnswerWhen::LeaderAppended => {
                let (payload, appended) = BatchPayload::noticed(batch);
                Pending::Appended(appended, write(payload).await?)
            }
        })
    }

    fn no_answer_within(&self, timeout: Duration) -> ReplicationError {
        timed_out(&self.label(), timeout)
    }

    fn label(&self) -> String {
        format!("group {} on node {}", self.group, self.node)
    }
}

fn timed_out(label: &str, timeout: Duration) -> ReplicationError {
    ReplicationError::Timeout(format!("{label}: no commit within {timeout:?}"))
}

impl ProposedBatches {
    /// Where each batch is, once all are where the proposal asked; fails
    /// if any fails or the proposal's timeout passes first.
    pub async fn answered(self) -> Result<Vec<BatchOffsets>> {
        let ProposedBatches {
            pending,
            producers,
            high_watermark,
            label,
            deadline,
            timeout,
        } = self;
        let answers = async {
            let mut offsets = Vec::with_capacity(pending.len());
            for pending in pending {
                offsets.push(match pending {
                    Pending::Proposed(receiver) => committed(receiver, &label).await?,
                    Pending::Appended(appended, receiver) => match appended.await {
                        Ok(offsets) => offsets,
                        // Never appended: the commit's answer says why.
                        Err(_) => committed(receiver, &label).await?,
                    },
                    Pending::Known(offsets) => offsets,
                    Pending::Original(batch) => {
                        original_offsets(&producers, &high_watermark, &batch, timeout).await?
                    }
                });
            }
            Ok(offsets)
        };
        match tokio::time::timeout_at(deadline, answers).await {
            Ok(outcome) => outcome,
            Err(_) => Err(timed_out(&label, timeout)),
        }
    }
}

/// Where a proposed batch landed, once it is committed and applied.
async fn committed(receiver: ProposalReceiver, label: &str) -> Result<BatchOffsets> {
    let failed = |reason: &dyn std::fmt::Display| {
        ReplicationError::Replication(format!("{label}: {reason}"))
    };
    let response = match receiver.await {
        Ok(Ok(response)) => response,
        Ok(Err(ClientWriteError::ForwardToLeader(forward))) => {
            return Err(ReplicationError::NotLeader {
                leader: forward.leader_id,
            })
        }
        Ok(Err(e)) => return Err(failed(&e)),
        Err(_) => return Err(failed(&"the group stopped before answering")),
    };
    let (base, next) = response
        .data
        .offsets
        .ok_or_else(|| failed(&"a data entry was applied without offsets"))?;
    Ok(BatchOffsets { base, next })
}
