//! Topic administration and metadata.

use std::sync::Arc;

use super::topic::Topic;
use super::Broker;
use crate::cluster::MetadataCommand;
use crate::config::{validate_partition_count, validate_topic_name, LogConfig};
use crate::proto::ErrorCode;
use crate::proto::{
    AlterConfigsRequest, AlterConfigsResponse, BrokerInfo, ConfigEntry, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, MetadataRequest,
    MetadataResponse, NewTopic, PartitionMetadata, TopicConfigs, TopicMetadata, TopicResult,
};
use crate::{LogError, Result};

impl Broker {
    pub async fn create_topics(&self, request: CreateTopicsRequest) -> CreateTopicsResponse {
        let mut topics = Vec::new();
        for new in request.topics {
            let name = new.name.clone();
            let outcome = match self.cluster.get() {
                Some(_) => self.create_cluster_topic(new, request.validate_only).await,
                None => self.create_topic(new, request.validate_only),
            };
            topics.push(topic_result(name, outcome));
        }
        CreateTopicsResponse { topics }
    }

    /// Creates a topic through the controller, which places its replicas.
    async fn create_cluster_topic(&self, new: NewTopic, validate_only: bool) -> Result<()> {
        let config = validate_new_topic(&new, &self.config().topic_defaults)?;
        super::cluster::refuse_compaction(&config)?;
        let cluster = self.cluster()?;
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
            return Err(LogError::TopicAlreadyExists(new.name));
        }
        let factor = match new.replication_factor {
            0 => (image.brokers.len() as u32).clamp(1, 3),
            factor => factor,
        };
        if validate_only {
            return crate::cluster::assign_replicas(
                &image.brokers.keys().copied().collect::<Vec<_>>(),
                new.partitions,
                factor,
                0,
            )
            .map(|_| ());
        }
        // Every setting, resolved here: replicas on brokers with other
        // `topic_defaults` must still validate entries alike (a follower
        // refusing a batch its leader took would stop the group).
        let pairs = config
            .to_pairs()
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect();
        cluster
            .controller
            .create_topic(
                &new.name,
                new.partitions,
                factor,
                pairs,
                cluster.config.metadata_timeout,
            )
            .await?;
        tracing::info!(topic = %new.name, partitions = new.partitions, factor, "created topic in the cluster");
        Ok(())
    }

    fn create_topic(&self, new: NewTopic, validate_only: bool) -> Result<()> {
        let config = validate_new_topic(&new, &self.config().topic_defaults)?;
        let mut topics = self.topics.write();
        if topics.contains_key(&new.name) {
            return Err(LogError::TopicAlreadyExists(new.name));
        }
        if validate_only {
            return Ok(());
        }
        let topic = Arc::new(Topic::create(
            &self.config().data_dir,
            &new.name,
            new.partitions,
            config,
        )?);
        self.register_logs(&topic);
        topics.insert(new.name.clone(), topic);
        tracing::info!(topic = %new.name, partitions = new.partitions, "created topic");
        Ok(())
    }

    pub async fn delete_topics(&self, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
        let mut topics = Vec::new();
        for name in request.names {
            let outcome = match self.cluster.get() {
                Some(_) => self.delete_cluster_topic(&name).await,
                None => self.delete_topic(&name),
            };
            topics.push(topic_result(name, outcome));
        }
        DeleteTopicsResponse { topics }
    }

    /// Deletes a topic through the controller (forwarded to its leader).
    async fn delete_cluster_topic(&self, name: &str) -> Result<()> {
        refuse_internal(name)?;
        let cluster = self.cluster()?;
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
        cluster
            .controller
            .propose(command, timeout)
            .await
            .map(|_| ())
    }

    fn delete_topic(&self, name: &str) -> Result<()> {
        refuse_internal(name)?;
        // The name stays taken until the files are gone, so a create of
        // the same name cannot open the old directories.
        let mut topics = self.topics.write();
        let topic = topics
            .remove(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))?;
        if let Some(manager) = self.manager.lock().as_ref() {
            for partition in topic.partitions() {
                manager.remove(&partition.log_name());
            }
        }
        // Requests and background work that still hold a partition must not
        // write into a directory a re-created topic may reuse.
        for partition in topic.partitions() {
            partition.log.mark_deleted();
        }
        topic.delete(&self.config().data_dir)?;
        drop(topics);
        tracing::info!(topic = %name, "deleted topic");
        Ok(())
    }

    pub fn describe_configs(&self, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
        let names = if request.names.is_empty() {
            self.topic_names()
        } else {
            request.names
        };
        let topics = names
            .into_iter()
            .map(|name| match self.topic(&name) {
                Some(topic) => TopicConfigs {
                    configs: topic
                        .config()
                        .to_pairs()
                        .into_iter()
                        .map(|(key, value)| ConfigEntry {
                            key: key.to_string(),
                            value,
                        })
                        .collect(),
                    name,
                    ..Default::default()
                },
                None => {
                    let e = LogError::UnknownTopic(name.clone());
                    TopicConfigs {
                        name,
                        error: e.code() as i32,
                        message: e.to_string(),
                        configs: vec![],
                    }
                }
            })
            .collect();
        DescribeConfigsResponse { topics }
    }

    /// Changes the given keys of each topic; other keys keep their values.
    pub async fn alter_configs(&self, request: AlterConfigsRequest) -> AlterConfigsResponse {
        let mut topics = Vec::new();
        for change in request.topics {
            let outcome = match self.cluster.get() {
                Some(_) => {
                    self.alter_cluster_topic(&change.name, &change.configs)
                        .await
                }
                None => self.alter_topic(&change.name, &change.configs),
            };
            topics.push(topic_result(change.name, outcome));
        }
        AlterConfigsResponse { topics }
    }

    fn alter_topic(&self, name: &str, entries: &[ConfigEntry]) -> Result<()> {
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopic(name.into()))?;
        let mut config: LogConfig = topic.config();
        for entry in entries {
            config.set(&entry.key, &entry.value)?;
        }
        topic.set_config(&self.config().data_dir, config)
    }

    /// Raises a topic's partition count; lowering it is an error.
    pub async fn create_partitions(
        &self,
        request: CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let mut topics = Vec::new();
        for change in request.topics {
            let outcome = match self.cluster.get() {
                Some(_) => self.grow_cluster_topic(&change.name, change.count).await,
                None => self.grow_topic(&change.name, change.count),
            };
            topics.push(topic_result(change.name, outcome));
        }
        CreatePartitionsResponse { topics }
    }

    fn grow_topic(&self, name: &str, count: u32) -> Result<()> {
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopic(name.into()))?;
        validate_partition_count(count)?;
        if count <= topic.partition_count() {
            return Err(LogError::InvalidConfig {
                key: "partitions".into(),
                value: count.to_string(),
                reason: format!(
                    "the topic has {} partitions; the count can only grow",
                    topic.partition_count()
                ),
            });
        }
        topic.grow(&self.config().data_dir, count)?;
        topic.save(&self.config().data_dir)?;
        self.register_logs(&topic);
        Ok(())
    }

    pub fn metadata(&self, request: MetadataRequest) -> MetadataResponse {
        if let Some(cluster) = self.cluster.get() {
            return self.cluster_metadata(cluster, request);
        }
        let names = if request.topics.is_empty() {
            self.topic_names()
        } else {
            request.topics
        };
        let node_id = self.config().node_id;
        let topics = names
            .into_iter()
            .map(|name| match self.topic(&name) {
                Some(topic) => TopicMetadata {
                    partitions: topic
                        .partitions()
                        .iter()
                        .map(|p| PartitionMetadata {
                            partition: p.index,
                            leader: node_id,
                            log_start_offset: p.log.log_start_offset(),
                            high_watermark: p.high_watermark(),
                            size_bytes: p.log.size_bytes(),
                            producers: p.describe_producers(),
                        })
                        .collect(),
                    name,
                    ..Default::default()
                },
                None => unknown_topic_metadata(name),
            })
            .collect();
        MetadataResponse {
            brokers: vec![BrokerInfo {
                node_id,
                address: self.config().advertised_address.clone(),
            }],
            topics,
        }
    }
}

/// The metadata entry of a topic the broker does not know.
pub(crate) fn unknown_topic_metadata(name: String) -> TopicMetadata {
    let e = LogError::UnknownTopic(name.clone());
    TopicMetadata {
        name,
        error: e.code() as i32,
        message: e.to_string(),
        partitions: vec![],
    }
}

fn refuse_internal(name: &str) -> Result<()> {
    if name.starts_with("__") {
        return Err(LogError::InvalidRequest(format!(
            "`{name}` is an internal topic and cannot be deleted"
        )));
    }
    Ok(())
}

/// Checks a new topic's name, partition count and settings; returns its
/// configuration over `defaults`.
fn validate_new_topic(new: &NewTopic, defaults: &LogConfig) -> Result<LogConfig> {
    validate_topic_name(&new.name)?;
    validate_partition_count(new.partitions)?;
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
            error: e.code() as i32,
            message: e.to_string(),
        },
    }
}
