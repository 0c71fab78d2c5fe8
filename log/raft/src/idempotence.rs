//! Idempotence on a replicated partition: the leader decides, before it
//! proposes, which batches are new.
//!
//! A duplicate must be caught before it is proposed: the segment log is
//! the Raft log, so a proposed batch is a record the moment it commits.
//! Every replica's state machine records each applied batch in the
//! partition's producer table ([`SharedProducers`]); the leader checks a
//! batch against a *view*: that table as it stood once everything in the
//! leader's log was applied, plus every batch the leader proposed since.
//!
//! Why the view is right: it is built anew in each term the replica leads,
//! after the applied table caught up with the replica's whole log (which
//! holds every committed entry, since Raft elects only such a leader), and
//! in that term only this leader appends, always through the view (the
//! replica proposes under one lock). A proposal rejected because the
//! leadership was lost only leaves the view of a term that is over, and a
//! write abandoned between admitting and proposing its batches drops the
//! view (see [`Proposing`]). So a batch is in the view exactly when it is
//! in the log or on its way there.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::{PartitionRaftConfig, SharedProducers};
use crate::producers::{Admission, BatchOffsets, ProducerBatch, ProducerStates};
use crate::{ReplicationError, Result};

/// The leader's view of the producer table in one term.
#[derive(Default)]
pub(super) struct LeaderView {
    view: Mutex<Option<(u64, ProducerStates)>>,
}

/// What the leader does with one batch of a request.
pub(super) enum Decision {
    Propose,
    /// Already in the log, or proposed: answered with the original's
    /// offsets once they are known.
    Duplicate(ProducerBatch, Option<BatchOffsets>),
}

impl LeaderView {
    /// Makes the view current for the term this replica leads, waiting (up
    /// to `timeout`) until everything in its log is applied when the term
    /// is new to it. Fails with [`ReplicationError::NotLeader`] on a follower.
    pub(super) async fn prepare(
        &self,
        raft: &openraft::Raft<PartitionRaftConfig>,
        applied: &SharedProducers,
        timeout: Duration,
    ) -> Result<()> {
        let term = super::leadership::current_leader_term(raft)?;
        if matches!(&*self.view.lock(), Some((t, _)) if *t == term) {
            return Ok(());
        }
        super::leadership::caught_up_in(raft, term, timeout).await?;
        let states = applied.lock().clone();
        *self.view.lock() = Some((term, states));
        Ok(())
    }

    /// Whether the view has a transaction of `producer_id` at `epoch`
    /// open on the partition.
    pub(super) fn transaction_open(&self, producer_id: i64, epoch: i16) -> bool {
        let view = self.view.lock();
        view.as_ref()
            .and_then(|(_, states)| states.get(producer_id))
            .is_some_and(|entry| entry.epoch == epoch && entry.in_transaction)
    }

    /// Checks one request's batches (each a producer's, or `None`) in
    /// order and records those to propose in the view; if any is refused,
    /// the view is left as it was. Call after [`LeaderView::prepare`],
    /// under the replica's proposing lock.
    pub(super) fn admit(
        &self,
        batches: &[Option<ProducerBatch>],
        now_ms: i64,
    ) -> Result<Vec<Decision>> {
        let mut view = self.view.lock();
        let Some((_, states)) = view.as_mut() else {
            return Err(ReplicationError::NotLeader { leader: None });
        };
        let mut saved = Vec::new();
        let mut decisions = Vec::with_capacity(batches.len());
        for batch in batches {
            let Some(batch) = batch else {
                decisions.push(Decision::Propose);
                continue;
            };
            match states.check(batch) {
                Ok(Admission::Append) => {
                    saved.push((batch.producer_id, states.get(batch.producer_id).cloned()));
                    states.record(batch, None, now_ms);
                    decisions.push(Decision::Propose);
                }
                Ok(Admission::Duplicate(offsets)) => {
                    decisions.push(Decision::Duplicate(*batch, offsets))
                }
                Err(e) => {
                    for (producer_id, entry) in saved.into_iter().rev() {
                        states.restore(producer_id, entry);
                    }
                    return Err(e);
                }
            }
        }
        Ok(decisions)
    }
}

/// Invalidates the view when dropped before [`Proposing::done`]: batches
/// admitted into the view must all be proposed, and a caller that gives
/// up in between (a client that hung up cancels the request) would leave
/// the view holding batches that never reach the log, whose retries would
/// then wait forever for an original. The next write rebuilds the view
/// from the applied table once the log is applied.
pub(super) struct Proposing<'a> {
    view: &'a LeaderView,
    done: bool,
}

impl LeaderView {
    /// A guard to hold from [`LeaderView::admit`] until every admitted
    /// batch is proposed.
    pub(super) fn proposing(&self) -> Proposing<'_> {
        Proposing {
            view: self,
            done: false,
        }
    }
}

impl Proposing<'_> {
    pub(super) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Proposing<'_> {
    fn drop(&mut self) {
        if !self.done {
            *self.view.view.lock() = None;
        }
    }
}

/// Where the duplicate `batch` landed, waiting up to `timeout` for the
/// applied table to show it when the original is still on its way.
pub(super) async fn original_offsets(
    applied: &SharedProducers,
    high_watermark: &watch::Receiver<u64>,
    batch: &ProducerBatch,
    timeout: Duration,
) -> Result<BatchOffsets> {
    let mut changes = high_watermark.clone();
    let found = async {
        loop {
            if let Ok(Admission::Duplicate(Some(offsets))) = applied.lock().check(batch) {
                return Ok(offsets);
            }
            if changes.changed().await.is_err() {
                return Err(ReplicationError::Closed(
                    "the partition's group stopped".into(),
                ));
            }
        }
    };
    match tokio::time::timeout(timeout, found).await {
        Ok(outcome) => outcome,
        Err(_) => Err(ReplicationError::Timeout(format!(
            "the original of producer {}'s batch {}..={} did not commit within {timeout:?}",
            batch.producer_id, batch.first_sequence, batch.last_sequence
        ))),
    }
}
