//! `KTable<K, V>`: a changelog stream, each key's latest value. Below a
//! table, nodes pass [`Change`]s: the new value and the one it replaced,
//! so a downstream aggregation can take the old one back out.

use std::sync::Arc;

use super::config::Produced;
use super::join::TableView;
use super::{KStream, StreamsBuilder};
use crate::codec::{Codec, Nullable};
use crate::record::Record;
use crate::topology::node::{step, Children, Downstream, Fanout};
use crate::topology::NodeKind;

/// One update of a table's key: `new` is `None` for a deletion, `old`
/// is `None` when the key was absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change<V> {
    pub new: Option<V>,
    pub old: Option<V>,
}

/// A table: every key's latest value, updated record by record.
pub struct KTable<K, V> {
    pub(super) builder: StreamsBuilder,
    pub(super) node: usize,
    pub(super) children: Children<K, Change<V>>,
    /// How a join reads the table's rows.
    pub(super) view: TableView<K, V>,
    /// The grace of the windows a windowed aggregation made this table
    /// with: a window closes at its end plus this (`suppress` needs it).
    pub(super) window_grace: Option<i64>,
}

impl<K, V> KTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub(super) fn new(
        builder: StreamsBuilder,
        node: usize,
        children: Children<K, Change<V>>,
        view: TableView<K, V>,
    ) -> KTable<K, V> {
        KTable {
            builder,
            node,
            children,
            view,
            window_grace: None,
        }
    }

    /// Adds a node of `kind` below this table, built per task by `make`;
    /// the new table reads its rows through `view`.
    fn then<V2>(
        &self,
        kind: &str,
        view: TableView<K, V2>,
        make: impl Fn(Fanout<K, Change<V2>>) -> Box<dyn Downstream<K, Change<V>>>
            + Send
            + Sync
            + 'static,
    ) -> KTable<K, V2>
    where
        V2: Clone + Send + 'static,
    {
        let node = self
            .builder
            .add_node(kind, NodeKind::processor(), &[self.node]);
        let children = Children::new();
        let below = children.clone();
        self.children
            .add(Arc::new(move |task| make(below.instantiate(task))));
        KTable {
            builder: self.builder.clone(),
            node,
            children,
            view,
            // Filters and mapped values keep the windows' keys.
            window_grace: self.window_grace,
        }
    }

    /// This table, made by windows closing `grace` after their end.
    pub(super) fn windowed_with_grace(mut self, grace: i64) -> KTable<K, V> {
        self.window_grace = Some(grace);
        self
    }

    /// Names the node that made this table (Kafka Streams' `Named`).
    pub fn named(self, name: &str) -> KTable<K, V> {
        self.builder.rename(self.node, name);
        self
    }

    /// The rows for which `keep` holds; a row that stops holding is
    /// deleted downstream (its change forwarded with no new value).
    pub fn filter(&self, keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let keep = Arc::new(keep);
        let kept = Arc::clone(&keep);
        let view = self.view.then(move |k, v| kept(k, &v).then_some(v));
        self.then("FILTER", view, move |mut below| {
            let keep = Arc::clone(&keep);
            step(move |ctx, r: Record<K, Change<V>>| {
                let key = &r.key;
                let new = r.value.new.filter(|v| keep(key, v));
                let old = r.value.old.filter(|v| keep(key, v));
                if new.is_none() && old.is_none() {
                    return Ok(());
                }
                let change = Change { new, old };
                below.forward(
                    ctx,
                    Record {
                        key: r.key,
                        value: change,
                        timestamp: r.timestamp,
                        headers: r.headers,
                    },
                )
            })
        })
    }

    /// Each row's value transformed.
    pub fn map_values<V2>(&self, f: impl Fn(&K, &V) -> V2 + Send + Sync + 'static) -> KTable<K, V2>
    where
        V2: Clone + Send + 'static,
    {
        let f = Arc::new(f);
        let mapped = Arc::clone(&f);
        let view = self.view.then(move |k, v| Some(mapped(k, &v)));
        self.then("MAPVALUES", view, move |mut below| {
            let f = Arc::clone(&f);
            step(move |ctx, r: Record<K, Change<V>>| {
                let key = &r.key;
                let change = Change {
                    new: r.value.new.as_ref().map(|v| f(key, v)),
                    old: r.value.old.as_ref().map(|v| f(key, v)),
                };
                below.forward(
                    ctx,
                    Record {
                        key: r.key,
                        value: change,
                        timestamp: r.timestamp,
                        headers: r.headers,
                    },
                )
            })
        })
    }

    /// The table's updates as a stream: each key with its new value, or
    /// `None` for a deletion (a tombstone when written to a topic).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let node = self
            .builder
            .add_node("TOSTREAM", NodeKind::processor(), &[self.node]);
        let children = Children::new();
        let below = children.clone();
        self.children.add(Arc::new(move |task| {
            let mut below = below.instantiate(task);
            step(move |ctx, r: Record<K, Change<V>>| {
                let record = Record {
                    key: r.key,
                    value: r.value.new,
                    timestamp: r.timestamp,
                    headers: r.headers,
                };
                below.forward(ctx, record)
            })
        }));
        KStream::new(self.builder.clone(), node, children)
    }

    /// Writes every update to `topic`, a deletion as a tombstone (a null
    /// value), as a compacted topic expects.
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        if produced.partitioner.is_some() {
            self.builder.refuse(format!(
                "KTable::to(\"{topic}\") with a partitioner: a deletion has no value to choose its partition by; use to_stream().to(..) with a partitioner of Option<V>"
            ));
        }
        let produced = Produced {
            keys: produced.keys,
            values: Arc::new(Nullable(produced.values)) as Arc<dyn Codec<Option<V>>>,
            partitioner: None,
        };
        self.to_stream().to(topic, produced);
    }
}
