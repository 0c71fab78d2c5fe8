//! Topic administration over a [`Client`], with errors turned into `Result`s.
//!
//! Every call retries retriable failures (a broker that cannot be reached,
//! a controller or partition without a leader yet, a timeout) until the
//! admin's API timeout, as Kafka's admin client does until
//! `default.api.timeout.ms`: a broker's death costs an admin call the
//! election's latency, not an error. As with Kafka's admin client, a
//! call whose answer was lost and that is retried may then report what
//! its first attempt did as an error: a creation as TOPIC_ALREADY_EXISTS,
//! a deletion as UNKNOWN_TOPIC_OR_PARTITION, a partition increase as
//! INVALID_PARTITIONS, a group's deletion as GROUP_ID_NOT_FOUND.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::Client;
use crate::{ClientError, Result, TopicPartition};
use spool_protocol::proto::{
    AlterConfigsRequest, ConfigEntry, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupRequest, DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
    DeleteTopicsRequest, DescribeConfigsRequest, MetadataRequest, NewTopic, OffsetCommitRequest,
    PartitionCount, TopicConfigs, TopicResult,
};

/// One partition as `describe_topic` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionInfo {
    pub partition: u32,
    pub leader: u32,
    pub log_start_offset: u64,
    pub high_watermark: u64,
    pub size_bytes: u64,
    /// Its idempotent producers, as the answering broker knows them.
    pub producers: Vec<spool_protocol::proto::ProducerState>,
}

/// A topic's partitions and settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
    pub configs: Vec<(String, String)>,
}

/// How long an admin call keeps retrying retriable failures: Kafka's
/// `default.api.timeout.ms` (60 s), long enough for any election, short
/// enough that a call against a cluster that is down ends in an error.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(60);

/// The pause between two tries of a failed call: an election takes a few
/// hundred milliseconds, so ten tries a second catch its end soon.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

pub struct Admin {
    client: Client,
    api_timeout: Duration,
}

impl Admin {
    pub(super) fn new(client: Client) -> Admin {
        Admin {
            client,
            api_timeout: DEFAULT_API_TIMEOUT,
        }
    }

    /// This admin with calls that retry for `timeout` at most (zero: no
    /// retries).
    pub fn with_api_timeout(mut self, timeout: Duration) -> Admin {
        self.api_timeout = timeout;
        self
    }

    /// `call` until it succeeds, fails for a reason retrying cannot
    /// mend, or the API timeout passes.
    async fn patiently<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.patiently_until(Instant::now() + self.api_timeout, call)
            .await
    }

    /// [`Admin::patiently`] with the deadline given: each attempt ends at
    /// it too (a broker that takes the connection and never answers must
    /// not hold the call past it), as a timeout. With an API timeout of
    /// zero, one attempt, unbounded.
    async fn patiently_until<T, F, Fut>(&self, deadline: Instant, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if self.api_timeout.is_zero() {
            return call().await;
        }
        loop {
            let attempt = tokio::time::timeout_at(deadline, call()).await;
            let outcome = attempt.unwrap_or_else(|_| {
                Err(ClientError::Timeout(format!(
                    "no answer within the admin's API timeout ({:?})",
                    self.api_timeout
                )))
            });
            match outcome {
                Err(e) if e.is_retriable() && Instant::now() + RETRY_BACKOFF < deadline => {
                    tracing::debug!(error = %e, "an admin call failed; retrying");
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
                outcome => return outcome,
            }
        }
    }

    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        self.create_replicated_topic(name, partitions, 0, configs)
            .await
    }

    /// [`Admin::create_topic`] with `replication_factor` replicas per
    /// partition in a cluster (0: min(3, brokers); a single node ignores it).
    pub async fn create_replicated_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let request = CreateTopicsRequest {
            topics: vec![NewTopic {
                name: name.to_string(),
                partitions,
                configs: entries(configs),
                replication_factor,
                ..Default::default()
            }],
            validate_only: false,
        };
        self.patiently(|| async {
            first_result(self.client.create_topics(request.clone()).await?.topics)
        })
        .await
    }

    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let request = DeleteTopicsRequest {
            names: vec![name.to_string()],
        };
        self.patiently(|| async {
            first_result(self.client.delete_topics(request.clone()).await?.topics)
        })
        .await
    }

    /// Topics, without internal ones (names starting with `__`).
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let metadata = self
            .patiently(|| self.client.metadata(MetadataRequest::default()))
            .await?;
        Ok(metadata
            .topics
            .into_iter()
            .map(|t| t.name)
            .filter(|n| !n.starts_with("__"))
            .collect())
    }

    pub async fn describe_topic(&self, name: &str) -> Result<TopicInfo> {
        // One deadline for both requests: the call is one admin call.
        let deadline = Instant::now() + self.api_timeout;
        let topic = self
            .patiently_until(deadline, || self.client.topic_metadata(name))
            .await?;
        let request = DescribeConfigsRequest {
            names: vec![name.to_string()],
        };
        let configs = self
            .patiently_until(deadline, || self.client.describe_configs(request.clone()))
            .await?;
        let configs = configs
            .topics
            .into_iter()
            .next()
            .map(|t| t.configs)
            .unwrap_or_default();
        Ok(TopicInfo {
            name: topic.name,
            partitions: topic
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition,
                    leader: p.leader,
                    log_start_offset: p.log_start_offset,
                    high_watermark: p.high_watermark,
                    size_bytes: p.size_bytes,
                    producers: p.producers,
                })
                .collect(),
            configs: configs.into_iter().map(|c| (c.key, c.value)).collect(),
        })
    }

    /// Sets the given keys; other keys keep their values.
    pub async fn alter_configs(&self, name: &str, configs: &[(&str, &str)]) -> Result<()> {
        let request = AlterConfigsRequest {
            topics: vec![TopicConfigs {
                name: name.to_string(),
                configs: entries(configs),
                ..Default::default()
            }],
        };
        self.patiently(|| async {
            first_result(self.client.alter_configs(request.clone()).await?.topics)
        })
        .await
    }

    /// Raises the partition count to `count`.
    pub async fn create_partitions(&self, name: &str, count: u32) -> Result<()> {
        let request = CreatePartitionsRequest {
            topics: vec![PartitionCount {
                name: name.to_string(),
                count,
                ..Default::default()
            }],
        };
        self.patiently(|| async {
            first_result(self.client.create_partitions(request.clone()).await?.topics)
        })
        .await
    }

    /// Deletes the records of `topic`'s `partition` before `offset` (all
    /// committed ones with `None`), as Kafka's DeleteRecords: readers can
    /// no longer read them, and their segments go with the next retention
    /// pass. Returns the partition's log start after the deletion.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: u32,
        offset: Option<u64>,
    ) -> Result<u64> {
        let offset = offset.map_or(-1, |o| i64::try_from(o).unwrap_or(i64::MAX));
        let request = DeleteRecordsRequest {
            topics: vec![DeleteRecordsTopic {
                name: topic.to_string(),
                partitions: vec![DeleteRecordsPartition { partition, offset }],
            }],
        };
        self.patiently(|| async {
            let response = self.client.delete_records(request.clone()).await?;
            let result = response
                .topics
                .into_iter()
                .flat_map(|t| t.partitions)
                .next()
                .ok_or_else(|| ClientError::InvalidRequest("empty response".into()))?;
            match ClientError::from_code(result.error, &result.message) {
                Some(e) => Err(e),
                None => Ok(result.low_watermark),
            }
        })
        .await
    }

    /// Sets a group's committed offsets from outside it (Kafka's
    /// AlterConsumerGroupOffsets): the coordinator accepts them only
    /// while the group has no members, since a member would commit over
    /// them.
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, u64)],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let request = OffsetCommitRequest {
            group_id: group.to_string(),
            generation_id: -1,
            topics: crate::group::commit_topics(offsets.iter().cloned()),
            ..Default::default()
        };
        self.patiently(|| async {
            let response = self.client.offset_commit(request.clone()).await?;
            match ClientError::from_code(response.error, &response.message) {
                None => Ok(()),
                Some(e) => Err(e),
            }
        })
        .await
    }

    /// Deletes a group that has no members, with its committed offsets
    /// (Kafka's DeleteGroups).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        self.delete_group_offsets(group, &[]).await.map(|_| ())
    }

    /// Deletes a group's committed offsets of some partitions (Kafka's
    /// OffsetDelete); with none, the whole group. Returns the partitions
    /// whose offsets stay because a member subscribes to their topic.
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[(&str, u32)],
    ) -> Result<Vec<(String, u32)>> {
        let asked = partitions
            .iter()
            .map(|&(topic, partition)| (TopicPartition::new(topic, partition), 0));
        let topics = crate::group::commit_topics(asked);
        let request = DeleteGroupRequest {
            group_id: group.to_string(),
            topics,
        };
        let response = self
            .patiently(|| self.client.delete_group(request.clone()))
            .await?;
        if let Some(e) = ClientError::from_code(response.error, &response.message) {
            return Err(e);
        }
        Ok(response
            .refused
            .into_iter()
            .map(|r| (r.topic, r.partition))
            .collect())
    }
}

fn entries(configs: &[(&str, &str)]) -> Vec<ConfigEntry> {
    configs
        .iter()
        .map(|(k, v)| ConfigEntry {
            key: k.to_string(),
            value: v.to_string(),
            ..Default::default()
        })
        .collect()
}

fn first_result(results: Vec<TopicResult>) -> Result<()> {
    let result = results
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::InvalidRequest("empty response".into()))?;
    match ClientError::from_code(result.error, &result.message) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
