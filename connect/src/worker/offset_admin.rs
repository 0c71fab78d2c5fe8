//! A connector's committed offsets read, altered and reset from outside
//! (Kafka Connect's `GET`, `PATCH` and `DELETE /connectors/{name}/offsets`,
//! KIP-875): a source connector's in the worker's offsets store (the
//! offsets file or the offsets topic), a sink connector's in its consumer
//! group `connect-<name>`. Under exactly-once, a source connector's tasks
//! are fenced before its offsets change, as Kafka fences them, so that no
//! zombie's transaction commits over the change.
//!
//! Kafka only alters the offsets of a STOPPED connector. Here a running or
//! paused one is accepted too: its tasks stop gracefully first (flushing
//! and storing their offsets, so their last commit cannot overwrite the
//! change), the change is applied, and the connector and its tasks start
//! again in the state they were in, reading on from the altered offsets.
//! Pausing the tasks would not do: a task keeps its position in memory
//! once started (the file source reads on from where it is), and only a
//! new task reads the stored offsets. A stopped or failed connector is
//! only altered, and starts nothing. A distributed worker, whose tasks run
//! on other workers too, stops the connector through its config topic
//! instead and waits for every task to stop (`distributed::offsets`),
//! then applies the change through the same `Runtime` methods.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spool_client::proto::{ErrorCode, OffsetFetchRequest};
use spool_client::ClientError;

use super::lifecycle::{running_mut, target_of};
use super::runtime::Runtime;
use super::status::State;
use super::task::Target;
use super::Worker;
use crate::api::{Connector, ConnectorType, SourceOffset, SourcePartition, TopicPartition, Value};
use crate::{ConnectError, Result};

/// A sink offset's partition key: the topic (Kafka's).
pub const KAFKA_TOPIC: &str = "kafka_topic";
/// A sink offset's partition key: the partition number (Kafka's).
pub const KAFKA_PARTITION: &str = "kafka_partition";
/// A sink offset's offset key: the next offset to read (Kafka's).
pub const KAFKA_OFFSET: &str = "kafka_offset";

/// One partition's offset as the offsets endpoints show it: a source
/// connector's partition and offset as it writes them, or for a sink
/// `{"kafka_topic", "kafka_partition"}` and `{"kafka_offset"}`. In an
/// alteration, no offset (`null`) forgets the partition's offset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectorOffset {
    pub partition: BTreeMap<String, Value>,
    #[serde(default)]
    pub offset: Option<BTreeMap<String, Value>>,
}

/// A connector's offsets (Kafka's `ConnectorOffsets`, the body of
/// `GET` and `PATCH /connectors/{name}/offsets`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectorOffsets {
    pub offsets: Vec<ConnectorOffset>,
}

/// The consumer group of a sink connector's tasks, as the sink loop names
/// it (Kafka's default, `connect-<name>`).
fn sink_group(name: &str) -> String {
    format!("connect-{name}")
}

/// An offsets change, checked and in the store's terms.
pub(super) enum Change {
    Source(Vec<(SourcePartition, Option<SourceOffset>)>),
    Sink(Vec<(TopicPartition, Option<u64>)>),
    Reset(ConnectorType),
}

/// The change an alteration of `offsets` makes to `connector`'s offsets,
/// once the connector checked it (its `alter_offsets`, which may refuse
/// it), and the connector's answer: whether its offsets are all the
/// runtime's (the change is then complete).
pub(super) fn plan_alteration(
    connector: &Connector,
    config: &BTreeMap<String, String>,
    offsets: Vec<ConnectorOffset>,
) -> Result<(Change, bool)> {
    match connector {
        Connector::Source(c) => {
            let changes = source_changes(offsets)?;
            let complete = c.alter_offsets(config, &changes)?;
            Ok((Change::Source(changes), complete))
        }
        Connector::Sink(c) => {
            let changes = sink_changes(offsets)?;
            let complete = c.alter_offsets(config, &changes)?;
            Ok((Change::Sink(changes), complete))
        }
    }
}

/// A reset of every offset of `connector`, as [`plan_alteration`] plans
/// an alteration.
pub(super) fn plan_reset(
    connector: &Connector,
    config: &BTreeMap<String, String>,
) -> Result<(Change, bool)> {
    let complete = match connector {
        Connector::Source(c) => c.alter_offsets(config, &[])?,
        Connector::Sink(c) => c.alter_offsets(config, &[])?,
    };
    Ok((Change::Reset(connector.connector_type()), complete))
}

impl Worker {
    /// Connector `name`'s committed offsets: a source's from the offsets
    /// store, a sink's from its consumer group.
    pub async fn connector_offsets(&self, name: &str) -> Result<ConnectorOffsets> {
        let connector_type = self.connector_type(name).await?;
        self.inner.runtime.offsets_of(name, connector_type).await
    }

    /// Alters connector `name`'s offsets (see the module's comment for a
    /// connector that runs): each entry sets a partition's offset, or
    /// forgets it. The connector checks them first (its `alter_offsets`),
    /// and a refusal changes nothing. Returns the connector's answer:
    /// whether its offsets are all the runtime's (the change is complete).
    pub async fn alter_connector_offsets(
        &self,
        name: &str,
        offsets: Vec<ConnectorOffset>,
    ) -> Result<bool> {
        self.change_offsets(name, |connector, config| {
            plan_alteration(connector, config, offsets)
        })
        .await
    }

    /// Forgets every offset of connector `name`, so it reads its sources
    /// (or a sink its topics) from the start (see the module's comment for
    /// a connector that runs). Returns the connector's answer, as
    /// [`Worker::alter_connector_offsets`].
    pub async fn reset_connector_offsets(&self, name: &str) -> Result<bool> {
        self.change_offsets(name, plan_reset).await
    }

    /// Plans a change with the connector, then applies it with the
    /// connector's tasks stopped.
    async fn change_offsets(
        &self,
        name: &str,
        plan: impl FnOnce(&Connector, &BTreeMap<String, String>) -> Result<(Change, bool)>,
    ) -> Result<bool> {
        let mut guard = self.inner.connectors.lock().await;
        let running = running_mut(&mut guard, name)?;
        let (change, complete) = plan(&running.connector, &running.config)?;
        let target = target_of(running);
        let active = target != Target::Stopped && running.status.connector_state() != State::Failed;
        let restart = match active {
            true => Some(self.prepare(&running.config)?),
            false => None,
        };
        if restart.is_some() {
            self.halt(name, running).await;
        }
        let applied = self
            .inner
            .runtime
            .apply_offsets(name, &running.config, change, 0)
            .await;
        if let Some(prepared) = restart {
            // Started again whether or not the change went through: a
            // failed change leaves the offsets as they were.
            self.install(name, running, prepared, target);
        }
        tracing::info!(connector = %name, applied = applied.is_ok(), "connector offsets changed");
        applied.map(|()| complete)
    }
}

impl Runtime {
    /// Connector `name`'s committed offsets: a source's from the offsets
    /// store, a sink's from its consumer group.
    pub(super) async fn offsets_of(
        &self,
        name: &str,
        connector_type: ConnectorType,
    ) -> Result<ConnectorOffsets> {
        let offsets = match connector_type {
            ConnectorType::Source => self
                .offsets
                .committed(name)
                .await?
                .into_iter()
                .map(|(partition, offset)| ConnectorOffset {
                    partition,
                    offset: Some(offset),
                })
                .collect(),
            ConnectorType::Sink => self.sink_offsets(name).await?,
        };
        Ok(ConnectorOffsets { offsets })
    }

    /// Applies a planned change to connector `name`'s offsets, its tasks
    /// stopped: a source's in the offsets store, after fencing its zombies
    /// (`known` tasks it had elsewhere, see `fence_zombies`), a sink's in
    /// its consumer group.
    pub(super) async fn apply_offsets(
        &self,
        name: &str,
        config: &BTreeMap<String, String>,
        change: Change,
        known: usize,
    ) -> Result<()> {
        let store = &self.offsets;
        match change {
            Change::Source(changes) => {
                self.fence_zombies(name, config, known).await?;
                store.alter_offsets(name, changes).await
            }
            Change::Reset(ConnectorType::Source) => {
                self.fence_zombies(name, config, known).await?;
                store.reset_offsets(name).await
            }
            Change::Sink(changes) => self.alter_sink_offsets(name, changes).await,
            Change::Reset(ConnectorType::Sink) => self.reset_sink_offsets(name).await,
        }
    }

    async fn sink_offsets(&self, name: &str) -> Result<Vec<ConnectorOffset>> {
        let group = sink_group(name);
        let context = || format!("reading the offsets of group `{group}`");
        let request = OffsetFetchRequest {
            group_id: group.clone(),
            topics: Vec::new(),
            require_stable: false,
        };
        let response = self
            .client
            .offset_fetch(request)
            .await
            .map_err(|e| ConnectError::client(context(), e))?;
        match ClientError::from_code(response.error, &response.message) {
            None => {}
            Some(ClientError::Broker {
                code: ErrorCode::GroupIdNotFound,
                ..
            }) => return Ok(Vec::new()),
            Some(e) => return Err(ConnectError::client(context(), e)),
        }
        Ok(response
            .offsets
            .into_iter()
            .filter(|c| c.found)
            .map(|c| ConnectorOffset {
                partition: [
                    (KAFKA_TOPIC.to_string(), Value::from(c.topic)),
                    (KAFKA_PARTITION.to_string(), Value::from(c.partition)),
                ]
                .into(),
                offset: Some([(KAFKA_OFFSET.to_string(), Value::from(c.offset))].into()),
            })
            .collect())
    }

    /// Commits the offsets set and deletes those forgotten, from outside
    /// the group (generation -1), which the coordinator accepts while the
    /// group has no members: the sink's tasks have left it.
    async fn alter_sink_offsets(
        &self,
        name: &str,
        changes: Vec<(TopicPartition, Option<u64>)>,
    ) -> Result<()> {
        let group = sink_group(name);
        let context = || format!("altering the offsets of group `{group}`");
        let (mut set, mut forgotten) = (Vec::new(), Vec::new());
        for (tp, offset) in changes {
            match offset {
                Some(offset) => set.push((tp, offset)),
                None => forgotten.push((tp.topic, tp.partition)),
            }
        }
        self.client
            .admin()
            .alter_group_offsets(&group, &set)
            .await
            .map_err(|e| ConnectError::client(context(), e))?;
        if !forgotten.is_empty() {
            let partitions: Vec<(&str, u32)> =
                forgotten.iter().map(|(t, p)| (t.as_str(), *p)).collect();
            match self
                .client
                .admin()
                .delete_group_offsets(&group, &partitions)
                .await
            {
                Ok(refused) if refused.is_empty() => {}
                Ok(refused) => {
                    return Err(ConnectError::BadRequest(format!(
                        "the offsets of {refused:?} stay: a member of group `{group}` reads them"
                    )))
                }
                Err(ClientError::Broker {
                    code: ErrorCode::GroupIdNotFound,
                    ..
                }) => {}
                Err(e) => return Err(ConnectError::client(context(), e)),
            }
        }
        Ok(())
    }

    async fn reset_sink_offsets(&self, name: &str) -> Result<()> {
        let group = sink_group(name);
        match self.client.admin().delete_group(&group).await {
            Ok(())
            | Err(ClientError::Broker {
                code: ErrorCode::GroupIdNotFound,
                ..
            }) => Ok(()),
            Err(e) => Err(ConnectError::client(
                format!("resetting the offsets of group `{group}`"),
                e,
            )),
        }
    }
}

/// Source offsets as the store takes them: a partition must be an object
/// with at least one key (Kafka refuses a null or empty one).
fn source_changes(
    offsets: Vec<ConnectorOffset>,
) -> Result<Vec<(SourcePartition, Option<SourceOffset>)>> {
    offsets
        .into_iter()
        .map(|entry| match entry.partition.is_empty() {
            true => Err(ConnectError::BadRequest(
                "a source partition must have at least one key".into(),
            )),
            false => Ok((entry.partition, entry.offset)),
        })
        .collect()
}

/// Sink offsets as the group takes them: Kafka's
/// `{"kafka_topic": <topic>, "kafka_partition": <n>}` and
/// `{"kafka_offset": <n>}`, numbers not negative.
fn sink_changes(offsets: Vec<ConnectorOffset>) -> Result<Vec<(TopicPartition, Option<u64>)>> {
    let bad = |reason: String| ConnectError::BadRequest(reason);
    offsets
        .into_iter()
        .map(|entry| -> Result<(TopicPartition, Option<u64>)> {
            let topic = entry
                .partition
                .get(KAFKA_TOPIC)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad(format!("a sink partition needs a `{KAFKA_TOPIC}` string")))?;
            let partition = entry
                .partition
                .get(KAFKA_PARTITION)
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "a sink partition needs a `{KAFKA_PARTITION}` number, not negative"
                    ))
                })?;
            let offset = match &entry.offset {
                None => None,
                Some(offset) => Some(
                    offset
                        .get(KAFKA_OFFSET)
                        .and_then(Value::as_u64)
                        .ok_or_else(|| {
                            bad(format!(
                                "a sink offset needs a `{KAFKA_OFFSET}` number, not negative"
                            ))
                        })?,
                ),
            };
            Ok((TopicPartition::new(topic, partition), offset))
        })
        .collect()
}
