//! `KTable::group_by`, then `count`, `reduce` or `aggregate` with an
//! adder and a subtractor: a table re-aggregated under a new key.
//!
//! Each update of the source table becomes two records through the
//! repartition topic `<application.id>-<name>-repartition`: the old row
//! taken out under its (old) new key, then the new row added under its
//! new key. Kafka Streams does the same; its repartition records carry
//! both sides, these carry one each, tagged.

use std::sync::Arc;

use super::config::{Grouped, Materialized};
use super::{Change, KStream, KTable};
use crate::codec::Codec;
use crate::error::StreamsError;
use crate::record::Record;
use crate::topology::node::{step, Children};
use crate::topology::NodeKind;
use crate::Result;

/// A table grouped under a new key, ready to re-aggregate.
pub struct KGroupedTable<K, V> {
    /// The table's rows mapped to the new key, one side per record.
    rows: KStream<K, Change<V>>,
    grouped: Grouped<K, V>,
}

/// One side of a change, tagged: what crosses the repartition topic.
struct OneSide<C>(C);

const ADD: u8 = 0;
const SUBTRACT: u8 = 1;

impl<V: 'static, C: Codec<V>> Codec<Change<V>> for OneSide<C> {
    fn encode(&self, change: &Change<V>, out: &mut Vec<u8>) -> Result<()> {
        match (&change.new, &change.old) {
            (Some(new), None) => {
                out.push(ADD);
                self.0.encode(new, out)
            }
            (None, Some(old)) => {
                out.push(SUBTRACT);
                self.0.encode(old, out)
            }
            _ => Err(StreamsError::Encode {
                codec: "table-change",
                reason: "a repartitioned change carries exactly one side".into(),
            }),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Change<V>> {
        let value = |rest: &[u8]| self.0.decode(rest);
        match bytes.split_first() {
            Some((&ADD, rest)) => Ok(Change {
                new: Some(value(rest)?),
                old: None,
            }),
            Some((&SUBTRACT, rest)) => Ok(Change {
                new: None,
                old: Some(value(rest)?),
            }),
            _ => Err(StreamsError::Decode {
                codec: "table-change",
                reason: "no add or subtract tag".into(),
            }),
        }
    }

    fn name(&self) -> &'static str {
        "table-change"
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Groups the table's rows under the key (and value) `select` makes
    /// of each; always repartitions.
    pub fn group_by<K2, V2>(
        &self,
        select: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
    {
        let node = self
            .builder
            .add_node("KTABLE-SELECT", NodeKind::processor(), &[self.node]);
        let children: Children<K2, Change<V2>> = Children::new();
        let below = children.clone();
        let select = Arc::new(select);
        self.children.add(Arc::new(move |task| {
            let (select, mut below) = (Arc::clone(&select), below.instantiate(task));
            step(move |ctx, r: Record<K, Change<V>>| {
                if let Some(old) = &r.value.old {
                    let (key, value) = select(&r.key, old);
                    let side = Change {
                        new: None,
                        old: Some(value),
                    };
                    below.forward(
                        ctx,
                        Record {
                            key,
                            value: side,
                            timestamp: r.timestamp,
                            headers: r.headers.clone(),
                        },
                    )?;
                }
                if let Some(new) = &r.value.new {
                    let (key, value) = select(&r.key, new);
                    let side = Change {
                        new: Some(value),
                        old: None,
                    };
                    below.forward(
                        ctx,
                        Record {
                            key,
                            value: side,
                            timestamp: r.timestamp,
                            headers: r.headers,
                        },
                    )?;
                }
                Ok(())
            })
        }));
        KGroupedTable {
            rows: KStream::new(self.builder.clone(), node, children),
            grouped,
        }
    }
}

impl<K, V> KGroupedTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// How many rows each key has.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate(|| 0, |_, _, n| n + 1, |_, _, n| n - 1, materialized)
    }

    /// Each key's rows combined: `add(aggregate, row)` for rows that
    /// arrive, `subtract(aggregate, row)` for rows that leave.
    pub fn reduce(
        &self,
        add: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtract: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        self.aggregate_with("REDUCE", materialized, move |_, change, previous| {
            match (change, previous) {
                (Change { new: Some(v), .. }, Some(p)) => Some(add(p, v)),
                (Change { new: Some(v), .. }, None) => Some(v),
                (Change { old: Some(v), .. }, Some(p)) => Some(subtract(p, v)),
                (_, previous) => previous,
            }
        })
    }

    /// Each key's rows folded into an aggregate starting at `initial()`.
    pub fn aggregate<A>(
        &self,
        initial: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        subtract: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        materialized: Materialized<K, A>,
    ) -> KTable<K, A>
    where
        A: Clone + Send + 'static,
    {
        self.aggregate_with("AGGREGATE", materialized, move |key, change, previous| {
            let previous = previous.unwrap_or_else(&initial);
            Some(match change {
                Change { new: Some(v), .. } => add(key, v, previous),
                Change { old: Some(v), .. } => subtract(key, v, previous),
                _ => previous,
            })
        })
    }

    fn aggregate_with<A>(
        &self,
        kind: &str,
        materialized: Materialized<K, A>,
        combine: impl Fn(&K, Change<V>, Option<A>) -> Option<A> + Send + Sync + 'static,
    ) -> KTable<K, A>
    where
        A: Clone + Send + 'static,
    {
        let builder = &self.rows.builder;
        let spec = materialized.spec(|| builder.generated_name("KTABLE-AGGREGATE-STATE-STORE"));
        let name = self
            .grouped
            .name
            .clone()
            .unwrap_or_else(|| spec.name.clone());
        let one_side = Grouped {
            keys: Arc::clone(&self.grouped.keys),
            values: Arc::new(OneSide(Arc::clone(&self.grouped.values)))
                as Arc<dyn Codec<Change<V>>>,
            name: Some(name.clone()),
        };
        let input = self.rows.repartition(&name, one_side);
        super::grouped::aggregate_into(&input, kind, spec, materialized, combine)
    }
}
