//! Group consumption: subscribing, rebalancing from `poll`, committing.
//!
//! A rebalance runs inside `poll`, so the application sees revocations and
//! assignments (through its [`RebalanceListener`]) between two polls, never
//! in the middle of processing. With an eager assignor every partition is
//! revoked (and its progress committed) before rejoining; with the
//! cooperative-sticky assignor the consumer keeps reading what it keeps, and
//! only revoked partitions are committed and handed back, after which it
//! rejoins once more so they can be assigned elsewhere.

use std::collections::BTreeSet;
use std::time::Instant;

use super::{Consumer, Position};
use crate::group::{commit_topics, GroupSettings, Membership, RebalanceListener, RejoinHandle};
use crate::TopicPartition;
use crate::{ClientError, Result};
use spool_protocol::proto::{ErrorCode, IsolationLevel, OffsetCommitRequest, OffsetFetchRequest};

/// How long a read_committed consumer waits for open transactions that
/// hold offsets of its new partitions before it gives up on them.
const UNSTABLE_OFFSETS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

impl Consumer {
    /// Joins the group `settings.group_id` and reads the partitions of
    /// `topics` the group assigns to this consumer. The join happens in the
    /// next `poll`.
    pub fn subscribe<T: Into<String>>(
        &mut self,
        topics: impl IntoIterator<Item = T>,
        settings: GroupSettings,
    ) {
        self.assign(std::iter::empty());
        self.group = Some(Membership::new(
            settings,
            topics.into_iter().map(Into::into).collect(),
        ));
    }

    /// Called around every rebalance from inside `poll`.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    /// Whether the next `poll` will rebalance (the group asked this member
    /// to rejoin): a transactional loop commits its work before that poll
    /// rather than lose it to the revocation.
    pub fn rebalance_pending(&self) -> bool {
        self.group.as_ref().is_some_and(|m| m.needs_rejoin())
    }

    /// Forgets every position and buffered record, and starts each
    /// assigned partition again from its committed offset (or the reset
    /// policy): how a transactional loop whose transaction aborted goes
    /// back to what it last committed.
    pub async fn rewind_to_committed(&mut self) -> Result<()> {
        let assigned = self.assignment();
        self.buffered.clear();
        for tp in &assigned {
            self.positions
                .insert(tp.clone(), Position::Reset(self.config.offset_reset));
        }
        self.load_committed(&assigned).await
    }

    /// The group generation and member id, once joined.
    pub fn group_generation(&self) -> Option<(i32, String)> {
        self.group.as_ref().map(Membership::generation)
    }

    /// Rejoins the group and applies the new assignment. The membership
    /// stays in `self.group` throughout, so a `poll` cancelled mid-rebalance
    /// leaves a consumer that simply rejoins on its next poll.
    pub(super) async fn rebalance(&mut self) -> Result<()> {
        loop {
            let Some(membership) = self.group.as_ref() else {
                return Ok(());
            };
            let owned = self.assignment();
            let lost = membership.partitions_lost();
            if !owned.is_empty() && (lost || !membership.is_cooperative()) {
                // Eager protocol: give everything up before rejoining. Lost
                // partitions already belong to others: no commit for them.
                if !lost {
                    self.commit_if_auto(&owned).await;
                }
                self.notify(&owned, |l, p| l.on_partitions_revoked(p));
                self.assign(std::iter::empty());
            }
            let owned: BTreeSet<TopicPartition> = self.assignment().into_iter().collect();
            let claimed: Vec<TopicPartition> = owned.iter().cloned().collect();
            let membership = self.group.as_mut().expect("checked above");
            let rebalanced = membership.rejoin(&self.client, &claimed).await?;
            // The group may have dropped us during the join itself.
            let lost = membership.take_lost();
            let assigned: BTreeSet<TopicPartition> = rebalanced.assigned.into_iter().collect();
            let revoked: Vec<TopicPartition> = owned.difference(&assigned).cloned().collect();
            if !revoked.is_empty() {
                if !lost {
                    self.commit_if_auto(&revoked).await;
                }
                self.notify(&revoked, |l, p| l.on_partitions_revoked(p));
            }
            if lost {
                // Positions of partitions we "kept" may be stale: start
                // every assigned partition from its committed offset.
                self.assign(std::iter::empty());
            }
            let kept: BTreeSet<TopicPartition> = self.assignment().into_iter().collect();
            let added: Vec<TopicPartition> = assigned.difference(&kept).cloned().collect();
            self.assign(assigned.iter().cloned());
            self.load_committed(&added).await?;
            self.notify(&added, |l, p| l.on_partitions_assigned(p));
            if !rebalanced.cooperative || revoked.is_empty() {
                return Ok(());
            }
        }
    }

    fn notify(
        &mut self,
        partitions: &[TopicPartition],
        call: impl FnOnce(&mut dyn RebalanceListener, &[TopicPartition]),
    ) {
        if let (Some(listener), false) = (self.listener.as_mut(), partitions.is_empty()) {
            call(listener.as_mut(), partitions);
        }
    }

    /// Starts newly assigned partitions at their committed offsets.
    async fn load_committed(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let Some(membership) = self.group.as_ref() else {
            return Ok(());
        };
        if partitions.is_empty() {
            return Ok(());
        }
        // A read_committed consumer must not start from offsets an open
        // transaction may still commit or abort: it waits for them.
        let require_stable = self.config.isolation == IsolationLevel::ReadCommitted;
        let request = OffsetFetchRequest {
            group_id: membership.settings().group_id.clone(),
            topics: commit_topics(partitions.iter().map(|tp| (tp.clone(), 0))),
            require_stable,
        };
        let deadline = std::time::Instant::now() + UNSTABLE_OFFSETS_PATIENCE;
        let response = loop {
            let response = self.client.offset_fetch(request.clone()).await?;
            match ClientError::from_code(response.error, &response.message) {
                Some(e)
                    if e.code() == ErrorCode::UnstableOffsetCommit
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(super::RETRY_BACKOFF).await;
                }
                Some(e) => return Err(e),
                None => break response,
            }
        };
        for committed in response.offsets.into_iter().filter(|c| c.found) {
            let tp = TopicPartition::new(committed.topic, committed.partition);
            if let Some(position) = self.positions.get_mut(&tp) {
                *position = Position::At(committed.offset);
            }
        }
        Ok(())
    }

    /// The offset of the next record `poll` will return for `tp`: the first
    /// buffered record, or the fetch position.
    pub(super) fn consumed_position(&self, tp: &TopicPartition) -> Option<u64> {
        let buffered = self
            .buffered
            .iter()
            .find(|r| *r.topic == *tp.topic && r.partition == tp.partition);
        match (buffered, self.positions.get(tp)) {
            (Some(record), _) => Some(record.offset),
            (None, Some(Position::At(offset))) => Some(*offset),
            _ => None,
        }
    }

    /// The group this consumer is a member of, for committing its offsets
    /// inside a producer's transaction
    /// ([`crate::Producer::send_offsets_to_transaction`]); `None`
    /// outside a group.
    pub fn group_metadata(&self) -> Option<crate::GroupMetadata> {
        let membership = self.group.as_ref()?;
        let (generation_id, member_id) = membership.generation();
        let settings = membership.settings();
        Some(crate::GroupMetadata {
            group_id: settings.group_id.clone(),
            generation_id,
            member_id,
            group_instance_id: settings.instance_id.clone(),
        })
    }

    /// The position of every assigned partition, as `commit_sync` would
    /// commit it: what a transactional loop sends with
    /// `send_offsets_to_transaction`.
    pub fn positions(&self) -> Vec<(TopicPartition, u64)> {
        self.current_positions(&self.assignment())
    }

    /// Commits the position of every assigned partition: everything `poll`
    /// has returned counts as processed.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.current_positions(&self.assignment());
        self.commit_offsets(&offsets).await
    }

    /// Commits the given offsets (the next offset to read, as in Kafka).
    pub async fn commit_offsets(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<()> {
        let (request, rejoin) = commit_request(self.membership()?, offsets);
        send_commit(self.client.clone(), request, rejoin).await?;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Commits the position of every assigned partition without waiting:
    /// the returned task resolves with the outcome (dropping it is fine; a
    /// refused commit still makes the consumer rejoin).
    pub fn commit_async(&mut self) -> Result<tokio::task::JoinHandle<Result<()>>> {
        let offsets = self.current_positions(&self.assignment());
        let (request, rejoin) = commit_request(self.membership()?, &offsets);
        self.last_commit = Instant::now();
        Ok(tokio::spawn(send_commit(
            self.client.clone(),
            request,
            rejoin,
        )))
    }

    fn current_positions(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, u64)> {
        partitions
            .iter()
            .filter_map(|tp| self.consumed_position(tp).map(|o| (tp.clone(), o)))
            .collect()
    }

    fn membership(&self) -> Result<&Membership> {
        self.group.as_ref().ok_or_else(|| {
            ClientError::InvalidRequest("commits need a group: subscribe first".into())
        })
    }

    /// Commits `partitions` when auto-commit is on; failures are logged, as
    /// the records will simply be read again.
    async fn commit_if_auto(&mut self, partitions: &[TopicPartition]) {
        let Some(membership) = self.group.as_ref().filter(|m| m.settings().auto_commit) else {
            return;
        };
        let (request, rejoin) = commit_request(membership, &self.current_positions(partitions));
        match send_commit(self.client.clone(), request, rejoin).await {
            Ok(()) => self.last_commit = Instant::now(),
            Err(e) => tracing::info!(error = %e, "auto-commit before a rebalance failed"),
        }
    }

    pub(super) async fn maybe_auto_commit(&mut self) -> Result<()> {
        let due = self.group.as_ref().is_some_and(|m| {
            m.settings().auto_commit
                && !m.needs_rejoin()
                && self.last_commit.elapsed() >= m.settings().auto_commit_interval
        });
        if due {
            if let Err(e) = self.commit_sync().await {
                tracing::info!(error = %e, "auto-commit failed; will retry");
            }
        }
        Ok(())
    }

    /// Commits (with auto-commit on) and leaves the group.
    pub async fn close(mut self) -> Result<()> {
        if let Some(mut membership) = self.group.take() {
            if membership.settings().auto_commit && !membership.needs_rejoin() {
                self.group = Some(membership);
                let committed = self.commit_sync().await;
                membership = self.group.take().expect("just put back");
                committed?;
            }
            membership.leave(&self.client).await?;
        }
        Ok(())
    }
}

fn commit_request(
    membership: &Membership,
    offsets: &[(TopicPartition, u64)],
) -> (OffsetCommitRequest, RejoinHandle) {
    let (generation, member_id) = membership.generation();
    let request = OffsetCommitRequest {
        group_id: membership.settings().group_id.clone(),
        generation_id: generation,
        member_id,
        group_instance_id: membership
            .settings()
            .instance_id
            .clone()
            .unwrap_or_default(),
        topics: commit_topics(offsets.iter().cloned()),
    };
    (request, membership.rejoin_handle())
}

/// Sends a commit; a refusal because the group moved on marks the member
/// for a rejoin.
async fn send_commit(
    client: crate::Client,
    request: OffsetCommitRequest,
    rejoin: RejoinHandle,
) -> Result<()> {
    if request.topics.is_empty() {
        return Ok(());
    }
    let response = client.offset_commit(request).await?;
    match ClientError::from_code(response.error, &response.message) {
        None => Ok(()),
        Some(e) => {
            if matches!(
                e.code(),
                ErrorCode::IllegalGeneration
                    | ErrorCode::UnknownMemberId
                    | ErrorCode::RebalanceInProgress
            ) {
                rejoin.request();
            }
            Err(e)
        }
    }
}
