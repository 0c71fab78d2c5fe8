//! [`Herder`]: the worker the REST API serves, standalone or distributed
//! (Kafka's name for what carries out the API's requests). Each method is
//! one operation of the API, handed to the worker behind it, so the
//! handlers are the same for both and only the worker decides how an
//! operation is carried out (in place, or through the config topic).

use std::collections::BTreeMap;

use crate::api::{ConfigMap, ConfigValue};
use crate::worker::distributed::DistributedWorker;
use crate::worker::{
    ConnectorInfo, ConnectorOffset, ConnectorOffsets, ConnectorStatus, TargetState, TaskInfo,
    TaskStatus, Worker, WorkerConfig,
};
use crate::Result;

/// The worker behind the REST API.
#[derive(Clone)]
pub enum Herder {
    Standalone(Worker),
    Distributed(DistributedWorker),
}

impl From<Worker> for Herder {
    fn from(worker: Worker) -> Herder {
        Herder::Standalone(worker)
    }
}

impl From<DistributedWorker> for Herder {
    fn from(worker: DistributedWorker) -> Herder {
        Herder::Distributed(worker)
    }
}

impl Herder {
    pub fn config(&self) -> &WorkerConfig {
        match self {
            Herder::Standalone(w) => w.config(),
            Herder::Distributed(w) => w.config(),
        }
    }

    pub fn validate(&self, config: &ConfigMap) -> Result<Vec<ConfigValue>> {
        match self {
            Herder::Standalone(w) => w.validate(config),
            Herder::Distributed(w) => w.validate(config),
        }
    }

    pub async fn connectors(&self) -> Result<Vec<String>> {
        match self {
            Herder::Standalone(w) => w.connectors().await,
            Herder::Distributed(w) => w.connectors().await,
        }
    }

    pub async fn connector_status(&self, name: &str) -> Result<ConnectorStatus> {
        match self {
            Herder::Standalone(w) => w.connector_status(name).await,
            Herder::Distributed(w) => w.connector_status(name).await,
        }
    }

    pub async fn connector_info(&self, name: &str) -> Result<ConnectorInfo> {
        match self {
            Herder::Standalone(w) => w.connector_info(name).await,
            Herder::Distributed(w) => w.connector_info(name).await,
        }
    }

    pub async fn connector_config(&self, name: &str) -> Result<ConfigMap> {
        match self {
            Herder::Standalone(w) => w.connector_config(name).await,
            Herder::Distributed(w) => w.connector_config(name).await,
        }
    }

    pub async fn connector_tasks(&self, name: &str) -> Result<Vec<TaskInfo>> {
        match self {
            Herder::Standalone(w) => w.connector_tasks(name).await,
            Herder::Distributed(w) => w.connector_tasks(name).await,
        }
    }

    pub async fn task_status(&self, name: &str, task: u32) -> Result<TaskStatus> {
        match self {
            Herder::Standalone(w) => w.task_status(name, task).await,
            Herder::Distributed(w) => w.task_status(name, task).await,
        }
    }

    pub async fn add_connector(&self, name: &str, config: ConfigMap) -> Result<()> {
        match self {
            Herder::Standalone(w) => w.add_connector(name, config).await,
            Herder::Distributed(w) => w.add_connector(name, config).await,
        }
    }

    pub async fn put_connector_config(&self, name: &str, config: ConfigMap) -> Result<bool> {
        match self {
            Herder::Standalone(w) => w.put_connector_config(name, config).await,
            Herder::Distributed(w) => w.put_connector_config(name, config).await,
        }
    }

    pub async fn patch_connector_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConfigMap> {
        match self {
            Herder::Standalone(w) => w.patch_connector_config(name, patch).await,
            Herder::Distributed(w) => w.patch_connector_config(name, patch).await,
        }
    }

    /// Deletes connector `name` (its offsets stay).
    pub async fn stop_connector(&self, name: &str) -> Result<()> {
        match self {
            Herder::Standalone(w) => w.stop_connector(name).await,
            Herder::Distributed(w) => w.delete_connector(name).await,
        }
    }

    pub async fn set_target_state(&self, name: &str, state: TargetState) -> Result<()> {
        match self {
            Herder::Standalone(w) => w.set_target_state(name, state).await,
            Herder::Distributed(w) => w.set_target_state(name, state).await,
        }
    }

    pub async fn restart_connector(&self, name: &str) -> Result<()> {
        match self {
            Herder::Standalone(w) => w.restart_connector(name).await,
            Herder::Distributed(w) => w.restart_connector(name).await,
        }
    }

    pub async fn restart_connector_and_tasks(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<ConnectorStatus> {
        match self {
            Herder::Standalone(w) => {
                w.restart_connector_and_tasks(name, include_tasks, only_failed)
                    .await
            }
            Herder::Distributed(w) => {
                w.restart_connector_and_tasks(name, include_tasks, only_failed)
                    .await
            }
        }
    }

    pub async fn restart_task(&self, name: &str, task: u32) -> Result<()> {
        match self {
            Herder::Standalone(w) => w.restart_task(name, task).await,
            Herder::Distributed(w) => w.restart_task(name, task).await,
        }
    }

    pub async fn connector_offsets(&self, name: &str) -> Result<ConnectorOffsets> {
        match self {
            Herder::Standalone(w) => w.connector_offsets(name).await,
            Herder::Distributed(w) => w.connector_offsets(name).await,
        }
    }

    pub async fn alter_connector_offsets(
        &self,
        name: &str,
        offsets: Vec<ConnectorOffset>,
    ) -> Result<bool> {
        match self {
            Herder::Standalone(w) => w.alter_connector_offsets(name, offsets).await,
            Herder::Distributed(w) => w.alter_connector_offsets(name, offsets).await,
        }
    }

    pub async fn reset_connector_offsets(&self, name: &str) -> Result<bool> {
        match self {
            Herder::Standalone(w) => w.reset_connector_offsets(name).await,
            Herder::Distributed(w) => w.reset_connector_offsets(name).await,
        }
    }
}
