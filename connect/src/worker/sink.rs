//! A sink task's loop: a consumer in the connector's group
//! (`connect-<name>`, as Kafka names it) reads the connector's topics;
//! records are converted and `put`; at each commit interval the task
//! `flush`es and only then are the offsets committed to the group.
//!
//! The order is what makes a restart lose nothing: an offset is committed
//! only after the task said everything below it is durable. What was put
//! after the last commit is delivered again after a crash or a rebalance
//! (at least once).
//!
//! Each record is converted, then transformed, before `put`. A record a
//! transform drops, or one skipped after an error under
//! `errors.tolerance=all` (see `errors`), still counts as consumed: its
//! offset is committed with the others', as in Kafka. Its dead letter, if
//! any, is acknowledged before `put` is even called.
//!
//! The consumer reads read_committed unless the connector's config says
//! `consumer.override.isolation.level=read_uncommitted` (Kafka's
//! per-connector client override): a sink never writes out the records
//! of an aborted transaction, downstream of an exactly-once source or a
//! streams application.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spool_client::proto::IsolationLevel;
use spool_client::{
    Consumer, ConsumerConfig, ConsumerRecord, GroupSettings, MoveRecorder, OffsetReset,
    PartitionMoves, TopicPartition,
};

use super::errors::{ErrorHandler, Failure, Original, Stage};
use super::status::State;
use super::task::{Target, TaskSetup};
use crate::api::{
    ConfigDef, ConfigKey, ConfigType, Importance, ParsedConfig, SinkRecord, SinkTask,
    SinkTaskContext, TypedValue, Validator,
};
use crate::Result;

/// The isolation level of a sink connector's consumers (Kafka's
/// `consumer.override.` prefix on the consumer's `isolation.level`).
pub const CONSUMER_ISOLATION_LEVEL: &str = "consumer.override.isolation.level";

const READ_UNCOMMITTED: &str = "read_uncommitted";
const READ_COMMITTED: &str = "read_committed";

/// How long one poll waits for records: how soon an idle task notices it
/// is to stop or pause, for the price of an empty fetch.
const POLL_TIMEOUT: Duration = Duration::from_millis(200);

/// The sink connector keys of its consumers, with Kafka's defaults.
pub(super) fn config_def() -> ConfigDef {
    // read_committed, where Kafka's consumer (and so a Kafka sink) reads
    // read_uncommitted: a sink is where records leave for a store that
    // cannot take them back, and an aborted transaction's records written
    // there would be the duplicates exactly-once upstream was for. A topic
    // no transaction writes reads the same either way.
    ConfigDef::new().define(
        ConfigKey::new(
            CONSUMER_ISOLATION_LEVEL,
            ConfigType::String,
            Importance::Medium,
            "The isolation level of the connector's consumers: read_committed to take in only \
             records of committed transactions (downstream of exactly-once sources), or \
             read_uncommitted.",
        )
        .default_value(READ_COMMITTED)
        .validator(Validator::OneOf(vec![
            READ_UNCOMMITTED.into(),
            READ_COMMITTED.into(),
        ])),
    )
}

/// The isolation level a sink connector's parsed config asks for.
pub(super) fn isolation(parsed: &ParsedConfig) -> IsolationLevel {
    match parsed.get(CONSUMER_ISOLATION_LEVEL) {
        Some(TypedValue::String(level)) if level == READ_UNCOMMITTED => {
            IsolationLevel::ReadUncommitted
        }
        _ => IsolationLevel::ReadCommitted,
    }
}

/// Runs `task` on `topics` until its connector stops it; an error fails
/// the task.
pub(crate) async fn run(
    setup: TaskSetup,
    mut task: Box<dyn SinkTask>,
    topics: Vec<String>,
    isolation: IsolationLevel,
) -> Result<()> {
    // Before the task starts, as Kafka sets up its error reporters: a
    // dead-letter topic that cannot be created fails the task at once.
    let errors = ErrorHandler::open(&setup).await?;
    // Kafka Connect's sink consumers: a new group starts at the earliest
    // record (a sink is to copy the topic, not its future), and offsets
    // are committed by the worker after a flush, never automatically.
    let mut consumer = setup.client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation,
        ..ConsumerConfig::default()
    });
    let mut settings = GroupSettings::new(format!("connect-{}", setup.connector));
    settings.auto_commit = false;
    consumer.subscribe(topics, settings);
    let moves = MoveRecorder::default();
    consumer.set_rebalance_listener(moves.clone());
    let context = SinkTaskContext::new(setup.connector.clone(), setup.id);
    if let Err(e) = task.start(setup.config.clone(), context.clone()).await {
        finish(task.as_mut(), consumer, &setup).await;
        return Err(e);
    }
    setup.set_state(State::Running);
    let mut sink = SinkLoop {
        setup,
        consumer,
        moves,
        errors,
        context,
        consumed: BTreeMap::new(),
        last_commit: Instant::now(),
        paused: false,
    };
    let outcome = sink.run(task.as_mut()).await;
    let SinkLoop {
        setup, consumer, ..
    } = sink;
    if outcome.is_err() {
        finish(task.as_mut(), consumer, &setup).await;
        return outcome;
    }
    let assigned = consumer.assignment();
    let closed = task.close(assigned).await;
    let stopped = task.stop().await;
    let left = consumer
        .close()
        .await
        .map_err(setup.client_error("leaving the group"));
    closed.and(stopped).and(left)
}

/// Stops a task that failed, and leaves the group so its partitions move
/// at once; errors on the way are logged, the first one is what the
/// status shows.
async fn finish(task: &mut dyn SinkTask, consumer: Consumer, setup: &TaskSetup) {
    setup.warn_on_error(task.stop().await, "stopping a failed task failed too");
    setup.warn_on_error(consumer.close().await, "leaving the group failed");
}

struct SinkLoop {
    setup: TaskSetup,
    consumer: Consumer,
    moves: MoveRecorder,
    errors: ErrorHandler,
    /// The worker's clone of the task's context: the offsets the task
    /// asks for arrive through it (`rewind`).
    context: SinkTaskContext,
    /// The next offset of each partition put since the last commit.
    consumed: BTreeMap<TopicPartition, u64>,
    last_commit: Instant,
    /// Whether the assigned partitions are paused.
    paused: bool,
}

impl SinkLoop {
    async fn run(&mut self, task: &mut dyn SinkTask) -> Result<()> {
        loop {
            let target = self.setup.target();
            if target == Target::Stopped {
                break;
            }
            self.follow(target);
            if self.consumer.rebalance_pending() {
                // Committed before the poll hands partitions back, so their
                // next owner does not get what this task already wrote.
                self.commit(task).await?;
            }
            let mut records = self.poll().await?;
            self.apply_moves(task).await?;
            self.rewind(&mut records);
            // Even with no records, as Kafka Connect does: a task that
            // buffers may write what waits once its input goes quiet.
            self.put(task, records).await?;
            if self.last_commit.elapsed() >= self.setup.flush_interval {
                self.commit(task).await?;
            }
        }
        self.commit(task).await
    }

    /// Pauses or resumes the assigned partitions as the connector asks.
    /// Paused, the consumer keeps polling, so the group still sees a live
    /// member, but fetches nothing; partitions assigned meanwhile are
    /// paused as they come.
    fn follow(&mut self, target: Target) {
        let pause = target == Target::Paused;
        if pause {
            for tp in self.consumer.assignment() {
                self.consumer.pause(&tp);
            }
        } else if self.paused {
            for tp in self.consumer.assignment() {
                self.consumer.resume(&tp);
            }
        }
        if pause != self.paused {
            self.paused = pause;
            self.setup
                .set_state(if pause { State::Paused } else { State::Running });
        }
    }

    /// Tells the task what the last poll's rebalance moved.
    async fn apply_moves(&mut self, task: &mut dyn SinkTask) -> Result<()> {
        let PartitionMoves { revoked, assigned } = self.moves.take();
        if !revoked.is_empty() {
            // Their progress since the last commit is another task's to
            // redo now.
            for tp in &revoked {
                self.consumed.remove(tp);
            }
            task.close(revoked).await?;
        }
        if !assigned.is_empty() {
            task.open(assigned).await?;
        }
        Ok(())
    }

    /// Seeks each partition the task asked to read from elsewhere
    /// (`SinkTaskContext::offset`, Kafka's `WorkerSinkTask.rewind`): its
    /// records in hand are dropped, to be fetched again from there, and
    /// the offset is what the next commit stores for it, as in Kafka. A
    /// sink that keeps its offsets with its data asks for them in `open`,
    /// so what the group committed (which may lag) does not decide.
    fn rewind(&mut self, records: &mut Vec<ConsumerRecord>) {
        for (tp, offset) in self.context.take_requested_offsets() {
            if let Err(e) = self.consumer.seek(&tp, offset) {
                tracing::warn!(
                    connector = %self.setup.connector,
                    task = self.setup.id,
                    topic = %tp.topic,
                    partition = tp.partition,
                    error = %e,
                    "the task asked for an offset of a partition it does not own; ignored"
                );
                continue;
            }
            tracing::info!(
                connector = %self.setup.connector,
                task = self.setup.id,
                topic = %tp.topic,
                partition = tp.partition,
                offset,
                "reading the partition from the offset the task asked for"
            );
            records.retain(|r| r.partition != tp.partition || *r.topic != *tp.topic);
            self.consumed.insert(tp, offset);
        }
    }

    /// The next records, retrying a retriable failure as
    /// `errors.retry.timeout` allows (Kafka's `KAFKA_CONSUME` stage).
    async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        let mut retry = self.errors.retry();
        loop {
            match self.consumer.poll(POLL_TIMEOUT).await {
                Ok(records) => return Ok(records),
                Err(e) => retry.after((self.setup.client_error("polling"))(e)).await?,
            }
        }
    }

    /// Converts, transforms and puts `records`; a record that fails is
    /// reported, and either fails the task or is skipped.
    async fn put(&mut self, task: &mut dyn SinkTask, records: Vec<ConsumerRecord>) -> Result<()> {
        let mut batch = Vec::with_capacity(records.len());
        // The next offset of each partition, from the records as consumed:
        // a transform may rename a record's topic.
        let mut reached: Vec<(TopicPartition, u64)> = Vec::new();
        for record in &records {
            match reached.last_mut() {
                Some((tp, next))
                    if tp.partition == record.partition && tp.topic == *record.topic =>
                {
                    *next = record.offset + 1;
                }
                _ => reached.push((
                    TopicPartition::new(&*record.topic, record.partition),
                    record.offset + 1,
                )),
            }
            match self.process(record) {
                Ok(Some(converted)) => batch.push(converted),
                Ok(None) => {}
                Err(failure) => {
                    self.errors
                        .failed(failure, Original::Consumed(record))
                        .await?
                }
            }
        }
        task.put(batch).await?;
        // In offset order within a partition: the last one stays.
        self.consumed.extend(reached);
        Ok(())
    }

    /// `record` converted and transformed; `None` when a transform dropped
    /// it.
    fn process(&self, record: &ConsumerRecord) -> std::result::Result<Option<SinkRecord>, Failure> {
        let topic: &str = &record.topic;
        let key_converter = &*self.setup.key_converter;
        let key = key_converter
            .decode(topic, record.key.as_deref())
            .map_err(|e| Failure::converter(Stage::KeyConverter, key_converter, e))?;
        let value_converter = &*self.setup.value_converter;
        let value = value_converter
            .decode(topic, record.value.as_deref())
            .map_err(|e| Failure::converter(Stage::ValueConverter, value_converter, e))?;
        let converted = SinkRecord {
            topic: topic.to_string(),
            partition: record.partition,
            offset: record.offset,
            key,
            value,
            headers: record.headers.clone(),
            timestamp: record.timestamp,
        };
        self.setup
            .pipeline
            .transforms
            .apply(converted)
            .map_err(Failure::transform)
    }

    /// Flushes the task with the offsets put so far, then commits them.
    /// A refused commit (the group rebalancing) is not the task's fault:
    /// it is logged, and the offsets go with the next commit if the task
    /// still owns their partitions.
    async fn commit(&mut self, task: &mut dyn SinkTask) -> Result<()> {
        self.last_commit = Instant::now();
        if self.consumed.is_empty() {
            return Ok(());
        }
        task.flush(self.consumed.clone()).await?;
        let offsets: Vec<(TopicPartition, u64)> = self
            .consumed
            .iter()
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        let committed = self.consumer.commit_offsets(&offsets).await;
        if committed.is_ok() {
            self.consumed.clear();
        }
        self.setup.warn_on_error(
            committed,
            "committing offsets failed; they go with the next commit",
        );
        Ok(())
    }
}
