//! The records of the config and status topics, in Kafka Connect's
//! format (`KafkaConfigBackingStore`, `KafkaStatusBackingStore`): keys are
//! text, values compact JSON as Kafka's internal JsonConverter (schemas
//! off) writes them, and a null value is a tombstone.
//!
//! Config topic:
//!
//! | key | value |
//! | --- | --- |
//! | `connector-<name>` | `{"properties": {...}}`: the connector's config |
//! | `target-state-<name>` | `{"state": "STARTED"\|"PAUSED", "state.v2": "STARTED"\|"PAUSED"\|"STOPPED"}` |
//! | `task-<name>-<n>` | `{"properties": {...}}`: task n's config |
//! | `commit-<name>` | `{"tasks": <count>}`: the task configs written before it count |
//! | `restart-connector-<name>` | `{"include-tasks": bool, "only-failed": bool}` |
//! | `restart-task-<name>-<n>` | `{}` (spool's: Kafka forwards a task restart to its worker over HTTP) |
//!
//! Status topic: `status-connector-<name>` and `status-task-<name>-<n>`,
//! each `{"state": ..., "trace": ..., "worker_id": ..., "generation": ...}`.
//!
//! A record that is not in this format is skipped with a warning, as
//! Kafka skips it: one bad record must not stop every worker.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::ConfigMap;
use crate::worker::{json_config, State, TargetState, TaskId};
use crate::{ConnectError, Result};

const CONNECTOR: &str = "connector-";
const TARGET_STATE: &str = "target-state-";
const TASK: &str = "task-";
const COMMIT: &str = "commit-";
const RESTART_CONNECTOR: &str = "restart-connector-";
const RESTART_TASK: &str = "restart-task-";
const STATUS_CONNECTOR: &str = "status-connector-";
const STATUS_TASK: &str = "status-task-";

/// A restart asked of a connector's workers (`POST .../restart`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RestartRequest {
    pub(crate) include_tasks: bool,
    pub(crate) only_failed: bool,
}

/// One record of the config topic, decoded. `None` values are
/// tombstones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConfigRecord {
    Connector(String, Option<ConfigMap>),
    Target(String, Option<TargetState>),
    Task(TaskId, Option<ConfigMap>),
    Commit(String, u32),
    Restart(String, RestartRequest),
    RestartTask(TaskId),
}

/// `<name>-<n>` split at its last dash, as Kafka splits a task's key
/// (a connector's name may hold dashes; a task number may not).
fn task_id(rest: &str) -> Option<TaskId> {
    let (connector, task) = rest.rsplit_once('-')?;
    Some(TaskId {
        connector: connector.to_string(),
        task: task.parse().ok()?,
    })
}

impl ConfigRecord {
    /// The record's key and value, as the topic holds them.
    pub(crate) fn encode(&self) -> Result<(String, Option<Bytes>)> {
        let properties = |config: &ConfigMap| json!({ "properties": config });
        let (key, value) = match self {
            ConfigRecord::Connector(name, config) => (
                format!("{CONNECTOR}{name}"),
                config.as_ref().map(properties),
            ),
            ConfigRecord::Target(name, state) => {
                let value = state.map(|state| {
                    // Kafka writes STOPPED as PAUSED under `state`, for
                    // workers that predate STOPPED, and the truth under
                    // `state.v2`.
                    let v1 = match state {
                        TargetState::Started => "STARTED",
                        _ => "PAUSED",
                    };
                    json!({ "state": v1, "state.v2": target_name(state) })
                });
                (format!("{TARGET_STATE}{name}"), value)
            }
            ConfigRecord::Task(id, config) => (
                format!("{TASK}{}-{}", id.connector, id.task),
                config.as_ref().map(properties),
            ),
            ConfigRecord::Commit(name, tasks) => {
                (format!("{COMMIT}{name}"), Some(json!({ "tasks": tasks })))
            }
            ConfigRecord::Restart(name, request) => (
                format!("{RESTART_CONNECTOR}{name}"),
                Some(json!({
                    "include-tasks": request.include_tasks,
                    "only-failed": request.only_failed,
                })),
            ),
            ConfigRecord::RestartTask(id) => (
                format!("{RESTART_TASK}{}-{}", id.connector, id.task),
                Some(json!({})),
            ),
        };
        Ok((key, value.map(|v| json_bytes(&v)).transpose()?))
    }

    /// The record of `key` and `value`; `None` (logged) for one that is not
    /// in the format.
    pub(crate) fn decode(key: &[u8], value: Option<&[u8]>) -> Option<ConfigRecord> {
        let key = std::str::from_utf8(key).ok()?;
        let value: Option<Value> = match value {
            None => None,
            Some(bytes) => match serde_json::from_slice(bytes) {
                Ok(Value::Null) => None,
                Ok(value) => Some(value),
                Err(e) => {
                    tracing::warn!(key, error = %e, "skipping a config record that is not JSON");
                    return None;
                }
            },
        };
        let decoded = decode_record(key, value);
        if decoded.is_none() {
            tracing::warn!(key, "skipping a config record spool does not know");
        }
        decoded
    }
}

fn decode_record(key: &str, value: Option<Value>) -> Option<ConfigRecord> {
    // Longer prefixes first: `target-state-` before `task-`, the restarts'
    // before `connector-`.
    if let Some(name) = key.strip_prefix(TARGET_STATE) {
        let state = match &value {
            None => None,
            Some(value) => Some(target_of(value)?),
        };
        return Some(ConfigRecord::Target(name.to_string(), state));
    }
    if let Some(name) = key.strip_prefix(RESTART_CONNECTOR) {
        let flag = |field: &str| {
            value
                .as_ref()
                .and_then(|v| v.get(field))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let request = RestartRequest {
            include_tasks: flag("include-tasks"),
            only_failed: flag("only-failed"),
        };
        return Some(ConfigRecord::Restart(name.to_string(), request));
    }
    if let Some(rest) = key.strip_prefix(RESTART_TASK) {
        return Some(ConfigRecord::RestartTask(task_id(rest)?));
    }
    if let Some(name) = key.strip_prefix(CONNECTOR) {
        let config = match &value {
            None => None,
            Some(value) => Some(properties_of(value)?),
        };
        return Some(ConfigRecord::Connector(name.to_string(), config));
    }
    if let Some(rest) = key.strip_prefix(TASK) {
        let config = match &value {
            None => None,
            Some(value) => Some(properties_of(value)?),
        };
        return Some(ConfigRecord::Task(task_id(rest)?, config));
    }
    if let Some(name) = key.strip_prefix(COMMIT) {
        let tasks = value.as_ref()?.get("tasks")?.as_u64()?;
        return Some(ConfigRecord::Commit(
            name.to_string(),
            u32::try_from(tasks).ok()?,
        ));
    }
    None
}

fn properties_of(value: &Value) -> Option<ConfigMap> {
    match value.get("properties") {
        Some(Value::Object(properties)) => json_config(properties).ok(),
        _ => None,
    }
}

fn target_name(state: TargetState) -> &'static str {
    match state {
        TargetState::Started => "STARTED",
        TargetState::Paused => "PAUSED",
        TargetState::Stopped => "STOPPED",
    }
}

/// `state.v2` if there, else `state`, as Kafka reads them.
fn target_of(value: &Value) -> Option<TargetState> {
    let name = value
        .get("state.v2")
        .or_else(|| value.get("state"))
        .and_then(Value::as_str)?;
    match name {
        "STARTED" => Some(TargetState::Started),
        "PAUSED" => Some(TargetState::Paused),
        "STOPPED" => Some(TargetState::Stopped),
        _ => None,
    }
}

/// A connector's or task's status as the status topic holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StatusRecord {
    pub(crate) state: State,
    pub(crate) trace: Option<String>,
    pub(crate) worker_id: String,
    /// The worker group's generation when it was written.
    #[serde(default)]
    pub(crate) generation: i32,
}

impl StatusRecord {
    /// Whether `other` says the same but for the generation: a status is
    /// written again only when it changes.
    pub(crate) fn same_as(&self, other: &StatusRecord) -> bool {
        self.state == other.state && self.trace == other.trace && self.worker_id == other.worker_id
    }

    pub(crate) fn encode(&self) -> Result<Bytes> {
        let value = serde_json::to_value(self)
            .map_err(|e| ConnectError::Task(format!("cannot write a status as JSON: {e}")))?;
        json_bytes(&value)
    }

    /// The status of `value`; `None` for one that is not a status (logged).
    pub(crate) fn decode(key: &str, value: &[u8]) -> Option<StatusRecord> {
        match serde_json::from_slice(value) {
            Ok(status) => Some(status),
            Err(e) => {
                tracing::warn!(key, error = %e, "skipping a status record spool cannot read");
                None
            }
        }
    }
}

/// The status topic's key of connector `name`.
pub(crate) fn connector_status_key(name: &str) -> String {
    format!("{STATUS_CONNECTOR}{name}")
}

/// The status topic's key of task `id`.
pub(crate) fn task_status_key(id: &TaskId) -> String {
    format!("{STATUS_TASK}{}-{}", id.connector, id.task)
}

/// Compact JSON, as Kafka's JsonConverter writes it.
fn json_bytes(value: &Value) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ConnectError::Task(format!("cannot write a record as JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::config_map;

    fn round_trip(record: ConfigRecord) -> ConfigRecord {
        let (key, value) = record.encode().unwrap();
        ConfigRecord::decode(key.as_bytes(), value.as_deref()).unwrap()
    }

    #[test]
    fn config_records_are_kafkas_keys_and_values() {
        let config = config_map(&[("connector.class", "FileStreamSource"), ("tasks.max", "1")]);
        let (key, value) = ConfigRecord::Connector("my-files".into(), Some(config.clone()))
            .encode()
            .unwrap();
        assert_eq!(key, "connector-my-files");
        assert_eq!(
            value.as_deref(),
            Some(&br#"{"properties":{"connector.class":"FileStreamSource","tasks.max":"1"}}"#[..])
        );
        let stopped = ConfigRecord::Target("my-files".into(), Some(TargetState::Stopped));
        let (key, value) = stopped.encode().unwrap();
        assert_eq!(key, "target-state-my-files");
        let value: Value = serde_json::from_slice(value.as_deref().unwrap()).unwrap();
        assert_eq!(value, json!({"state": "PAUSED", "state.v2": "STOPPED"}));
        let id = TaskId {
            connector: "my-files".into(),
            task: 12,
        };
        for record in [
            ConfigRecord::Connector("my-files".into(), Some(config.clone())),
            ConfigRecord::Connector("my-files".into(), None),
            stopped,
            ConfigRecord::Target("a".into(), None),
            ConfigRecord::Task(id.clone(), Some(config)),
            ConfigRecord::Commit("my-files".into(), 3),
            ConfigRecord::Restart(
                "my-files".into(),
                RestartRequest {
                    include_tasks: true,
                    only_failed: false,
                },
            ),
            ConfigRecord::RestartTask(id),
        ] {
            assert_eq!(round_trip(record.clone()), record);
        }
        // Kafka's records of a worker that predates STOPPED.
        let old = ConfigRecord::decode(b"target-state-x", Some(br#"{"state":"PAUSED"}"#));
        assert_eq!(
            old,
            Some(ConfigRecord::Target("x".into(), Some(TargetState::Paused)))
        );
        assert_eq!(ConfigRecord::decode(b"session-key", Some(b"{}")), None);
        assert_eq!(ConfigRecord::decode(b"task-nonumber", Some(b"{}")), None);
    }

    #[test]
    fn status_records_are_kafkas() {
        let status = StatusRecord {
            state: State::Running,
            trace: None,
            worker_id: "10.0.0.1:8083".into(),
            generation: 4,
        };
        let bytes = status.encode().unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            json!({"state": "RUNNING", "trace": null, "worker_id": "10.0.0.1:8083", "generation": 4})
        );
        assert_eq!(StatusRecord::decode("k", &bytes), Some(status.clone()));
        let moved = StatusRecord {
            generation: 5,
            ..status.clone()
        };
        assert!(status.same_as(&moved));
        assert_eq!(
            task_status_key(&TaskId {
                connector: "a-b".into(),
                task: 1
            }),
            "status-task-a-b-1"
        );
        assert_eq!(connector_status_key("a"), "status-connector-a");
    }
}
