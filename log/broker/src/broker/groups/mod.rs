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
mod deletion;
mod offsets;
mod queries;
mod state;

use std::sync::Arc;

pub use coordinator::{GroupConfig, GroupCoordinator, CONSUMER_PROTOCOL_TYPE};
pub use offsets::OFFSETS_TOPIC;

use self::offsets::Shard;
use super::Broker;
use crate::{BrokerError, Result};
use spool_protocol::coordinator::{
    shard_of, KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION, TRANSACTIONS_TOPIC,
};
use spool_protocol::proto::*;
use spool_storage::config::{CleanupPolicy, LogConfig};

/// The offsets topic's settings: compacted (only each key's latest commit
/// matters) and never deleted by time.
pub(crate) fn offsets_topic_config(defaults: &LogConfig) -> LogConfig {
    let mut config = defaults.clone();
    config.cleanup_policy = CleanupPolicy::COMPACT;
    config.retention_ms = None;
    config.retention_bytes = None;
    config
}

/// The group RPCs as broker methods, so both transports reach them the same
/// way as every other request. Each first finds the group's shard here.
impl Broker {
    /// The loaded shard of `group`, if this broker coordinates it.
    async fn shard_for(&self, group: &str) -> Result<Arc<Shard>> {
        self.groups.shard_for(self, group).await
    }

    pub async fn join_group(&self, request: JoinGroupRequest) -> JoinGroupResponse {
        match self.shard_for(&request.group_id).await {
            Ok(shard) => self.groups.join(&shard, request).await,
            Err(e) => e.response(),
        }
    }

    pub async fn sync_group(&self, request: SyncGroupRequest) -> SyncGroupResponse {
        match self.shard_for(&request.group_id).await {
            Ok(_) => self.groups.sync(request).await,
            Err(e) => e.response(),
        }
    }

    pub async fn heartbeat(&self, request: HeartbeatRequest) -> HeartbeatResponse {
        match self.shard_for(&request.group_id).await {
            Ok(_) => self.groups.heartbeat(request),
            Err(e) => e.response(),
        }
    }

    pub async fn leave_group(&self, request: LeaveGroupRequest) -> LeaveGroupResponse {
        match self.shard_for(&request.group_id).await {
            Ok(_) => self.groups.leave(request),
            Err(e) => e.response(),
        }
    }

    pub async fn offset_commit(&self, request: OffsetCommitRequest) -> OffsetCommitResponse {
        match self.shard_for(&request.group_id).await {
            Ok(shard) => self.groups.commit_offsets(&shard, request).await,
            Err(e) => e.response(),
        }
    }

    /// TxnOffsetCommit, after checking with the transaction's coordinator
    /// that the group's offsets partition was added to the transaction.
    pub async fn txn_offset_commit(&self, request: TxnOffsetCommitRequest) -> TxnResponse {
        let checked = async {
            let epoch = super::checks::epoch_of(request.producer_epoch)?;
            let shard = self.shard_for(&request.group_id).await?;
            let producer = (request.producer_id, epoch);
            self.verify_with_coordinator(
                &request.transactional_id,
                producer,
                OFFSETS_TOPIC,
                shard.index,
            )
            .await?;
            Ok::<_, BrokerError>((shard, producer))
        };
        match checked.await {
            Ok((shard, producer)) => {
                self.groups
                    .commit_txn_offsets(&shard, request, producer)
                    .await
            }
            Err(e) => e.response(),
        }
    }

    pub async fn offset_fetch(&self, request: OffsetFetchRequest) -> OffsetFetchResponse {
        match self.shard_for(&request.group_id).await {
            Ok(shard) => self.groups.fetch_offsets(&shard, request),
            Err(e) => e.response(),
        }
    }

    /// Deletes a group, or some of its offsets (spool.proto says when).
    pub async fn delete_group(&self, request: DeleteGroupRequest) -> DeleteGroupResponse {
        match self.shard_for(&request.group_id).await {
            Ok(shard) => self.groups.delete_group(&shard, request).await,
            Err(e) => e.response(),
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
                Ok(shard) => self.groups.describe_group(&shard, group),
                Err(e) => GroupDescription {
                    group_id: group,
                    ..e.response()
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
            KEY_TYPE_GROUP => OFFSETS_TOPIC,
            KEY_TYPE_TRANSACTION => TRANSACTIONS_TOPIC,
            other => {
                let e =
                    BrokerError::InvalidRequest(format!("unknown coordinator key type {other}"));
                return e.response();
            }
        };
        let image = self.cluster.controller.image();
        let unavailable = |reason: &str| {
            let e = BrokerError::CoordinatorNotAvailable {
                key: key.clone(),
                reason: reason.to_string(),
            };
            e.response()
        };
        let Some(shards) = image.topics.get(topic) else {
            return unavailable(&format!("{topic} does not exist yet"));
        };
        let index = shard_of(&key, shards.replicas.len() as u32);
        let Some(replicas) = shards.replicas.get(index as usize) else {
            return unavailable(&format!("{topic} has no partitions"));
        };
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
