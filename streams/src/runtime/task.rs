//! A task: one partition of one sub-topology, with its compiled nodes,
//! its stores and how far it has read each input partition.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use spool_client::{ConsumerRecord, ProducerRecord, TopicPartition};

use super::topics::changelog_topic;
use crate::record::Header;
use crate::state::{
    ApplyPolicy, MemoryBackend, RocksBackend, StateMemory, StoreBackend, StoreKind, TaskStore,
};
use crate::topology::{GlobalStores, OutputRecord, RawRecord, TaskContext, TaskTopology, Topology};
use crate::{Result, StreamsError};

/// Sub-topology and partition, printed as Kafka Streams prints a task id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    pub sub_topology: usize,
    pub partition: u32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.sub_topology, self.partition)
    }
}

/// A store's changelog partition, for a logged store.
pub(crate) struct Changelog {
    pub store: usize,
    pub partition: TopicPartition,
}

/// What every task of an instance shares.
#[derive(Clone)]
pub(crate) struct Shared {
    /// The memory budget of all RocksDB stores.
    pub memory: StateMemory,
    /// The global stores.
    pub globals: Arc<GlobalStores>,
    /// Partition counts of the topics sinks partition themselves.
    pub partition_counts: Arc<BTreeMap<String, u32>>,
}

pub(crate) struct Task {
    pub id: TaskId,
    nodes: TaskTopology,
    pub ctx: TaskContext,
    /// Next offset to commit per input partition: one past the last
    /// record processed.
    pub consumed: BTreeMap<TopicPartition, u64>,
    pub changelogs: Vec<Changelog>,
    /// Records processed since the task was opened here.
    pub processed: u64,
    /// Changelog records restored when it was opened here.
    pub restored: u64,
}

/// Where the stores of application `app` live.
pub(crate) fn task_dir(state_dir: &Path, app: &str, id: TaskId) -> PathBuf {
    state_dir.join(app).join(id.to_string())
}

impl Task {
    /// Compiles the task's nodes and opens its stores (RocksDB ones from
    /// disk as the last commit left them).
    pub fn open(
        id: TaskId,
        topology: &Topology,
        config: &super::StreamsConfig,
        shared: &Shared,
    ) -> Result<Task> {
        let app = &config.application_id;
        let (nodes, specs, globals) = topology.instantiate(id.sub_topology, app, &shared.globals);
        let dir = task_dir(&config.state_dir, app, id);
        let mut stores = Vec::new();
        let mut changelogs = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let backend: Box<dyn StoreBackend> = match spec.kind {
                StoreKind::RocksDb => {
                    let path = dir.join(&spec.name);
                    std::fs::create_dir_all(&path).map_err(|e| {
                        StreamsError::StateDir(format!("creating {}: {e}", path.display()))
                    })?;
                    Box::new(RocksBackend::open(&path, &shared.memory)?)
                }
                StoreKind::InMemory => Box::new(MemoryBackend::default()),
            };
            if spec.logged {
                changelogs.push(Changelog {
                    store: index,
                    partition: TopicPartition::new(changelog_topic(app, &spec.name), id.partition),
                });
            }
            // A store without a changelog has nothing to replay its
            // finished commits from: each is written as it finishes.
            let policy = match spec.logged {
                true => config.apply_policy(),
                false => ApplyPolicy::EVERY_COMMIT,
            };
            stores.push(TaskStore::new(spec, backend, policy));
        }
        Ok(Task {
            id,
            nodes,
            ctx: TaskContext {
                partition_counts: Arc::clone(&shared.partition_counts),
                ..TaskContext::new(config.errors.clone(), stores, globals)
            },
            consumed: BTreeMap::new(),
            changelogs,
            processed: 0,
            restored: 0,
        })
    }

    /// Runs one input record through the task's nodes.
    pub fn process(&mut self, record: &ConsumerRecord) -> Result<()> {
        let headers: Vec<Header> = record
            .headers
            .iter()
            .map(|(key, value)| Header {
                key: key.clone(),
                value: value.as_ref().map(|v| v.to_vec()),
            })
            .collect();
        // Updated in place: on the per-record path, the topic's name is
        // copied into the buffer it already has, not allocated anew.
        let origin = &mut self.ctx.origin;
        origin.topic.clear();
        origin.topic.push_str(&record.topic);
        origin.partition = Some(record.partition);
        origin.offset = Some(record.offset);
        let raw = RawRecord {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            timestamp: record.timestamp,
            headers: &headers,
        };
        self.nodes.process(&mut self.ctx, &record.topic, raw)?;
        self.processed += 1;
        // A task reads a partition or two: finding its entry is cheaper
        // than building a key (a new String) for every record.
        let next = record.offset + 1;
        let entry = self
            .consumed
            .iter_mut()
            .find(|(tp, _)| tp.partition == record.partition && *tp.topic == *record.topic);
        match entry {
            Some((_, offset)) => *offset = next,
            None => {
                let tp = TopicPartition::new(&*record.topic, record.partition);
                self.consumed.insert(tp, next);
            }
        }
        Ok(())
    }

    /// Fires the task's due punctuations (stream time and `wall_clock`,
    /// milliseconds since the epoch).
    pub fn punctuate(&mut self, wall_clock: i64) -> Result<()> {
        self.nodes.punctuate(&mut self.ctx, wall_clock)
    }

    /// What the task's sinks wrote since the last call.
    pub fn take_outputs(&mut self) -> Vec<OutputRecord> {
        std::mem::take(&mut self.ctx.output)
    }

    /// Begins a commit of every store (see `TaskStore::begin_commit`);
    /// returns the changelog records of the writes of its logged stores,
    /// each with its store's index.
    pub fn begin_commit(&mut self) -> Vec<(usize, ProducerRecord)> {
        let mut records = Vec::new();
        for (index, store) in self.ctx.stores.iter_mut().enumerate() {
            let writes = store.begin_commit();
            let Some(changelog) = self.changelogs.iter().find(|c| c.store == index) else {
                continue;
            };
            let topic: Arc<str> = changelog.partition.topic.as_str().into();
            records.extend(writes.iter().map(|(key, value)| {
                let record = ProducerRecord {
                    topic: Arc::clone(&topic),
                    partition: Some(changelog.partition.partition),
                    key: Some(Bytes::copy_from_slice(key)),
                    value: value.as_ref().map(|v| Bytes::copy_from_slice(v)),
                    headers: Vec::new(),
                    timestamp: None,
                };
                (index, record)
            }));
        }
        records
    }

    /// Finishes the commit begun last: the writes become durable, with
    /// `offsets[store]` the changelog offset a logged store reached, on
    /// the runtime's blocking threads while the task goes on (see
    /// `TaskStore::finish_commit_in_background`).
    pub fn finish_commit(&mut self, offsets: &BTreeMap<usize, u64>) -> Result<()> {
        for (index, store) in self.ctx.stores.iter_mut().enumerate() {
            store.finish_commit_in_background(offsets.get(&index).copied())?;
        }
        Ok(())
    }

    /// Whether anything was processed, written or output since the last
    /// commit.
    pub fn has_uncommitted(&self) -> bool {
        !self.consumed.is_empty()
            || !self.ctx.output.is_empty()
            || self.ctx.stores.iter().any(TaskStore::is_dirty)
    }

    pub fn skipped(&self) -> u64 {
        self.ctx.skipped
    }
}
