//! Changing a replicated topic after its creation: its settings and its
//! partition count, both as metadata commands proposed by the controller's
//! leader (a follower forwards the request). Every broker applies the new
//! settings to the replicas it holds, and starts the replicas of new
//! partitions placed on it, when its image shows the change.

use super::topic_config;
use crate::broker::Broker;
use crate::{BrokerError, Result};
use spool_protocol::proto::{
    AlterConfigsRequest, ConfigEntry, CreatePartitionsRequest, ErrorCode, PartitionCount,
    TopicConfigs,
};
use spool_raft::metadata::MetadataCommand;
use spool_storage::config::{validate_partition_count, LogConfig};

impl Broker {
    /// Sets `entries` on a replicated topic (or, with `reset`, sets them
    /// back to this broker's default); its other settings keep their
    /// values. The controller stores every setting, resolved here, so that
    /// brokers with other `topic_defaults` validate a partition's batches
    /// alike.
    pub(crate) async fn alter_cluster_topic(
        &self,
        name: &str,
        entries: &[ConfigEntry],
    ) -> Result<()> {
        let cluster = &self.cluster;
        let image = cluster.controller.image();
        let before = image
            .topics
            .get(name)
            .map(|t| t.config.clone())
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
        let defaults = &self.config().topic_defaults;
        let mut config = topic_config(defaults, &before)?;
        for entry in entries {
            config.set(&entry.key, &value_to_set(defaults, entry)?)?;
        }
        let pairs: Vec<(String, String)> = config.to_owned_pairs();
        if pairs == before {
            return Ok(());
        }
        let request = AlterConfigsRequest {
            topics: vec![TopicConfigs {
                name: name.to_string(),
                configs: entries.to_vec(),
                ..Default::default()
            }],
        };
        let forwarded = cluster.forward_until_answered(
            |mut client| {
                let request = request.clone();
                async move { Ok(client.alter_configs(request).await?.into_inner().topics) }
            },
            |image| image.topics.get(name).is_some_and(|t| t.config != before),
            ErrorCode::None,
        );
        if let Some(outcome) = forwarded.await {
            return outcome;
        }
        let command = MetadataCommand::AlterTopicConfig {
            name: name.to_string(),
            config: pairs,
        };
        let timeout = cluster.config.metadata_timeout;
        cluster.controller.propose(command, timeout).await?;
        tracing::info!(topic = %name, "changed a replicated topic's settings");
        Ok(())
    }

    /// Grows a replicated topic to `count` partitions; the controller
    /// places the new ones.
    pub(crate) async fn grow_cluster_topic(&self, change: PartitionCount) -> Result<()> {
        let (name, count) = (change.name.as_str(), change.count);
        validate_partition_count(count)?;
        let cluster = &self.cluster;
        let explicit = (!change.assignments.is_empty()).then(|| {
            change
                .assignments
                .iter()
                .map(|a| a.brokers.iter().map(|&b| u64::from(b)).collect())
                .collect()
        });
        let request = CreatePartitionsRequest {
            topics: vec![change.clone()],
        };
        let forwarded = cluster.forward_until_answered(
            |mut client| {
                let request = request.clone();
                async move { Ok(client.create_partitions(request).await?.into_inner().topics) }
            },
            |image| {
                image
                    .topics
                    .get(name)
                    .is_some_and(|t| t.replicas.len() >= count as usize)
            },
            ErrorCode::InvalidPartitions,
        );
        if let Some(outcome) = forwarded.await {
            return outcome;
        }
        let timeout = cluster.config.metadata_timeout;
        cluster
            .controller
            .add_partitions(name, count, explicit, timeout)
            .await?;
        tracing::info!(topic = %name, count, "added partitions to a replicated topic");
        Ok(())
    }
}

/// The value an AlterConfigs entry sets: its own, or for a reset the
/// default.
fn value_to_set(defaults: &LogConfig, entry: &ConfigEntry) -> Result<String> {
    if !entry.reset {
        return Ok(entry.value.clone());
    }
    defaults
        .to_pairs()
        .into_iter()
        .find(|(key, _)| *key == entry.key)
        .map(|(_, value)| value)
        .ok_or_else(|| BrokerError::InvalidConfig {
            key: entry.key.clone(),
            value: String::new(),
            reason: "no topic setting of that name to reset".into(),
        })
}
