//! Consumer groups: Kafka's classic group protocol (join, sync, heartbeat,
//! leave) with generations, session timeouts, rebalances and static
//! membership, plus committed offsets in the compacted, replicated
//! `__consumer_offsets` topic.
//!
//! A group id hashes to one partition of that topic (its shard), and the
//! broker leading that partition coordinates the group, as in Kafka:
//! clients ask any broker which one (`FindCoordinator`), and a broker that
//! does not lead the shard answers `NOT_COORDINATOR`. On a single node
//! every shard is led here.
//!
//! The broker coordinates; it never looks inside subscriptions or
//! assignments. The group's leader (a client) computes the assignment with
//! the assignor all members agreed on, as in Kafka.

mod coordinator;
mod offsets;
mod queries;
mod shards;
mod state;

use std::sync::Arc;

pub use coordinator::{GroupConfig, GroupCoordinator};
pub(crate) use offsets::validate_group_id;
pub use offsets::OFFSETS_TOPIC;
pub(crate) use shards::not_coordinator;

use self::shards::Shard;
use super::Broker;
use crate::config::{CleanupPolicy, LogConfig};
use crate::proto::*;
use crate::{LogError, Result};

/// The offsets topic's settings: compacted (only each key's latest commit
/// matters) and never deleted by time.
pub(crate) fn offsets_topic_config(defaults: &LogConfig) -> LogConfig {
    let mut config = defaults.clone();
    config.cleanup_policy = CleanupPolicy::COMPACT;
    config.retention_ms = None;
    config.retention_bytes = None;
    config
}

/// The shard of `group` among `partitions`: a stable hash of the id, so
/// every broker and every restart agrees.
pub fn shard_of(group: &str, partitions: u32) -> u32 {
    (crate::client::murmur2(group.as_bytes()) & 0x7fff_ffff) as u32 % partitions.max(1)
}

/// The group RPCs as broker methods, so both transports reach them the same
/// way as every other request. Each first finds the group's shard here.
impl Broker {
    /// The loaded shard of `group`, if this broker coordinates it.
    async fn shard_for(&self, group: &str) -> Result<Arc<Shard>> {
        let image = self.cluster.controller.image();
        let Some(offsets) = image.topics.get(OFFSETS_TOPIC) else {
            return Err(LogError::CoordinatorNotAvailable {
                group: group.to_string(),
                reason: "the offsets topic does not exist yet".into(),
            });
        };
        let index = shard_of(group, offsets.replicas.len() as u32);
        let partition = self
            .partition(OFFSETS_TOPIC, index)
            .map_err(|e| shards::not_coordinator(group, e))?;
        self.groups.shard(group, index, partition).await
    }

    pub async fn join_group(&self, request: JoinGroupRequest) -> JoinGroupResponse {
        match self.shard_for(&request.group_id).await {
            Ok(shard) => self.groups.join(&shard, request).await,
            Err(e) => JoinGroupResponse {
                error: e.code() as i32,
                message: e.to_string(),
                ..Default::default()
            },
        }
    }

    pub async fn sync_group(&self, request: SyncGroupRequest) -> SyncGroupResponse {
        match self.shard_for(&request.group_id).await {
            Ok(_) => self.groups.sync(request).await,
            Err(e) => SyncGroupResponse {
                error: e.code() as i32,
                message: e.to_string(),
                ..Default::default()
            },
        }
    }

    pub async fn heartbeat(&self, request: HeartbeatRequest) -> HeartbeatResponse {
        match self.shard_for(&request.group_id).await {
            Ok(_) => self.groups.heartbeat(request),
            Err(e) => HeartbeatResponse {
                error: e.code() as i32,
                message: e.to_string(),
            },
        }
    }

    pub async fn leave_group(&self, request: LeaveGroupRequest) -> LeaveGroupResponse {
        match self.shard_for(&request.group_id).await {
            Ok(_) => self.groups.leave(request),
            Err(e) => LeaveGroupResponse {
                error: e.code() as i32,
                message: e.to_string(),
            },
        }
    }

    pub async fn offset_commit(&self, request: OffsetCommitRequest) -> OffsetCommitResponse {
        match self.shard_for(&request.group_id).await {
            Ok(shard) => self.groups.commit_offsets(&shard, request).await,
            Err(e) => OffsetCommitResponse {
                error: e.code() as i32,
                message: e.to_string(),
            },
        }
    }

    /// TxnOffsetCommit, after checking with the transaction's coordinator
    /// that the group's offsets partition was added to the transaction.
    pub async fn txn_offset_commit(&self, request: TxnOffsetCommitRequest) -> TxnResponse {
        let checked = async {
            let epoch = super::transactions::epoch_of(request.producer_epoch)?;
            let shard = self.shard_for(&request.group_id).await?;
            let producer = (request.producer_id, epoch);
            self.verify_with_coordinator(
                &request.transactional_id,
                producer,
                OFFSETS_TOPIC,
                shard.index,
            )
            .await?;
            Ok::<_, LogError>((shard, producer))
        };
        match checked.await {
            Ok((shard, producer)) => {
                self.groups
                    .commit_txn_offsets(&shard, request, producer)
                    .await
            }
            Err(e) => TxnResponse {
                error: e.code() as i32,
                message: e.to_string(),
            },
        }
    }

    pub async fn offset_fetch(&self, request: OffsetFetchRequest) -> OffsetFetchResponse {
        match self.shard_for(&request.group_id).await {
            Ok(shard) => self.groups.fetch_offsets(&shard, request),
            Err(e) => OffsetFetchResponse {
                error: e.code() as i32,
                message: e.to_string(),
                ..Default::default()
            },
        }
    }

    /// The groups this broker coordinates; a client of a cluster asks
    /// every broker and merges the answers.
    pub fn list_groups(&self, _request: ListGroupsRequest) -> ListGroupsResponse {
        self.groups.list_groups()
    }

    /// Each named group as its coordinator sees it; a group this broker
    /// does not coordinate is described with `NOT_COORDINATOR`.
    pub async fn describe_groups(&self, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
        let mut groups = Vec::with_capacity(request.group_ids.len());
        for group in request.group_ids {
            let described = match self.shard_for(&group).await {
                Ok(_) => self.groups.describe_group(group),
                Err(e) => GroupDescription {
                    group_id: group,
                    error: e.code() as i32,
                    message: e.to_string(),
                    ..Default::default()
                },
            };
            groups.push(described);
        }
        DescribeGroupsResponse { groups }
    }

    /// Which broker coordinates a group (key type 0) or a transactional id
    /// (key type 1): the leader of its shard, as this broker knows it.
    pub fn find_coordinator(&self, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
        let key = request.group_id;
        let topic = match request.key_type {
            0 => OFFSETS_TOPIC,
            super::transactions::KEY_TYPE_TRANSACTION => super::TRANSACTIONS_TOPIC,
            other => {
                let e = LogError::InvalidRequest(format!("unknown coordinator key type {other}"));
                return FindCoordinatorResponse {
                    error: e.code() as i32,
                    message: e.to_string(),
                    ..Default::default()
                };
            }
        };
        let image = self.cluster.controller.image();
        let unavailable = |reason: &str| {
            let e = LogError::CoordinatorNotAvailable {
                group: key.clone(),
                reason: reason.to_string(),
            };
            FindCoordinatorResponse {
                error: e.code() as i32,
                message: e.to_string(),
                ..Default::default()
            }
        };
        let Some(shards) = image.topics.get(topic) else {
            return unavailable(&format!("{topic} does not exist yet"));
        };
        let index = shard_of(&key, shards.replicas.len() as u32);
        let replicas = &shards.replicas[index as usize];
        let Some(leader) = self.cluster.leader_of(topic, index, replicas) else {
            return unavailable(&format!("its partition of {topic} has no leader"));
        };
        match image.brokers.get(&leader) {
            Some(address) => FindCoordinatorResponse {
                node_id: leader as u32,
                address: address.clone(),
                ..Default::default()
            },
            None => unavailable(&format!(
                "the leader of its partition of {topic} is not registered"
            )),
        }
    }
}
