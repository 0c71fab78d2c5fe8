//! [`StatusLog`]: the status topic, where each worker writes the state of
//! the connectors and tasks it runs, and from which every worker reads
//! all of them, so `GET /connectors/{name}/status` on any worker answers
//! for the whole group.
//!
//! A worker writes a status only when it changed, under one lock
//! ([`StatusLog::lock`]), and waits for the write to be acknowledged: a
//! worker giving a task up writes UNASSIGNED before it rejoins the group,
//! so its word lands before the new owner's RUNNING (the new owner starts
//! the task only in a later round). Records of one key go to one
//! partition, and the last one read wins; the generation a record carries
//! is for people and tools. A worker killed without a word leaves its
//! last statuses until the new owner writes its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use spool_client::proto::IsolationLevel;
use spool_client::{Client, ConsumerRecord, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinHandle;

use super::config::STATUS_STORAGE_TOPIC;
use super::records::{connector_status_key, task_status_key, StatusRecord};
use crate::worker::topic_log::{ensure_topic, End, TopicReader, TopicRole};
use crate::worker::TaskId;
use crate::{ConnectError, Result};

const ROLE: TopicRole = TopicRole {
    key: STATUS_STORAGE_TOPIC,
    name: "the status topic",
    loss: "statuses are deleted",
};

/// How long one fetch of the follower waits for records.
const FOLLOW_WAIT: Duration = Duration::from_millis(200);

/// How long the follower waits after a failed fetch.
const FOLLOW_BACKOFF: Duration = Duration::from_millis(500);

/// Key → the last status read from the topic.
type Statuses = BTreeMap<String, StatusRecord>;

/// The status topic (see the module's comment).
pub(crate) struct StatusLog {
    topic: Arc<str>,
    producer: Producer,
    /// Every worker's statuses, as read.
    view: Arc<RwLock<Statuses>>,
    /// What this worker last wrote, by key; held while it writes.
    written: Mutex<Statuses>,
    follower: JoinHandle<()>,
}

/// The right to write statuses, held by one writer at a time.
pub(crate) struct StatusWriter<'a> {
    log: &'a StatusLog,
    written: MutexGuard<'a, Statuses>,
}

impl StatusLog {
    /// The status topic `topic`, created compacted if missing, read to its
    /// end and followed from there.
    pub(crate) async fn open(
        client: &Client,
        topic: &str,
        partitions: u32,
        replication_factor: Option<u32>,
    ) -> Result<StatusLog> {
        let partitions = ensure_topic(client, ROLE, topic, partitions, replication_factor).await?;
        let mut reader = TopicReader::new(
            client,
            ROLE.name,
            topic,
            partitions,
            IsolationLevel::ReadUncommitted,
        );
        let mut statuses = Statuses::new();
        reader
            .read_to(End::Written, |record| apply(&mut statuses, record))
            .await?;
        let view = Arc::new(RwLock::new(statuses));
        let follower = tokio::spawn(follow(reader, Arc::clone(&view)));
        Ok(StatusLog {
            topic: Arc::from(topic),
            producer: client.producer(ProducerConfig::default()),
            view,
            written: Mutex::new(Statuses::new()),
            follower,
        })
    }

    /// Connector `name`'s status, as last read.
    pub(crate) fn connector(&self, name: &str) -> Option<StatusRecord> {
        self.view.read().get(&connector_status_key(name)).cloned()
    }

    /// Task `id`'s status, as last read.
    pub(crate) fn task(&self, id: &TaskId) -> Option<StatusRecord> {
        self.view.read().get(&task_status_key(id)).cloned()
    }

    /// Waits for the right to write.
    pub(crate) async fn lock(&self) -> StatusWriter<'_> {
        StatusWriter {
            log: self,
            written: self.written.lock().await,
        }
    }

    /// Writes `records` (key, value or a tombstone) and waits until they
    /// are acknowledged.
    async fn send(&self, records: Vec<(String, Option<Bytes>)>) -> Result<()> {
        let batch = records
            .into_iter()
            .map(|(key, value)| ProducerRecord {
                topic: Arc::clone(&self.topic),
                partition: None,
                key: Some(Bytes::from(key)),
                value,
                headers: Vec::new(),
                timestamp: None,
            })
            .collect();
        let acknowledged = self
            .producer
            .send_batch(batch)
            .await
            .map_err(|e| self.error(e))?;
        acknowledged.await.map_err(|e| self.error(e))?;
        Ok(())
    }

    fn error(&self, error: spool_client::ClientError) -> ConnectError {
        ConnectError::client(format!("the status topic `{}`", self.topic), error)
    }
}

impl Drop for StatusLog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl StatusWriter<'_> {
    /// Forgets what this worker last wrote for `keys`, so that the next
    /// status of each is written whatever it says.
    pub(crate) fn forget(&mut self, keys: Vec<String>) {
        for key in keys {
            self.written.remove(&key);
        }
    }

    /// Deletes the statuses of `keys` (tombstones, which compaction then
    /// drops): those of a deleted connector, written by the worker that
    /// ran each, once it stopped.
    pub(crate) async fn erase(&mut self, keys: Vec<String>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let tombstones = keys.iter().map(|key| (key.clone(), None)).collect();
        self.log.send(tombstones).await?;
        self.forget(keys);
        Ok(())
    }

    /// Writes the statuses of `updates` that changed since this worker
    /// last wrote them, and waits for them to be acknowledged.
    pub(crate) async fn write(&mut self, updates: Vec<(String, StatusRecord)>) -> Result<()> {
        let changed: Vec<(String, StatusRecord)> = updates
            .into_iter()
            .filter(|(key, status)| {
                !self
                    .written
                    .get(key)
                    .is_some_and(|last| last.same_as(status))
            })
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let mut records = Vec::with_capacity(changed.len());
        for (key, status) in &changed {
            records.push((key.clone(), Some(status.encode()?)));
        }
        self.log.send(records).await?;
        self.written.extend(changed);
        Ok(())
    }
}

/// Applies one record of the status topic to `statuses`.
fn apply(statuses: &mut Statuses, record: &ConsumerRecord) {
    let Some(key) = record
        .key
        .as_deref()
        .and_then(|key| std::str::from_utf8(key).ok())
    else {
        return;
    };
    match record.value.as_deref() {
        None => {
            statuses.remove(key);
        }
        Some(value) => {
            if let Some(status) = StatusRecord::decode(key, value) {
                statuses.insert(key.to_string(), status);
            }
        }
    }
}

/// Reads the topic on as it grows, applying each record.
async fn follow(mut reader: TopicReader, view: Arc<RwLock<Statuses>>) {
    loop {
        match reader.poll(FOLLOW_WAIT).await {
            Ok(records) => {
                if records.is_empty() {
                    continue;
                }
                let mut view = view.write();
                for record in &records {
                    apply(&mut view, record);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the status topic failed; retrying");
                tokio::time::sleep(FOLLOW_BACKOFF).await;
            }
        }
    }
}
