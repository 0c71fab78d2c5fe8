//! A processing thread: one group member running the tasks the group
//! gives it, committing every commit interval.
//!
//! The loop: poll; if the group moved partitions, close the tasks that
//! went (their work since the last commit is dropped under exactly-once:
//! the transaction holding it aborts, and their stores never saw it) and
//! open (and restore) the ones that came; process the records; send what
//! the sinks wrote; commit when the interval is up (see `commit`: a
//! commit's sending overlaps the processing of what comes next).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spool_client::proto::IsolationLevel;
use spool_client::{
    Assignor, Client, Consumer, ConsumerConfig, GroupSettings, MoveRecorder, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use tokio::sync::watch;

use super::metrics::{Metrics, TaskMetrics};
use super::task::{Shared, Task, TaskId};
use super::{restore, StreamsConfig};
use crate::topology::{OutputRecord, Topology};
use crate::{Result, StreamsError};

/// The changelog offset each (task, store) reached in a commit.
pub(super) type Reached = BTreeMap<(TaskId, usize), u64>;

/// A commit whose records and transaction are on their way (see
/// `commit`).
pub(super) struct InFlight {
    pub(super) sending: tokio::task::JoinHandle<Result<Reached>>,
    pub(super) began: Instant,
    /// The input offsets it commits.
    pub(super) offsets: Vec<(TopicPartition, u64)>,
}

impl InFlight {
    /// Stops sending (the thread failed).
    pub(super) fn abort(self) {
        self.sending.abort();
    }
}

#[derive(Clone)]
pub(crate) struct StreamThread {
    pub index: usize,
    pub client: Client,
    pub config: Arc<StreamsConfig>,
    pub topology: Arc<Topology>,
    pub shared: Shared,
    pub metrics: Arc<Metrics>,
    /// This instance's id (see `StreamsConfig::instance_id`).
    pub instance: String,
}

pub(super) struct Running {
    pub(super) consumer: Consumer,
    pub(super) producer: Producer,
    moves: MoveRecorder,
    pub(super) tasks: BTreeMap<TaskId, Task>,
    /// Resolved input topic → its sub-topology.
    subs_by_topic: BTreeMap<String, usize>,
    /// When the last commit started.
    pub(super) last_commit: Instant,
    /// Under exactly-once, whether the thread's transaction is open.
    pub(super) in_transaction: bool,
    /// Acknowledgements of records sent since the last commit.
    pub(super) pending: Vec<tokio::task::JoinHandle<spool_client::Result<()>>>,
    /// The commit being sent, if any.
    pub(super) in_flight: Option<InFlight>,
    /// The tasks whose metrics this thread published last.
    published: Vec<TaskId>,
    /// Repartition topics read, and how far their partitions are
    /// committed: what the next purge may delete.
    pub(super) repartitions: std::collections::BTreeSet<String>,
    pub(super) purgeable: BTreeMap<TopicPartition, u64>,
    pub(super) last_purge: Instant,
}

pub(super) fn client_error(
    context: &str,
) -> impl FnOnce(spool_client::ClientError) -> StreamsError + '_ {
    move |e| StreamsError::client(context, e)
}

impl StreamThread {
    fn thread_name(&self) -> String {
        format!(
            "{}-{}-{}",
            self.config.application_id, self.instance, self.index
        )
    }

    async fn start(&self) -> Result<Running> {
        let config = &self.config;
        let app = &config.application_id;
        let eos = config.exactly_once();
        let producer = self.client.producer(ProducerConfig {
            transactional_id: eos.then(|| self.thread_name()),
            // Kafka Streams' value under exactly-once: an instance that died
            // mid-transaction holds back its partitions' readers this long.
            transaction_timeout: Duration::from_secs(10),
            ..ProducerConfig::default()
        });
        if eos {
            producer
                .init_transactions()
                .await
                .map_err(client_error("initializing transactions"))?;
        }
        let mut consumer = self.client.consumer(ConsumerConfig {
            offset_reset: spool_client::OffsetReset::Earliest,
            isolation: if eos {
                IsolationLevel::ReadCommitted
            } else {
                IsolationLevel::ReadUncommitted
            },
            ..ConsumerConfig::default()
        });
        let mut settings = GroupSettings::new(app.clone());
        // Partition p of every co-partitioned topic to one member, as a
        // task needs, and cooperative: a rebalance stops only the tasks
        // that move (docs/streams.md).
        settings.assignors = vec![Assignor::CooperativeCopartitioned];
        settings.auto_commit = false;
        settings.session_timeout = config.session_timeout;
        settings.instance_id = config.instance_id.as_ref().map(|_| self.thread_name());
        let topics: Vec<String> = self
            .topology
            .source_topics()
            .map(|t| t.resolve(app))
            .collect();
        let subs_by_topic = self
            .topology
            .source_topics()
            .filter_map(|t| Some((t.resolve(app), self.topology.sub_topology_of(t)?)))
            .collect();
        let repartitions = self
            .topology
            .source_topics()
            .filter(|t| matches!(t, crate::topology::TopicName::Internal(_)))
            .map(|t| t.resolve(app))
            .collect();
        consumer.subscribe(topics, settings);
        let moves = MoveRecorder::default();
        consumer.set_rebalance_listener(moves.clone());
        Ok(Running {
            consumer,
            producer,
            moves,
            tasks: BTreeMap::new(),
            subs_by_topic,
            last_commit: Instant::now(),
            in_transaction: false,
            pending: Vec::new(),
            in_flight: None,
            published: Vec::new(),
            repartitions,
            purgeable: BTreeMap::new(),
            last_purge: Instant::now(),
        })
    }

    /// Runs until `stop` turns true or an error stops the thread; commits
    /// and leaves the group on the way out.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut running = self.start().await?;
        let outcome = self.run_loop(&mut running, &mut stop).await;
        if outcome.is_ok() {
            self.commit(&mut running).await?;
        } else if let Some(in_flight) = running.in_flight.take() {
            // Its transaction is left to the replacement's producer, which
            // fences and aborts it.
            in_flight.abort();
        } else if running.in_transaction {
            let _ = running.producer.abort_transaction().await;
        }
        running.tasks.clear();
        self.publish_task_metrics(&mut running);
        let _ = running.consumer.close().await;
        outcome
    }

    async fn run_loop(
        &self,
        running: &mut Running,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        while !*stop.borrow() {
            if running.consumer.rebalance_pending() {
                // Commit before the poll hands our partitions back.
                self.commit(running).await?;
            }
            // Short while a commit is in flight: finishing it (the stores'
            // writes reaching the disk) should not wait for input.
            let wait = match running.in_flight {
                Some(_) => Duration::from_millis(5),
                None => Duration::from_millis(100),
            };
            let polled = tokio::select! {
                polled = running.consumer.poll(wait) => polled,
                _ = stop.changed() => break,
            };
            let records = polled.map_err(client_error("polling"))?;
            self.apply_moves(running).await?;
            // Counted per batch: the counters are shared by every thread.
            let (skipped_before, mut processed) = (skipped(running), 0);
            for record in &records {
                processed += u64::from(self.process(running, record)?);
            }
            self.metrics.processed(processed);
            self.metrics.skipped(skipped(running) - skipped_before);
            let wall_clock = now_ms();
            for task in running.tasks.values_mut() {
                task.punctuate(wall_clock)?;
            }
            self.send_outputs(running).await?;
            self.commit_when_due(running).await?;
            self.publish_task_metrics(running);
        }
        Ok(())
    }

    fn process(
        &self,
        running: &mut Running,
        record: &spool_client::ConsumerRecord,
    ) -> Result<bool> {
        let Some(&sub) = running.subs_by_topic.get(&*record.topic) else {
            return Ok(false);
        };
        let id = TaskId {
            sub_topology: sub,
            partition: record.partition,
        };
        let Some(task) = running.tasks.get_mut(&id) else {
            return Ok(false);
        };
        task.process(record)?;
        Ok(true)
    }
}

impl StreamThread {
    /// Closes tasks whose partitions were revoked and opens (restoring
    /// their stores) tasks whose partitions were assigned.
    async fn apply_moves(&self, running: &mut Running) -> Result<()> {
        let moves = running.moves.take();
        if moves.revoked.is_empty() && moves.assigned.is_empty() {
            return Ok(());
        }
        // What was sent before the rebalance counts: tasks change below.
        self.finish_commit(running).await?;
        let revoked = self.tasks_of(running, &moves.revoked);
        if revoked
            .iter()
            .any(|id| running.tasks.get(id).is_some_and(Task::has_uncommitted))
        {
            // The partitions are gone before we could commit: what the
            // tasks did since the last commit must not count.
            self.abandon_uncommitted(running).await?;
        }
        for id in revoked {
            running.tasks.remove(&id);
        }
        for id in self.tasks_of(running, &moves.assigned) {
            if running.tasks.contains_key(&id) {
                continue;
            }
            let mut task = Task::open(id, &self.topology, &self.config, &self.shared)?;
            let restored = restore::restore(&self.client, &mut task).await?;
            self.metrics.restored(restored);
            task.restored = restored;
            running.tasks.insert(id, task);
        }
        Ok(())
    }

    /// Publishes each task's figures (see `TaskMetrics`), and forgets
    /// those of the tasks that left this thread.
    fn publish_task_metrics(&self, running: &mut Running) {
        let mut lags: BTreeMap<TaskId, u64> = BTreeMap::new();
        for tp in running.consumer.assignment() {
            if let Some(&sub) = running.subs_by_topic.get(&tp.topic) {
                let id = TaskId {
                    sub_topology: sub,
                    partition: tp.partition,
                };
                *lags.entry(id).or_default() += running.consumer.lag(&tp).unwrap_or(0);
            }
        }
        let gone: Vec<TaskId> = running
            .published
            .iter()
            .filter(|id| !running.tasks.contains_key(id))
            .copied()
            .collect();
        running.published = running.tasks.keys().copied().collect();
        let owned = running.tasks.iter().map(|(id, task)| {
            let metrics = TaskMetrics {
                records_processed: task.processed,
                records_restored: task.restored,
                records_lag: lags.get(id).copied().unwrap_or(0),
            };
            (*id, metrics)
        });
        self.metrics.publish_tasks(owned, &gone);
    }

    fn tasks_of(&self, running: &Running, partitions: &[TopicPartition]) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = partitions
            .iter()
            .filter_map(|tp| {
                let sub = *running.subs_by_topic.get(&tp.topic)?;
                Some(TaskId {
                    sub_topology: sub,
                    partition: tp.partition,
                })
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Drops every task's work since the last commit: aborts the
    /// transaction (exactly-once), discards the stores' overlays, and
    /// rewinds kept tasks to their committed offsets by reopening them.
    async fn abandon_uncommitted(&self, running: &mut Running) -> Result<()> {
        if running.in_transaction {
            running
                .producer
                .abort_transaction()
                .await
                .map_err(client_error("aborting"))?;
            running.in_transaction = false;
        }
        running.pending.clear();
        // Reopened by the next rebalance's assignment or, for tasks kept,
        // right here: a task reopens at its store's last commit, and the
        // consumer restarts its partitions from the committed offsets.
        let kept: Vec<TaskId> = running.tasks.keys().copied().collect();
        running.tasks.clear();
        for id in kept {
            let mut task = Task::open(id, &self.topology, &self.config, &self.shared)?;
            self.metrics
                .restored(restore::restore(&self.client, &mut task).await?);
            running.tasks.insert(id, task);
        }
        running
            .consumer
            .rewind_to_committed()
            .await
            .map_err(client_error("rewinding"))?;
        Ok(())
    }

    /// Sends what the tasks' sinks wrote (inside the transaction under
    /// exactly-once).
    pub(super) async fn send_outputs(&self, running: &mut Running) -> Result<()> {
        if running.in_flight.is_some() {
            // The next transaction begins once this one committed; the
            // tasks keep their output until then.
            return Ok(());
        }
        let outputs: Vec<OutputRecord> = running
            .tasks
            .values_mut()
            .flat_map(Task::take_outputs)
            .collect();
        if outputs.is_empty() {
            return Ok(());
        }
        self.begin(running)?;
        let records = outputs.into_iter().map(producer_record).collect();
        let acks = running
            .producer
            .send_batch(records)
            .await
            .map_err(client_error("sending"))?;
        running
            .pending
            .push(tokio::spawn(async move { acks.await.map(|_| ()) }));
        Ok(())
    }

    pub(super) fn begin(&self, running: &mut Running) -> Result<()> {
        if self.config.exactly_once() && !running.in_transaction {
            running
                .producer
                .begin_transaction()
                .map_err(client_error("beginning a transaction"))?;
            running.in_transaction = true;
        }
        Ok(())
    }
}

/// Records the thread's tasks have skipped so far.
fn skipped(running: &Running) -> u64 {
    running.tasks.values().map(Task::skipped).sum()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn producer_record(output: OutputRecord) -> ProducerRecord {
    ProducerRecord {
        topic: output.topic,
        partition: output.partition,
        key: output.key.map(Bytes::from),
        value: output.value.map(Bytes::from),
        headers: output
            .headers
            .into_iter()
            .map(|h| (h.key, h.value.map(Bytes::from)))
            .collect(),
        timestamp: Some(output.timestamp),
    }
}
