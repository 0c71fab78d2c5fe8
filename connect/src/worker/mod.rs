//! The workers that run connectors: the standalone worker ([`Worker`],
//! here: connectors and offsets of one process, Kafka's
//! `ConnectStandalone`) and the distributed worker (`distributed`: a group
//! of workers sharing connectors, configs, statuses and offsets through
//! compacted topics), against the broker or cluster behind a
//! `spool_client::Client`. Both run connectors and tasks through one
//! `runtime` (the client, config, offsets store and exactly-once state,
//! and the starting of a task), so a task behaves the same under either.
//!
//! Source offsets are in a local file (the standalone worker's default)
//! or, as Kafka's distributed worker keeps them, in a compacted topic
//! (`offset_topic`; both behind `offsets`' `OffsetBackingStore`), and
//! exactly-once sources run when enabled (`exactly_once`). The worker's
//! own topics are created and read by `topic_log`.
//!
//! [`Worker`] is a cheap, cloneable handle whose methods are the
//! operations Kafka Connect's REST API offers (add, stop, pause, resume,
//! status, config, validate), so a REST layer only maps paths onto them.
//! Each task runs as its own tokio task (`source`, `sink`); a task that
//! fails is marked FAILED with its error and the others keep running
//! (`task`), with its connector's transforms and the error handling of
//! its records (`errors`). Connector and task states are in `status`,
//! offsets in `offsets`, settings in `config`. What happens to a
//! connector after it was added (stop with its config kept, restarts,
//! config replacement) is in `lifecycle`, its info and task configs in
//! `info`, reading and changing its offsets from outside in
//! `offset_admin`, and connector configs from files and JSON in
//! `connector_file`. The worker starts no broker: embedding one is the
//! program's choice.

mod config;
mod connector_file;
pub mod distributed;
mod errors;
mod exactly_once;
mod info;
mod lifecycle;
mod offset_admin;
mod offset_topic;
mod offsets;
mod runtime;
mod sink;
mod source;
mod status;
mod task;
mod topic_log;

use std::collections::BTreeMap;
use std::sync::Arc;

use spool_client::Client;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

pub use config::{
    connector_config_def, toml_properties, WorkerConfig, BOOTSTRAP, BOOTSTRAP_SERVERS,
    OFFSET_FLUSH_INTERVAL_MS, OFFSET_STORAGE_FILE, STANDALONE_WORKER_ID, TASK_SHUTDOWN_TIMEOUT_MS,
};
pub use config::{listener_address, DEFAULT_LISTENER, LISTENERS, REST_AUTH_TOKEN};
pub use config::{
    DEFAULT_GROUP_ID, DEFAULT_OFFSETS_TOPIC, DEFAULT_OFFSET_STORAGE_PARTITIONS,
    EXACTLY_ONCE_SOURCE_SUPPORT, EXACTLY_ONCE_SUPPORT, GROUP_ID, OFFSET_STORAGE_PARTITIONS,
    OFFSET_STORAGE_REPLICATION_FACTOR, OFFSET_STORAGE_TOPIC, TRANSACTION_BOUNDARY,
    TRANSACTION_BOUNDARY_INTERVAL_MS,
};
pub use connector_file::{
    config_text, json_config, parse_connector_json, parse_properties, read_connector_file,
};
pub use errors::{
    TaskErrorMetrics, DLQ_CONTEXT_HEADERS_ENABLE, DLQ_TOPIC_NAME, DLQ_TOPIC_REPLICATION_FACTOR,
    ERRORS_LOG_ENABLE, ERRORS_LOG_INCLUDE_MESSAGES, ERRORS_RETRY_DELAY_MAX_MS,
    ERRORS_RETRY_TIMEOUT, ERRORS_TOLERANCE,
};
pub use exactly_once::transactional_id;
pub use info::{ConnectorInfo, TaskId, TaskInfo};
pub use lifecycle::TargetState;
pub use offset_admin::{
    ConnectorOffset, ConnectorOffsets, KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TOPIC,
};
pub use offset_topic::TopicOffsetStore;
pub use offsets::{FileOffsetStore, OffsetBackingStore, OffsetChange};
pub use sink::CONSUMER_ISOLATION_LEVEL;
pub use status::{ConnectorStatus, State, StateInfo, TaskStatus};

use self::runtime::{Converters, Prepared, Runtime, TaskSpec};
use self::status::StatusBoard;
use self::task::{Pipeline, Target};
use crate::api::keys::{NAME, TASKS_MAX};
use crate::api::{ConfigMap, ConfigValue, Connector, ConnectorType, ParsedConfig};
use crate::{ConnectError, Result};

/// A standalone worker (see the module's comment). Dropping every handle
/// without [`Worker::shutdown`] stops the tasks too, after their last
/// flush, but does not wait for them.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    /// The client, config, offsets and exactly-once state the connectors
    /// run with (shared with the distributed worker's way of running them).
    runtime: Runtime,
    /// `None` once shut down. Held while a connector is added, so
    /// operations on one name are serialized as a herder's are; never
    /// while a connector stops, which waits for its tasks.
    connectors: Mutex<Option<BTreeMap<String, Running>>>,
}

/// A connector on this worker.
struct Running {
    connector: Connector,
    config: ConfigMap,
    status: Arc<StatusBoard>,
    target: watch::Sender<Target>,
    tasks: Vec<JoinHandle<()>>,
}

impl Worker {
    /// A worker with no connectors yet, its offsets read from their topic
    /// (`offset.storage.topic`, created if missing; `connect-offsets`
    /// under exactly-once) or from `offset.storage.file.filename`.
    pub async fn start(client: Client, config: WorkerConfig) -> Result<Worker> {
        let runtime = Runtime::open(client, config).await?;
        Ok(Worker {
            inner: Arc::new(Inner {
                runtime,
                connectors: Mutex::new(Some(BTreeMap::new())),
            }),
        })
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.inner.runtime.config
    }

    /// Every key of `config` the connector class it names defines, with
    /// its value and errors (Kafka Connect's
    /// `PUT /connector-plugins/{class}/config/validate`).
    pub fn validate(&self, config: &ConfigMap) -> Result<Vec<ConfigValue>> {
        self.inner.runtime.validate(config)
    }

    /// Checks `config` and starts connector `name` with its tasks. A
    /// config that fails its checks is refused, naming the key, and
    /// nothing starts; a connector whose `start` fails is kept as FAILED
    /// with the error, as Kafka keeps it, so its status says why.
    pub async fn add_connector(&self, name: &str, mut config: ConfigMap) -> Result<()> {
        match config.get(NAME) {
            Some(given) if given != name => {
                return Err(ConnectError::config(
                    NAME,
                    format!("is `{given}`, but the connector is added as `{name}`"),
                ))
            }
            _ => config.insert(NAME.to_string(), name.to_string()),
        };
        let mut guard = self.inner.connectors.lock().await;
        let connectors = guard.as_mut().ok_or(ConnectError::WorkerStopped)?;
        if connectors.contains_key(name) {
            return Err(ConnectError::ConnectorExists(name.to_string()));
        }
        // Transforms and error handling are checked before anything starts,
        // so a bad one refuses the connector, naming its key.
        let Prepared {
            connector,
            parsed,
            converters,
        } = self.inner.runtime.prepare(&config)?;
        let (target, _) = watch::channel(Target::Started);
        let mut running = Running {
            connector,
            config,
            status: Arc::new(StatusBoard::new(&self.inner.runtime.config.worker_id)),
            target,
            tasks: Vec::new(),
        };
        self.start_connector(name, &mut running, &parsed, &converters);
        connectors.insert(name.to_string(), running);
        Ok(())
    }

    /// Starts the connector and one task per task config it gives.
    fn start_connector(
        &self,
        name: &str,
        running: &mut Running,
        parsed: &ParsedConfig,
        converters: &Converters,
    ) {
        let max_tasks = parsed
            .int(TASKS_MAX)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1);
        let connector_type = running.connector.connector_type();
        let pipeline = match Pipeline::from_config(&running.config, parsed, connector_type) {
            Ok(pipeline) => pipeline,
            Err(error) => {
                task::pipeline_failed(name, &running.status, &error);
                return;
            }
        };
        let config = &running.config;
        let task_configs = match &mut running.connector {
            Connector::Source(c) => c.start(config).and_then(|()| c.task_configs(max_tasks)),
            Connector::Sink(c) => c.start(config).and_then(|()| c.task_configs(max_tasks)),
        };
        let task_configs = match task_configs {
            Ok(configs) => configs,
            Err(error) => {
                tracing::error!(connector = %name, error = %error, "the connector failed to start");
                running
                    .status
                    .set_connector(State::Failed, Some(error.trace()));
                return;
            }
        };
        let started = task_configs.len().min(max_tasks);
        let runtime = &self.inner.runtime;
        let transactions = match runtime.connector_transactions(
            name,
            &running.connector,
            parsed,
            max_tasks,
            started,
        ) {
            Ok(transactions) => transactions,
            Err(error) => return exactly_once::connector_failed(name, &running.status, &error),
        };
        running.status.set_connector(State::Running, None);
        for (index, task_config) in task_configs.into_iter().take(max_tasks).enumerate() {
            let id = u32::try_from(index).unwrap_or(u32::MAX);
            running.status.set_task(id, State::Unassigned);
            let handle = runtime.spawn_task(TaskSpec {
                name,
                id,
                connector: &running.connector,
                parsed,
                config: task_config,
                converters,
                pipeline: pipeline.clone(),
                status: Arc::clone(&running.status),
                target: running.target.subscribe(),
                transactions: transactions.as_ref().map(|t| t.task(name, id)),
            });
            running.tasks.push(handle);
        }
    }

    /// Stops connector `name`: each task flushes, commits and stops (or is
    /// abandoned after `task.shutdown.graceful.timeout.ms`), then the
    /// connector stops and is forgotten.
    pub async fn stop_connector(&self, name: &str) -> Result<()> {
        let running = {
            let mut guard = self.inner.connectors.lock().await;
            let connectors = guard.as_mut().ok_or(ConnectError::WorkerStopped)?;
            connectors
                .remove(name)
                .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))?
        };
        self.stop_running(name, running).await;
        Ok(())
    }

    async fn stop_running(&self, name: &str, mut running: Running) {
        self.halt(name, &mut running).await;
        tracing::info!(connector = %name, "connector stopped");
    }

    /// Pauses connector `name`: its tasks stop moving data (a source
    /// flushes its offsets first) until [`Worker::resume_connector`].
    pub async fn pause_connector(&self, name: &str) -> Result<()> {
        self.set_target(name, Target::Paused).await
    }

    pub async fn resume_connector(&self, name: &str) -> Result<()> {
        self.set_target(name, Target::Started).await
    }

    async fn set_target(&self, name: &str, target: Target) -> Result<()> {
        let guard = self.inner.connectors.lock().await;
        let running = guard
            .as_ref()
            .ok_or(ConnectError::WorkerStopped)?
            .get(name)
            .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))?;
        running.target.send_replace(target);
        let state = match target {
            Target::Paused => State::Paused,
            _ => State::Running,
        };
        running.status.move_connector(state);
        Ok(())
    }

    /// The state of connector `name` and of each of its tasks.
    pub async fn connector_status(&self, name: &str) -> Result<ConnectorStatus> {
        self.with_connector(name, |running| {
            running
                .status
                .snapshot(name, running.connector.connector_type())
        })
        .await
    }

    /// The config connector `name` was added with.
    pub async fn connector_config(&self, name: &str) -> Result<ConfigMap> {
        self.with_connector(name, |running| running.config.clone())
            .await
    }

    /// The error-handling metrics of each task of connector `name`
    /// (Kafka's `task-error-metrics`: records failed, skipped, retried,
    /// logged, sent to the dead-letter topic), by task.
    pub async fn task_error_metrics(&self, name: &str) -> Result<BTreeMap<u32, TaskErrorMetrics>> {
        self.with_connector(name, |running| running.status.error_metrics())
            .await
    }

    /// The connector's type.
    pub async fn connector_type(&self, name: &str) -> Result<ConnectorType> {
        self.with_connector(name, |running| running.connector.connector_type())
            .await
    }

    async fn with_connector<T>(&self, name: &str, read: impl FnOnce(&Running) -> T) -> Result<T> {
        let guard = self.inner.connectors.lock().await;
        let connectors = guard.as_ref().ok_or(ConnectError::WorkerStopped)?;
        let running = connectors
            .get(name)
            .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))?;
        Ok(read(running))
    }

    /// The names of the connectors on this worker.
    pub async fn connectors(&self) -> Result<Vec<String>> {
        let guard = self.inner.connectors.lock().await;
        let connectors = guard.as_ref().ok_or(ConnectError::WorkerStopped)?;
        Ok(connectors.keys().cloned().collect())
    }

    /// Stops every connector (see [`Worker::stop_connector`]); afterwards
    /// every operation answers [`ConnectError::WorkerStopped`].
    pub async fn shutdown(&self) -> Result<()> {
        let connectors = self
            .inner
            .connectors
            .lock()
            .await
            .take()
            .unwrap_or_default();
        for (name, running) in connectors {
            self.stop_running(&name, running).await;
        }
        tracing::info!("connect worker stopped");
        Ok(())
    }
}

/// Kafka's message for a required key that is missing.
fn missing(key: &str) -> ConnectError {
    ConnectError::config(
        key,
        format!("missing required configuration \"{key}\" which has no default value"),
    )
}
