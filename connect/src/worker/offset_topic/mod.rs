//! Source offsets in a compacted topic, as Kafka Connect's distributed
//! worker keeps them (`KafkaOffsetBackingStore`), in Kafka's format, so
//! Kafka's tools read spool's offsets and the other way round.
//!
//! Each record is one source partition's offset: the key is the JSON
//! array `["<connector>", {<source partition>}]` and the value the JSON
//! object of the offset, both compact as Kafka's internal JsonConverter
//! (schemas off) writes them; a null value (a tombstone) forgets the
//! partition. The producer sends a key to the partition its murmur2 hash
//! picks, as Kafka's producer does, so a key's records stay in order and
//! compaction keeps the last. The format is written and read in `format`.
//!
//! The store reads the whole topic into memory when it opens, and stays
//! current by reading on from where it was before it answers, its own
//! writes included: the topic is the one truth, memory only caches it.
//! It reads read_committed, since an exactly-once task writes its offsets
//! in the transaction of its records (`exactly_once`), and an aborted
//! transaction's offsets must never count. A read ends either at the last
//! stable offset ([`End::Stable`]: what is committed now, without waiting)
//! or at the high watermark ([`End::Written`]: everything written so far,
//! waiting for the transactions open on the way to finish). The latter is
//! what an exactly-once task starts from and what a write is followed by:
//! an offset committed after another producer's transaction began is
//! hidden behind it until that transaction ends, and starting from an
//! older offset would produce its records twice.

mod format;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use spool_client::proto::{
    ErrorCode, IsolationLevel, ListOffsetsPartition, ListOffsetsRequest, ListOffsetsResponse,
    ListOffsetsTopic, OffsetSpec,
};
use spool_client::{
    Client, ClientError, Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use tokio::sync::Mutex;

pub(crate) use self::format::offset_record;

use self::format::{apply, Offsets};
use super::offsets::{OffsetBackingStore, OffsetChange};
use crate::api::{
    ConfigDef, ConfigKey, ConfigType, Importance, ParsedConfig, SourceOffset, SourcePartition,
    TypedValue, Validator,
};
use crate::{ConnectError, Result};

/// The topic source offsets are kept in (Kafka's key).
pub const OFFSET_STORAGE_TOPIC: &str = "offset.storage.topic";
/// The partitions the offsets topic is created with (Kafka's key).
pub const OFFSET_STORAGE_PARTITIONS: &str = "offset.storage.partitions";
/// The replicas the offsets topic is created with (Kafka's key).
pub const OFFSET_STORAGE_REPLICATION_FACTOR: &str = "offset.storage.replication.factor";
/// The offsets topic of an exactly-once worker that names none: the name
/// Kafka's sample distributed config gives it.
pub const DEFAULT_OFFSETS_TOPIC: &str = "connect-offsets";
/// Kafka's default partition count of the offsets topic.
pub const DEFAULT_OFFSET_STORAGE_PARTITIONS: u32 = 25;

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

/// The worker keys of the offsets topic, with Kafka's defaults (why each
/// is what it is: `WorkerConfig`'s fields).
pub(super) fn worker_config_def() -> ConfigDef {
    ConfigDef::new()
        // None: the file, as in Kafka's standalone worker.
        .define(
            ConfigKey::new(
                OFFSET_STORAGE_TOPIC,
                ConfigType::String,
                Importance::High,
                "The compacted topic to store source offsets in, in Kafka Connect's format; \
                 the file when absent (`connect-offsets` under exactly-once).",
            )
            .optional()
            .validator(Validator::NonEmptyString),
        )
        // Kafka's 25: every source partition of every connector is a key,
        // and writes spread by key.
        .define(
            ConfigKey::new(
                OFFSET_STORAGE_PARTITIONS,
                ConfigType::Int,
                Importance::Low,
                "The number of partitions used when creating the offset storage topic.",
            )
            .default_value(DEFAULT_OFFSET_STORAGE_PARTITIONS.to_string())
            .validator(Validator::at_least(1)),
        )
        // -1, the cluster's default (min(3, brokers)), where Kafka says 3:
        // a single broker, spool's embedded default, cannot hold three.
        .define(
            ConfigKey::new(
                OFFSET_STORAGE_REPLICATION_FACTOR,
                ConfigType::Int,
                Importance::Low,
                "Replication factor used when creating the offset storage topic; -1 for the \
                 cluster's default.",
            )
            .default_value("-1")
            .validator(Validator::Custom(Arc::new(valid_replication_factor))),
        )
}

/// Kafka's rule: -1 (the cluster's default) or at least 1.
fn valid_replication_factor(value: &TypedValue) -> std::result::Result<(), String> {
    match value {
        TypedValue::Int(n) if *n == -1 || *n >= 1 => Ok(()),
        TypedValue::Int(_) => Err("must be -1 (the cluster's default) or at least 1".into()),
        _ => Ok(()),
    }
}

/// `offset.storage.partitions` of a parsed worker config.
pub(super) fn partitions(parsed: &ParsedConfig) -> Result<u32> {
    u32::try_from(parsed.int(OFFSET_STORAGE_PARTITIONS)?)
        .map_err(|_| ConnectError::config(OFFSET_STORAGE_PARTITIONS, "must be positive"))
}

/// `offset.storage.replication.factor` of a parsed worker config; `None`
/// for the cluster's default (-1).
pub(super) fn replication_factor(parsed: &ParsedConfig) -> Result<Option<u32>> {
    Ok(u32::try_from(parsed.int(OFFSET_STORAGE_REPLICATION_FACTOR)?).ok())
}

/// Where a read of the offsets topic ends (see the module's comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The last stable offset: every committed record, without waiting.
    Stable,
    /// The high watermark: every record written, once the transactions
    /// open before it have ended.
    Written,
}

/// Source offsets kept in a compacted topic (see the module's comment).
/// Shared by every source task of the worker.
pub struct TopicOffsetStore {
    client: Client,
    topic: Arc<str>,
    partitions: u32,
    /// Writes alterations, resets and (without exactly-once) task flushes:
    /// idempotent with acks=all, so an acknowledged offset is on a
    /// majority's disk and a retried batch is written once.
    producer: Producer,
    /// The reading side, one read at a time: each read goes on from where
    /// the last one ended.
    reader: Mutex<Reader>,
}

struct Reader {
    consumer: Consumer,
    offsets: Offsets,
}

impl TopicOffsetStore {
    /// The store on `topic`, created compacted with `partitions` and
    /// `replication_factor` (`None`: the cluster's default) if missing,
    /// and read to its end. An existing topic that is not compacted is
    /// refused, as Kafka refuses it: its old offsets would be deleted, and
    /// connectors would start over.
    pub async fn open(
        client: Client,
        topic: &str,
        partitions: u32,
        replication_factor: Option<u32>,
    ) -> Result<TopicOffsetStore> {
        let partitions = ensure_topic(&client, topic, partitions, replication_factor).await?;
        let mut consumer = client.consumer(ConsumerConfig {
            offset_reset: OffsetReset::Earliest,
            isolation: IsolationLevel::ReadCommitted,
            ..ConsumerConfig::default()
        });
        consumer.assign((0..partitions).map(|p| TopicPartition::new(topic, p)));
        let store = TopicOffsetStore {
            producer: client.producer(ProducerConfig::default()),
            client,
            topic: Arc::from(topic),
            partitions,
            reader: Mutex::new(Reader {
                consumer,
                offsets: Offsets::new(),
            }),
        };
        store.read_to(End::Stable).await?;
        tracing::info!(topic, partitions, "source offsets read from their topic");
        Ok(store)
    }

    /// The offsets topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The name as producer records share it.
    pub(crate) fn shared_topic(&self) -> Arc<str> {
        Arc::clone(&self.topic)
    }

    async fn read_to(&self, end: End) -> Result<()> {
        let mut reader = self.reader.lock().await;
        self.read(&mut reader, end).await
    }

    /// `connector`'s offsets once the topic is read to `end`.
    pub(crate) async fn committed_to(
        &self,
        connector: &str,
        end: End,
    ) -> Result<Vec<(SourcePartition, SourceOffset)>> {
        let mut reader = self.reader.lock().await;
        self.read(&mut reader, end).await?;
        let entries = reader
            .offsets
            .get(connector)
            .into_iter()
            .flat_map(|e| e.values());
        Ok(entries.cloned().collect())
    }

    /// Reads on until every partition's position reaches its end as it is
    /// now, applying each record to the offsets in memory.
    async fn read(&self, reader: &mut Reader, end: End) -> Result<()> {
        let ends = self.end_offsets(end).await?;
        let deadline = Instant::now() + READ_PATIENCE;
        loop {
            if reader.caught_up(&ends).await.map_err(|e| self.error(e))? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ConnectError::Task(format!(
                    "the offsets topic `{}` was not read to its end within {READ_PATIENCE:?}: \
                     a transaction on it stays open",
                    self.topic
                )));
            }
            let records = reader
                .consumer
                .poll(POLL_WAIT)
                .await
                .map_err(|e| self.error(e))?;
            for record in &records {
                apply(&mut reader.offsets, record);
            }
        }
    }

    /// Each partition's end: its last stable offset or its high watermark.
    async fn end_offsets(&self, end: End) -> Result<Vec<(TopicPartition, u64)>> {
        let isolation = match end {
            End::Stable => IsolationLevel::ReadCommitted,
            End::Written => IsolationLevel::ReadUncommitted,
        };
        let partitions = (0..self.partitions)
            .map(|partition| ListOffsetsPartition {
                partition,
                spec: OffsetSpec::Latest as i32,
                timestamp: 0,
            })
            .collect();
        let request = ListOffsetsRequest {
            topics: vec![ListOffsetsTopic {
                name: self.topic.to_string(),
                partitions,
            }],
            isolation_level: isolation as i32,
        };
        let deadline = Instant::now() + READ_PATIENCE;
        loop {
            let answer = self.client.list_offsets(request.clone()).await;
            match answer.and_then(partition_ends) {
                Ok(ends) => return Ok(ends),
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
                Err(e) => return Err(self.error(e)),
            }
        }
    }

    /// Writes `records`, then reads to the high watermark, so that memory
    /// holds them (and whatever was committed before them) before the
    /// caller goes on.
    async fn write(&self, records: Vec<ProducerRecord>) -> Result<()> {
        if !records.is_empty() {
            let acknowledged = self
                .producer
                .send_batch(records)
                .await
                .map_err(|e| self.error(e))?;
            acknowledged.await.map_err(|e| self.error(e))?;
        }
        self.read_to(End::Written).await
    }

    fn error(&self, error: ClientError) -> ConnectError {
        ConnectError::client(format!("the offsets topic `{}`", self.topic), error)
    }
}

impl OffsetBackingStore for TopicOffsetStore {
    fn location(&self) -> String {
        format!("topic {}", self.topic)
    }

    fn committed<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(SourcePartition, SourceOffset)>>> {
        Box::pin(self.committed_to(connector, End::Stable))
    }

    fn commit_offsets<'a>(
        &'a self,
        connector: &'a str,
        offsets: Vec<(SourcePartition, SourceOffset)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let records = offsets
                .iter()
                .map(|(partition, offset)| {
                    offset_record(&self.topic, connector, partition, Some(offset))
                })
                .collect::<Result<Vec<_>>>()?;
            self.write(records).await
        })
    }

    fn alter_offsets<'a>(
        &'a self,
        connector: &'a str,
        changes: Vec<OffsetChange>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let records = changes
                .iter()
                .map(|(partition, offset)| {
                    offset_record(&self.topic, connector, partition, offset.as_ref())
                })
                .collect::<Result<Vec<_>>>()?;
            self.write(records).await
        })
    }

    /// A tombstone for every partition the connector has an offset of, as
    /// Kafka resets them: compaction then drops the keys altogether.
    fn reset_offsets<'a>(&'a self, connector: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let known = self.committed_to(connector, End::Written).await?;
            let records = known
                .iter()
                .map(|(partition, _)| offset_record(&self.topic, connector, partition, None))
                .collect::<Result<Vec<_>>>()?;
            self.write(records).await
        })
    }
}

impl Reader {
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

/// Makes sure the offsets topic exists, compacted; answers its partition
/// count (an existing topic keeps its own).
async fn ensure_topic(
    client: &Client,
    topic: &str,
    partitions: u32,
    replication_factor: Option<u32>,
) -> Result<u32> {
    let context = || format!("preparing the offsets topic `{topic}`");
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
        tracing::info!(topic, partitions, "created the offsets topic, compacted");
    } else if let Some((_, policy)) = info.configs.iter().find(|(k, _)| k == CLEANUP_POLICY) {
        if !policy.split(',').any(|p| p.trim() == "compact") {
            return Err(ConnectError::config(
                OFFSET_STORAGE_TOPIC,
                format!(
                    "topic `{topic}` has {CLEANUP_POLICY}={policy}; the offsets topic must be \
                     compacted ({CLEANUP_POLICY}=compact), or old offsets are deleted and \
                     connectors start over"
                ),
            ));
        }
    }
    match u32::try_from(info.partitions.len()) {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(ConnectError::config(
            OFFSET_STORAGE_TOPIC,
            format!("topic `{topic}` has no partitions"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConfigMap;

    #[test]
    fn the_worker_keys_take_kafkas_defaults_and_rules() {
        let def = worker_config_def();
        let defaults = def.parse(&ConfigMap::new()).unwrap();
        assert_eq!(partitions(&defaults).unwrap(), 25);
        assert_eq!(replication_factor(&defaults).unwrap(), None);
        let map: ConfigMap = [(
            OFFSET_STORAGE_REPLICATION_FACTOR.to_string(),
            "0".to_string(),
        )]
        .into();
        let error = def.parse(&map).unwrap_err();
        assert!(error.to_string().contains("-1"), "{error}");
        let map: ConfigMap = [(
            OFFSET_STORAGE_REPLICATION_FACTOR.to_string(),
            "3".to_string(),
        )]
        .into();
        assert_eq!(
            replication_factor(&def.parse(&map).unwrap()).unwrap(),
            Some(3)
        );
    }
}
