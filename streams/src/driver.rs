//! `TopologyTestDriver`: runs a topology in the calling thread, without a
//! broker: one task per sub-topology (partitioning is not modelled),
//! stores in memory committed after every input record, and records
//! written to internal topics (repartitions) fed straight back in. Pipe
//! records into input topics, read what sinks wrote, read stores.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::codec::Codec;
use crate::record::Record;
use crate::state::{ApplyPolicy, GlobalStore, MemoryBackend, TaskStore, WriteBatch};
use crate::topology::{
    ErrorHandling, GlobalSpec, GlobalStores, OnDecodeError, Origin, OutputRecord, RawRecord,
    TaskContext, TaskTopology, Topology,
};
use crate::{Result, StreamsError};

/// The application id internal topics are named after in the driver.
pub const DRIVER_APPLICATION_ID: &str = "test";

/// A topic as a test reads or writes it, with its codecs.
pub struct TestTopic<K, V> {
    name: String,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<V>>,
}

impl<K: 'static, V: 'static> TestTopic<K, V> {
    pub fn new(name: &str, keys: impl Codec<K>, values: impl Codec<V>) -> TestTopic<K, V> {
        TestTopic {
            name: name.to_string(),
            keys: Arc::new(keys),
            values: Arc::new(values),
        }
    }
}

struct DriverTask {
    nodes: TaskTopology,
    ctx: TaskContext,
}

/// A topology run in place, for tests.
pub struct TopologyTestDriver {
    tasks: Vec<DriverTask>,
    /// Resolved source topic → the task reading it.
    readers: BTreeMap<String, usize>,
    /// Pattern sources and the task of each (one task per sub-topology,
    /// in order): they read the topics no source names.
    patterns: Vec<(regex::Regex, usize)>,
    /// Global tables' topics → their spec and store.
    globals: BTreeMap<String, (GlobalSpec, Arc<GlobalStore>)>,
    outputs: BTreeMap<String, VecDeque<OutputRecord>>,
    /// Records of global tables' topics that did not decode.
    skipped_globals: u64,
    /// The driver's wall clock, in milliseconds; moved only by
    /// `advance_wall_clock`, so wall-clock punctuation is deterministic.
    wall_clock: i64,
}

impl TopologyTestDriver {
    pub fn new(topology: &Topology) -> TopologyTestDriver {
        TopologyTestDriver::with_policy(topology, OnDecodeError::default())
    }

    /// A driver whose sources handle undecodable records as `policy` says.
    pub fn with_policy(topology: &Topology, policy: OnDecodeError) -> TopologyTestDriver {
        let errors = ErrorHandling {
            on_decode_error: policy,
            ..ErrorHandling::default()
        };
        TopologyTestDriver::with_errors(topology, errors)
    }

    /// A driver with these error policies.
    pub fn with_errors(topology: &Topology, errors: ErrorHandling) -> TopologyTestDriver {
        let mut tasks = Vec::new();
        let mut readers = BTreeMap::new();
        let mut globals = BTreeMap::new();
        let mut global_stores = GlobalStores::new();
        for spec in topology.globals() {
            let store = Arc::new(GlobalStore::new(
                spec.store.clone(),
                Box::new(MemoryBackend::default()),
            ));
            global_stores.insert(spec.store.name.clone(), Arc::clone(&store));
            globals.insert(spec.topic.clone(), (spec.clone(), store));
        }
        for (index, sub) in topology.sub_topologies().iter().enumerate() {
            let (nodes, specs, task_globals) =
                topology.instantiate(index, DRIVER_APPLICATION_ID, &global_stores);
            let stores = specs
                .into_iter()
                .map(|spec| {
                    TaskStore::new(
                        spec,
                        Box::new(MemoryBackend::default()),
                        ApplyPolicy::EVERY_COMMIT,
                    )
                })
                .collect();
            for topic in &sub.sources {
                readers.insert(topic.resolve(DRIVER_APPLICATION_ID), tasks.len());
            }
            // The driver models one partition per topic.
            let counts = topology.partitioned_sinks().iter().map(|t| (t.clone(), 1));
            tasks.push(DriverTask {
                nodes,
                ctx: TaskContext {
                    partition_counts: Arc::new(counts.collect()),
                    ..TaskContext::new(errors.clone(), stores, task_globals)
                },
            });
        }
        TopologyTestDriver {
            tasks,
            readers,
            patterns: topology
                .patterns
                .iter()
                .map(|p| (p.regex.clone(), p.sub))
                .collect(),
            globals,
            skipped_globals: 0,
            outputs: BTreeMap::new(),
            wall_clock: 0,
        }
    }

    /// Pipes one record, encoded by `topic`'s codecs.
    pub fn pipe<K: 'static, V: 'static>(
        &mut self,
        topic: &TestTopic<K, V>,
        key: &K,
        value: &V,
        timestamp: i64,
    ) -> Result<()> {
        let (mut key_bytes, mut value_bytes) = (Vec::new(), Vec::new());
        let has_key = topic.keys.encode_nullable(key, &mut key_bytes)?;
        let has_value = topic.values.encode_nullable(value, &mut value_bytes)?;
        self.pipe_raw(
            &topic.name,
            has_key.then_some(key_bytes.as_slice()),
            has_value.then_some(value_bytes.as_slice()),
            timestamp,
        )
    }

    /// Pipes one record as bytes (a poison record, say), and everything
    /// it causes to be written to internal topics after it.
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<()> {
        if let Some((spec, store)) = self.globals.get(topic) {
            // A global table's topic updates its store at once, as the
            // global thread would, and feeds no task.
            let mut batch = WriteBatch::default();
            let raw = RawRecord {
                key,
                value,
                timestamp,
                headers: &[],
            };
            self.skipped_globals += spec.load_into(&mut batch, raw);
            return store.apply(&batch, &Default::default());
        }
        let mut pending = VecDeque::from([OutputRecord {
            topic: topic.into(),
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp,
            headers: Vec::new(),
            partition: None,
        }]);
        while let Some(record) = pending.pop_front() {
            let task = self
                .reader_of(&record.topic)
                .ok_or_else(|| StreamsError::UnknownTopic(record.topic.to_string()))?;
            let wall_clock = self.wall_clock;
            let task = &mut self.tasks[task];
            task.ctx.origin = Origin {
                topic: record.topic.to_string(),
                partition: None,
                offset: None,
            };
            let raw = RawRecord {
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                timestamp: record.timestamp,
                headers: &record.headers,
            };
            task.nodes.process(&mut task.ctx, &record.topic, raw)?;
            task.nodes.punctuate(&mut task.ctx, wall_clock)?;
            self.commit_and_route(&mut pending)?;
        }
        Ok(())
    }

    /// The task reading `topic`, by name or by pattern.
    fn reader_of(&self, topic: &str) -> Option<usize> {
        self.readers.get(topic).copied().or_else(|| {
            self.patterns
                .iter()
                .find(|(regex, _)| regex.is_match(topic))
                .map(|&(_, task)| task)
        })
    }

    /// Moves the driver's wall clock forward and fires the wall-clock
    /// punctuations that came due (and what they cause downstream).
    pub fn advance_wall_clock(&mut self, by: std::time::Duration) -> Result<()> {
        self.wall_clock += by.as_millis() as i64;
        for task in &mut self.tasks {
            task.nodes.punctuate(&mut task.ctx, self.wall_clock)?;
        }
        let mut pending = VecDeque::new();
        self.commit_and_route(&mut pending)?;
        while let Some(record) = pending.pop_front() {
            let (key, value) = (record.key.clone(), record.value.clone());
            self.pipe_raw(
                &record.topic,
                key.as_deref(),
                value.as_deref(),
                record.timestamp,
            )?;
        }
        Ok(())
    }

    /// Commits every task's stores, and sorts what sinks wrote: records
    /// for internal topics into `pending`, the rest into the outputs.
    fn commit_and_route(&mut self, pending: &mut VecDeque<OutputRecord>) -> Result<()> {
        let mut written = Vec::new();
        for task in &mut self.tasks {
            for store in &mut task.ctx.stores {
                store.begin_commit();
                store.finish_commit(None)?;
            }
            written.append(&mut task.ctx.output);
        }
        for output in written {
            match self.reader_of(&output.topic).is_some() {
                true => pending.push_back(output),
                false => self
                    .outputs
                    .entry(output.topic.to_string())
                    .or_default()
                    .push_back(output),
            }
        }
        Ok(())
    }

    /// Takes every record written to `topic` so far, decoded.
    pub fn read<K: 'static, V: 'static>(
        &mut self,
        topic: &TestTopic<K, V>,
    ) -> Result<Vec<Record<K, V>>> {
        let written = self.outputs.remove(&topic.name).unwrap_or_default();
        written
            .into_iter()
            .map(|r| {
                Ok(Record {
                    key: topic.keys.decode_nullable(r.key.as_deref())?,
                    value: topic.values.decode_nullable(r.value.as_deref())?,
                    timestamp: r.timestamp,
                    headers: r.headers,
                })
            })
            .collect()
    }

    /// Every entry of store `name`, decoded, in key byte order.
    pub fn store_entries<K, V>(
        &self,
        name: &str,
        keys: impl Codec<K>,
        values: impl Codec<V>,
    ) -> Result<Vec<(K, V)>> {
        let task_store = self
            .tasks
            .iter()
            .flat_map(|t| t.ctx.stores.iter())
            .find(|s| s.spec().name == name);
        let global = self
            .globals
            .values()
            .find(|(spec, _)| spec.store.name == name);
        let entries = match (task_store, global) {
            (Some(store), _) => store.entries()?,
            (None, Some((_, store))) => store.entries()?,
            (None, None) => return Err(StreamsError::Store(format!("no store named `{name}`"))),
        };
        entries
            .iter()
            .map(|(k, v)| Ok((keys.decode(k)?, values.decode(v)?)))
            .collect()
    }

    /// Records skipped because they did not decode.
    pub fn skipped_records(&self) -> u64 {
        self.skipped_globals + self.tasks.iter().map(|t| t.ctx.skipped).sum::<u64>()
    }
}
