//! Growing a cluster and moving partitions.
//!
//! - A broker started with `--join` asks the brokers it is configured
//!   with, in turn, to admit it. The request reaches the controller's
//!   leader, which makes the broker a learner of the controller group (so
//!   it receives the metadata) and registers it. Every broker learns a
//!   registered broker's address from the metadata.
//! - `spool cluster move` records a partition's target replicas in the
//!   metadata (`MovePartition`). The broker leading the partition's group
//!   carries the move out as Raft membership changes
//!   ([`PartitionReplica::change_voters`]): new replicas join as learners
//!   and catch up, the voters change through a joint configuration, and
//!   replicas left out become learners until they hold that
//!   configuration, then are removed. A replica the metadata no longer
//!   places on its broker runs until its group no longer counts it as a
//!   voter, then stops and deletes its data.
//! - Every broker compares the groups it leads with the metadata on every
//!   change and every second, so a leader that dies mid-move leaves the
//!   rest to the next one.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::group_id;
use crate::broker::Broker;
use crate::Result;
use spool_protocol::proto::spool_client::SpoolClient;
use spool_protocol::proto::{
    ClusterChangeResponse, ErrorCode, JoinClusterRequest, MovePartitionRequest, TopicResult,
};
use spool_raft::metadata::{ClusterImage, MetadataCommand};
use spool_raft::{NodeId, PartitionReplica};

/// How long one step of a move may take (a new replica catching up from
/// an empty log included) before the next round tries again.
const MOVE_STEP_PATIENCE: Duration = Duration::from_secs(120);

impl Broker {
    /// Admits a broker started with `--join` (see the module docs).
    pub async fn join_cluster(&self, request: JoinClusterRequest) -> ClusterChangeResponse {
        change_response(self.admit_broker(request).await)
    }

    /// Records a partition's new replicas (see the module docs); answers
    /// once the metadata holds the target, not once the move is done.
    pub async fn move_partition(&self, request: MovePartitionRequest) -> ClusterChangeResponse {
        change_response(self.record_move(request).await)
    }

    async fn admit_broker(&self, request: JoinClusterRequest) -> Result<()> {
        let cluster = &self.cluster;
        let node = NodeId::from(request.node_id);
        let forwarded = cluster.forward_until_answered(
            |mut client| {
                let request = request.clone();
                async move { Ok(vec![topic_result(client.join_cluster(request).await?)]) }
            },
            |image| image.brokers.get(&node) == Some(&request.address),
            ErrorCode::None,
        );
        if let Some(outcome) = forwarded.await {
            return outcome;
        }
        let timeout = cluster.config.metadata_timeout;
        let controller = &cluster.controller;
        controller
            .admit_broker(node, request.address, timeout)
            .await?;
        tracing::info!(node, "admitted a broker to the cluster");
        Ok(())
    }

    async fn record_move(&self, request: MovePartitionRequest) -> Result<()> {
        let cluster = &self.cluster;
        let replicas: Vec<NodeId> = request.replicas.iter().map(|&n| n.into()).collect();
        let placed = |image: &ClusterImage| {
            image
                .topics
                .get(&request.topic)
                .and_then(|t| t.replicas.get(request.partition as usize))
                == Some(&replicas)
        };
        let forwarded = cluster.forward_until_answered(
            |mut client| {
                let request = request.clone();
                async move { Ok(vec![topic_result(client.move_partition(request).await?)]) }
            },
            placed,
            ErrorCode::None,
        );
        if let Some(outcome) = forwarded.await {
            return outcome;
        }
        let command = MetadataCommand::MovePartition {
            topic: request.topic.clone(),
            partition: request.partition,
            replicas,
        };
        let timeout = cluster.config.metadata_timeout;
        cluster.controller.propose(command, timeout).await?;
        tracing::info!(topic = %request.topic, partition = request.partition, "recorded a partition move");
        Ok(())
    }
}

pub(super) fn change_response(outcome: Result<()>) -> ClusterChangeResponse {
    match outcome {
        Ok(()) => ClusterChangeResponse::default(),
        Err(e) => e.response(),
    }
}

/// A forwarded change's answer in the shape the forwarding loop reads.
pub(super) fn topic_result(response: tonic::Response<ClusterChangeResponse>) -> TopicResult {
    let response = response.into_inner();
    TopicResult {
        name: String::new(),
        error: response.error,
        message: response.message,
    }
}

/// Starts a move step for every group this broker leads whose membership
/// is not yet what the metadata says (one task per group at a time).
pub(super) fn drive_moves(broker: &Arc<Broker>, image: &ClusterImage) {
    let cluster = &broker.cluster;
    let node = cluster.config.node_id;
    let hosted: Vec<_> = cluster
        .replicas
        .read()
        .iter()
        .map(|(key, hosted)| (key.clone(), hosted.clone()))
        .collect();
    for ((topic, index), hosted) in hosted {
        let replica = hosted.replica;
        let target: Option<BTreeSet<NodeId>> = image
            .topics
            .get(&topic)
            .filter(|t| t.id == hosted.topic_id)
            .and_then(|t| t.replicas.get(index as usize))
            .map(|r| r.iter().copied().collect());
        let Some(target) = target else { continue };
        if replica.leader() != Some(node) || replica.membership_is(&target) {
            continue;
        }
        let group = group_id(&topic, hosted.topic_id, index);
        if !cluster.moving.lock().insert(group.clone()) {
            continue;
        }
        tokio::spawn(move_step(Arc::downgrade(broker), replica, target, group));
    }
}

async fn move_step(
    broker: Weak<Broker>,
    replica: Arc<PartitionReplica>,
    target: BTreeSet<NodeId>,
    group: String,
) {
    let step = tokio::time::timeout(MOVE_STEP_PATIENCE, replica.change_voters(&target)).await;
    match step {
        Ok(Ok(())) => tracing::info!(group = %group, ?target, "partition move step done"),
        Ok(Err(e)) => {
            tracing::warn!(group = %group, error = %e, "partition move step failed; will retry")
        }
        Err(_) => tracing::warn!(group = %group, "partition move step timed out; will retry"),
    }
    if let Some(broker) = broker.upgrade() {
        broker.cluster.moving.lock().remove(&group);
    }
}

/// Whether a replica the metadata moved away from `node` may stop: its
/// group no longer counts this node as a voter (it is a learner about to
/// be removed, or gone from the membership), and that membership is
/// committed here. Waiting for the commit lets the leader hear that this
/// replica holds the membership (the answer to the append that carried
/// it), which the leader needs before it removes the learner.
pub(super) fn moved_away_and_out(replica: &PartitionReplica, node: NodeId) -> bool {
    !replica.voters().0.contains(&node) && replica.membership_applied()
}

/// On a broker started with `--join`: asks each configured peer in turn
/// to admit it, until one answers that it is admitted.
pub(crate) async fn ask_to_join(broker: Weak<Broker>) {
    loop {
        let Some(strong) = broker.upgrade() else {
            return;
        };
        let cluster = &strong.cluster;
        let node = cluster.config.node_id;
        let peers = cluster.config.peers.clone();
        drop(strong);
        let Some(address) = peers.get(&node).cloned() else {
            return;
        };
        for (&peer, peer_address) in peers.iter().filter(|(&p, _)| p != node) {
            let request = JoinClusterRequest {
                node_id: node as u32,
                address: address.clone(),
            };
            match ask(peer_address, request).await {
                Ok(()) => {
                    tracing::info!(node, via = peer, "joined the cluster");
                    return;
                }
                Err(e) => tracing::debug!(node, peer, error = %e, "joining through a peer failed"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn ask(address: &str, request: JoinClusterRequest) -> std::result::Result<(), String> {
    let mut client = SpoolClient::connect(format!("http://{address}"))
        .await
        .map_err(|e| e.to_string())?;
    let response = client
        .join_cluster(request)
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    match response.error {
        0 => Ok(()),
        _ => Err(response.message),
    }
}
