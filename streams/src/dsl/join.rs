//! Joins of a stream with a table: `KStream::join` and `left_join` look
//! each record's key up in a `KTable` (co-partitioned: the same key is in
//! the same task); `join_global` and `left_join_global` (in `global`)
//! look a key the record names up in a `GlobalKTable` through the same
//! join node.
//!
//! Only the stream side triggers a join, as in Kafka Streams: an update of
//! the table changes what later records find, never what was emitted. A
//! lookup reads the table through its [`ValueGetter`]: the store of the
//! table it derives from, with the `filter` and `map_values` steps since
//! applied on read, so a derived table needs no store of its own.

use std::sync::Arc;

use super::config::Grouped;
use super::{KStream, KTable};
use crate::codec::Codec;
use crate::record::Record;
use crate::topology::node::{step, Children};
use crate::topology::{Instantiation, NodeKind, StoreId, TaskContext};
use crate::Result;

/// How a task reads a table's current value for a key.
pub(crate) trait ValueGetter<K, V>: Send {
    /// The key's value as the task sees it now (its uncommitted writes
    /// included); `None` if absent, or for a key that encodes to null.
    fn get(&mut self, ctx: &mut TaskContext, key: &K) -> Result<Option<V>>;
}

/// Builds one task's getter of a table.
pub(crate) type GetterFactory<K, V> =
    Arc<dyn Fn(&mut Instantiation) -> Box<dyn ValueGetter<K, V>> + Send + Sync>;

/// What a join needs of a table: the stores its values come from (the
/// join node is connected to them) and how a task reads it.
pub(crate) struct TableView<K, V> {
    pub(crate) stores: Vec<String>,
    pub(crate) getter: GetterFactory<K, V>,
}

impl<K, V> Clone for TableView<K, V> {
    fn clone(&self) -> Self {
        TableView {
            stores: self.stores.clone(),
            getter: Arc::clone(&self.getter),
        }
    }
}

impl<K: 'static, V: 'static> TableView<K, V> {
    /// The view of a table kept in store `name` with these codecs.
    pub(crate) fn of_store(
        name: &str,
        keys: Arc<dyn Codec<K>>,
        values: Arc<dyn Codec<V>>,
    ) -> TableView<K, V> {
        let store_name = name.to_string();
        TableView {
            stores: vec![name.to_string()],
            getter: Arc::new(move |task| {
                Box::new(StoreGetter {
                    store: task.store(&store_name),
                    keys: Arc::clone(&keys),
                    values: Arc::clone(&values),
                    buffer: Vec::new(),
                })
            }),
        }
    }

    /// This view with `then` applied to every value read.
    pub(crate) fn then<V2: 'static>(
        &self,
        then: impl Fn(&K, V) -> Option<V2> + Send + Sync + 'static,
    ) -> TableView<K, V2> {
        let (parent, then) = (Arc::clone(&self.getter), Arc::new(then));
        TableView {
            stores: self.stores.clone(),
            getter: Arc::new(move |task| {
                let mut inner = parent(task);
                let then = Arc::clone(&then);
                Box::new(FnGetter(move |ctx: &mut TaskContext, key: &K| {
                    Ok(inner.get(ctx, key)?.and_then(|v| then(key, v)))
                }))
            }),
        }
    }
}

struct StoreGetter<K, V> {
    store: StoreId,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<V>>,
    buffer: Vec<u8>,
}

impl<K: 'static, V: 'static> ValueGetter<K, V> for StoreGetter<K, V> {
    fn get(&mut self, ctx: &mut TaskContext, key: &K) -> Result<Option<V>> {
        let store = ctx.store(self.store);
        look_up(&*self.keys, &*self.values, &mut self.buffer, key, |k| {
            store.get(k)
        })
    }
}

/// `key`'s value through `get`: encoded with `keys` into `buffer`, found
/// bytes decoded with `values`; `None` for a key that encodes to null.
pub(super) fn look_up<K: 'static, V: 'static>(
    keys: &dyn Codec<K>,
    values: &dyn Codec<V>,
    buffer: &mut Vec<u8>,
    key: &K,
    get: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>>,
) -> Result<Option<V>> {
    buffer.clear();
    if !keys.encode_nullable(key, buffer)? {
        return Ok(None);
    }
    match get(buffer)? {
        Some(bytes) => Ok(Some(values.decode(&bytes)?)),
        None => Ok(None),
    }
}

struct FnGetter<F>(F);

impl<K, V, F> ValueGetter<K, V> for FnGetter<F>
where
    F: FnMut(&mut TaskContext, &K) -> Result<Option<V>> + Send,
{
    fn get(&mut self, ctx: &mut TaskContext, key: &K) -> Result<Option<V>> {
        (self.0)(ctx, key)
    }
}

/// How a join's stream crosses its repartition topic when its key
/// changed upstream (Kafka Streams' `Joined`): the same settings as a
/// grouping's.
pub type Joined<K, V> = Grouped<K, V>;

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Each record joined with its key's row in `table`; a record whose
    /// key has no row (or a null key) is dropped. A stream whose key
    /// changed is repartitioned first, as `joined` says, so it meets the
    /// table's partition of its key.
    pub fn join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
        joined: Joined<K, V>,
    ) -> KStream<K, VR>
    where
        VT: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        self.table_join("JOIN", table, joined, move |v, t| t.map(|t| joiner(v, &t)))
    }

    /// Each record joined with its key's row in `table`, or with `None`
    /// when there is none: no record is dropped (KIP-962's semantics for
    /// null keys too).
    pub fn left_join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
        joined: Joined<K, V>,
    ) -> KStream<K, VR>
    where
        VT: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        self.table_join("LEFTJOIN", table, joined, move |v, t| {
            Some(joiner(v, t.as_ref()))
        })
    }

    fn table_join<VT, VR>(
        &self,
        kind: &str,
        table: &KTable<K, VT>,
        joined: Joined<K, V>,
        join: impl Fn(&V, Option<VT>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VT: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let input = match (self.key_changed, &joined.name) {
            (false, _) => self.same(),
            (true, Some(name)) => self.repartition(name, joined.clone()),
            (true, None) => {
                let name = self.builder.generated_name("JOIN-REPARTITION");
                self.repartition(&name, joined.clone())
            }
        };
        let node = input
            .builder
            .add_node(kind, NodeKind::processor(), &[input.node]);
        for store in &table.view.stores {
            input.builder.use_store(store, node);
        }
        let getter = Arc::clone(&table.view.getter);
        input.joined_with(node, move |task| getter(task), |key, _| key.clone(), join)
    }

    /// Adds the join node `node` below this stream: each record's lookup
    /// key (`key_of`) read through the task's getter, then `join` decides
    /// what, if anything, goes on with the record's key.
    pub(super) fn joined_with<KL, VT, VR>(
        &self,
        node: usize,
        getter: impl Fn(&mut Instantiation) -> Box<dyn ValueGetter<KL, VT>> + Send + Sync + 'static,
        key_of: impl Fn(&K, &V) -> KL + Send + Sync + 'static,
        join: impl Fn(&V, Option<VT>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        KL: 'static,
        VT: 'static,
        VR: Clone + Send + 'static,
    {
        let children: Children<K, VR> = Children::new();
        let below = children.clone();
        let (key_of, join) = (Arc::new(key_of), Arc::new(join));
        self.children.add(Arc::new(move |task| {
            let mut table = getter(task);
            let mut below = below.instantiate(task);
            let (key_of, join) = (Arc::clone(&key_of), Arc::clone(&join));
            step(move |ctx, r: Record<K, V>| {
                let found = table.get(ctx, &key_of(&r.key, &r.value))?;
                match join(&r.value, found) {
                    Some(value) => below.forward(
                        ctx,
                        Record {
                            key: r.key,
                            value,
                            timestamp: r.timestamp,
                            headers: r.headers,
                        },
                    ),
                    None => Ok(()),
                }
            })
        }));
        let mut stream = KStream::new(self.builder.clone(), node, children);
        stream.key_changed = self.key_changed;
        stream
    }
}
