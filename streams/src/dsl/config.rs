//! The settings of what crosses a topic or a store, in Kafka Streams'
//! spirit: `Consumed` (a source), `Produced` (a sink), `Grouped` (a
//! repartition topic), `Materialized` (a store). Codec bounds live here
//! and nowhere else.

use std::sync::Arc;

use crate::codec::Codec;
use crate::state::{StoreKind, StoreSpec};

/// How a source topic's keys and values decode (Kafka Streams' `Consumed`).
pub struct Consumed<K, V> {
    pub(crate) keys: Arc<dyn Codec<K>>,
    pub(crate) values: Arc<dyn Codec<V>>,
}

impl<K: 'static, V: 'static> Consumed<K, V> {
    pub fn with(keys: impl Codec<K>, values: impl Codec<V>) -> Consumed<K, V> {
        Consumed {
            keys: Arc::new(keys),
            values: Arc::new(values),
        }
    }
}

/// Picks a record's partition among a topic's `count` (Kafka Streams'
/// `StreamPartitioner`); `None` leaves it to the key's hash, as the
/// producer partitions by default.
pub type Partitioner<K, V> = Arc<dyn Fn(&K, &V, u32) -> Option<u32> + Send + Sync>;

/// How a sink topic's keys and values encode (Kafka Streams' `Produced`),
/// and, optionally, how its records are partitioned.
pub struct Produced<K, V> {
    pub(crate) keys: Arc<dyn Codec<K>>,
    pub(crate) values: Arc<dyn Codec<V>>,
    pub(crate) partitioner: Option<Partitioner<K, V>>,
}

impl<K: 'static, V: 'static> Produced<K, V> {
    pub fn with(keys: impl Codec<K>, values: impl Codec<V>) -> Produced<K, V> {
        Produced {
            keys: Arc::new(keys),
            values: Arc::new(values),
            partitioner: None,
        }
    }

    /// Partitions records with `choose(key, value, partition_count)`
    /// instead of by the key's hash. The topic must exist when the
    /// application starts (its partition count is read then); a choice
    /// outside `0..partition_count` fails the record.
    pub fn with_partitioner(
        mut self,
        choose: impl Fn(&K, &V, u32) -> Option<u32> + Send + Sync + 'static,
    ) -> Produced<K, V> {
        self.partitioner = Some(Arc::new(choose));
        self
    }
}

/// How a grouping's records cross their repartition topic, when the
/// grouping needs one (Kafka Streams' `Grouped`): codecs, and the name
/// that makes the topic `<application.id>-<name>-repartition`.
pub struct Grouped<K, V> {
    pub(crate) keys: Arc<dyn Codec<K>>,
    pub(crate) values: Arc<dyn Codec<V>>,
    pub(crate) name: Option<String>,
}

impl<K: 'static, V: 'static> Grouped<K, V> {
    pub fn with(keys: impl Codec<K>, values: impl Codec<V>) -> Grouped<K, V> {
        Grouped {
            keys: Arc::new(keys),
            values: Arc::new(values),
            name: None,
        }
    }

    /// Names the repartition topic (unnamed, it is numbered as Kafka
    /// Streams numbers it, and renumbered when the topology changes).
    pub fn named(mut self, name: &str) -> Grouped<K, V> {
        self.name = Some(name.to_string());
        self
    }
}

impl<K, V> Clone for Grouped<K, V> {
    fn clone(&self) -> Self {
        Grouped {
            keys: Arc::clone(&self.keys),
            values: Arc::clone(&self.values),
            name: self.name.clone(),
        }
    }
}

/// How a table's store keeps its keys and values (Kafka Streams'
/// `Materialized`): codecs, a name (also its changelog's,
/// `<application.id>-<name>-changelog`), RocksDB or memory, logged or not.
pub struct Materialized<K, V> {
    pub(crate) keys: Arc<dyn Codec<K>>,
    pub(crate) values: Arc<dyn Codec<V>>,
    pub(crate) name: Option<String>,
    pub(crate) kind: StoreKind,
    pub(crate) logged: bool,
}

impl<K: 'static, V: 'static> Materialized<K, V> {
    /// A RocksDB store with a changelog (the defaults, as in Kafka
    /// Streams).
    pub fn with(keys: impl Codec<K>, values: impl Codec<V>) -> Materialized<K, V> {
        Materialized {
            keys: Arc::new(keys),
            values: Arc::new(values),
            name: None,
            kind: StoreKind::RocksDb,
            logged: true,
        }
    }

    /// Names the store (and so its changelog topic); queryable by name.
    pub fn named(mut self, name: &str) -> Materialized<K, V> {
        self.name = Some(name.to_string());
        self
    }

    /// Keeps the store in memory (restored from its changelog at start).
    pub fn in_memory(mut self) -> Materialized<K, V> {
        self.kind = StoreKind::InMemory;
        self
    }

    /// No changelog: a task that moves or loses its disk starts empty.
    pub fn without_changelog(mut self) -> Materialized<K, V> {
        self.logged = false;
        self
    }

    /// The store's spec, named `generated` unless named by the user.
    pub(crate) fn spec(&self, generated: impl FnOnce() -> String) -> StoreSpec {
        StoreSpec {
            name: self.name.clone().unwrap_or_else(generated),
            kind: self.kind,
            logged: self.logged,
        }
    }
}

/// How a join of two streams keeps their records (Kafka Streams'
/// `StreamJoined`): the codecs of the key and of each side's values, and
/// the name its stores are named after (`<name>-this-join-store`,
/// `<name>-other-join-store`, and for left and outer joins
/// `<name>-outer-shared-join-store`, each with its changelog).
pub struct StreamJoined<K, V, VO> {
    pub(crate) keys: Arc<dyn Codec<K>>,
    pub(crate) values: Arc<dyn Codec<V>>,
    pub(crate) other_values: Arc<dyn Codec<VO>>,
    pub(crate) name: Option<String>,
    pub(crate) kind: StoreKind,
    pub(crate) logged: bool,
}

impl<K: 'static, V: 'static, VO: 'static> StreamJoined<K, V, VO> {
    pub fn with(
        keys: impl Codec<K>,
        values: impl Codec<V>,
        other_values: impl Codec<VO>,
    ) -> StreamJoined<K, V, VO> {
        StreamJoined {
            keys: Arc::new(keys),
            values: Arc::new(values),
            other_values: Arc::new(other_values),
            name: None,
            kind: StoreKind::RocksDb,
            logged: true,
        }
    }

    /// Names the join's stores, and the repartition topics of a re-keyed
    /// side (`<name>-left-repartition`, `<name>-right-repartition`).
    pub fn named(mut self, name: &str) -> StreamJoined<K, V, VO> {
        self.name = Some(name.to_string());
        self
    }

    pub fn in_memory(mut self) -> StreamJoined<K, V, VO> {
        self.kind = StoreKind::InMemory;
        self
    }

    pub fn without_changelog(mut self) -> StreamJoined<K, V, VO> {
        self.logged = false;
        self
    }

    pub(crate) fn spec(&self, name: String) -> StoreSpec {
        StoreSpec {
            name,
            kind: self.kind,
            logged: self.logged,
        }
    }
}
