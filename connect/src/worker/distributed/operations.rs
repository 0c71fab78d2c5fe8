//! The REST API's operations on a distributed worker, with the standalone
//! worker's names and answers, so `rest::Herder` maps onto either.
//!
//! Reads answer from the config and status topics as this worker has read
//! them, so any worker answers for every connector. A change is checked
//! here (a bad config is refused naming the key, before anything is
//! written), appended to the config topic, and answered once this worker
//! has read it back; the workers that run what it concerns carry it out
//! when they read it. While the group rebalances, or before this worker
//! has joined it, a change is refused with Kafka's 409
//! ([`ConnectError::Rebalancing`]), for the client to try again.
//!
//! Two changes of one connector sent to two workers at once are both
//! taken, in the order the config topic holds them: creating a connector
//! that another worker created a moment before replaces its config rather
//! than failing, since no worker has both records in view when it checks.

use std::collections::BTreeMap;

use super::records::{ConfigRecord, RestartRequest, StatusRecord};
use super::state::ClusterConfig;
use super::DistributedWorker;
use crate::api::keys::{CONNECTOR_CLASS, NAME};
use crate::api::{ConfigMap, ConfigValue, ConnectorType};
use crate::connectors::create_connector;
use crate::worker::lifecycle::patched;
use crate::worker::{
    missing, ConnectorInfo, ConnectorStatus, State, StateInfo, TargetState, TaskId, TaskInfo,
    TaskStatus,
};
use crate::{ConnectError, Result};

impl DistributedWorker {
    /// Every key of `config` the connector class it names defines, with
    /// its value and errors.
    pub fn validate(&self, config: &ConfigMap) -> Result<Vec<ConfigValue>> {
        self.shared().runtime.validate(config)
    }

    /// The names of every connector of the group.
    pub async fn connectors(&self) -> Result<Vec<String>> {
        self.shared().alive()?;
        Ok(self.shared().configs.snapshot().connectors())
    }

    /// Connector `name`'s config.
    pub async fn connector_config(&self, name: &str) -> Result<ConfigMap> {
        let cluster = self.read()?;
        existing(&cluster, name).cloned()
    }

    /// Connector `name`'s config, tasks and type.
    pub async fn connector_info(&self, name: &str) -> Result<ConnectorInfo> {
        let cluster = self.read()?;
        let config = existing(&cluster, name)?;
        Ok(ConnectorInfo {
            name: name.to_string(),
            config: config.clone(),
            tasks: (0..cluster.task_count(name))
                .map(|task| TaskId {
                    connector: name.to_string(),
                    task,
                })
                .collect(),
            connector_type: type_of(config)?,
        })
    }

    /// Connector `name`'s tasks with their committed configs.
    pub async fn connector_tasks(&self, name: &str) -> Result<Vec<TaskInfo>> {
        let cluster = self.read()?;
        existing(&cluster, name)?;
        let configs = cluster.task_configs(name).unwrap_or_default();
        Ok(configs
            .iter()
            .zip(0..)
            .map(|(config, task)| TaskInfo {
                id: TaskId {
                    connector: name.to_string(),
                    task,
                },
                config: config.clone(),
            })
            .collect())
    }

    /// The state of connector `name` and of each of its tasks, as the
    /// workers running them wrote it; UNASSIGNED, with no worker, for what
    /// no worker has said anything of yet.
    pub async fn connector_status(&self, name: &str) -> Result<ConnectorStatus> {
        let cluster = self.read()?;
        let config = existing(&cluster, name)?;
        let statuses = &self.shared().statuses;
        let tasks = (0..cluster.task_count(name))
            .map(|task| {
                let id = TaskId {
                    connector: name.to_string(),
                    task,
                };
                TaskStatus {
                    id: task,
                    info: info(statuses.task(&id)),
                }
            })
            .collect();
        Ok(ConnectorStatus {
            name: name.to_string(),
            connector: info(statuses.connector(name)),
            tasks,
            connector_type: type_of(config)?,
        })
    }

    /// The status of task `task` of connector `name`.
    pub async fn task_status(&self, name: &str, task: u32) -> Result<TaskStatus> {
        self.connector_status(name).await?.into_task(task)
    }

    /// Creates connector `name` (Kafka's `POST /connectors`): refused if
    /// the name is taken, or if the config fails a check.
    pub async fn add_connector(&self, name: &str, config: ConfigMap) -> Result<()> {
        let config = named(name, config)?;
        let cluster = self.change()?;
        if cluster.config(name).is_some() {
            return Err(ConnectError::ConnectorExists(name.to_string()));
        }
        self.shared().runtime.prepare(&config)?;
        self.append(vec![ConfigRecord::Connector(
            name.to_string(),
            Some(config),
        )])
        .await
    }

    /// Creates connector `name` or replaces its config; whether it was
    /// created. Its workers restart it, and its tasks, on the new config.
    pub async fn put_connector_config(&self, name: &str, config: ConfigMap) -> Result<bool> {
        let config = named(name, config)?;
        let cluster = self.change()?;
        let created = cluster.config(name).is_none();
        self.shared().runtime.prepare(&config)?;
        self.append(vec![ConfigRecord::Connector(
            name.to_string(),
            Some(config),
        )])
        .await?;
        Ok(created)
    }

    /// Merges `patch` into connector `name`'s config (a `None` removes a
    /// key), as [`DistributedWorker::put_connector_config`] replaces it;
    /// answers the new config.
    pub async fn patch_connector_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConfigMap> {
        let cluster = self.change()?;
        let config = patched(existing(&cluster, name)?.clone(), patch);
        let config = named(name, config)?;
        self.shared().runtime.prepare(&config)?;
        self.append(vec![ConfigRecord::Connector(
            name.to_string(),
            Some(config.clone()),
        )])
        .await?;
        Ok(config)
    }

    /// Deletes connector `name` (Kafka's `DELETE /connectors/{name}`): its
    /// config and target state are tombstoned; its workers stop it and its
    /// tasks. Its source offsets stay, as in Kafka.
    pub async fn delete_connector(&self, name: &str) -> Result<()> {
        let cluster = self.change()?;
        existing(&cluster, name)?;
        self.append(vec![
            ConfigRecord::Connector(name.to_string(), None),
            ConfigRecord::Target(name.to_string(), None),
        ])
        .await
    }

    /// Asks connector `name` to run, pause or stop (Kafka's `resume`,
    /// `pause` and `stop`).
    pub async fn set_target_state(&self, name: &str, state: TargetState) -> Result<()> {
        let cluster = self.change()?;
        existing(&cluster, name)?;
        self.append(vec![ConfigRecord::Target(name.to_string(), Some(state))])
            .await
    }

    /// Restarts connector `name`'s instance on the worker that runs it;
    /// its tasks go on.
    pub async fn restart_connector(&self, name: &str) -> Result<()> {
        let cluster = self.change()?;
        existing(&cluster, name)?;
        let request = RestartRequest::default();
        self.append(vec![ConfigRecord::Restart(name.to_string(), request)])
            .await
    }

    /// Kafka's `POST /connectors/{name}/restart?includeTasks=..&onlyFailed=..`:
    /// the connector restarts unless `only_failed` and it did not fail,
    /// and with `include_tasks` each task unless `only_failed` and it did
    /// not fail, each on the worker that runs it. Answers the status as it
    /// was, with what restarts marked RESTARTING; a stopped connector
    /// restarts nothing.
    pub async fn restart_connector_and_tasks(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<ConnectorStatus> {
        let cluster = self.change()?;
        let mut plan = self.connector_status(name).await?;
        if cluster.target(name) == TargetState::Stopped {
            return Ok(plan);
        }
        let chosen = |state: State| !only_failed || state == State::Failed;
        let connector = chosen(plan.connector.state);
        let mut tasks = false;
        if include_tasks {
            for task in plan.tasks.iter_mut().filter(|t| chosen(t.info.state)) {
                task.info.state = State::Restarting;
                task.info.trace = None;
                tasks = true;
            }
        }
        if !connector && !tasks {
            return Ok(plan);
        }
        if connector {
            plan.connector.state = State::Restarting;
            plan.connector.trace = None;
        }
        let request = RestartRequest {
            include_tasks,
            only_failed,
        };
        self.append(vec![ConfigRecord::Restart(name.to_string(), request)])
            .await?;
        Ok(plan)
    }

    /// Restarts task `task` of connector `name` on the worker that runs it
    /// (its sibling tasks go on).
    pub async fn restart_task(&self, name: &str, task: u32) -> Result<()> {
        let cluster = self.change()?;
        existing(&cluster, name)?;
        if task >= cluster.task_count(name) {
            return Err(ConnectError::UnknownTask {
                connector: name.to_string(),
                task,
            });
        }
        let id = TaskId {
            connector: name.to_string(),
            task,
        };
        self.append(vec![ConfigRecord::RestartTask(id)]).await
    }

    /// The config, for a read.
    pub(super) fn read(&self) -> Result<ClusterConfig> {
        self.shared().alive()?;
        Ok(self.shared().configs.snapshot())
    }

    /// The config, for a change: refused while the group rebalances.
    pub(super) fn change(&self) -> Result<ClusterConfig> {
        self.shared().settled()?;
        Ok(self.shared().configs.snapshot())
    }

    pub(super) async fn append(&self, records: Vec<ConfigRecord>) -> Result<()> {
        self.shared().configs.append(records).await.map(|_| ())
    }
}

/// Connector `name`'s config in `cluster`.
pub(super) fn existing<'a>(cluster: &'a ClusterConfig, name: &str) -> Result<&'a ConfigMap> {
    cluster
        .config(name)
        .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))
}

/// The type of the connector `config` names.
pub(super) fn type_of(config: &ConfigMap) -> Result<ConnectorType> {
    let class = config
        .get(CONNECTOR_CLASS)
        .ok_or_else(|| missing(CONNECTOR_CLASS))?;
    Ok(create_connector(class)?.connector_type())
}

/// `config` with the connector's name, which it may give only as it is.
fn named(name: &str, mut config: ConfigMap) -> Result<ConfigMap> {
    match config.get(NAME) {
        Some(given) if given != name => {
            return Err(ConnectError::config(
                NAME,
                format!("is `{given}`, but the connector is named `{name}`"),
            ))
        }
        _ => config.insert(NAME.to_string(), name.to_string()),
    };
    Ok(config)
}

/// A status as a status answer shows it.
fn info(status: Option<StatusRecord>) -> StateInfo {
    match status {
        Some(status) => StateInfo {
            state: status.state,
            worker_id: status.worker_id,
            trace: status.trace,
        },
        None => StateInfo {
            state: State::Unassigned,
            worker_id: String::new(),
            trace: None,
        },
    }
}
