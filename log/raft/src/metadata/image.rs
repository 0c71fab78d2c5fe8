//! The metadata commands and the image every broker folds them into.
//!
//! `apply` is deterministic and never fails: a command that does not fit
//! the image (a topic created twice by two racing proposals) changes
//! nothing, identically on every broker. Proposers validate against the
//! image first ([`ClusterImage::check`]) so that users get a clear error.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::{ReplicationError, Result};

/// One change to the cluster's metadata: one record of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// A broker announces (or changes) the address clients reach it at.
    RegisterBroker {
        node: NodeId,
        address: String,
    },
    /// A topic with its settings (`key=value` pairs) and, per partition,
    /// the replica list (first: preferred leader).
    CreateTopic {
        name: String,
        config: Vec<(String, String)>,
        replicas: Vec<Vec<NodeId>>,
    },
    DeleteTopic {
        name: String,
    },
    /// A partition's replicas become `replicas` (first: preferred
    /// leader). The partition's leader carries the move out as Raft
    /// membership changes (`broker::cluster::moves`).
    MovePartition {
        topic: String,
        partition: u32,
        replicas: Vec<NodeId>,
    },
    /// A topic's settings become `config`: every setting, resolved by the
    /// proposer, so that all replicas apply the same ones.
    AlterTopicConfig {
        name: String,
        config: Vec<(String, String)>,
    },
    /// A topic grows by one partition per entry of `replicas` (each the
    /// new partition's replica list, first the preferred leader).
    AddPartitions {
        name: String,
        replicas: Vec<Vec<NodeId>>,
    },
    /// A broker announces (or changes) where Kafka clients reach its
    /// Kafka protocol listener. Appended last: variants are encoded by
    /// position, so older metadata logs still decode.
    AdvertiseKafkaListener {
        node: NodeId,
        address: String,
    },
}

/// A topic as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicAssignment {
    /// The metadata-log offset of the topic's creation: unique for every
    /// incarnation of a name, so a topic deleted and created again gets
    /// new Raft groups and directories, never the old ones.
    pub id: u64,
    pub config: Vec<(String, String)>,
    /// Per partition, the brokers holding a replica; the first is the
    /// preferred leader. After a move, the target: the group's membership
    /// follows once the partition's leader has carried the move out.
    pub replicas: Vec<Vec<NodeId>>,
    /// Partitions moved at least once. Their groups exist already, so a
    /// replica started for one never initializes a group (it would found a
    /// second one); it waits to be added by the leader.
    pub moved: BTreeSet<u32>,
}

/// The cluster's metadata as of a metadata-log offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterImage {
    pub brokers: BTreeMap<NodeId, String>,
    /// Each broker's Kafka listener (`host:port`), once it announced one.
    pub kafka_listeners: BTreeMap<NodeId, String>,
    pub topics: BTreeMap<String, TopicAssignment>,
    /// The metadata-log offset after the last applied command.
    pub next_offset: u64,
    /// Topics created so far, ever: rotates where placement starts.
    pub topics_created: u64,
}

impl ClusterImage {
    /// Whether `command` would change the image as its proposer means it
    /// to, with the error a user should see if not.
    pub fn check(&self, command: &MetadataCommand) -> Result<()> {
        match command {
            MetadataCommand::RegisterBroker { .. }
            | MetadataCommand::AdvertiseKafkaListener { .. } => Ok(()),
            MetadataCommand::CreateTopic { name, replicas, .. } => {
                if self.topics.contains_key(name) {
                    return Err(ReplicationError::TopicAlreadyExists(name.clone()));
                }
                let placed: Vec<NodeId> = replicas.iter().flatten().copied().collect();
                self.check_registered(&placed)
            }
            MetadataCommand::DeleteTopic { name } => self.check_known(name),
            MetadataCommand::MovePartition {
                topic,
                partition,
                replicas,
            } => self.check_move(topic, *partition, replicas),
            MetadataCommand::AlterTopicConfig { name, .. } => self.check_known(name),
            MetadataCommand::AddPartitions { name, replicas } => {
                self.check_known(name)?;
                let placed: Vec<NodeId> = replicas.iter().flatten().copied().collect();
                if replicas.is_empty() || replicas.iter().any(Vec::is_empty) {
                    return Err(ReplicationError::InvalidRequest(format!(
                        "new partitions of `{name}` need replicas: {replicas:?}"
                    )));
                }
                self.check_registered(&placed)
            }
        }
    }

    fn check_known(&self, topic: &str) -> Result<()> {
        match self.topics.contains_key(topic) {
            true => Ok(()),
            false => Err(ReplicationError::UnknownTopic(topic.to_string())),
        }
    }

    fn check_registered(&self, brokers: &[NodeId]) -> Result<()> {
        let unknown: Vec<NodeId> = brokers
            .iter()
            .copied()
            .filter(|b| !self.brokers.contains_key(b))
            .collect();
        match unknown.is_empty() {
            true => Ok(()),
            false => Err(ReplicationError::InvalidRequest(format!(
                "names unregistered brokers {unknown:?}"
            ))),
        }
    }

    fn check_move(&self, topic: &str, partition: u32, replicas: &[NodeId]) -> Result<()> {
        self.check_known(topic)?;
        let assignment = &self.topics[topic];
        if partition as usize >= assignment.replicas.len() {
            return Err(ReplicationError::InvalidRequest(format!(
                "topic `{topic}` has no partition {partition}"
            )));
        }
        let distinct: BTreeSet<NodeId> = replicas.iter().copied().collect();
        if replicas.is_empty() || distinct.len() != replicas.len() {
            return Err(ReplicationError::InvalidRequest(format!(
                "a partition's replicas must be distinct brokers, at least one: {replicas:?}"
            )));
        }
        self.check_registered(replicas)
    }

    /// Applies the command stored at `offset`.
    pub fn apply(&mut self, offset: u64, command: MetadataCommand) {
        if self.check(&command).is_ok() {
            match command {
                MetadataCommand::RegisterBroker { node, address } => {
                    self.brokers.insert(node, address);
                }
                MetadataCommand::AdvertiseKafkaListener { node, address } => {
                    self.kafka_listeners.insert(node, address);
                }
                MetadataCommand::CreateTopic {
                    name,
                    config,
                    replicas,
                } => {
                    self.topics_created += 1;
                    self.topics.insert(
                        name,
                        TopicAssignment {
                            id: offset,
                            config,
                            replicas,
                            moved: BTreeSet::new(),
                        },
                    );
                }
                MetadataCommand::DeleteTopic { name } => {
                    self.topics.remove(&name);
                }
                MetadataCommand::MovePartition {
                    topic,
                    partition,
                    replicas,
                } => {
                    if let Some(assignment) = self.topics.get_mut(&topic) {
                        assignment.replicas[partition as usize] = replicas;
                        assignment.moved.insert(partition);
                    }
                }
                MetadataCommand::AlterTopicConfig { name, config } => {
                    if let Some(assignment) = self.topics.get_mut(&name) {
                        assignment.config = config;
                    }
                }
                MetadataCommand::AddPartitions { name, replicas } => {
                    if let Some(assignment) = self.topics.get_mut(&name) {
                        assignment.replicas.extend(replicas);
                    }
                }
            }
        } else {
            tracing::debug!(offset, ?command, "metadata command does not apply; skipped");
        }
        self.next_offset = offset + 1;
    }
}

/// Encodes a command as a metadata record's value.
pub fn encode_command(command: &MetadataCommand) -> Result<Vec<u8>> {
    bincode::serialize(command)
        .map_err(|e| ReplicationError::InvalidRequest(format!("unencodable metadata command: {e}")))
}

/// Decodes a metadata record's value.
pub fn decode_command(bytes: &[u8]) -> Result<MetadataCommand> {
    bincode::deserialize(bytes)
        .map_err(|e| ReplicationError::InvalidBatch(format!("unreadable metadata record: {e}")))
}
