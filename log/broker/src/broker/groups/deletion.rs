//! Deleting what a group left behind: a whole group with its committed
//! offsets (Kafka's DeleteGroups), or some partitions' offsets of a group
//! (OffsetDelete), checked as Kafka's classic coordinator checks them.
//!
//! Offsets are deleted by tombstones in the group's shard of
//! `__consumer_offsets`, proposed under the shard's order lock like
//! commits, so a deletion and a commit reach the log in the order they
//! were accepted; compaction then drops the keys.

use std::collections::BTreeSet;

use super::coordinator::GroupCoordinator;
use super::offsets::Shard;
use super::state::{Group, GroupState};
use crate::{BrokerError, Result};
use spool_protocol::consumer_protocol::Subscription;
use spool_protocol::proto::*;

/// How long a deletion waits for its tombstones to be committed, as a
/// commit does.
const DELETE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a deletion request is allowed to delete.
struct Deletion {
    partitions: Vec<(String, u32)>,
    refused: Vec<RefusedPartition>,
}

impl GroupCoordinator {
    /// DeleteGroup: see the request's documentation in spool.proto.
    pub(crate) async fn delete_group(
        &self,
        shard: &Shard,
        request: DeleteGroupRequest,
    ) -> DeleteGroupResponse {
        match self.delete(shard, request).await {
            Ok(refused) => DeleteGroupResponse {
                refused,
                ..Default::default()
            },
            Err(e) => e.response(),
        }
    }

    async fn delete(
        &self,
        shard: &Shard,
        request: DeleteGroupRequest,
    ) -> Result<Vec<RefusedPartition>> {
        let (proposed, refused) = {
            let _order = shard.order.lock().await;
            shard.offsets.catch_up()?;
            let committed = shard.offsets.fetch_all(&request.group_id);
            let deletion = {
                let mut groups = self.groups.lock();
                let group = groups.get(&request.group_id);
                if group.is_none() && committed.is_empty() {
                    return Err(BrokerError::coded(
                        ErrorCode::GroupIdNotFound,
                        format!("no group `{}` here", request.group_id),
                    ));
                }
                match request.topics.is_empty() {
                    true => {
                        let deletion = whole_group(group, &committed)?;
                        // Kafka's group goes Dead: its next member starts anew.
                        groups.remove(&request.group_id);
                        deletion
                    }
                    false => some_offsets(group, &request.topics)?,
                }
            };
            let Deletion {
                partitions,
                refused,
            } = deletion;
            // Tombstones only for offsets there are.
            let stored: Vec<(String, u32)> = partitions
                .into_iter()
                .filter(|(t, p)| committed.iter().any(|(ct, cp, _)| ct == t && cp == p))
                .collect();
            if stored.is_empty() {
                return Ok(refused);
            }
            let proposed = shard
                .offsets
                .propose_deletions(&request.group_id, &stored, DELETE_TIMEOUT)
                .await?;
            (proposed, refused)
        };
        shard.offsets.committed(proposed).await?;
        Ok(refused)
    }
}

/// The whole group goes, unless it has members.
fn whole_group(
    group: Option<&Group>,
    committed: &[(String, u32, super::offsets::Committed)],
) -> Result<Deletion> {
    if let Some(group) = group.filter(|g| g.state != GroupState::Empty) {
        return Err(BrokerError::coded(
            ErrorCode::NonEmptyGroup,
            format!(
                "group `{}` has {} members; it can be deleted once they leave",
                group.id,
                group.members.len()
            ),
        ));
    }
    Ok(Deletion {
        partitions: committed.iter().map(|(t, p, _)| (t.clone(), *p)).collect(),
        refused: Vec::new(),
    })
}

/// The asked partitions' offsets go, except those of topics a member
/// subscribes to. A group with members whose subscriptions are not
/// Kafka's consumer protocol (a Connect worker group, say) cannot tell,
/// so it is refused as a whole, as Kafka refuses it.
fn some_offsets(group: Option<&Group>, topics: &[OffsetCommitTopic]) -> Result<Deletion> {
    let subscribed = match group.filter(|g| g.state != GroupState::Empty) {
        None => BTreeSet::new(),
        Some(group) => subscribed_topics(group).ok_or_else(|| {
            BrokerError::coded(
                ErrorCode::NonEmptyGroup,
                format!(
                    "group `{}` has members that are not consumers; delete its offsets once they leave",
                    group.id
                ),
            )
        })?,
    };
    let mut deletion = Deletion {
        partitions: Vec::new(),
        refused: Vec::new(),
    };
    for topic in topics {
        for partition in &topic.partitions {
            if subscribed.contains(&topic.name) {
                deletion.refused.push(RefusedPartition {
                    topic: topic.name.clone(),
                    partition: partition.partition,
                    error: ErrorCode::GroupSubscribedToTopic as i32,
                });
            } else {
                deletion
                    .partitions
                    .push((topic.name.clone(), partition.partition));
            }
        }
    }
    Ok(deletion)
}

/// Every topic a member subscribes to, from the subscriptions they sent
/// for the group's protocol (or their first, before one is chosen); none
/// when one does not decode as Kafka's consumer protocol.
fn subscribed_topics(group: &Group) -> Option<BTreeSet<String>> {
    let mut topics = BTreeSet::new();
    for member in group.members.values() {
        let metadata = match &group.protocol {
            Some(protocol) => member.metadata_for(protocol),
            None => member.protocols.first()?.1.clone(),
        };
        topics.extend(Subscription::decode(&metadata).ok()?.topics);
    }
    Some(topics)
}
