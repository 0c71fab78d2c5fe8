//! What a broker tells about the cluster: metadata from the image, and
//! the replication state of the partitions it leads.

use super::ClusterState;
use crate::broker::Broker;
use spool_protocol::proto::{
    BrokerInfo, ClusterStatusRequest, ClusterStatusResponse, FollowerStatus, LeaderStatus,
    MetadataRequest, MetadataResponse, PartitionMetadata, TopicMetadata,
};
use spool_raft::metadata::{TopicAssignment, METADATA_GROUP};
use spool_raft::PartitionReplica;

impl Broker {
    /// Metadata from the cluster's image: every registered broker, and for
    /// each partition the leader as this broker knows it (0 when unknown;
    /// node ids start at 1) and, where it holds a replica, its offsets.
    pub(crate) fn cluster_metadata(&self, request: MetadataRequest) -> MetadataResponse {
        let cluster = &self.cluster;
        let image = cluster.controller.image();
        let names: Vec<String> = if request.topics.is_empty() {
            image.topics.keys().cloned().collect()
        } else {
            request.topics
        };
        let topics = names
            .into_iter()
            .map(|name| match image.topics.get(&name) {
                Some(assignment) => TopicMetadata {
                    partitions: (0..assignment.replicas.len() as u32)
                        .map(|index| self.partition_metadata(cluster, &name, index, assignment))
                        .collect(),
                    name,
                    ..Default::default()
                },
                None => crate::broker::admin::unknown_topic_metadata(name),
            })
            .collect();
        let brokers = image
            .brokers
            .iter()
            .map(|(&node, address)| BrokerInfo {
                node_id: node as u32,
                address: address.clone(),
            })
            .collect();
        MetadataResponse { brokers, topics }
    }

    fn partition_metadata(
        &self,
        cluster: &ClusterState,
        topic: &str,
        index: u32,
        assignment: &TopicAssignment,
    ) -> PartitionMetadata {
        let replicas = &assignment.replicas[index as usize];
        let leader = cluster.leader_of(topic, index, replicas).unwrap_or(0) as u32;
        match self.topic(topic).and_then(|t| t.partition(index)) {
            Some(p) => PartitionMetadata {
                partition: index,
                leader,
                log_start_offset: p.log.log_start_offset(),
                high_watermark: p.high_watermark(),
                size_bytes: p.log.size_bytes(),
                producers: p.describe_producers(),
                replicas: replica_ids(replicas),
            },
            None => PartitionMetadata {
                partition: index,
                leader,
                replicas: replica_ids(replicas),
                ..Default::default()
            },
        }
    }
}

impl Broker {
    /// How many partitions `topic` has in the cluster metadata; `None`
    /// for a topic the cluster does not know.
    pub fn partition_count(&self, topic: &str) -> Option<u32> {
        let image = self.cluster.controller.image();
        image.topics.get(topic).map(|t| t.replicas.len() as u32)
    }

    /// This broker's view of the cluster (see `ClusterStatusResponse`).
    pub fn cluster_status(&self, _request: ClusterStatusRequest) -> ClusterStatusResponse {
        let cluster = &self.cluster;
        let node = cluster.config.node_id;
        let image = cluster.controller.image();
        let mut partitions = Vec::new();
        let controller = cluster.controller.replica();
        if let Some(status) = leader_status(METADATA_GROUP, 0, controller) {
            partitions.push(status);
        }
        for (name, assignment) in &image.topics {
            for index in 0..assignment.replicas.len() as u32 {
                if let Some(status) = cluster
                    .replica(name, index)
                    .and_then(|r| leader_status(name, index, &r))
                {
                    partitions.push(status);
                }
            }
        }
        ClusterStatusResponse {
            node_id: node as u32,
            controller_leader: cluster.controller.leader().unwrap_or(0) as u32,
            brokers: image
                .brokers
                .iter()
                .map(|(&id, address)| BrokerInfo {
                    node_id: id as u32,
                    address: address.clone(),
                })
                .collect(),
            partitions,
        }
    }
}

/// The replication state of a partition `replica` leads; `None` when it
/// does not lead.
fn leader_status(topic: &str, partition: u32, replica: &PartitionReplica) -> Option<LeaderStatus> {
    if replica.leader() != Some(replica.node()) {
        return None;
    }
    let metrics = replica.raft().metrics().borrow().clone();
    let last_index = metrics.last_log_index.unwrap_or(0);
    let followers = metrics
        .replication
        .unwrap_or_default()
        .into_iter()
        .filter(|(id, _)| *id != replica.node())
        .map(|(id, matched)| FollowerStatus {
            node_id: id as u32,
            matched: matched.is_some(),
            matched_index: matched.map_or(0, |m| m.index),
            lag: matched.map_or(last_index + 1, |m| last_index.saturating_sub(m.index)),
        })
        .collect();
    Some(LeaderStatus {
        topic: topic.to_string(),
        partition,
        last_index,
        high_watermark: replica.high_watermark(),
        followers,
    })
}

fn replica_ids(replicas: &[u64]) -> Vec<u32> {
    replicas.iter().map(|&node| node as u32).collect()
}
