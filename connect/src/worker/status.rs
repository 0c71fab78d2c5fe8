//! Connector and task states, shaped like Kafka Connect's
//! `GET /connectors/{name}/status` answer, and the board each connector's
//! tasks report to.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::errors::{ErrorCounters, TaskErrorMetrics};
use crate::api::ConnectorType;

/// A connector's or task's state (Kafka's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Created, not started yet.
    Unassigned,
    Running,
    /// Paused by request: a source task polls nothing, a sink task
    /// fetches nothing, until resumed.
    Paused,
    /// Stopped by an error, which `trace` holds; the others keep running.
    Failed,
    /// Stopped by request (Kafka's STOPPED, `PUT /connectors/{name}/stop`):
    /// the connector keeps its config, but neither it nor any task runs
    /// until it is resumed; its status lists no tasks.
    Stopped,
    /// Being restarted: what the answer to a restart request shows for the
    /// connector and the tasks it restarts (Kafka's RESTARTING).
    Restarting,
}

/// The connector's or a task's part of a status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateInfo {
    pub state: State,
    pub worker_id: String,
    /// Why it failed, with the chain of causes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// A task's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskStatus {
    pub id: u32,
    #[serde(flatten)]
    pub info: StateInfo,
}

/// A connector's status with its tasks'.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectorStatus {
    pub name: String,
    pub connector: StateInfo,
    pub tasks: Vec<TaskStatus>,
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
}

impl ConnectorStatus {
    /// The status of task `task`, or the error naming it when the
    /// connector has no such task.
    pub fn into_task(self, task: u32) -> crate::Result<TaskStatus> {
        let name = self.name;
        self.tasks
            .into_iter()
            .find(|t| t.id == task)
            .ok_or(crate::ConnectError::UnknownTask {
                connector: name,
                task,
            })
    }
}

/// Where a connector and its tasks keep their current state: written by
/// the worker and the task loops, read by `connector_status` (and, on a
/// distributed worker, by what writes them to the status topic, which a
/// board wakes at each change).
#[derive(Debug)]
pub(crate) struct StatusBoard {
    worker_id: String,
    /// Woken at each change, when someone listens.
    changed: Option<Arc<Notify>>,
    states: Mutex<States>,
    /// Each task's error-handling counts (`errors`), kept with its state
    /// so a status and its metrics come from one place.
    errors: Mutex<BTreeMap<u32, Arc<ErrorCounters>>>,
}

#[derive(Debug)]
struct States {
    connector: (State, Option<String>),
    tasks: BTreeMap<u32, (State, Option<String>)>,
}

impl StatusBoard {
    pub(crate) fn new(worker_id: &str) -> StatusBoard {
        StatusBoard {
            worker_id: worker_id.to_string(),
            changed: None,
            states: Mutex::new(States {
                connector: (State::Unassigned, None),
                tasks: BTreeMap::new(),
            }),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    /// A board that wakes `changed` at each change of a state.
    pub(crate) fn notifying(worker_id: &str, changed: Arc<Notify>) -> StatusBoard {
        StatusBoard {
            changed: Some(changed),
            ..StatusBoard::new(worker_id)
        }
    }

    fn changed(&self) {
        if let Some(changed) = &self.changed {
            changed.notify_one();
        }
    }

    /// Task `task`'s error counters, for its loop to update.
    pub(crate) fn error_counters(&self, task: u32) -> Arc<ErrorCounters> {
        Arc::clone(self.errors.lock().entry(task).or_default())
    }

    /// Every task's error-handling metrics, by task.
    pub(crate) fn error_metrics(&self) -> BTreeMap<u32, TaskErrorMetrics> {
        self.errors
            .lock()
            .iter()
            .map(|(task, counters)| (*task, counters.snapshot()))
            .collect()
    }

    pub(crate) fn set_connector(&self, state: State, trace: Option<String>) {
        self.states.lock().connector = (state, trace);
        self.changed();
    }

    /// Moves a running or paused connector to `state`; a FAILED one stays
    /// failed until it is restarted, and a STOPPED one stopped until it is
    /// resumed (which starts it on a new board).
    pub(crate) fn move_connector(&self, state: State) {
        let mut states = self.states.lock();
        if !matches!(states.connector.0, State::Failed | State::Stopped) {
            states.connector = (state, None);
        }
        drop(states);
        self.changed();
    }

    /// The connector's own state.
    pub(crate) fn connector_state(&self) -> State {
        self.states.lock().connector.0
    }

    /// The connector's own state, with its trace.
    pub(crate) fn connector_entry(&self) -> (State, Option<String>) {
        self.states.lock().connector.clone()
    }

    /// Task `task`'s state, with its trace, if the board has it.
    pub(crate) fn task_entry(&self, task: u32) -> Option<(State, Option<String>)> {
        self.states.lock().tasks.get(&task).cloned()
    }

    pub(crate) fn set_task(&self, task: u32, state: State) {
        let mut states = self.states.lock();
        // A failed task stays failed: only a restart (a new task) clears it.
        let failed = states
            .tasks
            .get(&task)
            .is_some_and(|(s, _)| *s == State::Failed);
        if !failed {
            states.tasks.insert(task, (state, None));
        }
        drop(states);
        self.changed();
    }

    pub(crate) fn task_failed(&self, task: u32, trace: String) {
        self.states
            .lock()
            .tasks
            .insert(task, (State::Failed, Some(trace)));
        self.changed();
    }

    /// Forgets task `task`'s state and error counts: it is restarted
    /// afresh on this board, or runs elsewhere now.
    pub(crate) fn forget_task(&self, task: u32) {
        self.states.lock().tasks.remove(&task);
        self.errors.lock().remove(&task);
        self.changed();
    }

    pub(crate) fn snapshot(&self, name: &str, connector_type: ConnectorType) -> ConnectorStatus {
        let states = self.states.lock();
        let info = |(state, trace): &(State, Option<String>)| StateInfo {
            state: *state,
            worker_id: self.worker_id.clone(),
            trace: trace.clone(),
        };
        ConnectorStatus {
            name: name.to_string(),
            connector: info(&states.connector),
            tasks: states
                .tasks
                .iter()
                .map(|(id, state)| TaskStatus {
                    id: *id,
                    info: info(state),
                })
                .collect(),
            connector_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_like_kafka_connects() {
        let board = StatusBoard::new("standalone");
        board.set_connector(State::Running, None);
        board.set_task(0, State::Running);
        board.set_task(1, State::Running);
        board.task_failed(1, "boom".into());
        board.set_task(1, State::Running);
        let status = board.snapshot("files", ConnectorType::Source);
        assert_eq!(
            status.tasks[1].info.state,
            State::Failed,
            "failed stays failed"
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "files",
                "connector": {"state": "RUNNING", "worker_id": "standalone"},
                "tasks": [
                    {"id": 0, "state": "RUNNING", "worker_id": "standalone"},
                    {"id": 1, "state": "FAILED", "worker_id": "standalone", "trace": "boom"}
                ],
                "type": "source"
            })
        );
    }

    #[test]
    fn a_stopped_connector_stays_stopped_until_started_anew() {
        let board = StatusBoard::new("standalone");
        board.set_connector(State::Stopped, None);
        board.move_connector(State::Running);
        assert_eq!(board.connector_state(), State::Stopped);
        let json = serde_json::to_value(board.snapshot("files", ConnectorType::Sink)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "files",
                "connector": {"state": "STOPPED", "worker_id": "standalone"},
                "tasks": [],
                "type": "sink"
            })
        );
        assert_eq!(
            serde_json::to_value(State::Restarting).unwrap(),
            "RESTARTING"
        );
    }
}
