//! The distributed worker (Kafka Connect's distributed mode): workers of
//! one `group.id` form a group on the broker and share the connectors and
//! tasks among themselves, with everything they share in compacted
//! topics: connector configs, target states, task configs and restart
//! requests in the config topic (`config_log`, one partition, every worker
//! reads all of it), statuses in the status topic (`status_log`), source
//! offsets in the offsets topic (`TopicOffsetStore`, as the standalone
//! worker can keep them).
//!
//! It owns the group membership (`member`, over the client's raw group
//! calls, protocol type `connect`), what workers tell each other through
//! it (`protocol`), the leader's incremental cooperative assignment
//! (`assignor`, KIP-415: what moves is revoked first and handed on in the
//! next round, so adding a connector or a worker stops nothing else, and a
//! task never runs on two workers at once), the loop that applies it
//! (`herder`), what runs on this worker (`local`), and the REST operations
//! (`operations`): any worker takes a change and appends it to the config
//! topic, which puts all changes in one order, so nothing is forwarded to
//! a leader. Connectors and tasks run through the same runtime as the
//! standalone worker's (`runtime`): the same task loops, transforms,
//! converters, error handling and exactly-once transactions, whose
//! transactional ids (`<group.id>-<connector>-<task>`) fence a task's
//! zombie on the worker it left.
//!
//! [`DistributedWorker`] is a cheap, cloneable handle; the REST API serves
//! it through `rest::Herder` like the standalone [`Worker`](super::Worker).

mod assignor;
mod config;
mod config_log;
mod herder;
mod local;
mod member;
mod offsets;
mod operations;
mod protocol;
mod records;
mod state;
mod status_log;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spool_client::Client;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use self::config::{
    DistributedConfig, CONFIG_STORAGE_REPLICATION_FACTOR, CONFIG_STORAGE_TOPIC,
    DEFAULT_CONFIGS_TOPIC, DEFAULT_STATUS_TOPIC, HEARTBEAT_INTERVAL_MS, REBALANCE_TIMEOUT_MS,
    SCHEDULED_REBALANCE_MAX_DELAY_MS, SESSION_TIMEOUT_MS, STATUS_STORAGE_PARTITIONS,
    STATUS_STORAGE_REPLICATION_FACTOR, STATUS_STORAGE_TOPIC,
};
pub use self::protocol::Units;

use self::config_log::ConfigLog;
use self::member::{GroupMember, MemberSettings};
use self::records::{connector_status_key, task_status_key, StatusRecord};
use self::status_log::StatusLog;
use super::runtime::Runtime;
use super::status::{State, StatusBoard};
use super::{TaskId, WorkerConfig};
use crate::{ConnectError, Result};

/// How often the statuses of what runs here are compared with what was
/// written, besides at each change: a safety net, cheap since only a
/// change is written.
const REPUBLISH: Duration = Duration::from_secs(1);

/// A distributed worker (see the module's comment). Dropping every handle
/// without [`DistributedWorker::shutdown`] stops it too, in the
/// background.
#[derive(Clone)]
pub struct DistributedWorker {
    handle: Arc<Handle>,
}

/// What the handles share; dropping it asks the loops to stop.
struct Handle {
    shared: Arc<Shared>,
    loops: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
    }
}

/// What runs on this worker now, as the worker tells it (for operators
/// and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunningHere {
    /// The group's generation at the last completed rebalance.
    pub generation: i32,
    pub connectors: BTreeSet<String>,
    /// Each task with its start number on this worker: every start of a
    /// task here takes the next number, so a task restarted (or started
    /// again after it moved away and back) shows a new one.
    pub tasks: BTreeMap<TaskId, u64>,
}

/// Where the worker is in its life, for the REST operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Joining the group, or in a rebalance: changes are refused (409).
    Joining,
    /// In a completed generation.
    Stable,
    Stopped,
    /// The loop ended on an error it cannot get past.
    Failed(String),
}

/// What the worker's loops and its handles share.
pub(crate) struct Shared {
    pub(crate) runtime: Runtime,
    pub(crate) settings: DistributedConfig,
    pub(crate) configs: ConfigLog,
    pub(crate) statuses: StatusLog,
    phase: Mutex<Phase>,
    here: Mutex<RunningHere>,
    /// One board per connector something of which runs here: its
    /// instance's and its tasks' states, which the publisher writes out.
    boards: Mutex<BTreeMap<String, Arc<StatusBoard>>>,
    /// Woken by a board at each change.
    status_changed: Arc<Notify>,
    /// Set to stop the worker.
    pub(crate) stop: watch::Sender<bool>,
    /// Set once the worker's loop has ended.
    pub(crate) finished: watch::Sender<bool>,
    /// The start number of the next task started here.
    starts: AtomicU64,
}

impl DistributedWorker {
    /// Opens the offsets, config and status topics (creating those
    /// missing), reads them, and starts the worker's loop: it joins the
    /// group `group.id` and runs what the group assigns it. Returns once
    /// the topics are read; the first rebalance goes on in the
    /// background (until it is done, changes are answered 409).
    pub async fn start(client: Client, config: DistributedConfig) -> Result<DistributedWorker> {
        let runtime = Runtime::open(client.clone(), config.worker.clone()).await?;
        let configs = ConfigLog::open(
            &client,
            &config.config_storage_topic,
            config.config_storage_replication_factor,
        )
        .await?;
        let statuses = StatusLog::open(
            &client,
            &config.status_storage_topic,
            config.status_storage_partitions,
            config.status_storage_replication_factor,
        )
        .await?;
        let member = GroupMember::new(
            client,
            MemberSettings {
                group_id: config.worker.group_id.clone(),
                client_id: config.worker.worker_id.clone(),
                session_timeout: config.session_timeout,
                heartbeat_interval: config.heartbeat_interval,
                rebalance_timeout: config.rebalance_timeout,
            },
        );
        tracing::info!(
            group = %config.worker.group_id,
            worker_id = %config.worker.worker_id,
            config_topic = %config.config_storage_topic,
            status_topic = %config.status_storage_topic,
            "distributed connect worker starting"
        );
        let (stop, _) = watch::channel(false);
        let (finished, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            runtime,
            settings: config,
            configs,
            statuses,
            phase: Mutex::new(Phase::Joining),
            here: Mutex::new(RunningHere::default()),
            boards: Mutex::new(BTreeMap::new()),
            status_changed: Arc::new(Notify::new()),
            stop,
            finished,
            starts: AtomicU64::new(0),
        });
        let herder = tokio::spawn(herder::run(Arc::clone(&shared), member));
        let publisher = tokio::spawn(publish(Arc::clone(&shared)));
        Ok(DistributedWorker {
            handle: Arc::new(Handle {
                shared,
                loops: tokio::sync::Mutex::new(vec![herder, publisher]),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The worker's settings besides the distributed ones.
    pub fn config(&self) -> &WorkerConfig {
        &self.shared().runtime.config
    }

    pub fn settings(&self) -> &DistributedConfig {
        &self.shared().settings
    }

    /// Whether the worker is in a completed generation of its group, so
    /// changes are taken (else they are answered 409).
    pub fn is_settled(&self) -> bool {
        *self.shared().phase.lock() == Phase::Stable
    }

    /// What runs on this worker now.
    pub fn running(&self) -> RunningHere {
        self.shared().here.lock().clone()
    }

    /// Waits until the worker's loop has ended: after
    /// [`DistributedWorker::shutdown`], or on an error it cannot get past
    /// (the group refusing it), which this answers.
    pub async fn finished(&self) -> Result<()> {
        let mut finished = self.shared().finished.subscribe();
        let _ = finished.wait_for(|done| *done).await;
        match &*self.shared().phase.lock() {
            Phase::Failed(reason) => Err(ConnectError::Task(reason.clone())),
            _ => Ok(()),
        }
    }

    /// Stops the worker: every task here flushes, commits and stops (or is
    /// abandoned after `task.shutdown.graceful.timeout.ms`), their statuses
    /// say UNASSIGNED, and the worker leaves the group, whose other
    /// workers take its connectors and tasks over at once. Afterwards
    /// every operation answers [`ConnectError::WorkerStopped`].
    pub async fn shutdown(&self) -> Result<()> {
        self.shared().stop.send_replace(true);
        let loops = std::mem::take(&mut *self.handle.loops.lock().await);
        for task in loops {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a loop of the worker ended abnormally");
            }
        }
        Ok(())
    }
}

impl Shared {
    pub(crate) fn worker_id(&self) -> &str {
        &self.runtime.config.worker_id
    }

    /// Where this worker's REST API is, as the group is told.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.worker_id())
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        let mut current = self.phase.lock();
        // A stopped or failed worker stays so.
        if !matches!(*current, Phase::Stopped | Phase::Failed(_)) {
            *current = phase;
        }
    }

    pub(crate) fn set_generation(&self, generation: i32) {
        self.here.lock().generation = generation;
    }

    /// `Ok` while the worker runs; reads are answered then.
    pub(crate) fn alive(&self) -> Result<()> {
        match &*self.phase.lock() {
            Phase::Stopped => Err(ConnectError::WorkerStopped),
            Phase::Failed(reason) => Err(ConnectError::Task(reason.clone())),
            Phase::Joining | Phase::Stable => Ok(()),
        }
    }

    /// `Ok` in a completed generation; changes are taken then.
    pub(crate) fn settled(&self) -> Result<()> {
        self.alive()?;
        match *self.phase.lock() {
            Phase::Stable => Ok(()),
            _ => Err(ConnectError::Rebalancing),
        }
    }

    /// Connector `name`'s status board here, made if missing.
    pub(crate) fn board(&self, name: &str) -> Arc<StatusBoard> {
        let mut boards = self.boards.lock();
        let board = boards.entry(name.to_string()).or_insert_with(|| {
            Arc::new(StatusBoard::notifying(
                self.worker_id(),
                Arc::clone(&self.status_changed),
            ))
        });
        Arc::clone(board)
    }

    /// Connector `name`'s status board here, if there is one.
    pub(crate) fn existing_board(&self, name: &str) -> Option<Arc<StatusBoard>> {
        self.boards.lock().get(name).cloned()
    }

    /// Forgets the boards of connectors for which `keep` is false.
    pub(crate) fn keep_boards(&self, keep: impl Fn(&str) -> bool) {
        self.boards.lock().retain(|name, _| keep(name.as_str()));
    }

    pub(crate) fn own_connector(&self, name: &str) {
        self.here.lock().connectors.insert(name.to_string());
    }

    /// Notes that task `id` starts here, with the next start number.
    pub(crate) fn own_task(&self, id: &TaskId) {
        let start = self.starts.fetch_add(1, Ordering::Relaxed);
        self.here.lock().tasks.insert(id.clone(), start);
    }

    /// Stops telling of `units`: they were deleted, or others own them
    /// now. Their last statuses written here are forgotten too, so that if
    /// they come back, their statuses are written again.
    pub(crate) async fn disown(&self, units: &Units) {
        let mut writer = self.statuses.lock().await;
        self.release(units);
        writer.forget(keys(units));
    }

    /// Stops telling of `units` and deletes their statuses: their
    /// connector was deleted.
    pub(crate) async fn erase(&self, units: &Units) {
        let mut writer = self.statuses.lock().await;
        self.release(units);
        if let Err(error) = writer.erase(keys(units)).await {
            tracing::warn!(error = %error, "deleting the statuses of a deleted connector failed");
        }
    }

    /// Stops telling of `units` and says they are UNASSIGNED, acknowledged
    /// before this returns: they were given up for another worker, whose
    /// word must come after this one.
    pub(crate) async fn hand_over(&self, units: &Units) {
        if units.is_empty() {
            return;
        }
        let mut writer = self.statuses.lock().await;
        let generation = self.release(units);
        let unassigned = StatusRecord {
            state: State::Unassigned,
            trace: None,
            worker_id: self.worker_id().to_string(),
            generation,
        };
        let updates = keys(units)
            .into_iter()
            .map(|key| (key, unassigned.clone()))
            .collect();
        if let Err(error) = writer.write(updates).await {
            tracing::warn!(error = %error, "saying UNASSIGNED for what this worker gave up failed");
        }
    }

    /// Takes `units` out of what runs here; answers the generation.
    fn release(&self, units: &Units) -> i32 {
        let mut here = self.here.lock();
        for name in &units.connectors {
            here.connectors.remove(name);
        }
        for id in &units.tasks {
            here.tasks.remove(id);
        }
        here.generation
    }

    /// Writes the statuses of what runs here that changed.
    async fn publish_statuses(&self) -> Result<()> {
        let mut writer = self.statuses.lock().await;
        // Read under the writer's lock, so a unit given up meanwhile is
        // not written after its UNASSIGNED.
        let updates = self.current_statuses();
        writer.write(updates).await
    }

    fn current_statuses(&self) -> Vec<(String, StatusRecord)> {
        let here = self.here.lock().clone();
        let boards = self.boards.lock();
        let record = |(state, trace): (State, Option<String>)| StatusRecord {
            state,
            trace,
            worker_id: self.worker_id().to_string(),
            generation: here.generation,
        };
        let mut updates = Vec::new();
        for name in &here.connectors {
            if let Some(board) = boards.get(name) {
                updates.push((connector_status_key(name), record(board.connector_entry())));
            }
        }
        for id in here.tasks.keys() {
            let entry = boards
                .get(&id.connector)
                .and_then(|board| board.task_entry(id.task));
            if let Some(entry) = entry {
                updates.push((task_status_key(id), record(entry)));
            }
        }
        updates
    }
}

/// The status topic's keys of `units`.
fn keys(units: &Units) -> Vec<String> {
    let connectors = units
        .connectors
        .iter()
        .map(|name| connector_status_key(name));
    let tasks = units.tasks.iter().map(task_status_key);
    connectors.chain(tasks).collect()
}

/// Writes the statuses of what runs here at each change, until the worker
/// stops.
async fn publish(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let changed = Arc::clone(&shared.status_changed);
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = changed.notified() => {}
            () = tokio::time::sleep(REPUBLISH) => {}
        }
        if let Err(error) = shared.publish_statuses().await {
            tracing::warn!(error = %error, "writing statuses failed; trying again at the next change");
        }
    }
}

/// Waits until the worker is asked to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which is a stop too.
    let _ = stop.wait_for(|stop| *stop).await;
}
