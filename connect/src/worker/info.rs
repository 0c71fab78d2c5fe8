//! What the worker tells about a connector besides its status, shaped as
//! Kafka Connect's REST API answers: its info (config, tasks, type), its
//! tasks' configs, and one task's status.

use serde::{Deserialize, Serialize};

use super::lifecycle::task_configs_of;
use super::status::TaskStatus;
use super::Worker;
use crate::api::{ConfigMap, ConnectorType};
use crate::Result;

/// A task's id: its connector and its number there (Kafka's
/// `ConnectorTaskId`). Ordered by connector, then number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId {
    pub connector: String,
    pub task: u32,
}

/// A connector's config and tasks (Kafka's `ConnectorInfo`, the answer of
/// `GET /connectors/{name}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectorInfo {
    pub name: String,
    pub config: ConfigMap,
    /// The tasks that run (none for a stopped or failed connector).
    pub tasks: Vec<TaskId>,
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
}

/// A task and the config it was started with (Kafka's `TaskInfo`, an
/// entry of `GET /connectors/{name}/tasks`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    pub id: TaskId,
    pub config: ConfigMap,
}

impl Worker {
    /// Connector `name`'s config, tasks and type.
    pub async fn connector_info(&self, name: &str) -> Result<ConnectorInfo> {
        self.with_connector(name, |running| ConnectorInfo {
            name: name.to_string(),
            config: running.config.clone(),
            tasks: (0..running.tasks.len())
                .map(|index| TaskId {
                    connector: name.to_string(),
                    task: u32::try_from(index).unwrap_or(u32::MAX),
                })
                .collect(),
            connector_type: running.connector.connector_type(),
        })
        .await
    }

    /// Connector `name`'s tasks with their configs. The configs are asked
    /// of the connector again (a connector gives the same configs for the
    /// same config), as the worker keeps only the tasks it started.
    pub async fn connector_tasks(&self, name: &str) -> Result<Vec<TaskInfo>> {
        self.with_connector(name, |running| -> Result<Vec<TaskInfo>> {
            if running.tasks.is_empty() {
                return Ok(Vec::new());
            }
            let configs = task_configs_of(&running.connector, &running.config)?;
            Ok(configs
                .into_iter()
                .take(running.tasks.len())
                .enumerate()
                .map(|(index, config)| TaskInfo {
                    id: TaskId {
                        connector: name.to_string(),
                        task: u32::try_from(index).unwrap_or(u32::MAX),
                    },
                    config,
                })
                .collect())
        })
        .await?
    }

    /// The status of task `task` of connector `name`.
    pub async fn task_status(&self, name: &str, task: u32) -> Result<TaskStatus> {
        self.connector_status(name).await?.into_task(task)
    }
}
