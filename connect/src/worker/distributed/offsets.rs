//! A connector's offsets read, altered and reset through a distributed
//! worker (KIP-875's endpoints), on a running connector too.
//!
//! Kafka alters only a STOPPED connector's offsets. Here a running or
//! paused connector is stopped for the change and put back as it was, as
//! the standalone worker does (see `offset_admin`): its STOPPED target
//! state is appended to the config topic, the worker running its instance
//! commits zero tasks, and every worker running one of its tasks stops
//! it (flushing and committing its offsets, so its last commit cannot
//! land over the change) and says UNASSIGNED in the status topic. Once
//! every task of it says UNASSIGNED, the change is applied, and then the
//! connector's old target state is appended again whether or not the
//! change went through. A task that does not stop in time (its worker
//! died holding it, and the group has not noticed yet) fails the request
//! with a message saying so, and changes nothing but the pause.

use std::time::{Duration, Instant};

use super::operations::{existing, type_of};
use super::records::ConfigRecord;
use super::DistributedWorker;
use crate::api::{ConfigMap, Connector};
use crate::worker::offset_admin::{plan_alteration, plan_reset, Change};
use crate::worker::{ConnectorOffset, ConnectorOffsets, State, TargetState, TaskId};
use crate::{ConnectError, Result};

/// How often the statuses are looked at while waiting for the tasks to
/// stop: a stop takes a flush and a commit, some tens of milliseconds.
const POLL: Duration = Duration::from_millis(50);

impl DistributedWorker {
    /// Connector `name`'s committed offsets: a source's from the offsets
    /// topic, a sink's from its consumer group.
    pub async fn connector_offsets(&self, name: &str) -> Result<ConnectorOffsets> {
        let cluster = self.read()?;
        let connector_type = type_of(existing(&cluster, name)?)?;
        self.shared().runtime.offsets_of(name, connector_type).await
    }

    /// Alters connector `name`'s offsets (see the module's comment for a
    /// connector that runs): each entry sets a partition's offset, or
    /// forgets it. The connector checks them first, and a refusal changes
    /// nothing. Answers whether the change is complete (the connector's
    /// `alter_offsets`).
    pub async fn alter_connector_offsets(
        &self,
        name: &str,
        offsets: Vec<ConnectorOffset>,
    ) -> Result<bool> {
        self.change_offsets(name, |connector, config| {
            plan_alteration(connector, config, offsets)
        })
        .await
    }

    /// Forgets every offset of connector `name` (see
    /// [`DistributedWorker::alter_connector_offsets`]).
    pub async fn reset_connector_offsets(&self, name: &str) -> Result<bool> {
        self.change_offsets(name, plan_reset).await
    }

    async fn change_offsets(
        &self,
        name: &str,
        plan: impl FnOnce(&Connector, &ConfigMap) -> Result<(Change, bool)>,
    ) -> Result<bool> {
        // The connector's target state is put back as it is now, so it is
        // read as the config topic holds it, not as this worker last saw
        // it: a pause sent through another worker a moment ago counts.
        self.shared().configs.read_to_end().await?;
        let cluster = self.change()?;
        let config = existing(&cluster, name)?.clone();
        let (change, complete) = {
            let prepared = self.shared().runtime.prepare(&config)?;
            plan(&prepared.connector, &config)?
        };
        let target = cluster.target(name);
        if target != TargetState::Stopped {
            let tasks = cluster.task_count(name);
            self.append(vec![target_record(name, TargetState::Stopped)])
                .await?;
            if let Err(error) = self.wait_for_tasks_to_stop(name, tasks).await {
                self.append(vec![target_record(name, target)]).await?;
                return Err(error);
            }
        }
        let known = usize::try_from(self.read()?.task_numbers(name)).unwrap_or(usize::MAX);
        let applied = self
            .shared()
            .runtime
            .apply_offsets(name, &config, change, known)
            .await;
        if target != TargetState::Stopped {
            self.append(vec![target_record(name, target)]).await?;
        }
        tracing::info!(connector = %name, applied = applied.is_ok(), "connector offsets changed");
        applied.map(|()| complete)
    }

    /// Waits until connector `name` has no tasks in the config topic and
    /// each of the `tasks` it had says UNASSIGNED (or nothing); gives up
    /// after the time a worker has to stop its tasks and rejoin its group.
    async fn wait_for_tasks_to_stop(&self, name: &str, tasks: u32) -> Result<()> {
        let shared = self.shared();
        let patience =
            shared.settings.rebalance_timeout + shared.runtime.config.task_shutdown_timeout;
        let deadline = Instant::now() + patience;
        loop {
            let stopped = self.read()?.task_count(name) == 0
                && (0..tasks).all(|task| {
                    let id = TaskId {
                        connector: name.to_string(),
                        task,
                    };
                    shared
                        .statuses
                        .task(&id)
                        .is_none_or(|status| status.state == State::Unassigned)
                });
            if stopped {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ConnectError::Task(format!(
                    "the tasks of connector {name} did not stop within {patience:?}, so its \
                     offsets were not changed; stop it ('PUT /connectors/{name}/stop'), wait \
                     until its tasks are gone, and try again"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The config record that sets connector `name`'s target state.
fn target_record(name: &str, target: TargetState) -> ConfigRecord {
    ConfigRecord::Target(name.to_string(), Some(target))
}
