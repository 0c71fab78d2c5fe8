//! The topics a worker keeps its own state in (source offsets, and a
//! distributed worker's connector configs and statuses): made compacted
//! when missing ([`ensure_topic`]), and read from their start by one
//! consumer of every partition ([`TopicReader`]), up to where they end at
//! the moment of asking, so that memory holds what the topic said then.
//!
//! Each such topic is the one truth, and memory only caches it: a reader
//! goes on from where it was, and a writer reads its own records back
//! before it answers. A read ends either at the last stable offset
//! ([`End::Stable`]: what is committed now, without waiting) or at the high
//! watermark ([`End::Written`]: everything written so far, waiting for the
//! transactions open on the way to end); `offset_topic` says why source
//! offsets need both. Topics no transaction writes to end at the same
//! place either way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spool_client::proto::{
    ErrorCode, IsolationLevel, ListOffsetsPartition, ListOffsetsRequest, ListOffsetsResponse,
    ListOffsetsTopic, OffsetSpec,
};
use spool_client::{
    Client, ClientError, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, TopicPartition,
};

use crate::{ConnectError, Result};

/// The topic config that keeps only each key's last record.
const CLEANUP_POLICY: &str = "cleanup.policy";

/// How long a read to the end may take before it fails. Longer than a
/// transaction's default timeout (60 s), which bounds how long a dead
/// producer's open transaction can hold back a read to the high
/// watermark: the coordinator aborts it then.
const READ_PATIENCE: Duration = Duration::from_secs(120);

/// How long one fetch of a read waits for records.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// How long a retriable failure to learn the topic's ends is retried
/// (a partition's leader moving).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Where a read ends (see the module's comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The last stable offset: every committed record, without waiting.
    Stable,
    /// The high watermark: every record written, once the transactions
    /// open before it have ended.
    Written,
}

/// One consumer of every partition of a topic, reading it from the start
/// (see the module's comment).
pub(crate) struct TopicReader {
    client: Client,
    topic: Arc<str>,
    partitions: u32,
    consumer: Consumer,
    /// What the topic is to the worker, for errors ("the offsets topic").
    role: &'static str,
}

impl TopicReader {
    /// A reader of `topic`'s `partitions` from their start, with
    /// `isolation`; it reads nothing until asked.
    pub(crate) fn new(
        client: &Client,
        role: &'static str,
        topic: &str,
        partitions: u32,
        isolation: IsolationLevel,
    ) -> TopicReader {
        let mut consumer = client.consumer(ConsumerConfig {
            offset_reset: OffsetReset::Earliest,
            isolation,
            ..ConsumerConfig::default()
        });
        consumer.assign((0..partitions).map(|p| TopicPartition::new(topic, p)));
        TopicReader {
            client: client.clone(),
            topic: Arc::from(topic),
            partitions,
            consumer,
            role,
        }
    }

    /// Reads on until every partition's position reaches its `end` as it
    /// is now, handing each record to `apply` in offset order within its
    /// partition.
    pub(crate) async fn read_to(
        &mut self,
        end: End,
        mut apply: impl FnMut(&ConsumerRecord),
    ) -> Result<()> {
        let ends = self.end_offsets(end).await?;
        let deadline = Instant::now() + READ_PATIENCE;
        loop {
            if self.caught_up(&ends).await.map_err(|e| self.error(e))? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ConnectError::Task(format!(
                    "{} `{}` was not read to its end within {READ_PATIENCE:?}: a transaction \
                     on it stays open, or its leader is unreachable",
                    self.role, self.topic
                )));
            }
            for record in &self.poll(POLL_WAIT).await? {
                apply(record);
            }
        }
    }

    /// The next records, waiting up to `wait` for some: what a reader that
    /// follows the topic as it grows calls in a loop.
    pub(crate) async fn poll(&mut self, wait: Duration) -> Result<Vec<ConsumerRecord>> {
        match self.consumer.poll(wait).await {
            Ok(records) => Ok(records),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The offset the next record of `partition` will have: everything
    /// below it has been handed out.
    pub(crate) async fn position(&mut self, partition: u32) -> Result<u64> {
        let tp = TopicPartition::new(&*self.topic, partition);
        match self.consumer.position(&tp).await {
            Ok(position) => Ok(position),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Each partition's end: its last stable offset or its high watermark.
    /// `&mut`: a reader is not `Sync` (its consumer is not), so a future
    /// holding `&self` could not move between threads.
    pub(crate) async fn end_offsets(&mut self, end: End) -> Result<Vec<(TopicPartition, u64)>> {
        end_offsets(&self.client, &self.topic, self.partitions, end)
            .await
            .map_err(|e| self.error(e))
    }

    /// Whether every partition's position reached its end in `ends`. An
    /// empty partition needs no reading; a position not known yet (its
    /// leader is being elected, as right after the topic's creation) is
    /// not there yet, and the next poll asks for it again.
    async fn caught_up(&mut self, ends: &[(TopicPartition, u64)]) -> spool_client::Result<bool> {
        for (tp, end) in ends.iter().filter(|(_, end)| *end > 0) {
            match self.consumer.position(tp).await {
                Ok(position) if position >= *end => {}
                Ok(_) | Err(ClientError::InvalidRequest(_)) => return Ok(false),
                Err(e) if e.is_retriable() => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// A client error, naming the topic.
    pub(crate) fn error(&self, error: ClientError) -> ConnectError {
        ConnectError::client(format!("{} `{}`", self.role, self.topic), error)
    }
}

/// Each of `topic`'s `partitions`' end: its last stable offset or its high
/// watermark, retrying a retriable failure for a while.
pub(crate) async fn end_offsets(
    client: &Client,
    topic: &str,
    partitions: u32,
    end: End,
) -> spool_client::Result<Vec<(TopicPartition, u64)>> {
    let isolation = match end {
        End::Stable => IsolationLevel::ReadCommitted,
        End::Written => IsolationLevel::ReadUncommitted,
    };
    let partitions = (0..partitions)
        .map(|partition| ListOffsetsPartition {
            partition,
            spec: OffsetSpec::Latest as i32,
            timestamp: 0,
        })
        .collect();
    let request = ListOffsetsRequest {
        topics: vec![ListOffsetsTopic {
            name: topic.to_string(),
            partitions,
        }],
        isolation_level: isolation as i32,
    };
    let deadline = Instant::now() + READ_PATIENCE;
    loop {
        let answer = client.list_offsets(request.clone()).await;
        match answer.and_then(partition_ends) {
            Ok(ends) => return Ok(ends),
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The ends a ListOffsets answer gives, or the first partition's error.
fn partition_ends(
    response: ListOffsetsResponse,
) -> spool_client::Result<Vec<(TopicPartition, u64)>> {
    let mut ends = Vec::new();
    for topic in response.topics {
        for partition in topic.partitions {
            if let Some(e) = ClientError::from_code(partition.error, &partition.message) {
                return Err(e);
            }
            ends.push((
                TopicPartition::new(topic.name.as_str(), partition.partition),
                partition.offset,
            ));
        }
    }
    Ok(ends)
}

/// What a worker's topic is, for [`ensure_topic`]: the worker key that
/// names it (errors name it) and what its records are (errors and logs
/// say it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TopicRole {
    /// The worker key naming the topic (`offset.storage.topic`).
    pub(crate) key: &'static str,
    /// What the topic is, as a sentence starts it ("the offsets topic").
    pub(crate) name: &'static str,
    /// What compaction keeps of it, for the refusal of a topic that is not
    /// compacted ("old offsets are deleted and connectors start over").
    pub(crate) loss: &'static str,
}

/// Makes sure `topic` exists, compacted; answers its partition count (an
/// existing topic keeps its own). One that is not compacted is refused, as
/// Kafka refuses it: its old records would be deleted.
pub(crate) async fn ensure_topic(
    client: &Client,
    role: TopicRole,
    topic: &str,
    partitions: u32,
    replication_factor: Option<u32>,
) -> Result<u32> {
    let context = || format!("preparing {} `{topic}`", role.name);
    let exists = match client.topic_metadata(topic).await {
        Ok(_) => true,
        Err(e) if e.code() == ErrorCode::UnknownTopicOrPartition => false,
        Err(e) => return Err(ConnectError::client(context(), e)),
    };
    let created = match exists {
        true => false,
        false => {
            let created = client
                .admin()
                .create_replicated_topic(
                    topic,
                    partitions,
                    replication_factor.unwrap_or(0),
                    &[(CLEANUP_POLICY, "compact")],
                )
                .await;
            match created {
                Ok(()) => true,
                // Another worker created it meanwhile: checked as found.
                Err(e) if e.code() == ErrorCode::TopicAlreadyExists => false,
                Err(e) => return Err(ConnectError::client(context(), e)),
            }
        }
    };
    let info = client
        .admin()
        .describe_topic(topic)
        .await
        .map_err(|e| ConnectError::client(context(), e))?;
    if created {
        tracing::info!(topic, partitions, "created {}, compacted", role.name);
    } else if let Some((_, policy)) = info.configs.iter().find(|(k, _)| k == CLEANUP_POLICY) {
        if !policy.split(',').any(|p| p.trim() == "compact") {
            return Err(ConnectError::config(
                role.key,
                format!(
                    "topic `{topic}` has {CLEANUP_POLICY}={policy}; {} must be compacted \
                     ({CLEANUP_POLICY}=compact), or {}",
                    role.name, role.loss
                ),
            ));
        }
    }
    match u32::try_from(info.partitions.len()) {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(ConnectError::config(
            role.key,
            format!("topic `{topic}` has no partitions"),
        )),
    }
}
