//! The connector traits: a connector splits a job into task configs; its
//! tasks move the data, a source task by polling records out of a system,
//! a sink task by taking records in.
//!
//! Connectors are small and synchronous: the worker calls them to start,
//! split and stop, never per record. Task methods return boxed futures,
//! so tasks are trait objects the worker builds by class name and still
//! do asynchronous I/O (a database client, a file). An implementation
//! writes `Box::pin(async move { ... })`.
//!
//! The worker never cancels a task's future half-way through: it awaits
//! each call to its end, and checks whether to stop or pause between
//! calls. A task that hangs is dropped only when its connector is
//! stopped and `task.shutdown.graceful.timeout.ms` has passed.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::Serialize;
use spool_client::TopicPartition;

use super::config::{ConfigDef, ConfigMap};
use super::context::{SinkTaskContext, SourceTaskContext};
use super::record::{SinkRecord, SourceOffset, SourcePartition, SourceRecord};
use crate::Result;

/// A future already done with `Ok(())`: what a task method with nothing
/// to do returns (the default of the optional ones).
pub fn done<'a>() -> BoxFuture<'a, Result<()>> {
    let ready: std::future::Ready<Result<()>> = std::future::ready(Ok(()));
    Box::pin(ready)
}

/// Which way a connector moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorType {
    /// From an outside system into topics.
    Source,
    /// From topics into an outside system.
    Sink,
}

/// A connector of either kind, as the plugin registry builds it.
pub enum Connector {
    Source(Box<dyn SourceConnector>),
    Sink(Box<dyn SinkConnector>),
}

impl Connector {
    pub fn connector_type(&self) -> ConnectorType {
        match self {
            Connector::Source(_) => ConnectorType::Source,
            Connector::Sink(_) => ConnectorType::Sink,
        }
    }

    /// The connector's own keys.
    pub fn config_def(&self) -> ConfigDef {
        match self {
            Connector::Source(c) => c.config_def(),
            Connector::Sink(c) => c.config_def(),
        }
    }

    pub fn version(&self) -> String {
        match self {
            Connector::Source(c) => c.version().to_string(),
            Connector::Sink(c) => c.version().to_string(),
        }
    }
}

/// A source connector (Kafka's `SourceConnector`): configures the tasks
/// that read an outside system.
pub trait SourceConnector: Send {
    /// The connector's version, as the plugin list shows it.
    fn version(&self) -> &str;

    /// The keys this connector accepts. The worker checks a config map
    /// against them (together with the keys every connector has, such as
    /// `connector.class` and `tasks.max`) before it calls `start`, so
    /// `start` may count on every defined key being valid.
    fn config_def(&self) -> ConfigDef;

    /// Starts the connector with its config map: the whole map as the user
    /// gave it, worker-wide keys included. Called once, before
    /// `task_configs`. An error marks the connector FAILED; no task starts.
    fn start(&mut self, config: &ConfigMap) -> Result<()>;

    /// The configs of at most `max_tasks` tasks (the connector's
    /// `tasks.max`, at least 1); the worker starts one task per entry,
    /// numbered from 0 in this order. Fewer entries than `max_tasks` is
    /// normal: a connector reading one file has one task. The source
    /// partitions the tasks read must not overlap, or two tasks would
    /// write each other's offsets.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>>;

    /// Stops the connector, after every task has stopped. Releases what
    /// `start` acquired; an error is logged, the connector is gone anyway.
    fn stop(&mut self) -> Result<()>;

    /// A new, unstarted task (Kafka's `taskClass`).
    fn create_task(&self) -> Box<dyn SourceTask>;

    /// Checks an alteration of this connector's committed offsets before
    /// the worker applies it (Kafka's `SourceConnector.alterOffsets`),
    /// given the connector's config: `None` is a partition whose offset is
    /// to be forgotten; for a reset of every offset, `offsets` is empty.
    /// An error refuses the alteration (a 400 naming what is wrong, say
    /// [`ConnectError::BadRequest`](crate::ConnectError::BadRequest)) and
    /// nothing changes, so a task never starts on an offset it cannot
    /// read.
    ///
    /// `Ok(true)` says the connector keeps its offsets only through the
    /// worker, so the alteration is complete; `Ok(false)`, the default,
    /// that the worker cannot know whether the outside system keeps
    /// offsets of its own, which its user must then alter there too.
    fn alter_offsets(
        &self,
        config: &ConfigMap,
        offsets: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<bool> {
        let _ = (config, offsets);
        Ok(false)
    }
}

/// A source task (Kafka's `SourceTask`): reads records out of an outside
/// system, each tagged with its source partition and offset.
///
/// The worker calls `start` once, then `poll` in a loop, `commit` after
/// each offset flush, and `stop` once at the end: after the last `poll`,
/// or after an error of any method. Calls never overlap.
pub trait SourceTask: Send {
    /// Starts the task with a config map from the connector's
    /// `task_configs`. `context.offsets()` holds the last committed offset
    /// of every source partition this connector has written: the task
    /// resumes from it, so that a record whose offset was committed is
    /// never read again, and none after it is skipped. An error marks the
    /// task FAILED.
    fn start(&mut self, config: ConfigMap, context: SourceTaskContext)
        -> BoxFuture<'_, Result<()>>;

    /// The next records, in the order they are to be produced; empty when
    /// nothing new arrived. With nothing to return, wait a little for new
    /// data first (a few hundred milliseconds), so an idle task does not
    /// spin; but return within about a second in any case: the worker
    /// stops and pauses a task only between polls.
    ///
    /// Each record's `source_offset` is the position just past it. The
    /// worker produces the records in order and, at each offset flush,
    /// once every record produced so far is acknowledged, stores the last
    /// offset of each source partition. A task keeps its own position in
    /// memory meanwhile: records returned are never asked for again by
    /// this task instance, whatever happens to them.
    ///
    /// An error marks the task FAILED: the offsets of records not flushed
    /// yet are not committed, and a restarted task reads them again (at
    /// least once).
    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>>;

    /// Called after an offset flush stored the offsets of every record
    /// polled before it (and the records are on the broker): a task whose
    /// source system wants acknowledgements (a queue) may send them now.
    /// An error is logged; the offsets are stored already.
    fn commit(&mut self) -> BoxFuture<'_, Result<()>> {
        done()
    }

    /// Stops the task: closes what `start` opened. The worker has flushed
    /// the offsets of everything acknowledged, unless the task failed.
    fn stop(&mut self) -> BoxFuture<'_, Result<()>>;
}

/// A sink connector (Kafka's `SinkConnector`): configures the tasks that
/// write topics into an outside system. The topics are the connector's
/// `topics` key; the worker adds it to every task config.
pub trait SinkConnector: Send {
    /// The connector's version, as the plugin list shows it.
    fn version(&self) -> &str;

    /// The keys this connector accepts; see [`SourceConnector::config_def`].
    /// `topics` is checked by the worker for every sink.
    fn config_def(&self) -> ConfigDef;

    /// Starts the connector; see [`SourceConnector::start`].
    fn start(&mut self, config: &ConfigMap) -> Result<()>;

    /// The configs of at most `max_tasks` tasks. Every task joins the
    /// connector's consumer group (`connect-<name>`), which spreads the
    /// topics' partitions over them: tasks need not split the topics
    /// themselves.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>>;

    /// Stops the connector, after every task has stopped.
    fn stop(&mut self) -> Result<()>;

    /// A new, unstarted task (Kafka's `taskClass`).
    fn create_task(&self) -> Box<dyn SinkTask>;

    /// Checks an alteration of the offsets the connector's consumer group
    /// committed (Kafka's `SinkConnector.alterOffsets`): each partition's
    /// next offset to read, or `None` to forget it (the partition is then
    /// read from its start); for a reset of every offset, `offsets` is
    /// empty. As [`SourceConnector::alter_offsets`]: an error refuses the
    /// alteration, and `Ok(true)` says the group's offsets are the only
    /// ones (a sink that stores offsets in its outside system, for
    /// exactly-once, answers `Ok(false)` or alters them there).
    fn alter_offsets(
        &self,
        config: &ConfigMap,
        offsets: &[(TopicPartition, Option<u64>)],
    ) -> Result<bool> {
        let _ = (config, offsets);
        Ok(false)
    }
}

/// A sink task (Kafka's `SinkTask`): writes records of its assigned
/// partitions into an outside system.
///
/// The worker calls `start` once; `open` with partitions the group gives
/// the task and `close` with those it takes away; `put` with each batch
/// of records; `flush` before it commits offsets; `stop` once at the end.
/// Calls never overlap.
pub trait SinkTask: Send {
    /// Starts the task with a config map from the connector's
    /// `task_configs` (with `topics`). An error marks the task FAILED.
    fn start(&mut self, config: ConfigMap, context: SinkTaskContext) -> BoxFuture<'_, Result<()>>;

    /// The group gave the task these partitions; records of them follow,
    /// from the group's committed offsets (or the earliest record of a
    /// partition never committed), unless the task asks for others with
    /// [`SinkTaskContext::offset`] (a sink that stores its offsets with its
    /// data does, here). A task that keeps per-partition state (a writer
    /// per table partition) opens it here.
    fn open(&mut self, partitions: Vec<TopicPartition>) -> BoxFuture<'_, Result<()>> {
        let _ = partitions;
        done()
    }

    /// Takes records, in offset order within each partition. The task may
    /// write them at once or buffer them: only what `flush` returns `Ok`
    /// for counts as written. Called after every poll of the worker's
    /// consumer, with no records when it brought none (as Kafka Connect
    /// does), so a task that buffers can write what waits once its input
    /// goes quiet rather than at the next commit. An error marks the task FAILED; the records
    /// since the last commit are delivered again to whichever task gets
    /// their partitions next (at least once).
    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>>;

    /// Makes every record `put` so far durable in the outside system. The
    /// worker calls it before each offset commit, with the offsets it is
    /// about to commit (the next offset to read, per partition: every
    /// record below it has been `put`); once `flush` returns `Ok`, those
    /// offsets are committed and the records are never delivered again.
    /// An error marks the task FAILED, and nothing is committed.
    fn flush(&mut self, offsets: BTreeMap<TopicPartition, u64>) -> BoxFuture<'_, Result<()>> {
        let _ = offsets;
        done()
    }

    /// The group took these partitions away. Their records since the last
    /// commit go to another task; state kept for them is dropped here.
    fn close(&mut self, partitions: Vec<TopicPartition>) -> BoxFuture<'_, Result<()>> {
        let _ = partitions;
        done()
    }

    /// Stops the task, after the last flush and commit (unless it failed).
    fn stop(&mut self) -> BoxFuture<'_, Result<()>>;
}
