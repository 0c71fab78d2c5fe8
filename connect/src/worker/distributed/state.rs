//! [`ClusterConfig`]: what the config topic says, record by record up to
//! an offset: every connector's config and target state, its committed
//! task configs, and the restarts asked of it.
//!
//! Task configs count only once their commit record is read (Kafka's
//! rule): a connector's task records are written first and its
//! `commit-<name>` last, so a worker that died half-way through writing
//! them leaves the previous task configs in force, never a mix.

use std::collections::BTreeMap;

use spool_client::ConsumerRecord;

use super::protocol::Units;
use super::records::{ConfigRecord, RestartRequest};
use crate::api::ConfigMap;
use crate::worker::{TargetState, TaskId};

/// The config topic as read up to [`ClusterConfig::offset`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClusterConfig {
    /// The offset of the next record: every record below it is applied.
    pub(crate) offset: u64,
    configs: BTreeMap<String, ConfigMap>,
    targets: BTreeMap<String, TargetState>,
    /// Each connector's committed task configs, task n at index n.
    tasks: BTreeMap<String, Vec<ConfigMap>>,
    /// Task configs written and not committed yet.
    pending: BTreeMap<String, BTreeMap<u32, ConfigMap>>,
    /// One past the highest task number each connector was ever written
    /// with: the tasks that may have run, for fencing their zombies.
    task_numbers: BTreeMap<String, u32>,
    /// The latest restart asked of each connector, at its offset.
    restarts: BTreeMap<String, (u64, RestartRequest)>,
    /// The latest restart asked of each task, at its offset.
    task_restarts: BTreeMap<TaskId, u64>,
}

impl ClusterConfig {
    /// Applies a record read from the topic (skipping one that is not in
    /// the format), and moves the offset past it.
    pub(crate) fn apply_record(&mut self, record: &ConsumerRecord) {
        self.offset = self.offset.max(record.offset + 1);
        let Some(key) = record.key.as_deref() else {
            tracing::warn!(
                offset = record.offset,
                "skipping a config record without a key"
            );
            return;
        };
        if let Some(decoded) = ConfigRecord::decode(key, record.value.as_deref()) {
            self.apply(record.offset, decoded);
        }
    }

    /// Applies `record`, read at `offset`.
    pub(crate) fn apply(&mut self, offset: u64, record: ConfigRecord) {
        match record {
            ConfigRecord::Connector(name, Some(config)) => {
                self.configs.insert(name, config);
            }
            ConfigRecord::Connector(name, None) => {
                // Kafka forgets a deleted connector's tasks too: one
                // created again under the name starts from its own.
                self.configs.remove(&name);
                self.tasks.remove(&name);
                self.pending.remove(&name);
                self.restarts.remove(&name);
                self.task_restarts.retain(|id, _| id.connector != name);
            }
            ConfigRecord::Target(name, Some(state)) => {
                self.targets.insert(name, state);
            }
            ConfigRecord::Target(name, None) => {
                self.targets.remove(&name);
            }
            ConfigRecord::Task(id, Some(config)) => {
                let seen = self.task_numbers.entry(id.connector.clone()).or_insert(0);
                *seen = (*seen).max(id.task.saturating_add(1));
                self.pending
                    .entry(id.connector)
                    .or_default()
                    .insert(id.task, config);
            }
            ConfigRecord::Task(id, None) => {
                if let Some(pending) = self.pending.get_mut(&id.connector) {
                    pending.remove(&id.task);
                }
            }
            ConfigRecord::Commit(name, count) => self.commit(name, count),
            ConfigRecord::Restart(name, request) => {
                self.restarts.insert(name, (offset, request));
            }
            ConfigRecord::RestartTask(id) => {
                self.task_restarts.insert(id, offset);
            }
        }
    }

    /// Makes the `count` task configs written for `name` since its last
    /// commit the committed ones; with one of them missing, the commit is
    /// ignored (logged) and the previous configs stay, as Kafka does.
    fn commit(&mut self, name: String, count: u32) {
        let mut pending = self.pending.remove(&name).unwrap_or_default();
        let mut configs = Vec::new();
        for task in 0..count {
            match pending.remove(&task) {
                Some(config) => configs.push(config),
                None => {
                    tracing::warn!(
                        connector = %name,
                        task,
                        count,
                        "ignoring a commit of task configs that lacks one of them"
                    );
                    return;
                }
            }
        }
        self.tasks.insert(name, configs);
    }

    /// The names of the connectors, sorted.
    pub(crate) fn connectors(&self) -> Vec<String> {
        self.configs.keys().cloned().collect()
    }

    pub(crate) fn config(&self, name: &str) -> Option<&ConfigMap> {
        self.configs.get(name)
    }

    /// The state connector `name` is asked to be in: started unless said
    /// otherwise.
    pub(crate) fn target(&self, name: &str) -> TargetState {
        self.targets
            .get(name)
            .copied()
            .unwrap_or(TargetState::Started)
    }

    /// Connector `name`'s committed task configs; `None` before its first
    /// commit.
    pub(crate) fn task_configs(&self, name: &str) -> Option<&[ConfigMap]> {
        self.tasks.get(name).map(Vec::as_slice)
    }

    /// How many tasks connector `name` has now.
    pub(crate) fn task_count(&self, name: &str) -> u32 {
        self.tasks
            .get(name)
            .map_or(0, |tasks| u32::try_from(tasks.len()).unwrap_or(u32::MAX))
    }

    /// Task `id`'s committed config.
    pub(crate) fn task_config(&self, id: &TaskId) -> Option<&ConfigMap> {
        let index = usize::try_from(id.task).ok()?;
        self.tasks.get(&id.connector)?.get(index)
    }

    /// One past the highest task number connector `name` was ever written
    /// with (at least its task count).
    pub(crate) fn task_numbers(&self, name: &str) -> u32 {
        self.task_numbers
            .get(name)
            .copied()
            .unwrap_or(0)
            .max(self.task_count(name))
    }

    /// What is to run: every connector (a stopped one too, so one worker
    /// shows it STOPPED and starts it when resumed) and the committed
    /// tasks of those not stopped.
    pub(crate) fn desired(&self) -> Units {
        let mut units = Units::default();
        for name in self.configs.keys() {
            units.connectors.insert(name.clone());
            if self.target(name) == TargetState::Stopped {
                continue;
            }
            for task in 0..self.task_count(name) {
                units.tasks.insert(TaskId {
                    connector: name.clone(),
                    task,
                });
            }
        }
        units
    }

    /// The restarts asked of connectors at or after offset `from`.
    pub(crate) fn restarts_from(&self, from: u64) -> Vec<(String, RestartRequest)> {
        self.restarts
            .iter()
            .filter(|(_, (offset, _))| *offset >= from)
            .map(|(name, (_, request))| (name.clone(), *request))
            .collect()
    }

    /// The restarts asked of tasks at or after offset `from`.
    pub(crate) fn task_restarts_from(&self, from: u64) -> Vec<TaskId> {
        self.task_restarts
            .iter()
            .filter(|(_, offset)| **offset >= from)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::config_map;

    fn task(connector: &str, task: u32) -> TaskId {
        TaskId {
            connector: connector.to_string(),
            task,
        }
    }

    #[test]
    fn task_configs_count_once_committed_and_go_with_their_connector() {
        let mut state = ClusterConfig::default();
        let config = config_map(&[("connector.class", "Datagen")]);
        let records = [
            ConfigRecord::Connector("gen".into(), Some(config.clone())),
            ConfigRecord::Task(task("gen", 0), Some(config_map(&[("t", "0")]))),
            ConfigRecord::Task(task("gen", 1), Some(config_map(&[("t", "1")]))),
        ];
        for (offset, record) in records.into_iter().enumerate() {
            state.apply(offset as u64, record);
        }
        assert_eq!(state.task_count("gen"), 0, "not committed yet");
        assert_eq!(state.desired().tasks.len(), 0);
        state.apply(3, ConfigRecord::Commit("gen".into(), 2));
        assert_eq!(state.task_count("gen"), 2);
        assert_eq!(
            state.task_config(&task("gen", 1)),
            Some(&config_map(&[("t", "1")]))
        );
        assert_eq!(state.desired().tasks.len(), 2);
        // A commit lacking a task config leaves the committed ones.
        state.apply(4, ConfigRecord::Commit("gen".into(), 1));
        assert_eq!(state.task_count("gen"), 2);
        state.apply(
            5,
            ConfigRecord::Target("gen".into(), Some(TargetState::Stopped)),
        );
        assert_eq!(
            state.desired().tasks.len(),
            0,
            "a stopped connector runs no task"
        );
        assert_eq!(state.desired().connectors.len(), 1);
        state.apply(6, ConfigRecord::Connector("gen".into(), None));
        assert!(state.connectors().is_empty());
        assert_eq!(state.task_count("gen"), 0);
        assert_eq!(
            state.task_numbers("gen"),
            2,
            "its tasks may still have zombies"
        );
    }

    #[test]
    fn restarts_are_read_from_an_offset_on() {
        let mut state = ClusterConfig::default();
        let request = RestartRequest {
            include_tasks: true,
            only_failed: false,
        };
        state.apply(3, ConfigRecord::Restart("a".into(), request));
        state.apply(5, ConfigRecord::RestartTask(task("a", 0)));
        assert_eq!(state.restarts_from(3), vec![("a".to_string(), request)]);
        assert!(state.restarts_from(4).is_empty());
        assert_eq!(state.task_restarts_from(4), vec![task("a", 0)]);
        assert!(state.task_restarts_from(6).is_empty());
    }
}
