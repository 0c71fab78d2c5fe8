//! `KStream<K, V>`: a stream of records and its stateless operators.
//!
//! Each operator adds a node below this stream's and returns the stream of
//! what the node forwards. The user's closures are shared (`Arc`) between
//! the tasks that instantiate the node; a task's node calls them in place.

use std::sync::Arc;

use super::config::Partitioner;
use super::{Produced, Split, StreamsBuilder};
use crate::processor::{processor_node, Processor, ProcessorInit};
use crate::record::Record;
use crate::topology::node::{step, Children, Downstream, Fanout};
use crate::topology::{NodeKind, OutputRecord, TaskContext};
use crate::{Result, StreamsError};

/// A stream of keyed records.
pub struct KStream<K, V> {
    pub(super) builder: StreamsBuilder,
    pub(super) node: usize,
    pub(super) children: Children<K, V>,
    /// The key changed since the source: a grouping repartitions first.
    pub(super) key_changed: bool,
}

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub(super) fn new(builder: StreamsBuilder, node: usize, children: Children<K, V>) -> Self {
        KStream {
            builder,
            node,
            children,
            key_changed: false,
        }
    }

    /// Another handle on this same stream.
    pub(super) fn same(&self) -> KStream<K, V> {
        KStream {
            builder: self.builder.clone(),
            node: self.node,
            children: self.children.clone(),
            key_changed: self.key_changed,
        }
    }

    /// This stream, marked as re-keyed.
    fn rekeyed(mut self) -> KStream<K, V> {
        self.key_changed = true;
        self
    }

    /// Adds a node of `kind` below this stream, built per task by `make`
    /// from the new stream's children; returns the new stream.
    fn then<K2, V2>(
        &self,
        kind: &str,
        make: impl Fn(Fanout<K2, V2>) -> Box<dyn Downstream<K, V>> + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
    {
        let node = self
            .builder
            .add_node(kind, NodeKind::processor(), &[self.node]);
        let children = Children::new();
        let below = children.clone();
        self.children
            .add(Arc::new(move |task| make(below.instantiate(task))));
        let mut stream = KStream::new(self.builder.clone(), node, children);
        stream.key_changed = self.key_changed;
        stream
    }

    /// Names the node that made this stream (Kafka Streams' `Named`), as
    /// `describe()` shows it: `stream.filter(..).named("valid-orders")`.
    pub fn named(self, name: &str) -> KStream<K, V> {
        self.builder.rename(self.node, name);
        self
    }

    /// The records for which `keep` is true.
    pub fn filter(&self, keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let keep = Arc::new(keep);
        self.then("FILTER", move |mut below| {
            let keep = Arc::clone(&keep);
            step(move |ctx, r: Record<K, V>| match keep(&r.key, &r.value) {
                true => below.forward(ctx, r),
                false => Ok(()),
            })
        })
    }

    /// The records for which `drop` is false.
    pub fn filter_not(
        &self,
        drop: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !drop(k, v))
    }

    /// Each record as a new key and value (the key changes: a later
    /// grouping repartitions).
    pub fn map<K2, V2>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
    {
        let f = Arc::new(f);
        self.then("MAP", move |mut below| {
            let f = Arc::clone(&f);
            step(move |ctx, r: Record<K, V>| {
                let (key, value) = f(r.key, r.value);
                below.forward(ctx, with(r.timestamp, r.headers, key, value))
            })
        })
        .rekeyed()
    }

    /// Each record with a new value; the key stays.
    pub fn map_values<V2>(&self, f: impl Fn(V) -> V2 + Send + Sync + 'static) -> KStream<K, V2>
    where
        V2: Clone + Send + 'static,
    {
        let f = Arc::new(f);
        self.then("MAPVALUES", move |mut below| {
            let f = Arc::clone(&f);
            step(move |ctx, r: Record<K, V>| {
                let value = f(r.value);
                below.forward(ctx, with(r.timestamp, r.headers, r.key, value))
            })
        })
    }

    /// Zero or more records for each record (the key may change).
    pub fn flat_map<K2, V2, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
        I: IntoIterator<Item = (K2, V2)>,
    {
        let f = Arc::new(f);
        self.then("FLATMAP", move |mut below| {
            let f = Arc::clone(&f);
            step(move |ctx, r: Record<K, V>| {
                for (key, value) in f(r.key, r.value) {
                    below.forward(ctx, with(r.timestamp, r.headers.clone(), key, value))?;
                }
                Ok(())
            })
        })
        .rekeyed()
    }

    /// Zero or more values for each record, each with its key.
    pub fn flat_map_values<V2, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        V2: Clone + Send + 'static,
        I: IntoIterator<Item = V2>,
    {
        let f = Arc::new(f);
        self.then("FLATMAPVALUES", move |mut below| {
            let f = Arc::clone(&f);
            step(move |ctx, r: Record<K, V>| {
                for value in f(r.value) {
                    let record = with(r.timestamp, r.headers.clone(), r.key.clone(), value);
                    below.forward(ctx, record)?;
                }
                Ok(())
            })
        })
    }

    /// Each record under a new key computed from it.
    pub fn select_key<K2>(&self, f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KStream<K2, V>
    where
        K2: Clone + Send + 'static,
    {
        let f = Arc::new(f);
        self.then("KEY-SELECT", move |mut below| {
            let f = Arc::clone(&f);
            step(move |ctx, r: Record<K, V>| {
                let key = f(&r.key, &r.value);
                below.forward(ctx, with(r.timestamp, r.headers, key, r.value))
            })
        })
        .rekeyed()
    }

    /// Calls `f` on each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let f = Arc::new(f);
        self.then("PEEK", move |mut below| {
            let f = Arc::clone(&f);
            step(move |ctx, r: Record<K, V>| {
                f(&r.key, &r.value);
                below.forward(ctx, r)
            })
        })
    }

    /// Calls `f` on each record; nothing goes further.
    pub fn for_each(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let f = Arc::new(f);
        let _end: KStream<K, V> = self.then("FOREACH", move |_below| {
            let f = Arc::clone(&f);
            step(move |_ctx, r: Record<K, V>| {
                f(&r.key, &r.value);
                Ok(())
            })
        });
    }

    /// This stream's records and `other`'s, as one stream.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let node = self
            .builder
            .add_node("MERGE", NodeKind::processor(), &[self.node, other.node]);
        let children = Children::new();
        for parent in [self, other] {
            let below = children.clone();
            parent.children.add(Arc::new(move |task| {
                let below = below.instantiate_shared(task);
                step(move |ctx, r: Record<K, V>| below.lock().forward(ctx, r))
            }));
        }
        let mut merged = KStream::new(self.builder.clone(), node, children);
        merged.key_changed = self.key_changed || other.key_changed;
        merged
    }

    /// Runs a custom processor on each record; `stores` names the stores
    /// (from `StreamsBuilder::add_state_store`) it binds in its factory.
    /// The factory runs once per task.
    pub fn process<P>(
        &self,
        factory: impl Fn(&mut ProcessorInit<'_>) -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<P::KOut, P::VOut>
    where
        P: Processor<K, V>,
    {
        let node = self
            .builder
            .add_node("PROCESSOR", NodeKind::processor(), &[self.node]);
        for store in stores {
            self.builder.connect_store(store, node);
        }
        let stores: Arc<Vec<String>> = Arc::new(stores.iter().map(|s| s.to_string()).collect());
        let children = Children::new();
        let below = children.clone();
        let factory = Arc::new(factory);
        self.children.add(Arc::new(move |task| {
            let below = below.instantiate(task);
            processor_node(task, &stores, &*factory, below)
        }));
        // A processor may forward any key: what follows repartitions.
        KStream::new(self.builder.clone(), node, children).rekeyed()
    }

    /// Routes each record to the first branch whose predicate holds
    /// (Kafka Streams' `split()`); see [`Split`].
    pub fn split(&self) -> Split<K, V> {
        Split::new(self)
    }

    /// Writes every record to `topic`, encoded as `produced` says.
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        if produced.partitioner.is_some() || produced.keys.is_windowed() {
            self.builder.add_partitioned_sink(topic);
        }
        let topic = topic.to_string();
        let chosen: Arc<str> = topic.as_str().into();
        self.to_chosen(
            move |_, _| Arc::clone(&chosen),
            produced,
            NodeKind::Sink {
                topic: topic.clone(),
            },
        );
    }

    /// Writes each record to the topic `choose` names for it.
    pub fn to_topic_chosen_by(
        &self,
        choose: impl Fn(&K, &V) -> String + Send + Sync + 'static,
        produced: Produced<K, V>,
    ) {
        if produced.partitioner.is_some() {
            self.builder.refuse(
                "to_topic_chosen_by with a partitioner: partition counts are read at start, so a partitioned sink writes one topic (use split() and a to() per topic)".into(),
            );
        }
        let kind = NodeKind::Sink {
            topic: "(chosen per record)".into(),
        };
        self.to_chosen(move |k, v| choose(k, v).into(), produced, kind);
    }

    fn to_chosen(
        &self,
        choose: impl Fn(&K, &V) -> Arc<str> + Send + Sync + 'static,
        produced: Produced<K, V>,
        kind: NodeKind,
    ) {
        self.builder.add_node("SINK", kind, &[self.node]);
        let (choose, produced) = (Arc::new(choose), Arc::new(produced));
        self.children.add(Arc::new(move |_task| {
            let choose = Arc::clone(&choose);
            chosen_sink(move |k: &K, v: &V| choose(k, v), Arc::clone(&produced))
        }));
    }
}

/// A sink node writing every record to `topic`.
pub(super) fn sink<K: 'static, V: 'static>(
    topic: String,
    produced: Arc<Produced<K, V>>,
) -> Box<dyn Downstream<K, V>> {
    let topic: Arc<str> = topic.into();
    chosen_sink(move |_: &K, _: &V| Arc::clone(&topic), produced)
}

/// A sink node writing each record to the topic `choose` names, encoded
/// into buffers the node reuses.
fn chosen_sink<K: 'static, V: 'static>(
    choose: impl Fn(&K, &V) -> Arc<str> + Send + 'static,
    produced: Arc<Produced<K, V>>,
) -> Box<dyn Downstream<K, V>> {
    let (mut key_buffer, mut value_buffer) = (Vec::new(), Vec::new());
    // Asked once, not per record: the codec does not change.
    let windowed = produced.keys.is_windowed();
    step(move |ctx: &mut TaskContext, r: Record<K, V>| {
        let topic = choose(&r.key, &r.value);
        key_buffer.clear();
        value_buffer.clear();
        let has_key = produced.keys.encode_nullable(&r.key, &mut key_buffer)?;
        let has_value = produced
            .values
            .encode_nullable(&r.value, &mut value_buffer)?;
        let partition = match &produced.partitioner {
            Some(partitioner) => partition_of(ctx, &topic, partitioner, &r)?,
            // A key's windows share a partition where the topic's count
            // was read at start (`to`; a topic chosen per record is left
            // to the producer).
            None if has_key && windowed => {
                let key = produced.keys.unwindowed(&key_buffer);
                let count = ctx.partition_counts.get(&*topic);
                count.map(|&count| spool_client::partition_for_key(key, count))
            }
            None => None,
        };
        ctx.output.push(OutputRecord {
            topic,
            key: has_key.then(|| key_buffer.clone()),
            value: has_value.then(|| value_buffer.clone()),
            timestamp: r.timestamp,
            headers: r.headers,
            partition,
        });
        Ok(())
    })
}

/// The partition `partitioner` chooses for `r` among `topic`'s.
fn partition_of<K, V>(
    ctx: &TaskContext,
    topic: &str,
    partitioner: &Partitioner<K, V>,
    r: &Record<K, V>,
) -> Result<Option<u32>> {
    let count = ctx.partition_count(topic)?;
    match partitioner(&r.key, &r.value, count) {
        Some(chosen) if chosen >= count => Err(StreamsError::Partition(format!(
            "the partitioner chose partition {chosen} of `{topic}`, which has {count}"
        ))),
        chosen => Ok(chosen),
    }
}

/// A record of a new key and value that keeps an input's timestamp and
/// headers.
fn with<K, V>(
    timestamp: i64,
    headers: Vec<crate::record::Header>,
    key: K,
    value: V,
) -> Record<K, V> {
    Record {
        key,
        value,
        timestamp,
        headers,
    }
}
