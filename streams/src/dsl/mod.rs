//! The DSL: `StreamsBuilder` and what it builds (`KStream`, `KTable`),
//! with the settings of each topic or store it reads or writes
//! (`Consumed`, `Produced`, `Grouped`, `Materialized`).
//!
//! Building records two things per operator: a description (name, kind,
//! edges) for `Topology::describe`, and a factory that a task calls to get
//! its own instance of the node (see `crate::topology::node`).

mod config;
mod fold;
mod global;
mod grouped;
mod grouped_table;
mod join;
mod kstream;
mod ktable;
mod session;
mod sliding;
mod source;
mod split;
mod stream_join;
mod suppress;
mod table_join;
mod time_keys;
mod windowed;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

pub use config::{Consumed, Grouped, Materialized, Produced, StreamJoined};
pub use global::GlobalKTable;
pub use grouped::KGroupedStream;
pub use grouped_table::KGroupedTable;
pub use join::Joined;
pub use kstream::KStream;
pub use ktable::{Change, KTable};
pub use session::{SessionWindowed, SessionWindowedKStream, SessionWindows};
pub use sliding::{SlidingWindowedKStream, SlidingWindows};
pub use split::Split;
pub use stream_join::JoinWindows;
pub use suppress::Suppressed;
pub use windowed::{TimeWindowed, TimeWindowedKStream, TimeWindows, Windowed};

use crate::state::StoreSpec;
use crate::topology::node::SourceFactory;
use crate::topology::{
    Description, GlobalSpec, NodeDescription, NodeKind, PatternSource, SubTopology, TopicName,
    Topology,
};
use crate::{Result, StreamsError};

/// Builds a topology, operator by operator, then `build()` checks it.
#[derive(Clone, Default)]
pub struct StreamsBuilder {
    state: Arc<Mutex<BuilderState>>,
}

#[derive(Default)]
pub(crate) struct BuilderState {
    nodes: Vec<NodeDescription>,
    /// Kafka Streams numbers nodes and generated store names from one
    /// counter; so does this.
    next_index: usize,
    sources: BTreeMap<TopicName, (usize, SourceFactory)>,
    /// Sources of every topic a regular expression matches.
    patterns: Vec<(regex::Regex, usize, SourceFactory)>,
    stores: BTreeMap<String, (StoreSpec, Vec<usize>)>,
    /// Stores declared for processors (`add_state_store`).
    declared: BTreeMap<String, StoreSpec>,
    /// Global tables' stores, by name.
    globals: BTreeMap<String, GlobalSpec>,
    /// User topics whose sinks choose partitions with a partitioner.
    partitioned_sinks: Vec<String>,
    /// Sink nodes writing internal topics.
    internal_sinks: Vec<(TopicName, usize)>,
    /// Mistakes found while building, reported by `build()`.
    errors: Vec<String>,
}

impl StreamsBuilder {
    pub fn new() -> StreamsBuilder {
        StreamsBuilder::default()
    }

    /// Checks the topology and returns it: every topic read once, at least
    /// one source, every store used by a node.
    pub fn build(&self) -> Result<Topology> {
        let state = self.state.lock();
        let mut errors = state.errors.clone();
        if state.sources.is_empty() && state.patterns.is_empty() {
            errors.push("the topology reads no topic".into());
        }
        for global in state.globals.values() {
            if state
                .sources
                .contains_key(&TopicName::User(global.topic.clone()))
            {
                errors.push(format!(
                    "topic `{}` is read by a global table and by a source; read it once",
                    global.topic
                ));
            }
        }
        if !errors.is_empty() {
            return Err(StreamsError::InvalidTopology(errors.join("; ")));
        }
        let description = Description {
            nodes: state.nodes.clone(),
            globals: state
                .globals
                .values()
                .map(|g| (g.store.name.clone(), g.topic.clone()))
                .collect(),
        };
        let sub_topologies = sub_topologies(&state, &description);
        let part_of = |node: usize| {
            sub_topologies
                .iter()
                .position(|s| s.nodes.contains(&node))
                .unwrap_or_default()
        };
        let patterns = state
            .patterns
            .iter()
            .map(|(regex, node, factory)| PatternSource {
                regex: regex.clone(),
                sub: part_of(*node),
                factory: Arc::clone(factory),
            })
            .collect();
        Ok(Topology {
            sources: state
                .sources
                .iter()
                .map(|(topic, (_, factory))| (topic.clone(), Arc::clone(factory)))
                .collect(),
            stores: state
                .stores
                .iter()
                .map(|(name, (spec, _))| (name.clone(), spec.clone()))
                .collect(),
            globals: state.globals.clone(),
            partitioned_sinks: state.partitioned_sinks.clone(),
            patterns,
            sub_topologies,
            description,
        })
    }

    /// Adds a node's description, named as Kafka Streams names it
    /// (`KSTREAM-<KIND>-<10-digit index>`); returns its index.
    pub(crate) fn add_node(&self, kind: &str, node: NodeKind, predecessors: &[usize]) -> usize {
        let mut state = self.state.lock();
        let number = state.next_index;
        state.next_index += 1;
        state.nodes.push(NodeDescription {
            name: format!("KSTREAM-{kind}-{number:010}"),
            kind: node,
            predecessors: predecessors.to_vec(),
        });
        state.nodes.len() - 1
    }

    /// Names `node` `name` (Kafka Streams' `Named`); a name two nodes
    /// take is a mistake reported by `build()`.
    pub(crate) fn rename(&self, node: usize, name: &str) {
        let mut state = self.state.lock();
        if state.nodes.iter().any(|n| n.name == name) {
            state.errors.push(format!(
                "two nodes are named `{name}`; names must be unique"
            ));
            return;
        }
        state.nodes[node].name = name.to_string();
    }

    /// Records a mistake for `build()` to report.
    pub(crate) fn refuse(&self, error: String) {
        self.state.lock().errors.push(error);
    }

    /// Records that the sink of user topic `topic` chooses partitions
    /// itself, so the runtime reads the topic's partition count at start.
    pub(crate) fn add_partitioned_sink(&self, topic: &str) {
        let mut state = self.state.lock();
        if !state.partitioned_sinks.iter().any(|t| t == topic) {
            state.partitioned_sinks.push(topic.to_string());
        }
    }

    /// A name Kafka Streams would generate for an unnamed store or
    /// repartition topic: `KSTREAM-<KIND>-<10-digit index>`.
    pub(crate) fn generated_name(&self, kind: &str) -> String {
        let mut state = self.state.lock();
        let number = state.next_index;
        state.next_index += 1;
        format!("KSTREAM-{kind}-{number:010}")
    }

    /// Declares `spec` as used by `node`; a store two operators declare
    /// differently is a mistake reported by `build()`.
    pub(crate) fn add_store(&self, spec: StoreSpec, node: usize) {
        let mut state = self.state.lock();
        if let NodeKind::Processor { stores } = &mut state.nodes[node].kind {
            stores.push(spec.name.clone());
        }
        let name = spec.name.clone();
        let error = match state.stores.get_mut(&name) {
            Some((existing, users)) if *existing == spec => {
                users.push(node);
                None
            }
            Some(_) => Some(format!("store `{name}` is declared twice, differently")),
            None => {
                state.stores.insert(name, (spec, vec![node]));
                None
            }
        };
        state.errors.extend(error);
    }

    /// Registers the source of every topic `regex` matches at `node`.
    pub(crate) fn add_pattern(&self, regex: regex::Regex, node: usize, factory: SourceFactory) {
        self.state.lock().patterns.push((regex, node, factory));
    }

    /// Connects the store `name`, which another operator declared, to
    /// `node` (a join reading a table's store).
    pub(crate) fn use_store(&self, name: &str, node: usize) {
        let spec = self
            .state
            .lock()
            .stores
            .get(name)
            .map(|(spec, _)| spec.clone());
        if let Some(spec) = spec {
            self.add_store(spec, node);
        }
    }

    /// Registers a global table's store; a second global table of the
    /// same topic or store name is a mistake reported by `build()`.
    pub(crate) fn add_global(&self, global: GlobalSpec) {
        let mut state = self.state.lock();
        let name = global.store.name.clone();
        if state.globals.values().any(|g| g.topic == global.topic) {
            state.errors.push(format!(
                "topic `{}` is read by two global tables; read it once",
                global.topic
            ));
        }
        if state.globals.insert(name.clone(), global).is_some() || state.stores.contains_key(&name)
        {
            state
                .errors
                .push(format!("store `{name}` is declared twice"));
        }
    }

    /// Shows in `node`'s description that it reads global store `name`
    /// (which belongs to no sub-topology).
    pub(crate) fn use_global_store(&self, name: &str, node: usize) {
        if let NodeKind::Processor { stores } = &mut self.state.lock().nodes[node].kind {
            stores.push(name.to_string());
        }
    }

    /// Registers the source of `topic` at `node`; a topic read twice is
    /// a mistake reported by `build()`.
    pub(crate) fn add_source(&self, topic: TopicName, node: usize, factory: SourceFactory) {
        let mut state = self.state.lock();
        if state.sources.contains_key(&topic) {
            state.errors.push(format!(
                "topic `{topic}` is read by two sources; read it once and share the stream"
            ));
            return;
        }
        state.sources.insert(topic, (node, factory));
    }

    /// Declares a store for custom processors; connect it by passing its
    /// name to `KStream::process`.
    pub fn add_state_store<K: 'static, V: 'static>(
        &self,
        materialized: Materialized<K, V>,
    ) -> crate::processor::StoreHandle<K, V> {
        let spec = materialized.spec(|| self.generated_name("STATE-STORE"));
        let handle = crate::processor::StoreHandle {
            name: spec.name.clone(),
            keys: materialized.keys,
            values: materialized.values,
        };
        let mut state = self.state.lock();
        if state.declared.insert(spec.name.clone(), spec).is_some() {
            state
                .errors
                .push(format!("store `{}` is added twice", handle.name));
        }
        handle
    }

    /// Connects the declared store `name` to processor `node`.
    pub(crate) fn connect_store(&self, name: &str, node: usize) {
        let spec = self.state.lock().declared.get(name).cloned();
        match spec {
            Some(spec) => self.add_store(spec, node),
            None => {
                let mut state = self.state.lock();
                let processor = state.nodes[node].name.clone();
                state.errors.push(format!(
                    "processor {processor} uses store `{name}`, which add_state_store did not declare"
                ));
            }
        }
    }

    pub(crate) fn add_internal_sink(&self, topic: TopicName, node: usize) {
        self.state.lock().internal_sinks.push((topic, node));
    }
}

/// Splits the topology at its internal topics: each connected part of
/// the node graph is a sub-topology, with the topics its sources read,
/// the stores its nodes use and the internal topics it writes.
fn sub_topologies(state: &BuilderState, description: &Description) -> Vec<SubTopology> {
    let parts = description.sub_topologies();
    let part_of = |node: usize| parts.iter().position(|p| p.contains(&node));
    let mut subs: Vec<SubTopology> = parts
        .iter()
        .map(|nodes| SubTopology {
            sources: Vec::new(),
            stores: Vec::new(),
            writes: Vec::new(),
            nodes: nodes.clone(),
        })
        .collect();
    for (topic, (node, _)) in &state.sources {
        if let Some(at) = part_of(*node) {
            subs[at].sources.push(topic.clone());
        }
    }
    for (name, (_, users)) in &state.stores {
        for at in users.iter().filter_map(|&n| part_of(n)) {
            if !subs[at].stores.contains(name) {
                subs[at].stores.push(name.clone());
            }
        }
    }
    for (topic, node) in &state.internal_sinks {
        if let Some(at) = part_of(*node) {
            subs[at].writes.push(topic.clone());
        }
    }
    // A part without a source (a node chain never connected to one) has
    // nothing to run; a pattern's topics are known only at start.
    let has_pattern = |s: &SubTopology| {
        state
            .patterns
            .iter()
            .any(|(_, node, _)| s.nodes.contains(node))
    };
    subs.retain(|s| !s.sources.is_empty() || has_pattern(s));
    subs
}
