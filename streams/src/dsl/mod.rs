//! The DSL: `StreamsBuilder` and what it builds (`KStream`), with the
//! settings of each topic it reads or writes (`Consumed`, `Produced`).
//!
//! Building records two things per operator: a description (name, kind,
//! edges) for `Topology::describe`, and a factory that a task calls to get
//! its own instance of the node (see `crate::topology::node`).

mod kstream;
mod split;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

pub use kstream::KStream;
pub use split::Split;

use crate::codec::Codec;
use crate::record::Record;
use crate::topology::node::{Children, RawRecord, SourceEntry, SourceFactory};
use crate::topology::NodeDescription;
use crate::topology::{Description, NodeKind, TaskContext, Topology};
use crate::{Result, StreamsError};

/// How a source topic's keys and values decode (Kafka Streams' `Consumed`).
pub struct Consumed<K, V> {
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<V>>,
}

impl<K: 'static, V: 'static> Consumed<K, V> {
    pub fn with(keys: impl Codec<K>, values: impl Codec<V>) -> Consumed<K, V> {
        Consumed {
            keys: Arc::new(keys),
            values: Arc::new(values),
        }
    }
}

/// How a sink topic's keys and values encode (Kafka Streams' `Produced`).
pub struct Produced<K, V> {
    pub(crate) keys: Arc<dyn Codec<K>>,
    pub(crate) values: Arc<dyn Codec<V>>,
}

impl<K: 'static, V: 'static> Produced<K, V> {
    pub fn with(keys: impl Codec<K>, values: impl Codec<V>) -> Produced<K, V> {
        Produced {
            keys: Arc::new(keys),
            values: Arc::new(values),
        }
    }
}

/// Builds a topology, operator by operator, then `build()` checks it.
#[derive(Clone, Default)]
pub struct StreamsBuilder {
    state: Arc<Mutex<BuilderState>>,
}

#[derive(Default)]
pub(crate) struct BuilderState {
    nodes: Vec<NodeDescription>,
    sources: BTreeMap<String, SourceFactory>,
    /// Mistakes found while building, reported by `build()`.
    errors: Vec<String>,
}

impl StreamsBuilder {
    pub fn new() -> StreamsBuilder {
        StreamsBuilder::default()
    }

    /// A stream of `topic`'s records.
    pub fn stream<K, V>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        self.stream_of(&[topic], consumed)
    }

    /// One stream of the records of several topics (decoded alike).
    pub fn stream_of<K, V>(&self, topics: &[&str], consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let node = self.add_node(
            "SOURCE",
            NodeKind::Source {
                topics: topics.clone(),
            },
            &[],
        );
        let children = Children::new();
        let consumed = Arc::new(consumed);
        let mut state = self.state.lock();
        for topic in &topics {
            let (below, consumed) = (children.clone(), Arc::clone(&consumed));
            let source_topic = topic.clone();
            let factory: SourceFactory = Arc::new(move || {
                Box::new(Source {
                    topic: source_topic.clone(),
                    consumed: Arc::clone(&consumed),
                    below: below.instantiate(),
                })
            });
            if state.sources.insert(topic.clone(), factory).is_some() {
                state.errors.push(format!(
                    "topic `{topic}` is read by two sources; read it once and share the stream"
                ));
            }
        }
        drop(state);
        KStream::new(self.clone(), node, children)
    }

    /// Checks the topology and returns it: every topic read once, at least
    /// one source.
    pub fn build(&self) -> Result<Topology> {
        let state = self.state.lock();
        let mut errors = state.errors.clone();
        if state.sources.is_empty() {
            errors.push("the topology reads no topic".into());
        }
        if !errors.is_empty() {
            return Err(StreamsError::InvalidTopology(errors.join("; ")));
        }
        Ok(Topology {
            sources: state.sources.clone(),
            description: Description {
                nodes: state.nodes.clone(),
            },
        })
    }

    /// Adds a node's description, named as Kafka Streams names it
    /// (`KSTREAM-<KIND>-<10-digit index>`); returns its index.
    pub(crate) fn add_node(&self, kind: &str, node: NodeKind, predecessors: &[usize]) -> usize {
        let mut state = self.state.lock();
        let index = state.nodes.len();
        state.nodes.push(NodeDescription {
            name: format!("KSTREAM-{kind}-{index:010}"),
            kind: node,
            predecessors: predecessors.to_vec(),
        });
        index
    }
}

/// A compiled source: decodes each record with its topic's codecs.
struct Source<K, V> {
    topic: String,
    consumed: Arc<Consumed<K, V>>,
    below: crate::topology::node::Fanout<K, V>,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> SourceEntry for Source<K, V> {
    fn process_raw(&mut self, ctx: &mut TaskContext, raw: RawRecord<'_>) -> Result<()> {
        let decoded = self
            .consumed
            .keys
            .decode_nullable(raw.key)
            .and_then(|key| Ok((key, self.consumed.values.decode_nullable(raw.value)?)));
        match decoded {
            Ok((key, value)) => {
                let record = Record {
                    key,
                    value,
                    timestamp: raw.timestamp,
                    headers: raw.headers.to_vec(),
                };
                self.below.forward(ctx, record)
            }
            Err(e) => ctx.decode_failed(&self.topic, e),
        }
    }
}
