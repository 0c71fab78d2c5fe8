//! The offset and inspection requests of the group coordinator: commits,
//! offset fetches, and listing and describing groups. Split from
//! `coordinator.rs`, which owns membership and rebalances.

use std::sync::Arc;

use super::coordinator::{check_member, error_pair, GroupCoordinator};
use super::offsets::{validate_group_id, Committed};
use super::state::GroupState;
use crate::proto::*;

impl GroupCoordinator {
    /// OffsetCommit. Members commit with their generation; a commit with
    /// generation -1 comes from outside the protocol and is accepted only
    /// while the group has no members.
    pub async fn commit_offsets(&self, request: OffsetCommitRequest) -> OffsetCommitResponse {
        let commits: Vec<(String, u32, Committed)> = request
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
            .collect();
        // The generation check and the append happen under the group lock,
        // so a member that has just lost its partitions cannot append after
        // the new owner: commits reach the log in the order they were
        // accepted. The append only touches the page cache; the fsync comes
        // after the lock is released.
        let appended = {
            let groups = self.groups.lock();
            let checked = match groups.get(&request.group_id) {
                Some(group) if request.generation_id < 0 && !group.members.is_empty() => {
                    Err(error_pair(
                        ErrorCode::IllegalGeneration,
                        "the group has members; commit as one of them".into(),
                    ))
                }
                Some(group) if request.generation_id >= 0 => {
                    check_member(group, &request.member_id, request.generation_id)
                        .map_err(|code| error_pair(code, format!("{code:?}")))
                }
                None if request.generation_id >= 0 => Err(error_pair(
                    ErrorCode::UnknownMemberId,
                    "unknown group".into(),
                )),
                _ => validate_group_id(&request.group_id)
                    .map_err(|e| error_pair(ErrorCode::InvalidGroupId, e.to_string())),
            };
            checked.and_then(|()| {
                self.offsets
                    .append(&request.group_id, &commits)
                    .map_err(|e| (e.code() as i32, e.to_string()))
            })
        };
        if let Err((error, message)) = appended {
            return OffsetCommitResponse { error, message };
        }
        let store = Arc::clone(&self.offsets);
        match tokio::task::spawn_blocking(move || store.sync()).await {
            Ok(Ok(())) => OffsetCommitResponse::default(),
            Ok(Err(e)) => OffsetCommitResponse {
                error: e.code() as i32,
                message: e.to_string(),
            },
            Err(e) => OffsetCommitResponse {
                error: ErrorCode::StorageError as i32,
                message: e.to_string(),
            },
        }
    }

    pub fn fetch_offsets(&self, request: OffsetFetchRequest) -> OffsetFetchResponse {
        let offsets = if request.topics.is_empty() {
            self.offsets
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
                    match self.offsets.fetch(&request.group_id, &topic, partition) {
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
        OffsetFetchResponse {
            offsets,
            ..Default::default()
        }
    }

    pub fn list_groups(&self) -> ListGroupsResponse {
        let groups = self.groups.lock();
        let mut listings: Vec<GroupListing> = groups
            .values()
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                state: g.state.name().into(),
            })
            .collect();
        for id in self.offsets.groups() {
            if !groups.contains_key(&id) {
                listings.push(GroupListing {
                    group_id: id,
                    state: GroupState::Empty.name().into(),
                });
            }
        }
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        ListGroupsResponse { groups: listings }
    }

    pub fn describe_groups(&self, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
        let groups = self.groups.lock();
        let described = request
            .group_ids
            .into_iter()
            .map(|id| match groups.get(&id) {
                Some(g) => GroupDescription {
                    group_id: id,
                    state: g.state.name().into(),
                    protocol_name: g.protocol.clone().unwrap_or_default(),
                    generation_id: g.generation,
                    members: g
                        .members
                        .values()
                        .map(|m| GroupMemberDescription {
                            member_id: m.id.clone(),
                            group_instance_id: m.instance_id.clone().unwrap_or_default(),
                            assignment: m.assignment.clone(),
                        })
                        .collect(),
                    ..Default::default()
                },
                None => GroupDescription {
                    group_id: id,
                    state: GroupState::Empty.name().into(),
                    ..Default::default()
                },
            })
            .collect();
        DescribeGroupsResponse { groups: described }
    }
}
