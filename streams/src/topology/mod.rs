//! A built topology: its sources and stores, split into sub-topologies
//! that are compiled once per task, and its description. What a task
//! runs and writes lives here too.

mod describe;
mod errors;
pub(crate) mod node;

use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) use describe::NodeDescription;
pub use describe::{Description, NodeKind};
pub(crate) use errors::Origin;
pub use errors::{ErrorHandling, OnDecodeError, OnProcessingError};
pub use node::RawRecord;
use node::{SourceEntry, SourceFactory};

use crate::record::Header;
use crate::state::{GlobalStore, StoreSpec, TaskStore, WriteBatch};
use crate::{Result, StreamsError};

/// A record a sink wrote, encoded, on its way to its topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    /// Shared by every record a sink writes to it.
    pub topic: Arc<str>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Vec<Header>,
    /// Chosen by the sink's partitioner; `None`: by the key's hash.
    pub partition: Option<u32>,
}

/// A topic a topology reads or writes: a user's, or one the application
/// owns (a repartition topic), named `<application.id>-<suffix>` once the
/// application id is known.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TopicName {
    User(String),
    Internal(String),
}

impl std::fmt::Display for TopicName {
    /// As Kafka Streams names topics in descriptions and errors: internal
    /// ones without the application id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicName::User(name) => f.write_str(name),
            TopicName::Internal(suffix) => f.write_str(suffix),
        }
    }
}

impl TopicName {
    /// The topic's name on the broker for application `app_id`.
    pub fn resolve(&self, app_id: &str) -> String {
        match self {
            TopicName::User(name) => name.clone(),
            TopicName::Internal(suffix) => format!("{app_id}-{suffix}"),
        }
    }
}

/// Where a task's stores are in its [`TaskContext`], fixed when the task
/// compiles its nodes: a node reaches its store by index, never by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoreId(pub(crate) usize);

/// Where a task's global stores are in its [`TaskContext`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GlobalId(pub(crate) usize);

/// Turns a record of a global table's topic into its store's entry: the
/// key and value as the store encodes them (`None` value: a deletion),
/// or `None` for a record a table cannot hold (no key).
pub(crate) type Load = Arc<dyn Fn(RawRecord<'_>) -> Result<Option<StoreEntry>> + Send + Sync>;

/// A store's key and value as its codecs encode them (`None`: deleted).
pub(crate) type StoreEntry = (Vec<u8>, Option<Vec<u8>>);

/// A global table: its topic, its store, and how a record becomes an
/// entry of the store.
#[derive(Clone)]
pub(crate) struct GlobalSpec {
    pub(crate) topic: String,
    pub(crate) store: StoreSpec,
    pub(crate) load: Load,
}

impl GlobalSpec {
    /// Adds `raw` to `batch`; a record that does not decode is logged and
    /// skipped (a global table has no task to stop).
    pub(crate) fn load_into(&self, batch: &mut WriteBatch, raw: RawRecord<'_>) -> u64 {
        match (self.load)(raw) {
            Ok(Some((key, value))) => {
                batch.insert(key, value);
                0
            }
            Ok(None) => 0,
            Err(error) => {
                tracing::warn!(topic = %self.topic, %error, "a global table skipped a record that does not decode");
                1
            }
        }
    }
}

/// An instance's global stores, by name.
pub(crate) type GlobalStores = BTreeMap<String, Arc<GlobalStore>>;

/// What compiling one task's nodes needs: the application id (to name
/// internal topics) and the stores its nodes ask for, in order.
pub(crate) struct Instantiation {
    pub(crate) app_id: String,
    pub(crate) stores: Vec<String>,
    pub(crate) globals: Vec<String>,
    pub(crate) punctuators: node::Punctuators,
    /// Children instantiated once for several parents (see
    /// `Children::instantiate_shared`), by the identity of their list.
    pub(crate) shared: BTreeMap<usize, Box<dyn std::any::Any + Send>>,
}

impl Instantiation {
    /// The id of store `name` in this task, the same for every node that
    /// uses it (two parents of a merge share one store).
    pub(crate) fn store(&mut self, name: &str) -> StoreId {
        match self.stores.iter().position(|s| s == name) {
            Some(at) => StoreId(at),
            None => {
                self.stores.push(name.to_string());
                StoreId(self.stores.len() - 1)
            }
        }
    }

    /// The id of global store `name` in this task.
    pub(crate) fn global(&mut self, name: &str) -> GlobalId {
        match self.globals.iter().position(|s| s == name) {
            Some(at) => GlobalId(at),
            None => {
                self.globals.push(name.to_string());
                GlobalId(self.globals.len() - 1)
            }
        }
    }
}

/// What one task's nodes share while processing: its stores, where sinks
/// write, and how bad input is handled.
#[derive(Default)]
pub struct TaskContext {
    pub(crate) output: Vec<OutputRecord>,
    pub(crate) stores: Vec<TaskStore>,
    pub(crate) globals: Vec<Arc<GlobalStore>>,
    /// Partition counts of the topics sinks partition themselves.
    pub(crate) partition_counts: Arc<BTreeMap<String, u32>>,
    pub(crate) errors: ErrorHandling,
    /// Where the record being processed came from.
    pub(crate) origin: Origin,
    /// Records skipped because they did not decode or failed processing.
    pub(crate) skipped: u64,
    /// The largest timestamp of a record the task processed
    /// (`i64::MIN` before the first).
    pub(crate) stream_time: i64,
}

impl TaskContext {
    pub(crate) fn new(
        errors: ErrorHandling,
        stores: Vec<TaskStore>,
        globals: Vec<Arc<GlobalStore>>,
    ) -> TaskContext {
        TaskContext {
            errors,
            stores,
            globals,
            stream_time: i64::MIN,
            ..TaskContext::default()
        }
    }

    pub(crate) fn store(&mut self, id: StoreId) -> &mut TaskStore {
        &mut self.stores[id.0]
    }

    /// The partition count of `topic`, for a sink's partitioner.
    pub(crate) fn partition_count(&self, topic: &str) -> Result<u32> {
        self.partition_counts.get(topic).copied().ok_or_else(|| {
            StreamsError::Partition(format!(
                "the partition count of `{topic}` was not read at start"
            ))
        })
    }

    pub(crate) fn global(&self, id: GlobalId) -> &GlobalStore {
        &self.globals[id.0]
    }

    /// Applies the decode-error policy to `raw`, which failed to decode
    /// in the source of `topic`: `Ok(())` to skip it, or the error that
    /// stops the task.
    pub(crate) fn decode_failed(
        &mut self,
        topic: &str,
        raw: &RawRecord<'_>,
        error: StreamsError,
    ) -> Result<()> {
        match self.errors.on_decode_error {
            OnDecodeError::LogAndContinue => {
                tracing::warn!(%topic, %error, "skipped a record that does not decode");
                self.skip(raw, "decode", &error);
                Ok(())
            }
            OnDecodeError::Fail => Err(StreamsError::Source {
                topic: topic.to_string(),
                source: Box::new(error),
            }),
        }
    }

    /// Counts a skipped record and writes its dead letter, if configured.
    pub(crate) fn skip(&mut self, raw: &RawRecord<'_>, stage: &str, error: &StreamsError) {
        self.skipped += 1;
        if let Some(topic) = &self.errors.dead_letter_topic {
            let letter = errors::dead_letter(topic, raw, &self.origin, stage, error);
            self.output.push(letter);
        }
    }
}

/// A part of the topology between topics: its sources' partitions are
/// its tasks (partition `p` of every source in task `<index>_<p>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubTopology {
    pub sources: Vec<TopicName>,
    /// Stores of its nodes; each task has its own instance of each.
    pub stores: Vec<String>,
    /// Internal topics its sinks write (repartition topics).
    pub writes: Vec<TopicName>,
    /// Its nodes (indexes into the description).
    pub(crate) nodes: Vec<usize>,
}

/// A source of every topic a regular expression matches, in sub-topology
/// `sub`; resolved to topics when the application starts.
#[derive(Clone)]
pub(crate) struct PatternSource {
    pub(crate) regex: regex::Regex,
    pub(crate) sub: usize,
    pub(crate) factory: SourceFactory,
}

/// A program's topology, as `StreamsBuilder::build` checked it.
#[derive(Clone)]
pub struct Topology {
    pub(crate) sources: BTreeMap<TopicName, SourceFactory>,
    pub(crate) stores: BTreeMap<String, StoreSpec>,
    pub(crate) globals: BTreeMap<String, GlobalSpec>,
    /// User topics whose sinks choose partitions (their counts are read
    /// at start into [`TaskContext::partition_counts`]).
    pub(crate) partitioned_sinks: Vec<String>,
    pub(crate) patterns: Vec<PatternSource>,
    pub(crate) sub_topologies: Vec<SubTopology>,
    pub(crate) description: Description,
}

impl Topology {
    /// The topics the topology reads, internal ones included, and those
    /// its patterns matched (see [`Topology::resolve_patterns`]).
    pub fn source_topics(&self) -> impl Iterator<Item = &TopicName> {
        let matched = self.sub_topologies.iter().flat_map(|s| &s.sources);
        self.sources
            .keys()
            .chain(matched.filter(|t| !self.sources.contains_key(t)))
    }

    /// Whether a source reads topics by pattern.
    pub fn has_patterns(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// Adds to each pattern source the `existing` topics it matches; a
    /// topic another source or a global table reads, a broker's internal
    /// topic (`__...`) and the application's own internal topics are
    /// never matched. A pattern matching nothing is refused: its tasks
    /// would have no partitions.
    pub fn resolve_patterns(&mut self, existing: &[String], app_id: &str) -> Result<()> {
        let own = format!("{app_id}-");
        for pattern in &self.patterns {
            let taken = |t: &String| {
                self.sources.contains_key(&TopicName::User(t.clone()))
                    || self.globals.values().any(|g| &g.topic == t)
                    || t.starts_with("__")
                    || (t.starts_with(&own)
                        && (t.ends_with("-changelog") || t.ends_with("-repartition")))
            };
            let matched: Vec<TopicName> = existing
                .iter()
                .filter(|t| pattern.regex.is_match(t) && !taken(t))
                .map(|t| TopicName::User(t.clone()))
                .collect();
            if matched.is_empty() {
                return Err(StreamsError::InvalidTopology(format!(
                    "source pattern `{}` matches no topic; create one before starting the application",
                    pattern.regex
                )));
            }
            let sources = &mut self.sub_topologies[pattern.sub].sources;
            for topic in matched {
                if !sources.contains(&topic) {
                    sources.push(topic);
                }
            }
        }
        Ok(())
    }

    /// The parts of the topology that tasks run.
    pub fn sub_topologies(&self) -> &[SubTopology] {
        &self.sub_topologies
    }

    /// The stores, by name.
    pub fn stores(&self) -> impl Iterator<Item = &StoreSpec> {
        self.stores.values()
    }

    /// Its nodes and sub-topologies (`describe().to_string()` prints
    /// Kafka Streams' text, `describe().mermaid()` a graph).
    pub fn describe(&self) -> &Description {
        &self.description
    }

    /// The sub-topology that reads `topic`.
    pub(crate) fn sub_topology_of(&self, topic: &TopicName) -> Option<usize> {
        self.sub_topologies
            .iter()
            .position(|s| s.sources.contains(topic))
    }

    /// One task's instance of every node of sub-topology `sub`, entered
    /// by the resolved names of its topics, the stores its nodes use (the
    /// task opens them in this order) and the global stores they read,
    /// taken from the instance's `globals`, which holds every global
    /// store of the topology (see [`Topology::globals`]).
    pub(crate) fn instantiate(
        &self,
        sub: usize,
        app_id: &str,
        globals: &GlobalStores,
    ) -> (TaskTopology, Vec<StoreSpec>, Vec<Arc<GlobalStore>>) {
        let mut instantiation = Instantiation {
            app_id: app_id.to_string(),
            stores: Vec::new(),
            globals: Vec::new(),
            punctuators: Vec::new(),
            shared: BTreeMap::new(),
        };
        let mut sources = BTreeMap::new();
        for topic in &self.sub_topologies[sub].sources {
            if let Some(factory) = self.sources.get(topic) {
                sources.insert(topic.resolve(app_id), factory(&mut instantiation));
            }
        }
        let stores = instantiation
            .stores
            .iter()
            .filter_map(|name| self.stores.get(name).cloned())
            .collect();
        let patterns = self
            .patterns
            .iter()
            .filter(|p| p.sub == sub)
            .map(|p| (p.regex.clone(), (p.factory)(&mut instantiation)))
            .collect();
        let global_stores = instantiation
            .globals
            .iter()
            .filter_map(|name| globals.get(name).cloned())
            .collect();
        let punctuators = instantiation.punctuators;
        (
            TaskTopology {
                sources,
                patterns,
                punctuators,
            },
            stores,
            global_stores,
        )
    }

    /// User topics whose sinks partition records themselves.
    pub(crate) fn partitioned_sinks(&self) -> &[String] {
        &self.partitioned_sinks
    }

    /// The global tables, each kept whole by every instance.
    pub(crate) fn globals(&self) -> impl Iterator<Item = &GlobalSpec> {
        self.globals.values()
    }
}

/// The nodes of one task, entered by topic.
pub(crate) struct TaskTopology {
    sources: BTreeMap<String, Box<dyn SourceEntry>>,
    /// Pattern sources, for topics no source names.
    patterns: Vec<(regex::Regex, Box<dyn SourceEntry>)>,
    punctuators: node::Punctuators,
}

impl TaskTopology {
    /// Runs one input record of `topic` through the topology.
    pub(crate) fn process(
        &mut self,
        ctx: &mut TaskContext,
        topic: &str,
        raw: RawRecord<'_>,
    ) -> Result<()> {
        let source = match self.sources.get_mut(topic) {
            Some(source) => source,
            None => self
                .patterns
                .iter_mut()
                .find(|(regex, _)| regex.is_match(topic))
                .map(|(_, source)| source)
                .ok_or_else(|| StreamsError::UnknownTopic(topic.to_string()))?,
        };
        ctx.stream_time = ctx.stream_time.max(raw.timestamp);
        match source.process_raw(ctx, raw) {
            // A decode failure under the Fail policy stops the task as
            // that policy says; any other error is the processing's.
            Err(error)
                if !matches!(error, StreamsError::Source { .. })
                    && ctx.errors.on_processing_error == OnProcessingError::LogAndContinue =>
            {
                tracing::warn!(%topic, %error, "skipped a record whose processing failed");
                ctx.skip(&raw, "process", &error);
                Ok(())
            }
            outcome => outcome,
        }
    }

    /// Fires the punctuations that are due at the task's stream time and
    /// at `wall_clock` (milliseconds since the epoch).
    pub(crate) fn punctuate(&mut self, ctx: &mut TaskContext, wall_clock: i64) -> Result<()> {
        let stream_time = ctx.stream_time;
        for punctuator in &mut self.punctuators {
            punctuator.fire(ctx, stream_time, wall_clock)?;
        }
        Ok(())
    }
}
