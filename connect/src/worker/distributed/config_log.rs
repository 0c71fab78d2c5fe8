//! [`ConfigLog`]: the config topic, written by any worker and read by
//! every worker from its start, followed as it grows by a task of its own.
//!
//! The topic is the point where changes are put in one order: a REST
//! request on any worker appends its record (no forwarding to a leader),
//! and then waits until this worker has read past it, so an answer always
//! reflects its own change. Every worker applies the same records in the
//! same order (one partition), so all come to the same [`ClusterConfig`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use spool_client::proto::IsolationLevel;
use spool_client::{Client, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::CONFIG_STORAGE_TOPIC;
use super::records::ConfigRecord;
use super::state::ClusterConfig;
use crate::worker::topic_log::{end_offsets, ensure_topic, End, TopicReader, TopicRole};
use crate::{ConnectError, Result};

const ROLE: TopicRole = TopicRole {
    key: CONFIG_STORAGE_TOPIC,
    name: "the config topic",
    loss: "connector configs are deleted and connectors vanish",
};

/// How long one fetch of the follower waits for records: how soon a
/// worker sees another's change when the topic is idle.
const FOLLOW_WAIT: Duration = Duration::from_millis(200);

/// How long the follower waits after a failed fetch (a leader moving).
const FOLLOW_BACKOFF: Duration = Duration::from_millis(500);

/// How long a write, or an assignment, waits for the follower to reach an
/// offset.
const READ_PATIENCE: Duration = Duration::from_secs(60);

/// The config topic (see the module's comment).
pub(crate) struct ConfigLog {
    client: Client,
    topic: Arc<str>,
    /// Idempotent with acks=all: an acknowledged record is on a majority's
    /// disk, and a retried batch is written once, in order.
    producer: Producer,
    state: Arc<RwLock<ClusterConfig>>,
    /// The offset the follower has read up to.
    read: watch::Receiver<u64>,
    follower: JoinHandle<()>,
}

impl ConfigLog {
    /// The config topic `topic`, created compacted with one partition if
    /// missing, read to its end.
    pub(crate) async fn open(
        client: &Client,
        topic: &str,
        replication_factor: Option<u32>,
    ) -> Result<ConfigLog> {
        let partitions = ensure_topic(client, ROLE, topic, 1, replication_factor).await?;
        if partitions != 1 {
            return Err(ConnectError::config(
                CONFIG_STORAGE_TOPIC,
                format!(
                    "topic `{topic}` has {partitions} partitions; the config topic must have \
                     one, so that every worker reads connector and task configs in one order"
                ),
            ));
        }
        let mut reader =
            TopicReader::new(client, ROLE.name, topic, 1, IsolationLevel::ReadUncommitted);
        let mut state = ClusterConfig::default();
        reader
            .read_to(End::Written, |record| state.apply_record(record))
            .await?;
        state.offset = state.offset.max(reader.position(0).await?);
        tracing::info!(
            topic,
            connectors = state.connectors().len(),
            offset = state.offset,
            "connector configs read from their topic"
        );
        let (reached, read) = watch::channel(state.offset);
        let state = Arc::new(RwLock::new(state));
        let follower = tokio::spawn(follow(reader, Arc::clone(&state), reached));
        Ok(ConfigLog {
            client: client.clone(),
            producer: client.producer(ProducerConfig::default()),
            topic: Arc::from(topic),
            state,
            read,
            follower,
        })
    }

    /// The config as read so far.
    pub(crate) fn snapshot(&self) -> ClusterConfig {
        self.state.read().clone()
    }

    /// The offset read up to.
    pub(crate) fn offset(&self) -> u64 {
        *self.read.borrow()
    }

    /// Tells of every record read: its value is the offset read up to.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.read.clone()
    }

    /// Appends `records` in their order, and waits until they are read
    /// back; answers the offset read up to then.
    pub(crate) async fn append(&self, records: Vec<ConfigRecord>) -> Result<u64> {
        let mut batch = Vec::with_capacity(records.len());
        for record in &records {
            let (key, value) = record.encode()?;
            batch.push(ProducerRecord {
                topic: Arc::clone(&self.topic),
                partition: Some(0),
                key: Some(Bytes::from(key)),
                value,
                headers: Vec::new(),
                timestamp: None,
            });
        }
        let acknowledged = self
            .producer
            .send_batch(batch)
            .await
            .map_err(|e| self.error(e))?;
        let written = acknowledged.await.map_err(|e| self.error(e))?;
        let last = written
            .iter()
            .filter_map(|metadata| metadata.offset)
            .max()
            .ok_or_else(|| {
                ConnectError::Task(format!(
                    "the config topic `{}` did not say where the records went",
                    self.topic
                ))
            })?;
        self.wait_for(last + 1).await?;
        Ok(last + 1)
    }

    /// Waits until everything written to the topic so far is read: what
    /// the leader does before it assigns, so that it knows every
    /// connector any member may know.
    pub(crate) async fn read_to_end(&self) -> Result<u64> {
        let ends = end_offsets(&self.client, &self.topic, 1, End::Written)
            .await
            .map_err(|e| self.error(e))?;
        let end = ends.first().map_or(0, |(_, end)| *end);
        self.wait_for(end).await?;
        Ok(end)
    }

    /// Waits until the follower has read up to `offset`.
    pub(crate) async fn wait_for(&self, offset: u64) -> Result<()> {
        let mut read = self.read.clone();
        // The borrow `wait_for` answers with is let go at once.
        let waited = async move { read.wait_for(|at| *at >= offset).await.map(|_| ()) };
        match tokio::time::timeout(READ_PATIENCE, waited).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ConnectError::Task(format!(
                "the reader of the config topic `{}` has stopped",
                self.topic
            ))),
            Err(_) => Err(ConnectError::Task(format!(
                "the config topic `{}` was not read up to offset {offset} within \
                 {READ_PATIENCE:?}",
                self.topic
            ))),
        }
    }

    fn error(&self, error: spool_client::ClientError) -> ConnectError {
        ConnectError::client(format!("the config topic `{}`", self.topic), error)
    }
}

impl Drop for ConfigLog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// Reads the topic on as it grows, applying each record, and tells of the
/// offset reached.
async fn follow(
    mut reader: TopicReader,
    state: Arc<RwLock<ClusterConfig>>,
    reached: watch::Sender<u64>,
) {
    loop {
        let records = match reader.poll(FOLLOW_WAIT).await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "reading the config topic failed; retrying");
                tokio::time::sleep(FOLLOW_BACKOFF).await;
                continue;
            }
        };
        // Where the next fetch starts, past markers and compacted gaps;
        // the records' own offsets when it cannot be told now.
        let position = reader.position(0).await.ok();
        let offset = {
            let mut state = state.write();
            for record in &records {
                state.apply_record(record);
            }
            if let Some(position) = position {
                state.offset = state.offset.max(position);
            }
            state.offset
        };
        reached.send_if_modified(|at| {
            let moved = *at < offset;
            *at = (*at).max(offset);
            moved
        });
    }
}
