//! What happens to a connector after it was added: stopping it while
//! keeping its config (Kafka's STOPPED), starting it again, restarts
//! (Kafka's KIP-745 rules), and replacing its config.
//!
//! Every operation here holds the worker's connector lock from start to
//! end, including while tasks stop, so operations on connectors are
//! serialized as Kafka's standalone herder serializes them: a restart
//! cannot interleave with an offsets change or a config update. A status
//! read meanwhile waits for the operation, at most the task shutdown
//! timeout. Nothing here builds a task itself: tasks are started only by
//! the worker's `start_connector`, which `install` calls, so there is one
//! way a task comes to run.
//!
//! A connector's tasks share one control channel (its target state), so
//! one running task cannot be stopped alone: a restart that concerns any
//! task restarts all of the connector's tasks, and the connector with
//! them. The others stop gracefully (they flush and commit) and resume
//! from their committed offsets, so nothing is lost or repeated.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::runtime::Prepared;
use super::status::{ConnectorStatus, State, StatusBoard};
use super::task::Target;
use super::{Running, Worker};
use crate::api::keys::{NAME, TASKS_MAX, TOPICS};
use crate::api::{ConfigMap, Connector};
use crate::{ConnectError, Result};

/// The state a connector is asked to be in (Kafka's `TargetState`), as
/// `PUT /connectors/{name}/resume`, `/pause` and `/stop` set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// Running: the connector and its tasks move data.
    Started,
    /// The tasks move no data, but stay assigned and keep their state.
    Paused,
    /// Neither the connector nor any task runs; the config is kept.
    Stopped,
}

impl From<TargetState> for Target {
    fn from(state: TargetState) -> Target {
        match state {
            TargetState::Started => Target::Started,
            TargetState::Paused => Target::Paused,
            TargetState::Stopped => Target::Stopped,
        }
    }
}

/// The state a connector shows when it is asked to be in `target`.
fn state_of(target: Target) -> State {
    match target {
        Target::Started => State::Running,
        Target::Paused => State::Paused,
        Target::Stopped => State::Stopped,
    }
}

/// The connector `name` among the worker's connectors.
pub(super) fn running_mut<'a>(
    connectors: &'a mut Option<BTreeMap<String, Running>>,
    name: &str,
) -> Result<&'a mut Running> {
    connectors
        .as_mut()
        .ok_or(ConnectError::WorkerStopped)?
        .get_mut(name)
        .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))
}

/// What a connector is asked to do now. A stopped connector stays
/// stopped until `set_target_state` starts it, even if
/// `pause_connector` or `resume_connector` (which only steer running
/// tasks) moved its target meanwhile: its board says STOPPED until then.
pub(super) fn target_of(running: &Running) -> Target {
    match running.status.connector_state() {
        State::Stopped => Target::Stopped,
        _ => *running.target.borrow(),
    }
}

impl Worker {
    /// Asks connector `name` to run, pause or stop (Kafka's
    /// `PUT /connectors/{name}/resume`, `/pause` and `/stop`).
    ///
    /// Stopping is Kafka's STOPPED state: each task flushes, commits and
    /// ends, the connector stops, and its config stays, so it can be
    /// resumed (or paused) later, which starts it again. Unlike
    /// [`Worker::pause_connector`] and [`Worker::resume_connector`], which
    /// only steer the tasks that run, this also starts a stopped
    /// connector.
    pub async fn set_target_state(&self, name: &str, state: TargetState) -> Result<()> {
        let mut guard = self.inner.connectors.lock().await;
        let running = running_mut(&mut guard, name)?;
        let current = target_of(running);
        match (current, state) {
            (Target::Stopped, TargetState::Stopped) => {}
            (_, TargetState::Stopped) => self.park(name, running).await,
            (Target::Stopped, wanted) => {
                let prepared = self.prepare(&running.config)?;
                self.install(name, running, prepared, wanted.into());
            }
            (_, wanted) => {
                let target = Target::from(wanted);
                running.target.send_replace(target);
                running.status.move_connector(state_of(target));
            }
        }
        tracing::info!(connector = %name, state = ?state, "connector target state set");
        Ok(())
    }

    /// Restarts connector `name`'s instance (Kafka's
    /// `POST /connectors/{name}/restart` without parameters): a new
    /// instance starts on the config. Its tasks keep running unless the
    /// new instance gives other task configs than theirs, or there are no
    /// tasks (the connector had failed); then they restart with it. If the
    /// new instance fails to start, the connector is FAILED and its tasks
    /// keep running, as in Kafka. A stopped connector stays stopped.
    pub async fn restart_connector(&self, name: &str) -> Result<()> {
        let mut guard = self.inner.connectors.lock().await;
        let running = running_mut(&mut guard, name)?;
        match target_of(running) {
            Target::Stopped => Ok(()),
            target => self.restart_instance(name, running, target).await,
        }
    }

    /// Kafka's `POST /connectors/{name}/restart?includeTasks=..&onlyFailed=..`:
    /// restarts the connector if `only_failed` is false or it failed and,
    /// with `include_tasks`, its tasks if `only_failed` is false or one of
    /// them failed. Returns the status as it was, with what restarts
    /// marked RESTARTING, as Kafka answers it.
    ///
    /// When tasks restart, all of the connector's tasks and the connector
    /// restart together (see the module's comment), and all show
    /// RESTARTING. A stopped connector restarts nothing.
    pub async fn restart_connector_and_tasks(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<ConnectorStatus> {
        let mut guard = self.inner.connectors.lock().await;
        let running = running_mut(&mut guard, name)?;
        let mut plan = running
            .status
            .snapshot(name, running.connector.connector_type());
        let target = target_of(running);
        if target == Target::Stopped {
            return Ok(plan);
        }
        let chosen = |state: State| !only_failed || state == State::Failed;
        let connector = chosen(plan.connector.state);
        let tasks = include_tasks && plan.tasks.iter().any(|t| chosen(t.info.state));
        if tasks {
            let prepared = self.prepare(&running.config)?;
            self.halt(name, running).await;
            self.install(name, running, prepared, target);
            for task in &mut plan.tasks {
                task.info.state = State::Restarting;
                task.info.trace = None;
            }
        } else if connector {
            self.restart_instance(name, running, target).await?;
        }
        if tasks || connector {
            plan.connector.state = State::Restarting;
            plan.connector.trace = None;
        }
        Ok(plan)
    }

    /// Restarts task `task` of connector `name` (Kafka's
    /// `POST /connectors/{name}/tasks/{task}/restart`), with its sibling
    /// tasks and the connector (see the module's comment).
    pub async fn restart_task(&self, name: &str, task: u32) -> Result<()> {
        let mut guard = self.inner.connectors.lock().await;
        let running = running_mut(&mut guard, name)?;
        let known = usize::try_from(task).is_ok_and(|index| index < running.tasks.len());
        if !known {
            return Err(ConnectError::UnknownTask {
                connector: name.to_string(),
                task,
            });
        }
        let target = target_of(running);
        let prepared = self.prepare(&running.config)?;
        self.halt(name, running).await;
        self.install(name, running, prepared, target);
        Ok(())
    }

    /// Creates connector `name` with `config`, or replaces the config of
    /// the connector of that name (Kafka's `PUT /connectors/{name}/config`).
    /// A replaced connector restarts on its new config with its tasks, in
    /// the state it was asked to be in (a paused one paused, a stopped one
    /// stopped). A config that fails its checks changes nothing. Returns
    /// whether the connector was created.
    pub async fn put_connector_config(&self, name: &str, config: ConfigMap) -> Result<bool> {
        {
            let mut guard = self.inner.connectors.lock().await;
            let connectors = guard.as_mut().ok_or(ConnectError::WorkerStopped)?;
            if let Some(running) = connectors.get_mut(name) {
                self.replace_config(name, running, config).await?;
                return Ok(false);
            }
        }
        self.add_connector(name, config).await?;
        Ok(true)
    }

    /// Merges `patch` into connector `name`'s config (Kafka's
    /// `PATCH /connectors/{name}/config`): a key with a value is set, a key
    /// with `None` removed. The connector then restarts on the result as
    /// [`Worker::put_connector_config`] restarts it. Returns the new
    /// config.
    pub async fn patch_connector_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConfigMap> {
        let mut guard = self.inner.connectors.lock().await;
        let running = running_mut(&mut guard, name)?;
        let config = patched(running.config.clone(), patch);
        self.replace_config(name, running, config).await?;
        Ok(running.config.clone())
    }

    async fn replace_config(
        &self,
        name: &str,
        running: &mut Running,
        mut config: ConfigMap,
    ) -> Result<()> {
        match config.get(NAME) {
            Some(given) if given != name => {
                return Err(ConnectError::config(
                    NAME,
                    format!("is `{given}`, but the connector is named `{name}`"),
                ))
            }
            _ => config.insert(NAME.to_string(), name.to_string()),
        };
        // Checked before anything stops, so a bad config changes nothing.
        let prepared = self.prepare(&config)?;
        let target = target_of(running);
        self.halt(name, running).await;
        running.config = config;
        match target {
            // Stays stopped, as the connector of its new class.
            Target::Stopped => running.connector = prepared.connector,
            _ => self.install(name, running, prepared, target),
        }
        tracing::info!(connector = %name, "connector config replaced");
        Ok(())
    }

    /// A new instance of the connector `config` names, with its config
    /// parsed and its converters built, as `add_connector` builds them;
    /// a replaced config is refused here, before anything stops.
    pub(super) fn prepare(&self, config: &ConfigMap) -> Result<Prepared> {
        self.inner.runtime.prepare(config)
    }

    /// Starts a prepared connector and its tasks in `running`'s place,
    /// asked to be in `target` (started or paused), on a new status board,
    /// so no state of the old tasks (a failure) stays. The old instance
    /// must be stopped already (`halt`).
    pub(super) fn install(
        &self,
        name: &str,
        running: &mut Running,
        prepared: Prepared,
        target: Target,
    ) {
        let Prepared {
            connector,
            parsed,
            converters,
        } = prepared;
        running.connector = connector;
        running.status = Arc::new(StatusBoard::new(&self.inner.runtime.config.worker_id));
        running.target.send_replace(target);
        self.start_connector(name, running, &parsed, &converters);
        if target == Target::Paused {
            running.status.move_connector(State::Paused);
        }
    }

    /// Stops the connector's tasks (each flushes and commits, or is
    /// abandoned after `task.shutdown.graceful.timeout.ms`) and then the
    /// connector, leaving its target Stopped and its status board as it
    /// was. A stopped connector is left as it is.
    pub(super) async fn halt(&self, name: &str, running: &mut Running) {
        let was = target_of(running);
        running.target.send_replace(Target::Stopped);
        let timeout = self.inner.runtime.config.task_shutdown_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        for (id, mut handle) in std::mem::take(&mut running.tasks).into_iter().enumerate() {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!(
                    connector = %name,
                    task = id,
                    "the task did not stop in time; abandoning it"
                );
                handle.abort();
            }
        }
        if was != Target::Stopped {
            stop_instance(name, &mut running.connector);
        }
    }

    /// Halts the connector and shows it STOPPED with no tasks.
    async fn park(&self, name: &str, running: &mut Running) {
        self.halt(name, running).await;
        let status = StatusBoard::new(&self.inner.runtime.config.worker_id);
        status.set_connector(State::Stopped, None);
        running.status = Arc::new(status);
        tracing::info!(connector = %name, "connector stopped; its config is kept");
    }

    /// See [`Worker::restart_connector`].
    async fn restart_instance(
        &self,
        name: &str,
        running: &mut Running,
        target: Target,
    ) -> Result<()> {
        let current = match running.status.connector_state() {
            State::Failed => None,
            _ => task_configs_of(&running.connector, &running.config).ok(),
        };
        let mut fresh = self.prepare(&running.config)?;
        let wanted = match start_instance(&mut fresh.connector, &running.config) {
            Ok(wanted) => wanted,
            Err(error) => {
                tracing::error!(connector = %name, error = %error, "the restarted connector failed to start");
                stop_instance(name, &mut running.connector);
                running.connector = fresh.connector;
                running
                    .status
                    .set_connector(State::Failed, Some(error.trace()));
                return Ok(());
            }
        };
        if current.as_ref() == Some(&wanted) && running.tasks.len() == wanted.len() {
            stop_instance(name, &mut running.connector);
            running.connector = fresh.connector;
            running.status.set_connector(state_of(target), None);
            return Ok(());
        }
        // The tasks must change: they restart with a new instance, which
        // `start_connector` starts itself.
        stop_instance(name, &mut fresh.connector);
        let prepared = self.prepare(&running.config)?;
        self.halt(name, running).await;
        self.install(name, running, prepared, target);
        Ok(())
    }
}

/// The task configs `connector` gives for `config`, as the worker starts
/// tasks with them: at most `tasks.max`, and for a sink with the
/// connector's `topics` (the same rules as `start_connector`'s).
pub(super) fn task_configs_of(connector: &Connector, config: &ConfigMap) -> Result<Vec<ConfigMap>> {
    let max_tasks = config
        .get(TASKS_MAX)
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(1);
    let mut configs = match connector {
        Connector::Source(c) => c.task_configs(max_tasks)?,
        Connector::Sink(c) => c.task_configs(max_tasks)?,
    };
    configs.truncate(max_tasks);
    if let Connector::Sink(_) = connector {
        let topics = config
            .get(TOPICS)
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(|t| t.split(',').map(str::trim).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        for task_config in &mut configs {
            task_config.insert(TOPICS.to_string(), topics.clone());
        }
    }
    Ok(configs)
}

/// Starts a connector instance and asks it for its task configs.
pub(super) fn start_instance(
    connector: &mut Connector,
    config: &ConfigMap,
) -> Result<Vec<ConfigMap>> {
    match connector {
        Connector::Source(c) => c.start(config)?,
        Connector::Sink(c) => c.start(config)?,
    }
    task_configs_of(connector, config)
}

/// Stops a connector instance; its error is logged, as the instance is
/// done with either way.
pub(super) fn stop_instance(name: &str, connector: &mut Connector) {
    let stopped = match connector {
        Connector::Source(c) => c.stop(),
        Connector::Sink(c) => c.stop(),
    };
    if let Err(error) = stopped {
        tracing::warn!(connector = %name, error = %error, "stopping the connector failed");
    }
}

/// `config` with `patch` applied (Kafka's `PATCH .../config`): a key with a
/// value is set, a key with `None` removed.
pub(crate) fn patched(mut config: ConfigMap, patch: BTreeMap<String, Option<String>>) -> ConfigMap {
    for (key, value) in patch {
        match value {
            Some(value) => config.insert(key, value),
            None => config.remove(&key),
        };
    }
    config
}
