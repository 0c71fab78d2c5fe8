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

use futures::future::BoxFuture;
use spool_client::proto::IsolationLevel;
use spool_client::{Client, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::Mutex;

pub(crate) use self::format::offset_record;
pub(crate) use super::topic_log::End;

use self::format::{apply, Offsets};
use super::config::OFFSET_STORAGE_TOPIC;
use super::offsets::{OffsetBackingStore, OffsetChange};
use super::topic_log::{ensure_topic, TopicReader, TopicRole};
use crate::api::{SourceOffset, SourcePartition};
use crate::{ConnectError, Result};

/// The offsets topic, for `ensure_topic` and errors.
const ROLE: TopicRole = TopicRole {
    key: OFFSET_STORAGE_TOPIC,
    name: "the offsets topic",
    loss: "old offsets are deleted and connectors start over",
};

/// Source offsets kept in a compacted topic (see the module's comment).
/// Shared by every source task of the worker.
pub struct TopicOffsetStore {
    topic: Arc<str>,
    /// Writes alterations, resets and (without exactly-once) task flushes:
    /// idempotent with acks=all, so an acknowledged offset is on a
    /// majority's disk and a retried batch is written once.
    producer: Producer,
    /// The reading side, one read at a time: each read goes on from where
    /// the last one ended.
    reader: Mutex<Reader>,
}

struct Reader {
    log: TopicReader,
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
        let partitions = ensure_topic(&client, ROLE, topic, partitions, replication_factor).await?;
        let log = TopicReader::new(
            &client,
            ROLE.name,
            topic,
            partitions,
            IsolationLevel::ReadCommitted,
        );
        let store = TopicOffsetStore {
            producer: client.producer(ProducerConfig::default()),
            topic: Arc::from(topic),
            reader: Mutex::new(Reader {
                log,
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
        reader.read(end).await
    }

    /// `connector`'s offsets once the topic is read to `end`.
    pub(crate) async fn committed_to(
        &self,
        connector: &str,
        end: End,
    ) -> Result<Vec<(SourcePartition, SourceOffset)>> {
        let mut reader = self.reader.lock().await;
        reader.read(end).await?;
        let entries = reader
            .offsets
            .get(connector)
            .into_iter()
            .flat_map(|e| e.values());
        Ok(entries.cloned().collect())
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

    fn error(&self, error: spool_client::ClientError) -> ConnectError {
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
    /// Reads on to `end`, applying each record to the offsets in memory.
    async fn read(&mut self, end: End) -> Result<()> {
        let Reader { log, offsets } = self;
        log.read_to(end, |record| apply(offsets, record)).await
    }
}
