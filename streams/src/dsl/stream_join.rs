//! Joins of two streams within a time window: `KStream::join_stream`,
//! `left_join_stream` and `outer_join_stream` (Kafka Streams'
//! `KStream#join(KStream, ValueJoiner, JoinWindows, StreamJoined)`).
//!
//! A record of one side at time `t` joins every record of the other side
//! with its key whose time lies in `[t - before, t + after]` (the window
//! seen from the left; the right side sees it mirrored), and the joined
//! record carries the later of both times. Each side keeps its records in
//! a store of its own for `before + after + grace` of stream time, so a
//! record arriving later still finds them. Both streams must be
//! co-partitioned; a side whose key changed is repartitioned first.
//!
//! Left and outer joins emit a record that found no partner only once
//! its window closed (stream time past `t + after + grace`), as Kafka
//! Streams does since 3.1 (KIP-633), so a partner arriving within the
//! window and grace no longer yields an unmatched result first: unmatched
//! records wait in a shared store keyed by the time their window closes,
//! and leave it when a partner arrives or when they are emitted. As in
//! Kafka Streams, a partner the other side still takes after that (its
//! own lateness bound is `before`, not `after`) joins too, so such a
//! record has both results.
//!
//! Store keys, in bytes (times as 8 ordered bytes, `seq` 4 bytes that
//! tell apart records of one key at one time):
//! - a side's record: `k`, key length (4), key, time, seq → value;
//! - its entry in the side's expiry index: `t`, time, seq, key → empty;
//! - an unmatched record: close time, seq, side (`L`/`R`), key → time and
//!   value.

use std::sync::Arc;
use std::time::Duration;

use super::config::{Grouped, StreamJoined};
use super::time_keys::{from_ordered, key_prefixed, millis, ordered};
use super::KStream;
use crate::codec::Codec;
use crate::record::Record;
use crate::state::TaskStore;
use crate::topology::node::{step, Children, SharedFanout};
use crate::topology::{NodeKind, StoreId, TaskContext};
use crate::Result;

/// The time difference two records of a stream-stream join may have
/// (Kafka Streams' `JoinWindows`), and how long after a window's end its
/// records are still taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinWindows {
    before: i64,
    after: i64,
    grace: i64,
}

impl JoinWindows {
    /// Records at most `difference` apart join; a record arriving after
    /// its window closed is dropped.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> JoinWindows {
        JoinWindows::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Records at most `difference` apart join, taking records up to
    /// `grace` late (out-of-order input).
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> JoinWindows {
        let difference = millis(difference);
        JoinWindows {
            before: difference,
            after: difference,
            grace: millis(grace),
        }
    }

    /// How far before a left record a right record may be.
    pub fn before(mut self, before: Duration) -> JoinWindows {
        self.before = millis(before);
        self
    }

    /// How far after a left record a right record may be.
    pub fn after(mut self, after: Duration) -> JoinWindows {
        self.after = millis(after);
        self
    }

    /// The same windows seen from the right side.
    fn mirrored(self) -> JoinWindows {
        JoinWindows {
            before: self.after,
            after: self.before,
            grace: self.grace,
        }
    }

    /// How long a side keeps its records, in stream time.
    fn retention(&self) -> i64 {
        self.before
            .saturating_add(self.after)
            .saturating_add(self.grace)
    }
}

/// How a left and a right value (either possibly absent) make an output.
type Combine<VL, VR, Out> = Arc<dyn Fn(Option<&VL>, Option<&VR>) -> Option<Out> + Send + Sync>;

/// Which records wait to be emitted unmatched.
#[derive(Clone, Copy, PartialEq)]
enum Outer {
    None,
    Left,
    Both,
}

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Each record joined with every record of `other` with its key whose
    /// time lies within `windows` of its own.
    pub fn join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let combine: Combine<V, VO, VR> = Arc::new(move |v, o| match (v, o) {
            (Some(v), Some(o)) => Some(joiner(v, o)),
            _ => None,
        });
        self.stream_join("JOIN", other, combine, Outer::None, windows, joined)
    }

    /// [`KStream::join_stream`], and each record of this stream that
    /// found no partner by the time its window closed, joined with `None`.
    pub fn left_join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let combine: Combine<V, VO, VR> = Arc::new(move |v, o| v.map(|v| joiner(v, o)));
        self.stream_join("LEFTJOIN", other, combine, Outer::Left, windows, joined)
    }

    /// [`KStream::join_stream`], and each record of either stream that
    /// found no partner by the time its window closed, with `None` for
    /// the other side.
    pub fn outer_join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let combine: Combine<V, VO, VR> = Arc::new(move |v, o| match (v, o) {
            (None, None) => None,
            _ => Some(joiner(v, o)),
        });
        self.stream_join("OUTERJOIN", other, combine, Outer::Both, windows, joined)
    }

    fn stream_join<VO, VR>(
        &self,
        kind: &str,
        other: &KStream<K, VO>,
        combine: Combine<V, VO, VR>,
        outer: Outer,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let name = joined
            .name
            .clone()
            .unwrap_or_else(|| self.builder.generated_name(&format!("{kind}THIS")));
        let left = co_partitioned(self, &name, "left", &joined.keys, &joined.values);
        let right = co_partitioned(other, &name, "right", &joined.keys, &joined.other_values);
        let node = self
            .builder
            .add_node(kind, NodeKind::processor(), &[left.node, right.node]);
        let stores = JoinStores {
            left: format!("{name}-this-join-store"),
            right: format!("{name}-other-join-store"),
            outer: (outer != Outer::None).then(|| format!("{name}-outer-shared-join-store")),
        };
        for store in [&stores.left, &stores.right]
            .into_iter()
            .chain(&stores.outer)
        {
            self.builder.add_store(joined.spec(store.clone()), node);
        }
        let emitter = Arc::new(Emitter {
            keys: Arc::clone(&joined.keys),
            left: Arc::clone(&joined.values),
            right: Arc::clone(&joined.other_values),
            combine: Arc::clone(&combine),
        });
        let children: Children<K, VR> = Children::new();
        let left_side = SideSpec {
            own: stores.left.clone(),
            other: stores.right.clone(),
            outer: stores.outer.clone(),
            tag: LEFT,
            waits_unmatched: outer != Outer::None,
            other_tag: RIGHT,
            other_waits: outer == Outer::Both,
            windows,
        };
        let right_side = SideSpec {
            own: stores.right,
            other: stores.left,
            outer: stores.outer,
            tag: RIGHT,
            waits_unmatched: outer == Outer::Both,
            other_tag: LEFT,
            other_waits: outer != Outer::None,
            windows: windows.mirrored(),
        };
        let values = (Arc::clone(&joined.values), Arc::clone(&joined.other_values));
        let swapped: Combine<VO, V, VR> = Arc::new(move |o, v| combine(v, o));
        let pair = Arc::clone(&emitter.combine);
        add_side(
            &left,
            left_side,
            values.clone(),
            pair,
            emitter.clone(),
            &children,
        );
        let (values, other_values) = values;
        add_side(
            &right,
            right_side,
            (other_values, values),
            swapped,
            emitter,
            &children,
        );
        KStream::new(self.builder.clone(), node, children)
    }
}

/// `stream` as the join reads it: repartitioned first through
/// `<name>-<side>-repartition` if its key changed.
fn co_partitioned<K, V>(
    stream: &KStream<K, V>,
    name: &str,
    side: &str,
    keys: &Arc<dyn Codec<K>>,
    values: &Arc<dyn Codec<V>>,
) -> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    if !stream.key_changed {
        return stream.same();
    }
    let grouped = Grouped {
        keys: Arc::clone(keys),
        values: Arc::clone(values),
        name: None,
    };
    stream.repartition(&format!("{name}-{side}"), grouped)
}

const LEFT: u8 = b'L';
const RIGHT: u8 = b'R';

/// The names of a join's stores.
struct JoinStores {
    left: String,
    right: String,
    outer: Option<String>,
}

/// One side of a join as the topology declares it.
#[derive(Clone)]
struct SideSpec {
    own: String,
    other: String,
    outer: Option<String>,
    tag: u8,
    /// Whether this side's unmatched records are emitted once closed.
    waits_unmatched: bool,
    other_tag: u8,
    /// Whether the other side's unmatched records are.
    other_waits: bool,
    /// The windows seen from this side.
    windows: JoinWindows,
}

/// Emits unmatched records whose windows closed, from either side.
struct Emitter<K, VL, VR, Out> {
    keys: Arc<dyn Codec<K>>,
    left: Arc<dyn Codec<VL>>,
    right: Arc<dyn Codec<VR>>,
    combine: Combine<VL, VR, Out>,
}

impl<K: Clone + 'static, VL: 'static, VR: 'static, Out: Clone> Emitter<K, VL, VR, Out> {
    /// Emits, in the order their windows closed, the unmatched records
    /// whose windows closed before stream time, and forgets them.
    fn emit_closed(
        &self,
        ctx: &mut TaskContext,
        outer: StoreId,
        below: &SharedFanout<K, Out>,
    ) -> Result<()> {
        if ctx.stream_time == i64::MIN {
            return Ok(());
        }
        let now = ordered(ctx.stream_time);
        let closed = ctx.store(outer).range(&[], &now)?;
        for (entry, stored) in closed {
            ctx.store(outer).put(&entry, None);
            // close time (8), seq (4), side (1), key.
            let (Some(&tag), Some(key), Some((time, value))) = (
                entry.get(12),
                entry.get(13..),
                stored.split_first_chunk::<8>(),
            ) else {
                continue;
            };
            let key = self.keys.decode(key)?;
            let output = match tag {
                LEFT => (self.combine)(Some(&self.left.decode(value)?), None),
                _ => (self.combine)(None, Some(&self.right.decode(value)?)),
            };
            if let Some(value) = output {
                let record = Record::new(key, value, from_ordered(time));
                below.lock().forward(ctx, record)?;
            }
        }
        Ok(())
    }
}

/// Adds one side's node instance below `stream`: each record is kept,
/// joined with the other side's records in its window, and, if it found
/// none and its side waits, kept as unmatched.
fn add_side<K, V, VO, VL, VR, Out>(
    stream: &KStream<K, V>,
    spec: SideSpec,
    (values, other_values): (Arc<dyn Codec<V>>, Arc<dyn Codec<VO>>),
    pair: Combine<V, VO, Out>,
    emitter: Arc<Emitter<K, VL, VR, Out>>,
    children: &Children<K, Out>,
) where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    VO: 'static,
    VL: 'static,
    VR: 'static,
    Out: Clone + Send + 'static,
{
    let below = children.clone();
    stream.children.add(Arc::new(move |task| {
        let below = below.instantiate_shared(task);
        let mut side = Side {
            own: task.store(&spec.own),
            other: task.store(&spec.other),
            outer: spec.outer.as_deref().map(|name| task.store(name)),
            spec: spec.clone(),
            keys: Arc::clone(&emitter.keys),
            values: Arc::clone(&values),
            other_values: Arc::clone(&other_values),
            pair: Arc::clone(&pair),
            purged_before: [i64::MIN; 2],
            seq: 0,
        };
        let emitter = Arc::clone(&emitter);
        step(move |ctx, r: Record<K, V>| {
            side.process(ctx, r, &below)?;
            if let Some(outer) = side.outer {
                emitter.emit_closed(ctx, outer, &below)?;
            }
            side.purge(ctx)
        })
    }));
}

/// One side of a join in one task.
struct Side<K, V, VO, Out> {
    own: StoreId,
    other: StoreId,
    outer: Option<StoreId>,
    spec: SideSpec,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<V>>,
    other_values: Arc<dyn Codec<VO>>,
    pair: Combine<V, VO, Out>,
    /// Records before these times are purged from this side's store and
    /// from the other side's (which may see no record for a long time).
    purged_before: [i64; 2],
    /// The next sequence number to try for a record.
    seq: u32,
}

impl<K: Clone + 'static, V: 'static, VO: 'static, Out: Clone> Side<K, V, VO, Out> {
    fn process(
        &mut self,
        ctx: &mut TaskContext,
        r: Record<K, V>,
        below: &SharedFanout<K, Out>,
    ) -> Result<()> {
        let w = self.spec.windows;
        let mut key = Vec::new();
        let late = r.timestamp.saturating_add(w.after).saturating_add(w.grace) < ctx.stream_time;
        if !self.keys.encode_nullable(&r.key, &mut key)? || late {
            // Kafka Streams drops a null key and a record for a closed
            // window, counting it with the dropped records.
            ctx.skipped += 1;
            return Ok(());
        }
        let mut value = Vec::new();
        self.values.encode(&r.value, &mut value)?;
        let seq = self.keep(ctx, &key, r.timestamp, &value)?;
        let from = record_key(&key, r.timestamp.saturating_sub(w.before), 0);
        let to = record_key(&key, r.timestamp.saturating_add(w.after), u32::MAX);
        let mut to = to;
        to.push(0); // inclusive of the last time and seq
        let partners = ctx.store(self.other).range(&from, &to)?;
        for (entry, stored) in &partners {
            let (time, other_seq) = time_and_seq(entry, key.len());
            let found = self.other_values.decode(stored)?;
            if let Some(value) = (self.pair)(Some(&r.value), Some(&found)) {
                let record = Record {
                    key: r.key.clone(),
                    value,
                    timestamp: r.timestamp.max(time),
                    headers: r.headers.clone(),
                };
                below.lock().forward(ctx, record)?;
            }
            if let (Some(outer), true) = (self.outer, self.spec.other_waits) {
                // The partner is matched now: it no longer waits.
                let mirrored = w.mirrored();
                let close = time.saturating_add(mirrored.after).saturating_add(w.grace);
                let waiting = unmatched_key(close, other_seq, self.spec.other_tag, &key);
                if ctx.store(outer).get(&waiting)?.is_some() {
                    ctx.store(outer).put(&waiting, None);
                }
            }
        }
        if let (Some(outer), true, true) =
            (self.outer, self.spec.waits_unmatched, partners.is_empty())
        {
            let close = r.timestamp.saturating_add(w.after).saturating_add(w.grace);
            let mut waiting = ordered(r.timestamp).to_vec();
            waiting.extend_from_slice(&value);
            let entry = unmatched_key(close, seq, self.spec.tag, &key);
            ctx.store(outer).put(&entry, Some(waiting));
        }
        Ok(())
    }

    /// Keeps a record in the side's store and expiry index, under a
    /// sequence number no record of its key and time has; returns it.
    fn keep(&mut self, ctx: &mut TaskContext, key: &[u8], time: i64, value: &[u8]) -> Result<u32> {
        let store = ctx.store(self.own);
        loop {
            let seq = self.seq;
            self.seq = self.seq.wrapping_add(1);
            let entry = record_key(key, time, seq);
            if store.get(&entry)?.is_some() {
                continue;
            }
            store.put(&entry, Some(value.to_vec()));
            let mut index = vec![b't'];
            index.extend_from_slice(&ordered(time));
            index.extend_from_slice(&seq.to_be_bytes());
            index.extend_from_slice(key);
            store.put(&index, Some(Vec::new()));
            return Ok(seq);
        }
    }

    /// Deletes the records of both sides that no record can join any
    /// more.
    fn purge(&mut self, ctx: &mut TaskContext) -> Result<()> {
        let before = ctx
            .stream_time
            .saturating_sub(self.spec.windows.retention());
        if ctx.stream_time == i64::MIN {
            return Ok(());
        }
        for (store, purged_before) in [self.own, self.other]
            .into_iter()
            .zip(&mut self.purged_before)
        {
            if before > *purged_before {
                purge_before(ctx.store(store), before)?;
                *purged_before = before;
            }
        }
        Ok(())
    }
}

/// Deletes a side's records older than `before`, found through its
/// expiry index.
fn purge_before(store: &mut TaskStore, before: i64) -> Result<()> {
    let mut to = vec![b't'];
    to.extend_from_slice(&ordered(before));
    for (index, _) in store.range(b"t", &to)? {
        // `t`, time (8), seq (4), key.
        if let (Some(time), Some(seq), Some(key)) =
            (index.get(1..9), index.get(9..13), index.get(13..))
        {
            let mut entry = key_prefixed(b'k', key);
            entry.extend_from_slice(time);
            entry.extend_from_slice(seq);
            store.put(&entry, None);
        }
        store.put(&index, None);
    }
    Ok(())
}

/// A side's store key of a record: `k`, key length, key, time, seq.
fn record_key(key: &[u8], time: i64, seq: u32) -> Vec<u8> {
    let mut entry = key_prefixed(b'k', key);
    entry.extend_from_slice(&ordered(time));
    entry.extend_from_slice(&seq.to_be_bytes());
    entry
}

/// The time and seq of a record key whose key is `key_len` bytes.
fn time_and_seq(entry: &[u8], key_len: usize) -> (i64, u32) {
    let at = 5 + key_len;
    let time = entry.get(at..at + 8).map_or(i64::MIN, from_ordered);
    let seq = entry
        .get(at + 8..at + 12)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes);
    (time, seq)
}

/// The shared store's key of an unmatched record.
fn unmatched_key(close: i64, seq: u32, tag: u8, key: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(13 + key.len());
    entry.extend_from_slice(&ordered(close));
    entry.extend_from_slice(&seq.to_be_bytes());
    entry.push(tag);
    entry.extend_from_slice(key);
    entry
}
