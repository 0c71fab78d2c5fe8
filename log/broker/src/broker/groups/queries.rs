//! The offset and inspection requests of the group coordinator: commits,
//! offset fetches, and listing and describing groups. Split from
//! `coordinator.rs`, which owns membership and rebalances.

use std::sync::Arc;

use super::coordinator::{check_member, GroupCoordinator};
use super::offsets::Committed;
use super::offsets::Shard;
use super::state::GroupState;
use crate::broker::checks::validate_group_id;
use crate::{BrokerError, Result};
use spool_protocol::errors::ErrorResponse;
use spool_protocol::proto::*;

/// How long a commit waits for its batch to be committed: Kafka's
/// `offsets.commit.timeout.ms` default.
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The commits a request carries.
fn commits_of(request: &OffsetCommitRequest) -> Vec<(String, u32, Committed)> {
    request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.clone(),
                    p.partition,
                    Committed {
                        offset: p.offset,
                        metadata: p.metadata.clone(),
                    },
                )
            })
        })
        .collect()
}

impl GroupCoordinator {
    /// OffsetCommit. Members commit with their generation; a commit with
    /// generation -1 comes from outside the protocol and is accepted only
    /// while the group has no members.
    pub(crate) async fn commit_offsets(
        &self,
        shard: &Shard,
        request: OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        let check = || self.check_committer(&request);
        match self.write_commits(shard, &request, None, check).await {
            Ok(()) => OffsetCommitResponse::default(),
            Err(e) => e.response(),
        }
    }

    /// Proposes `request`'s commits (as `transaction`'s, when given) if
    /// `check` lets them through, and waits until they are committed.
    /// The check and the proposal happen under the shard's
    /// order lock, so a member that has just lost its partitions cannot
    /// propose after the new owner: commits reach the log in the order
    /// they were accepted. The wait for the commit comes after.
    async fn write_commits(
        &self,
        shard: &Shard,
        request: &OffsetCommitRequest,
        transaction: Option<(i64, i16)>,
        check: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let commits = commits_of(request);
        let proposed = {
            let _order = shard.order.lock().await;
            check()?;
            if commits.is_empty() {
                // Nothing to write: the answer is the check's, as Kafka's.
                return Ok(());
            }
            shard
                .offsets
                .propose(&request.group_id, &commits, transaction, COMMIT_TIMEOUT)
                .await?
        };
        shard.offsets.committed(proposed).await
    }

    /// Whether `request` may commit for its group, checked as Kafka's
    /// classic group coordinator checks it, in the same order:
    ///
    /// - generation -1 commits (a simple consumer, the admin client) while
    ///   the group has no members; a group the coordinator does not know
    ///   is such a group;
    /// - a request naming a member (an id, an instance or a generation)
    ///   must be of a current member (`FENCED_INSTANCE_ID`,
    ///   `UNKNOWN_MEMBER_ID`) in the current generation
    ///   (`ILLEGAL_GENERATION`); one naming none is refused
    ///   (`UNKNOWN_MEMBER_ID`) while the group has members;
    /// - a current member's commit while the group waits for its leader's
    ///   assignment gets `REBALANCE_IN_PROGRESS` (it learned the new
    ///   generation from JoinGroup but not yet what it owns), and one while
    ///   the group prepares a rebalance is accepted: its generation is
    ///   still current, and its partitions are still its own.
    fn check_committer(&self, request: &OffsetCommitRequest) -> Result<()> {
        let names_member = request.generation_id >= 0
            || !request.member_id.is_empty()
            || !request.group_instance_id.is_empty();
        let groups = self.groups.lock();
        let Some(group) = groups.get(&request.group_id) else {
            if names_member {
                // Kafka before OffsetCommit v9 (GROUP_ID_NOT_FOUND after).
                return Err(BrokerError::coded(
                    ErrorCode::IllegalGeneration,
                    "unknown group",
                ));
            }
            return validate_group_id(&request.group_id)
                .map_err(|e| BrokerError::coded(ErrorCode::InvalidGroupId, e.to_string()));
        };
        if request.generation_id < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        if names_member {
            check_member(
                group,
                &request.member_id,
                &request.group_instance_id,
                request.generation_id,
            )
            .map_err(|code| BrokerError::coded(code, format!("{code:?}")))?;
        } else if group.state != GroupState::Empty {
            return Err(BrokerError::coded(
                ErrorCode::UnknownMemberId,
                "the group has members; commit as one of them",
            ));
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(BrokerError::coded(
                ErrorCode::RebalanceInProgress,
                "the group is completing a rebalance",
            ));
        }
        Ok(())
    }

    pub(crate) fn fetch_offsets(
        &self,
        shard: &Shard,
        request: OffsetFetchRequest,
    ) -> OffsetFetchResponse {
        if let Err(e) = shard.offsets.catch_up() {
            return e.response();
        }
        let offsets: Vec<CommittedOffset> = if request.topics.is_empty() {
            shard
                .offsets
                .fetch_all(&request.group_id)
                .into_iter()
                .map(|(topic, partition, c)| CommittedOffset {
                    topic,
                    partition,
                    offset: c.offset,
                    found: true,
                    metadata: c.metadata,
                })
                .collect()
        } else {
            request
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| (t.name.clone(), p.partition))
                })
                .map(|(topic, partition)| {
                    match shard.offsets.fetch(&request.group_id, &topic, partition) {
                        Some(c) => CommittedOffset {
                            topic,
                            partition,
                            offset: c.offset,
                            found: true,
                            metadata: c.metadata,
                        },
                        None => CommittedOffset {
                            topic,
                            partition,
                            ..Default::default()
                        },
                    }
                })
                .collect()
        };
        let unstable = offsets.iter().find(|o| {
            shard
                .offsets
                .has_pending(&request.group_id, &o.topic, o.partition)
        });
        if let (true, Some(open)) = (request.require_stable, unstable) {
            return OffsetFetchResponse::failed(
                ErrorCode::UnstableOffsetCommit,
                format!(
                    "an open transaction holds an offset of {}-{} for group `{}`",
                    open.topic, open.partition, request.group_id
                ),
            );
        }
        OffsetFetchResponse {
            offsets,
            ..Default::default()
        }
    }

    /// TxnOffsetCommit: offsets written as part of a transaction, fenced
    /// like a member's commit (generation and member id, unless the
    /// generation is -1) and by the producer's epoch; they take effect
    /// when the transaction commits. The caller checked with the
    /// transaction's coordinator that the group's offsets partition is in
    /// the transaction.
    pub(crate) async fn commit_txn_offsets(
        &self,
        shard: &Shard,
        request: TxnOffsetCommitRequest,
        producer: (i64, i16),
    ) -> TxnResponse {
        let as_commit = OffsetCommitRequest {
            group_id: request.group_id,
            generation_id: request.generation_id,
            member_id: request.member_id,
            group_instance_id: request.group_instance_id,
            topics: request.topics,
        };
        let check = || self.check_txn_committer(&as_commit);
        match self
            .write_commits(shard, &as_commit, Some(producer), check)
            .await
        {
            Ok(()) => TxnResponse::default(),
            Err(e) => e.response(),
        }
    }

    /// A transactional commit that names no member (Kafka's producers
    /// without group metadata) is not fenced by the group; one that names
    /// one is checked as any commit.
    fn check_txn_committer(&self, request: &OffsetCommitRequest) -> Result<()> {
        let names_member = request.generation_id >= 0
            || !request.member_id.is_empty()
            || !request.group_instance_id.is_empty();
        if !names_member {
            return validate_group_id(&request.group_id)
                .map_err(|e| BrokerError::coded(ErrorCode::InvalidGroupId, e.to_string()));
        }
        self.check_committer(request)
    }

    /// The groups this broker coordinates now: those in memory and those
    /// with committed offsets in the shards it leads.
    pub fn list_groups(&self) -> ListGroupsResponse {
        let shards: Vec<Arc<Shard>> = self.shards.current();
        let groups = self.groups.lock();
        let mut listings: Vec<GroupListing> = groups
            .values()
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                state: g.state.name().into(),
                protocol_type: g.protocol_type.clone(),
            })
            .collect();
        for id in shards.iter().flat_map(|s| s.offsets.groups()) {
            if !groups.contains_key(&id) {
                listings.push(GroupListing {
                    group_id: id,
                    state: GroupState::Empty.name().into(),
                    ..Default::default()
                });
            }
        }
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        ListGroupsResponse { groups: listings }
    }

    /// Every committed offset in the shards this broker leads now, as
    /// (group, topic, partition, offset), for metrics.
    pub fn committed_offsets(&self) -> Vec<(String, String, u32, u64)> {
        let mut all = Vec::new();
        for shard in self.shards.current() {
            for group in shard.offsets.groups() {
                for (topic, partition, committed) in shard.offsets.fetch_all(&group) {
                    all.push((group.clone(), topic, partition, committed.offset));
                }
            }
        }
        all
    }

    /// One group as this coordinator sees it: a group it knows nothing of
    /// (no members, no committed offsets) is `Dead`, as in Kafka.
    pub(crate) fn describe_group(&self, shard: &Shard, id: String) -> GroupDescription {
        let groups = self.groups.lock();
        match groups.get(&id) {
            Some(g) => GroupDescription {
                group_id: id,
                state: g.state.name().into(),
                protocol_name: g.protocol.clone().unwrap_or_default(),
                protocol_type: match g.members.is_empty() {
                    true => String::new(),
                    false => g.protocol_type.clone(),
                },
                generation_id: g.generation,
                members: g
                    .members
                    .values()
                    .map(|m| GroupMemberDescription {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone().unwrap_or_default(),
                        assignment: m.assignment.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: g
                            .protocol
                            .as_deref()
                            .map(|p| m.metadata_for(p))
                            .unwrap_or_default(),
                    })
                    .collect(),
                ..Default::default()
            },
            None => {
                let state = match shard.offsets.fetch_all(&id).is_empty() {
                    true => "Dead",
                    false => GroupState::Empty.name(),
                };
                GroupDescription {
                    group_id: id,
                    state: state.into(),
                    ..Default::default()
                }
            }
        }
    }
}
