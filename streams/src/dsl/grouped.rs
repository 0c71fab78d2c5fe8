//! Grouping and aggregation: `KStream::group_by_key` / `group_by`, then
//! `count`, `reduce` or `aggregate` into a `KTable` kept in a store.
//!
//! A stream whose key changed since its source (map, select_key,
//! flat_map) is repartitioned first, as in Kafka Streams: its records go
//! through `<application.id>-<name>-repartition`, partitioned by the new
//! key, so each key's records meet in one task.

use std::sync::Arc;

use super::config::{Consumed, Grouped, Materialized, Produced};
use super::join::TableView;
use super::{Change, KStream, KTable};
use crate::codec::Codec;
use crate::record::Record;
use crate::state::StoreSpec;
use crate::topology::node::{Children, Downstream, Fanout};
use crate::topology::{NodeKind, StoreId, TaskContext, TopicName};
use crate::Result;

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
    grouped: Grouped<K, V>,
}

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Groups by the records' keys. `grouped` says how records cross the
    /// repartition topic, which is used only if the key changed upstream.
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.same(),
            grouped,
        }
    }

    /// Groups by a key computed from each record (always repartitions).
    pub fn group_by<K2>(
        &self,
        key: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V>
    where
        K2: Clone + Send + 'static,
    {
        self.select_key(key).group_by_key(grouped)
    }

    /// Sends the stream through a repartition topic,
    /// `<application.id>-<name>-repartition`, partitioned by key; what
    /// follows reads it in the tasks of the new key's partitions.
    pub fn repartition(&self, name: &str, grouped: Grouped<K, V>) -> KStream<K, V> {
        let topic = TopicName::Internal(format!("{name}-repartition"));
        let sink = self.builder.add_node(
            "SINK",
            NodeKind::Sink {
                topic: format!("{name}-repartition"),
            },
            &[self.node],
        );
        self.builder.add_internal_sink(topic.clone(), sink);
        let produced = Arc::new(Produced {
            keys: Arc::clone(&grouped.keys),
            values: Arc::clone(&grouped.values),
            partitioner: None,
        });
        let sink_topic = topic.clone();
        self.children.add(Arc::new(move |task| {
            super::kstream::sink(sink_topic.resolve(&task.app_id), Arc::clone(&produced))
        }));
        self.builder.internal_stream(
            topic,
            Consumed {
                keys: grouped.keys,
                values: grouped.values,
            },
        )
    }
}

impl<K, V> Clone for KGroupedStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn clone(&self) -> Self {
        KGroupedStream {
            stream: self.stream.same(),
            grouped: self.grouped.clone(),
        }
    }
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub(super) fn builder(&self) -> &super::StreamsBuilder {
        &self.stream.builder
    }

    /// The codec of the grouped values (an aggregation that keeps the
    /// records themselves stores them with it).
    pub(super) fn value_codec(&self) -> Arc<dyn Codec<V>> {
        Arc::clone(&self.grouped.values)
    }

    /// The stream an aggregation into store `store` reads: this one, or,
    /// if its key changed, its copy through the repartition topic named
    /// by the grouping (or else after the store).
    pub(super) fn input(&self, store: &str) -> KStream<K, V> {
        match (self.stream.key_changed, &self.grouped.name) {
            (false, _) => self.stream.same(),
            (true, Some(name)) => self.stream.repartition(name, self.grouped.clone()),
            (true, None) => self.stream.repartition(store, self.grouped.clone()),
        }
    }

    /// How many records each key has had.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_with("COUNT", materialized, |_, _, count| count.unwrap_or(0) + 1)
    }

    /// Each key's records combined pairwise: `reduce(previous, next)`.
    pub fn reduce(
        &self,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        self.aggregate_with(
            "REDUCE",
            materialized,
            move |_, value, previous| match previous {
                Some(previous) => reduce(previous, value),
                None => value,
            },
        )
    }

    /// Each key's records folded into an aggregate that starts at
    /// `initial()`: `add(key, value, aggregate)`.
    pub fn aggregate<A>(
        &self,
        initial: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        materialized: Materialized<K, A>,
    ) -> KTable<K, A>
    where
        A: Clone + Send + 'static,
    {
        self.aggregate_with("AGGREGATE", materialized, move |key, value, previous| {
            add(key, value, previous.unwrap_or_else(&initial))
        })
    }

    fn aggregate_with<A>(
        &self,
        kind: &str,
        materialized: Materialized<K, A>,
        combine: impl Fn(&K, V, Option<A>) -> A + Send + Sync + 'static,
    ) -> KTable<K, A>
    where
        A: Clone + Send + 'static,
    {
        let builder = &self.stream.builder;
        let spec = materialized.spec(|| builder.generated_name("AGGREGATE-STATE-STORE"));
        let input = self.input(&spec.name);
        aggregate_into(
            &input,
            kind,
            spec,
            materialized,
            move |key, value, previous| Some(combine(key, value, previous)),
        )
    }
}

/// Adds an aggregation node of `kind` below `input`, keeping each key's
/// aggregate in the store `spec` describes: `combine(key, input,
/// previous)` gives the new aggregate (`None` deletes it). Shared by
/// stream and table aggregations.
pub(super) fn aggregate_into<K, In, A>(
    input: &KStream<K, In>,
    kind: &str,
    spec: StoreSpec,
    materialized: Materialized<K, A>,
    combine: impl Fn(&K, In, Option<A>) -> Option<A> + Send + Sync + 'static,
) -> KTable<K, A>
where
    K: Clone + Send + 'static,
    In: Clone + Send + 'static,
    A: Clone + Send + 'static,
{
    let builder = &input.builder;
    let node = builder.add_node(kind, NodeKind::processor(), &[input.node]);
    let store_name = spec.name.clone();
    builder.add_store(spec, node);
    let children: Children<K, Change<A>> = Children::new();
    let below = children.clone();
    let (keys, values, combine) = (materialized.keys, materialized.values, Arc::new(combine));
    let view = TableView::of_store(&store_name, Arc::clone(&keys), Arc::clone(&values));
    input.children.add(Arc::new(move |task| {
        Box::new(Aggregate {
            store: task.store(&store_name),
            keys: Arc::clone(&keys),
            values: Arc::clone(&values),
            combine: Arc::clone(&combine),
            below: below.instantiate(task),
            key_buffer: Vec::new(),
            input: std::marker::PhantomData,
        }) as Box<dyn Downstream<K, In>>
    }));
    KTable::new(builder.clone(), node, children, view)
}

/// A compiled aggregation: reads the key's aggregate, combines the
/// record into it, writes it back (or deletes it) and forwards the change.
struct Aggregate<K, In, A, F> {
    store: StoreId,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<A>>,
    combine: Arc<F>,
    below: Fanout<K, Change<A>>,
    key_buffer: Vec<u8>,
    input: std::marker::PhantomData<fn(In)>,
}

impl<K, In, A, F> Downstream<K, In> for Aggregate<K, In, A, F>
where
    K: Clone + Send + 'static,
    In: Clone + Send + 'static,
    A: Clone + Send + 'static,
    F: Fn(&K, In, Option<A>) -> Option<A> + Send + Sync,
{
    fn process(&mut self, ctx: &mut TaskContext, r: Record<K, In>) -> Result<()> {
        self.key_buffer.clear();
        if !self.keys.encode_nullable(&r.key, &mut self.key_buffer)? {
            // Kafka Streams skips records with a null key in aggregations.
            return Ok(());
        }
        let store = ctx.store(self.store);
        let old = match store.get(&self.key_buffer)? {
            Some(bytes) => Some(self.values.decode(&bytes)?),
            None => None,
        };
        let new = (self.combine)(&r.key, r.value, old.clone());
        let encoded = match &new {
            Some(value) => {
                let mut bytes = Vec::new();
                self.values.encode(value, &mut bytes)?;
                Some(bytes)
            }
            None => None,
        };
        store.put(&self.key_buffer, encoded);
        let change = Change { new, old };
        self.below.forward(
            ctx,
            Record {
                key: r.key,
                value: change,
                timestamp: r.timestamp,
                headers: r.headers,
            },
        )
    }
}
