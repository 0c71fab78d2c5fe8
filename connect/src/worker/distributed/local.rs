//! [`Local`]: the connectors and tasks that run on this worker, started
//! and stopped through the runtime the standalone worker uses too, each
//! kept with the config it runs on, so that a change in the config topic
//! is told from what runs.
//!
//! A connector instance here starts, computes its task configs and writes
//! them to the config topic (task records, then the commit) when they
//! differ from the committed ones; its tasks run wherever the group put
//! them, each from its committed config. A stopped connector's instance
//! commits zero tasks, so its tasks stop everywhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::protocol::Units;
use super::records::ConfigRecord;
use super::state::ClusterConfig;
use super::Shared;
use crate::api::{ConfigMap, Connector};
use crate::worker::lifecycle::{start_instance, stop_instance};
use crate::worker::runtime::{Prepared, TaskSpec};
use crate::worker::status::{State, StatusBoard};
use crate::worker::task::{Pipeline, Target};
use crate::worker::{TargetState, TaskId};
use crate::Result;

/// A connector assigned to this worker.
pub(crate) struct LocalConnector {
    config: ConfigMap,
    target: TargetState,
    /// The started instance; `None` while stopped, or when it failed to
    /// start (its status says why).
    instance: Option<Connector>,
}

/// A task assigned to this worker.
pub(crate) struct LocalTask {
    /// The connector config and task config it was started with.
    connector_config: ConfigMap,
    task_config: ConfigMap,
    target: watch::Sender<Target>,
    /// `None` when it could not even start (its status says why).
    handle: Option<JoinHandle<()>>,
}

/// What a task needs after a change of the config topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskChange {
    /// It runs on as it is (paused or resumed, if its target changed).
    Keep,
    /// Its config changed: it restarts here on the new one.
    Restart,
    /// It is no longer wanted (connector deleted or stopped, task number
    /// past the count): it stops and this worker gives it up.
    Drop,
}

/// The connectors and tasks that run here (see the module's comment).
#[derive(Default)]
pub(crate) struct Local {
    connectors: BTreeMap<String, LocalConnector>,
    tasks: BTreeMap<TaskId, LocalTask>,
}

impl Local {
    /// What runs here, as this worker tells the group.
    pub(crate) fn owned(&self) -> Units {
        Units {
            connectors: self.connectors.keys().cloned().collect(),
            tasks: self.tasks.keys().cloned().collect(),
        }
    }

    pub(crate) fn runs_connector(&self, name: &str) -> bool {
        self.connectors.contains_key(name)
    }

    pub(crate) fn runs_task(&self, id: &TaskId) -> bool {
        self.tasks.contains_key(id)
    }

    /// Whether connector `name` or any of its tasks runs here.
    pub(crate) fn uses(&self, name: &str) -> bool {
        self.connectors.contains_key(name) || self.tasks.keys().any(|id| id.connector == name)
    }

    pub(crate) fn connector_names(&self) -> Vec<String> {
        self.connectors.keys().cloned().collect()
    }

    pub(crate) fn task_ids(&self) -> Vec<TaskId> {
        self.tasks.keys().cloned().collect()
    }

    /// Starts connector `name` here, as the config asks.
    pub(crate) async fn start_connector(
        &mut self,
        shared: &Shared,
        name: &str,
        cluster: &ClusterConfig,
    ) {
        let Some(config) = cluster.config(name) else {
            return;
        };
        let mut local = LocalConnector {
            config: config.clone(),
            target: cluster.target(name),
            instance: None,
        };
        shared.own_connector(name);
        launch(shared, name, &mut local, cluster).await;
        self.connectors.insert(name.to_string(), local);
    }

    /// Stops connector `name`'s instance here, if it runs.
    pub(crate) fn stop_connector(&mut self, name: &str) {
        if let Some(mut instance) = self
            .connectors
            .remove(name)
            .and_then(|local| local.instance)
        {
            stop_instance(name, &mut instance);
        }
    }

    /// Brings connector `name` in line with the config: a new config
    /// restarts its instance on it, a new target state pauses, resumes,
    /// stops or starts it. `false` when it was deleted (and is stopped).
    pub(crate) async fn reconcile_connector(
        &mut self,
        shared: &Shared,
        name: &str,
        cluster: &ClusterConfig,
    ) -> bool {
        let Some(config) = cluster.config(name) else {
            self.stop_connector(name);
            return false;
        };
        let target = cluster.target(name);
        let Some(local) = self.connectors.get_mut(name) else {
            return true;
        };
        if local.config != *config {
            if let Some(mut instance) = local.instance.take() {
                stop_instance(name, &mut instance);
            }
            local.config = config.clone();
            local.target = target;
            launch(shared, name, local, cluster).await;
            tracing::info!(connector = %name, "connector restarted on its new config");
            return true;
        }
        let was = std::mem::replace(&mut local.target, target);
        match (was, target) {
            (was, now) if was == now => {}
            (_, TargetState::Stopped) => {
                if let Some(mut instance) = local.instance.take() {
                    stop_instance(name, &mut instance);
                }
                launch(shared, name, local, cluster).await;
            }
            (TargetState::Stopped, _) => launch(shared, name, local, cluster).await,
            (_, now) => shared.board(name).move_connector(state_of(now)),
        }
        true
    }

    /// Restarts connector `name`'s instance here (unless `only_failed` and
    /// it did not fail); a stopped connector restarts nothing.
    pub(crate) async fn restart_connector(
        &mut self,
        shared: &Shared,
        name: &str,
        cluster: &ClusterConfig,
        only_failed: bool,
    ) {
        let Some(local) = self.connectors.get_mut(name) else {
            return;
        };
        let failed = shared.board(name).connector_state() == State::Failed;
        if local.target == TargetState::Stopped || (only_failed && !failed) {
            return;
        }
        if let Some(mut instance) = local.instance.take() {
            stop_instance(name, &mut instance);
        }
        launch(shared, name, local, cluster).await;
        tracing::info!(connector = %name, "connector restarted");
    }

    /// Starts task `id` here from its committed config; `false` when the
    /// config has none (the connector was deleted or stopped meanwhile).
    /// A task that cannot even start is kept, FAILED with the reason.
    pub(crate) fn start_task(
        &mut self,
        shared: &Shared,
        id: &TaskId,
        cluster: &ClusterConfig,
    ) -> bool {
        let (Some(connector_config), Some(task_config)) =
            (cluster.config(&id.connector), cluster.task_config(id))
        else {
            return false;
        };
        let target = cluster.target(&id.connector);
        if target == TargetState::Stopped {
            return false;
        }
        let board = shared.board(&id.connector);
        board.forget_task(id.task);
        shared.own_task(id);
        let (sender, receiver) = watch::channel(Target::from(target));
        let spawned = spawn(
            shared,
            id,
            connector_config,
            task_config,
            &board,
            receiver,
            cluster,
        );
        let handle = match spawned {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::error!(
                    connector = %id.connector,
                    task = id.task,
                    error = %error,
                    "the task could not start"
                );
                board.task_failed(id.task, error.trace());
                None
            }
        };
        self.tasks.insert(
            id.clone(),
            LocalTask {
                connector_config: connector_config.clone(),
                task_config: task_config.clone(),
                target: sender,
                handle,
            },
        );
        true
    }

    /// What task `id` needs now that the config is `cluster`; a task that
    /// keeps running is paused or resumed here as its connector asks.
    pub(crate) fn check_task(&self, id: &TaskId, cluster: &ClusterConfig) -> TaskChange {
        let Some(task) = self.tasks.get(id) else {
            return TaskChange::Keep;
        };
        let (Some(config), Some(task_config)) =
            (cluster.config(&id.connector), cluster.task_config(id))
        else {
            return TaskChange::Drop;
        };
        let target = cluster.target(&id.connector);
        if target == TargetState::Stopped {
            return TaskChange::Drop;
        }
        // Converters, transforms and error handling come from the
        // connector's config: a change there restarts the task too.
        if task.connector_config != *config || task.task_config != *task_config {
            return TaskChange::Restart;
        }
        let wanted = Target::from(target);
        if *task.target.borrow() != wanted {
            task.target.send_replace(wanted);
        }
        TaskChange::Keep
    }

    /// Stops tasks `ids` that run here: each flushes, commits and stops, or
    /// is abandoned after `timeout` (`task.shutdown.graceful.timeout.ms`).
    pub(crate) async fn stop_tasks(&mut self, ids: &[TaskId], timeout: Duration) {
        let stopping: Vec<(TaskId, LocalTask)> = ids
            .iter()
            .filter_map(|id| self.tasks.remove(id).map(|task| (id.clone(), task)))
            .collect();
        for (_, task) in &stopping {
            task.target.send_replace(Target::Stopped);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        for (id, task) in stopping {
            let Some(mut handle) = task.handle else {
                continue;
            };
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!(
                    connector = %id.connector,
                    task = id.task,
                    "the task did not stop in time; abandoning it"
                );
                handle.abort();
            }
        }
    }
}

/// The state a connector shows when asked to be in `target`.
fn state_of(target: TargetState) -> State {
    match target {
        TargetState::Started => State::Running,
        TargetState::Paused => State::Paused,
        TargetState::Stopped => State::Stopped,
    }
}

/// Starts `local`'s instance as its target asks: started or paused, it
/// computes its task configs and writes them when they changed; stopped,
/// it commits zero tasks. A failure marks it FAILED with the reason.
async fn launch(shared: &Shared, name: &str, local: &mut LocalConnector, cluster: &ClusterConfig) {
    let board = shared.board(name);
    if local.target == TargetState::Stopped {
        board.set_connector(State::Stopped, None);
        if cluster
            .task_configs(name)
            .is_some_and(|tasks| !tasks.is_empty())
        {
            publish_task_configs(shared, name, &board, Vec::new()).await;
        }
        return;
    }
    let started = shared
        .runtime
        .prepare(&local.config)
        .and_then(|mut prepared| {
            let configs = start_instance(&mut prepared.connector, &local.config)?;
            Ok((prepared, configs))
        });
    let (Prepared { connector, .. }, configs) = match started {
        Ok(started) => started,
        Err(error) => {
            tracing::error!(connector = %name, error = %error, "the connector failed to start");
            board.set_connector(State::Failed, Some(error.trace()));
            return;
        }
    };
    local.instance = Some(connector);
    board.set_connector(state_of(local.target), None);
    if cluster.task_configs(name) != Some(configs.as_slice()) {
        publish_task_configs(shared, name, &board, configs).await;
    }
}

/// Writes connector `name`'s task configs, then their commit; a failure
/// marks the connector FAILED (its tasks keep their previous configs).
async fn publish_task_configs(
    shared: &Shared,
    name: &str,
    board: &StatusBoard,
    configs: Vec<ConfigMap>,
) {
    let count = u32::try_from(configs.len()).unwrap_or(u32::MAX);
    let mut records: Vec<ConfigRecord> = configs
        .into_iter()
        .zip(0..)
        .map(|(config, task)| {
            let id = TaskId {
                connector: name.to_string(),
                task,
            };
            ConfigRecord::Task(id, Some(config))
        })
        .collect();
    records.push(ConfigRecord::Commit(name.to_string(), count));
    match shared.configs.append(records).await {
        Ok(_) => tracing::info!(connector = %name, tasks = count, "task configs written"),
        Err(error) => {
            tracing::error!(connector = %name, error = %error, "writing the task configs failed");
            board.set_connector(State::Failed, Some(error.trace()));
        }
    }
}

/// Builds task `id` from its connector's config and starts it.
fn spawn(
    shared: &Shared,
    id: &TaskId,
    connector_config: &ConfigMap,
    task_config: &ConfigMap,
    board: &Arc<StatusBoard>,
    target: watch::Receiver<Target>,
    cluster: &ClusterConfig,
) -> Result<JoinHandle<()>> {
    let Prepared {
        connector,
        parsed,
        converters,
    } = shared.runtime.prepare(connector_config)?;
    let pipeline = Pipeline::from_config(connector_config, &parsed, connector.connector_type())?;
    // Its own id is fenced when it starts its producer; the ids of tasks
    // the connector no longer has are fenced first.
    let count = cluster.task_count(&id.connector);
    let fenced = count..cluster.task_numbers(&id.connector);
    let transactions =
        shared
            .runtime
            .task_transactions(&id.connector, &connector, &parsed, fenced)?;
    board.set_task(id.task, State::Unassigned);
    let spec = TaskSpec {
        name: &id.connector,
        id: id.task,
        connector: &connector,
        parsed: &parsed,
        config: task_config.clone(),
        converters: &converters,
        pipeline,
        status: Arc::clone(board),
        target,
        transactions: transactions
            .as_ref()
            .map(|t| t.task(&id.connector, id.task)),
    };
    Ok(shared.runtime.spawn_task(spec))
}
