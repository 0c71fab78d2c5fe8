//! Joins of two tables (`KTable::join`, `left_join`, `outer_join`), with
//! Kafka Streams' semantics: the result is a table whose row for a key is
//! the joiner applied to both sides' rows for it, kept up to date by
//! updates of either side. Both tables must be co-partitioned (the same
//! key in the same task); the join node reads both tables' stores, which
//! puts their sources in one sub-topology, so `build()`'s partition check
//! covers them.
//!
//! An update of one side looks the key up in the other side (its
//! uncommitted writes included) and forwards the change of the joined
//! row: the new joined value from the side's new value, and the old one
//! from its old value, so an aggregation below can take the old row back
//! out. A key whose joined row neither had nor has a value forwards
//! nothing; one that loses its row forwards a deletion. The result's
//! timestamp is the updating record's (Kafka Streams takes the larger of
//! both sides'; the stores here keep no timestamps).
//!
//! The joined table needs no store of its own: a join reading it (or a
//! join of joins) reads both sides through their getters and joins on
//! read.

use std::sync::Arc;

use super::join::{TableView, ValueGetter};
use super::ktable::{Change, KTable};
use crate::record::Record;
use crate::topology::node::{step, Children};
use crate::topology::{NodeKind, TaskContext};
use crate::Result;

/// How two rows (either possibly absent) make a joined row, or none:
/// the inner, left or outer joiner.
type Combine<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>;

impl<K, V> KTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// The rows of keys both tables have, joined by `joiner` (Kafka
    /// Streams' `KTable#join`).
    pub fn join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let combine: Combine<V, VO, VR> = Arc::new(move |v, o| match (v, o) {
            (Some(v), Some(o)) => Some(joiner(v, o)),
            _ => None,
        });
        self.table_join("KTABLE-JOIN", other, combine)
    }

    /// A row for every key of this table, joined with `other`'s row for
    /// it, or with `None` when `other` has none (`KTable#leftJoin`).
    pub fn left_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let combine: Combine<V, VO, VR> = Arc::new(move |v, o| v.map(|v| joiner(v, o)));
        self.table_join("KTABLE-LEFTJOIN", other, combine)
    }

    /// A row for every key either table has, joined from what each side
    /// has for it (`KTable#outerJoin`).
    pub fn outer_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let combine: Combine<V, VO, VR> = Arc::new(move |v, o| match (v, o) {
            (None, None) => None,
            _ => Some(joiner(v, o)),
        });
        self.table_join("KTABLE-OUTERJOIN", other, combine)
    }

    fn table_join<VO, VR>(
        &self,
        kind: &str,
        other: &KTable<K, VO>,
        combine: Combine<V, VO, VR>,
    ) -> KTable<K, VR>
    where
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let node = self
            .builder
            .add_node(kind, NodeKind::processor(), &[self.node, other.node]);
        for store in self.view.stores.iter().chain(&other.view.stores) {
            self.builder.use_store(store, node);
        }
        let children: Children<K, Change<VR>> = Children::new();
        // This side's updates look the key up in the other table.
        let (below, others, this_side) = (children.clone(), other.view.clone(), combine.clone());
        self.children.add(Arc::new(move |task| {
            let mut other = (others.getter)(task);
            let below = below.instantiate_shared(task);
            let combine = Arc::clone(&this_side);
            step(move |ctx, r: Record<K, Change<V>>| {
                let found = other.get(ctx, &r.key)?;
                let change = Change {
                    new: combine(r.value.new.as_ref(), found.as_ref()),
                    old: combine(r.value.old.as_ref(), found.as_ref()),
                };
                forward_change(
                    &mut below.lock(),
                    ctx,
                    r.key,
                    change,
                    r.timestamp,
                    r.headers,
                )
            })
        }));
        // The other side's updates look the key up in this table.
        let (below, these, other_side) = (children.clone(), self.view.clone(), combine.clone());
        other.children.add(Arc::new(move |task| {
            let mut this = (these.getter)(task);
            let below = below.instantiate_shared(task);
            let combine = Arc::clone(&other_side);
            step(move |ctx, r: Record<K, Change<VO>>| {
                let found = this.get(ctx, &r.key)?;
                let change = Change {
                    new: combine(found.as_ref(), r.value.new.as_ref()),
                    old: combine(found.as_ref(), r.value.old.as_ref()),
                };
                forward_change(
                    &mut below.lock(),
                    ctx,
                    r.key,
                    change,
                    r.timestamp,
                    r.headers,
                )
            })
        }));
        let view = joined_view(&self.view, &other.view, combine);
        KTable::new(self.builder.clone(), node, children, view)
    }
}

/// Forwards `change` unless the joined row neither had nor has a value.
fn forward_change<K: Clone, VR: Clone>(
    below: &mut crate::topology::node::Fanout<K, Change<VR>>,
    ctx: &mut TaskContext,
    key: K,
    change: Change<VR>,
    timestamp: i64,
    headers: Vec<crate::record::Header>,
) -> Result<()> {
    if change.new.is_none() && change.old.is_none() {
        return Ok(());
    }
    let record = Record {
        key,
        value: change,
        timestamp,
        headers,
    };
    below.forward(ctx, record)
}

/// The joined table read on demand: both sides' rows, joined.
fn joined_view<K: 'static, V: 'static, VO: 'static, VR: 'static>(
    this: &TableView<K, V>,
    other: &TableView<K, VO>,
    combine: Combine<V, VO, VR>,
) -> TableView<K, VR> {
    let (these, others) = (Arc::clone(&this.getter), Arc::clone(&other.getter));
    TableView {
        stores: this.stores.iter().chain(&other.stores).cloned().collect(),
        getter: Arc::new(move |task| {
            Box::new(JoinedGetter {
                this: these(task),
                other: others(task),
                combine: Arc::clone(&combine),
            })
        }),
    }
}

struct JoinedGetter<K, V, VO, VR> {
    this: Box<dyn ValueGetter<K, V>>,
    other: Box<dyn ValueGetter<K, VO>>,
    combine: Combine<V, VO, VR>,
}

impl<K, V, VO, VR> ValueGetter<K, VR> for JoinedGetter<K, V, VO, VR> {
    fn get(&mut self, ctx: &mut TaskContext, key: &K) -> Result<Option<VR>> {
        let this = self.this.get(ctx, key)?;
        let other = self.other.get(ctx, key)?;
        Ok((self.combine)(this.as_ref(), other.as_ref()))
    }
}
