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
pub use offsets::OFFSETS_TOPIC;

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

    /// Which broker coordinates a group: the leader of its shard, as this
    /// broker knows it.
    pub fn find_coordinator(&self, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
        let group = request.group_id;
        let image = self.cluster.controller.image();
        let unavailable = |reason: &str| {
            let e = LogError::CoordinatorNotAvailable {
                group: group.clone(),
                reason: reason.to_string(),
            };
            FindCoordinatorResponse {
                error: e.code() as i32,
                message: e.to_string(),
                ..Default::default()
            }
        };
        let Some(offsets) = image.topics.get(OFFSETS_TOPIC) else {
            return unavailable("the offsets topic does not exist yet");
        };
        let index = shard_of(&group, offsets.replicas.len() as u32);
        let replicas = &offsets.replicas[index as usize];
        let Some(leader) = self.cluster.leader_of(OFFSETS_TOPIC, index, replicas) else {
            return unavailable("its offsets partition has no leader");
        };
        match image.brokers.get(&leader) {
            Some(address) => FindCoordinatorResponse {
                node_id: leader as u32,
                address: address.clone(),
                ..Default::default()
            },
            None => unavailable("its offsets partition's leader is not registered"),
        }
    }
}
