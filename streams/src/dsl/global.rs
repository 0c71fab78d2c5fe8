//! `GlobalKTable<K, V>`: a table of every partition of a topic, kept
//! whole by each instance (Kafka Streams' global table): small reference
//! data a stream looks up by a key it computes, with no co-partitioning
//! and no repartition.
//!
//! Its store is filled by the instance's global thread, not by tasks (see
//! `crate::runtime::global`), and the topic itself is its changelog: it
//! has no `-changelog` topic, and a restart reads on from the offsets the
//! store recorded.

use std::sync::Arc;

use super::config::{Consumed, Materialized};
use super::join::{look_up, GetterFactory, ValueGetter};
use super::KStream;
use super::StreamsBuilder;
use crate::codec::Codec;
use crate::topology::node::RawRecord;
use crate::topology::{GlobalId, GlobalSpec, Load, NodeKind, StoreEntry, TaskContext};
use crate::Result;

/// A global table: look it up with `KStream::join_global`.
pub struct GlobalKTable<K, V> {
    pub(super) store: String,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<V>>,
}

impl<K: 'static, V: 'static> GlobalKTable<K, V> {
    /// The name of its store.
    pub fn store_name(&self) -> &str {
        &self.store
    }

    pub(super) fn getter(&self) -> GetterFactory<K, V> {
        let (store, keys, values) = (
            self.store.clone(),
            Arc::clone(&self.keys),
            Arc::clone(&self.values),
        );
        Arc::new(move |task| {
            Box::new(GlobalGetter {
                store: task.global(&store),
                keys: Arc::clone(&keys),
                values: Arc::clone(&values),
                buffer: Vec::new(),
            })
        })
    }
}

impl StreamsBuilder {
    /// A global table of `topic`, kept in the store `materialized`
    /// describes with its codecs (a record that does not decode with
    /// `consumed` is skipped and logged; a null value deletes its key).
    /// The store is never logged: the topic is its changelog.
    pub fn global_table<K, V>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V>
    where
        K: 'static,
        V: 'static,
    {
        let mut spec = materialized.spec(|| self.generated_name(&format!("{topic}-STATE-STORE")));
        spec.logged = false;
        let name = spec.name.clone();
        let (stored_keys, stored_values) = (
            Arc::clone(&materialized.keys),
            Arc::clone(&materialized.values),
        );
        let load: Load = Arc::new(move |raw: RawRecord<'_>| {
            reencode(&consumed, &*stored_keys, &*stored_values, raw)
        });
        self.add_global(GlobalSpec {
            topic: topic.to_string(),
            store: spec,
            load,
        });
        GlobalKTable {
            store: name,
            keys: materialized.keys,
            values: materialized.values,
        }
    }
}

/// A topic record as its store keeps it: the key and value decoded with
/// the topic's codecs and encoded with the store's (`None` for a record
/// without a key, which a table cannot hold).
fn reencode<K: 'static, V: 'static>(
    consumed: &Consumed<K, V>,
    keys: &dyn Codec<K>,
    values: &dyn Codec<V>,
    raw: RawRecord<'_>,
) -> Result<Option<StoreEntry>> {
    let Some(key_bytes) = raw.key else {
        return Ok(None);
    };
    let key = consumed.keys.decode(key_bytes)?;
    let mut stored_key = Vec::new();
    keys.encode(&key, &mut stored_key)?;
    let stored_value = match raw.value {
        Some(bytes) => {
            let value = consumed.values.decode(bytes)?;
            let mut stored = Vec::new();
            values.encode(&value, &mut stored)?;
            Some(stored)
        }
        None => None,
    };
    Ok(Some((stored_key, stored_value)))
}

/// A getter of a global table's store.
struct GlobalGetter<K, V> {
    store: GlobalId,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<V>>,
    buffer: Vec<u8>,
}

impl<K: 'static, V: 'static> ValueGetter<K, V> for GlobalGetter<K, V> {
    fn get(&mut self, ctx: &mut TaskContext, key: &K) -> Result<Option<V>> {
        let store = ctx.global(self.store);
        look_up(&*self.keys, &*self.values, &mut self.buffer, key, |k| {
            store.get(k)
        })
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Each record joined with the row of `global` whose key `key_of`
    /// picks from the record; dropped when there is none. The output keeps
    /// the record's key, so nothing is repartitioned.
    pub fn join_global<KG, VG, VR>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key_of: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, &VG) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        KG: 'static,
        VG: 'static,
        VR: Clone + Send + 'static,
    {
        self.global_join("JOIN", global, key_of, move |v, g| g.map(|g| joiner(v, &g)))
    }

    /// As `join_global`, with `None` for a record whose row is absent.
    pub fn left_join_global<KG, VG, VR>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key_of: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        KG: 'static,
        VG: 'static,
        VR: Clone + Send + 'static,
    {
        self.global_join("LEFTJOIN", global, key_of, move |v, g| {
            Some(joiner(v, g.as_ref()))
        })
    }

    fn global_join<KG, VG, VR>(
        &self,
        kind: &str,
        global: &GlobalKTable<KG, VG>,
        key_of: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        join: impl Fn(&V, Option<VG>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        KG: 'static,
        VG: 'static,
        VR: Clone + Send + 'static,
    {
        let node = self
            .builder
            .add_node(kind, NodeKind::processor(), &[self.node]);
        self.builder.use_global_store(&global.store, node);
        let getter = global.getter();
        self.joined_with(node, move |task| getter(task), key_of, join)
    }
}
