//! What every task loop shares: its setup (with the record pipeline its
//! connector's config defines: transforms and error handling), the state
//! its connector asks for, and the supervisor that turns a task's error
//! or panic into a FAILED status without touching the connector's other
//! tasks.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use spool_client::Client;
use tokio::sync::watch;

use super::errors::ErrorPolicy;
use super::status::{State, StatusBoard};
use crate::api::{ConfigMap, ConnectorType, ParsedConfig};
use crate::convert::Converter;
use crate::transforms::TransformChain;
use crate::{ConnectError, Result};

/// What a connector's tasks are asked to do (Kafka's `TargetState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Started,
    Paused,
    Stopped,
}

/// What a connector's tasks do with each record besides converting it:
/// its transform chain and its error handling, built once per connector
/// from its config and shared by its tasks.
#[derive(Clone, Debug)]
pub(crate) struct Pipeline {
    pub(crate) transforms: Arc<TransformChain>,
    pub(crate) errors: Arc<ErrorPolicy>,
}

impl Pipeline {
    /// The pipeline of a connector's config (`parsed` is the same map
    /// parsed with the connector's config definition). Checked when the
    /// connector is added: an error names the key that is wrong.
    pub(crate) fn from_config(
        config: &ConfigMap,
        parsed: &ParsedConfig,
        connector_type: ConnectorType,
    ) -> Result<Pipeline> {
        Ok(Pipeline {
            transforms: Arc::new(TransformChain::from_config(config)?),
            errors: Arc::new(ErrorPolicy::from_config(parsed, connector_type)?),
        })
    }
}

/// Marks connector `name` FAILED because its pipeline is invalid: checked
/// when it was added, so only a config changed since can get here.
pub(crate) fn pipeline_failed(name: &str, status: &StatusBoard, error: &ConnectError) {
    tracing::error!(
        connector = %name,
        error = %error,
        "the connector's transforms or error handling are invalid"
    );
    status.set_connector(State::Failed, Some(error.trace()));
}

/// Everything a task loop needs besides its task.
pub(crate) struct TaskSetup {
    pub(crate) connector: String,
    pub(crate) id: u32,
    pub(crate) config: ConfigMap,
    pub(crate) client: Client,
    pub(crate) key_converter: Arc<dyn Converter>,
    pub(crate) value_converter: Arc<dyn Converter>,
    pub(crate) status: Arc<StatusBoard>,
    pub(crate) target: watch::Receiver<Target>,
    /// `offset.flush.interval.ms`.
    pub(crate) flush_interval: Duration,
    pub(crate) pipeline: Pipeline,
}

impl TaskSetup {
    /// What the connector asks for now; `Stopped` once the connector is
    /// gone (its worker dropped without a shutdown), so no task outlives
    /// the worker that ran it.
    pub(crate) fn target(&self) -> Target {
        match self.target.has_changed() {
            Ok(_) => *self.target.borrow(),
            Err(_) => Target::Stopped,
        }
    }

    /// Waits while the connector is paused.
    pub(crate) async fn wait_while_paused(&mut self) {
        while self.target() == Target::Paused {
            if self.target.changed().await.is_err() {
                return;
            }
        }
    }

    pub(crate) fn set_state(&self, state: State) {
        self.status.set_task(self.id, state);
    }

    /// A client error with what the task was doing.
    pub(crate) fn client_error(
        &self,
        doing: &str,
    ) -> impl FnOnce(spool_client::ClientError) -> ConnectError {
        let context = format!("{doing} (connector `{}`, task {})", self.connector, self.id);
        move |e| ConnectError::client(context, e)
    }

    /// Logs a failure the task goes on after (or that comes after the
    /// failure its status shows), naming the connector and task.
    pub(crate) fn warn_on_error<E: std::fmt::Display>(
        &self,
        outcome: std::result::Result<(), E>,
        what: &str,
    ) {
        if let Err(e) = outcome {
            tracing::warn!(connector = %self.connector, task = self.id, error = %e, "{what}");
        }
    }
}

/// Runs a task loop; its error or panic marks the task FAILED with the
/// cause (Kafka's `WorkerTask` does the same with an exception).
pub(crate) async fn supervise(
    run: impl Future<Output = Result<()>> + Send,
    status: Arc<StatusBoard>,
    connector: String,
    id: u32,
) {
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(Ok(())) => tracing::info!(connector = %connector, task = id, "task stopped"),
        Ok(Err(error)) => {
            tracing::error!(connector = %connector, task = id, error = %error, "task failed");
            status.task_failed(id, error.trace());
        }
        Err(panic) => {
            let message = panic_message(&*panic);
            tracing::error!(connector = %connector, task = id, panic = %message, "task panicked");
            status.task_failed(id, format!("the task panicked: {message}"));
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_string()
    }
}
