//! Topic administration and metadata.

use super::Broker;
use crate::{BrokerError, Result};
use spool_protocol::proto::{
    AlterConfigsRequest, AlterConfigsResponse, ConfigEntry, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, MetadataRequest,
    MetadataResponse, NewTopic, TopicConfigs, TopicMetadata, TopicResult,
};
use spool_protocol::proto::{ConfigSource, ErrorCode};
use spool_raft::metadata::{MetadataCommand, Placement};
use spool_storage::config::{validate_partition_count, validate_topic_name, LogConfig};

/// How long a topic's creation waits for this broker's replicas of it to
/// know their leaders: a few election timeouts.
const LOCAL_LEADER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

impl Broker {
    pub async fn create_topics(&self, request: CreateTopicsRequest) -> CreateTopicsResponse {
        let mut topics = Vec::new();
        for new in request.topics {
            let name = new.name.clone();
            let outcome = self.create_topic(new, request.validate_only).await;
            if outcome.is_ok() && !request.validate_only {
                self.await_local_leaders(&name, LOCAL_LEADER_PATIENCE).await;
            }
            topics.push(topic_result(name, outcome));
        }
        CreateTopicsResponse { topics }
    }

    /// Creates a topic through the controller, which places its replicas.
    async fn create_topic(&self, new: NewTopic, validate_only: bool) -> Result<()> {
        let config = validate_new_topic(&new, &self.config().topic_defaults)?;
        let cluster = &self.cluster;
        let forwarded = cluster.forward_until_answered(
            |mut client| {
                let request = CreateTopicsRequest {
                    topics: vec![new.clone()],
                    validate_only,
                };
                async move { Ok(client.create_topics(request).await?.into_inner().topics) }
            },
            |image| validate_only || image.topics.contains_key(&new.name),
            ErrorCode::TopicAlreadyExists,
        );
        if let Some(outcome) = forwarded.await {
            return outcome;
        }
        let image = cluster.controller.image();
        if image.topics.contains_key(&new.name) {
            return Err(BrokerError::TopicAlreadyExists(new.name));
        }
        let placement = placement_of(&new, image.brokers.len())?;
        if validate_only {
            return placement
                .replicas(&image.brokers.keys().copied().collect::<Vec<_>>(), 0)
                .map(|_| ())
                .map_err(BrokerError::from);
        }
        // Every setting, resolved here: replicas on brokers with other
        // `topic_defaults` must still validate entries alike (a follower
        // refusing a batch its leader took would stop the group).
        let pairs = config.to_owned_pairs();
        let created = cluster
            .controller
            .create_placed_topic(&new.name, placement, pairs, cluster.config.metadata_timeout)
            .await?;
        let factor = created.replicas.first().map_or(0, Vec::len);
        let partitions = created.replicas.len();
        tracing::info!(topic = %new.name, partitions, factor, "created topic in the cluster");
        Ok(())
    }

    /// Waits, up to `patience`, until every partition of `topic` placed on
    /// this broker runs here and knows its leader, so that a program that
    /// created a topic can write to it at once (on a single node, always).
    /// Past that the topic still exists; clients retry while leaders are
    /// elected elsewhere.
    async fn await_local_leaders(&self, topic: &str, patience: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        while tokio::time::Instant::now() < deadline {
            if self.local_replicas_led(topic) != Some(false) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    pub async fn delete_topics(&self, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
        let mut topics = Vec::new();
        for name in request.names {
            let outcome = self.delete_cluster_topic(&name).await;
            topics.push(topic_result(name, outcome));
        }
        DeleteTopicsResponse { topics }
    }

    /// Deletes a topic through the controller (forwarded to its leader).
    async fn delete_cluster_topic(&self, name: &str) -> Result<()> {
        refuse_internal(name)?;
        let cluster = &self.cluster;
        let forwarded = cluster.forward_until_answered(
            |mut client| {
                let request = DeleteTopicsRequest {
                    names: vec![name.to_string()],
                };
                async move { Ok(client.delete_topics(request).await?.into_inner().topics) }
            },
            |image| !image.topics.contains_key(name),
            ErrorCode::UnknownTopicOrPartition,
        );
        if let Some(outcome) = forwarded.await {
            return outcome;
        }
        let command = MetadataCommand::DeleteTopic {
            name: name.to_string(),
        };
        let timeout = cluster.config.metadata_timeout;
        cluster.controller.propose(command, timeout).await?;
        Ok(())
    }

    /// Every setting of each topic (of every topic when none is named),
    /// as the cluster metadata holds them over this broker's defaults.
    pub fn describe_configs(&self, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
        let image = self.cluster.controller.image();
        let names = if request.names.is_empty() {
            image.topics.keys().cloned().collect()
        } else {
            request.names
        };
        let defaults = &self.config().topic_defaults;
        let default_pairs = defaults.to_pairs();
        let topics = names
            .into_iter()
            .map(|name| {
                let config = image
                    .topics
                    .get(&name)
                    .ok_or_else(|| BrokerError::UnknownTopic(name.clone()))
                    .and_then(|t| super::cluster::topic_config(defaults, &t.config));
                match config {
                    // The metadata holds every setting resolved (see
                    // `alter_cluster_topic`): one that differs from this
                    // broker's default was given to the topic.
                    Ok(config) => TopicConfigs {
                        configs: config
                            .to_pairs()
                            .into_iter()
                            .map(|(key, value)| {
                                let default = default_pairs.iter().find(|(k, _)| *k == key);
                                let source = match default.is_some_and(|(_, v)| *v == value) {
                                    true => ConfigSource::Default,
                                    false => ConfigSource::Topic,
                                };
                                ConfigEntry {
                                    key: key.to_string(),
                                    value,
                                    source: source as i32,
                                    reset: false,
                                }
                            })
                            .collect(),
                        name,
                        ..Default::default()
                    },
                    Err(e) => TopicConfigs {
                        name,
                        ..e.response()
                    },
                }
            })
            .collect();
        DescribeConfigsResponse { topics }
    }

    /// Changes the given keys of each topic; other keys keep their values.
    pub async fn alter_configs(&self, request: AlterConfigsRequest) -> AlterConfigsResponse {
        let mut topics = Vec::new();
        for change in request.topics {
            let outcome = self
                .alter_cluster_topic(&change.name, &change.configs)
                .await;
            topics.push(topic_result(change.name, outcome));
        }
        AlterConfigsResponse { topics }
    }

    /// Raises a topic's partition count; lowering it is an error.
    pub async fn create_partitions(
        &self,
        request: CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let mut topics = Vec::new();
        for change in request.topics {
            let name = change.name.clone();
            let outcome = self.grow_cluster_topic(change).await;
            topics.push(topic_result(name, outcome));
        }
        CreatePartitionsResponse { topics }
    }

    pub fn metadata(&self, request: MetadataRequest) -> MetadataResponse {
        self.cluster_metadata(request)
    }
}

/// The metadata entry of a topic the broker does not know.
pub(crate) fn unknown_topic_metadata(name: String) -> TopicMetadata {
    let e = BrokerError::UnknownTopic(name.clone());
    TopicMetadata {
        name,
        ..e.response()
    }
}

fn refuse_internal(name: &str) -> Result<()> {
    if name.starts_with("__") {
        return Err(BrokerError::InvalidRequest(format!(
            "`{name}` is an internal topic and cannot be deleted"
        )));
    }
    Ok(())
}

/// Where a new topic's replicas go: as its assignments say, or spread with
/// its replication factor (by default three, or fewer on a smaller cluster).
fn placement_of(new: &NewTopic, brokers: usize) -> Result<Placement> {
    if new.assignments.is_empty() {
        let replication_factor = match new.replication_factor {
            0 => (brokers as u32).clamp(1, 3),
            factor => factor,
        };
        return Ok(Placement::Spread {
            partitions: new.partitions,
            replication_factor,
        });
    }
    let mut replicas = vec![None; new.assignments.len()];
    for assignment in &new.assignments {
        let slot = replicas
            .get_mut(assignment.partition as usize)
            .filter(|slot| slot.is_none())
            .ok_or_else(|| BrokerError::InvalidConfig {
                key: "replica.assignment".into(),
                value: assignment.partition.to_string(),
                reason: "partitions must be numbered 0..n, each given once".into(),
            })?;
        *slot = Some(assignment.brokers.iter().map(|&b| u64::from(b)).collect());
    }
    Ok(Placement::Explicit(
        replicas.into_iter().flatten().collect(),
    ))
}

/// Checks a new topic's name, partition count and settings; returns its
/// configuration over `defaults`.
fn validate_new_topic(new: &NewTopic, defaults: &LogConfig) -> Result<LogConfig> {
    validate_topic_name(&new.name)?;
    if new.assignments.is_empty() {
        validate_partition_count(new.partitions)?;
    } else {
        validate_partition_count(new.assignments.len() as u32)?;
    }
    let mut config = defaults.clone();
    for entry in &new.configs {
        config.set(&entry.key, &entry.value)?;
    }
    Ok(config)
}

fn topic_result(name: String, outcome: Result<()>) -> TopicResult {
    match outcome {
        Ok(()) => TopicResult {
            name,
            ..Default::default()
        },
        Err(e) => TopicResult {
            name,
            ..e.response()
        },
    }
}
