//! Sliding windows: `KGroupedStream::windowed_by_sliding(SlidingWindows)`,
//! then `count`, `reduce` or `aggregate` per key and window, into a
//! `KTable<Windowed<K>, V>` (Kafka Streams' `SlidingWindows`, KIP-450).
//!
//! Windows are `[start, start + d]`, both ends included, aligned to the
//! records rather than to the epoch: each record at `t` has its left
//! window `[t - d, t]`, and its right window `[t + 1, t + 1 + d]` once a
//! record falls in it. A record creates its own windows and updates every
//! existing window it falls in, and each change is forwarded, timed at
//! the window's latest record. A window closes when stream time passes
//! its end plus the grace; a record every window of which has closed is
//! dropped and counted with the skipped records.
//!
//! A window that exists takes each record as it comes (Kafka Streams'
//! arrival order); a window a record creates is folded, in time order,
//! from the key's records the task keeps (those of the last `2d + 1` of
//! open time; Kafka Streams derives it from the neighbouring windows
//! instead). Windows start at the epoch at the earliest: a record less
//! than `d` after it falls in `[0, d]`, as in Kafka Streams. Store keys,
//! in bytes (times as 8
//! ordered bytes): a window
//! `a`, key length (4), key, start → aggregate; a record `r`, key
//! length, key, time, seq → value; and the expiry indexes `y`, start,
//! key (windows) and `x`, time, seq, key (records) → empty.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::config::Materialized;
use super::fold::Fold;
use super::grouped::KGroupedStream;
use super::join::TableView;
use super::time_keys::{from_ordered, key_prefixed, millis, ordered};
use super::{Change, KTable, Windowed};
use crate::codec::{decode_error, Codec};
use crate::record::Record;
use crate::state::TaskStore;
use crate::topology::node::{step, Children, Fanout};
use crate::topology::{NodeKind, StoreId, TaskContext};
use crate::Result;

/// Windows of a fixed time difference between records (Kafka Streams'
/// `SlidingWindows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingWindows {
    difference: i64,
    grace: i64,
}

impl SlidingWindows {
    /// Records at most `difference` apart share a window; a window closes
    /// as soon as stream time passes its end.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> SlidingWindows {
        SlidingWindows::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// As above, windows taking records up to `grace` late.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> SlidingWindows {
        SlidingWindows {
            difference: millis(difference),
            grace: millis(grace),
        }
    }
}

/// A grouped stream cut into sliding windows, ready to aggregate.
pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Aggregations per key and sliding window of `windows`.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream {
            grouped: self.clone(),
            windows,
        }
    }
}

impl<K, V> SlidingWindowedKStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// How many records each key had in each window.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate_with("COUNT", Fold::count(), materialized)
    }

    /// Each key's values in each window combined with `combine`.
    pub fn reduce(
        &self,
        combine: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        self.aggregate_with("REDUCE", Fold::reduce(Arc::new(combine)), materialized)
    }

    /// Each key's values in each window folded into `initial()` by `add`.
    pub fn aggregate<A>(
        &self,
        initial: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Send + 'static,
    {
        self.aggregate_with("AGGREGATE", Fold::aggregate(initial, add), materialized)
    }

    fn aggregate_with<A>(
        &self,
        kind: &str,
        fold: Fold<K, V, A>,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Send + 'static,
    {
        let builder = self.grouped.builder();
        let spec = materialized.spec(|| builder.generated_name("SLIDING-AGGREGATE-STATE-STORE"));
        let input = self.grouped.input(&spec.name);
        let node = builder.add_node(
            &format!("SLIDING-WINDOW-{kind}"),
            NodeKind::processor(),
            &[input.node],
        );
        let store_name = spec.name.clone();
        builder.add_store(spec, node);
        let children: Children<Windowed<K>, Change<A>> = Children::new();
        let below = children.clone();
        let keys = Arc::clone(&materialized.keys);
        let difference = self.windows.difference;
        let stored_keys: Arc<dyn Codec<Windowed<K>>> = Arc::new(WindowKey {
            keys: Arc::clone(&keys),
            difference,
        });
        let view = TableView::of_store(&store_name, stored_keys, Arc::clone(&materialized.values));
        let values = self.grouped.value_codec();
        let (aggregates, fold, windows) = (materialized.values, Arc::new(fold), self.windows);
        input.children.add(Arc::new(move |task| {
            let mut sliding = Sliding {
                store: task.store(&store_name),
                keys: Arc::clone(&keys),
                values: Arc::clone(&values),
                aggregates: Arc::clone(&aggregates),
                fold: Arc::clone(&fold),
                windows,
                below: below.instantiate(task),
                purged_before: i64::MIN,
                seq: 0,
            };
            step(move |ctx, r: Record<K, V>| sliding.process(ctx, r))
        }));
        // The end is in the window: it closes once stream time passes
        // end + grace, so a final result is due a millisecond later.
        let closes_after = self.windows.grace.saturating_add(1);
        KTable::new(builder.clone(), node, children, view).windowed_with_grace(closes_after)
    }
}

/// One task's sliding-window aggregation.
struct Sliding<K, V, A> {
    store: StoreId,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<V>>,
    aggregates: Arc<dyn Codec<A>>,
    fold: Arc<Fold<K, V, A>>,
    windows: SlidingWindows,
    below: Fanout<Windowed<K>, Change<A>>,
    /// Records and windows before this close time are purged.
    purged_before: i64,
    /// The next sequence number to try for a record.
    seq: u32,
}

impl<K, V, A> Sliding<K, V, A>
where
    K: Clone + 'static,
    V: Clone + 'static,
    A: Clone + 'static,
{
    fn process(&mut self, ctx: &mut TaskContext, r: Record<K, V>) -> Result<()> {
        let mut key = Vec::new();
        if !self.keys.encode_nullable(&r.key, &mut key)? {
            // Kafka Streams skips records with a null key in aggregations.
            return Ok(());
        }
        let (t, d) = (r.timestamp, self.windows.difference);
        let close = ctx.stream_time.saturating_sub(self.windows.grace);
        if t.saturating_add(d) < close {
            ctx.skipped += 1;
            tracing::debug!(
                timestamp = t,
                stream_time = ctx.stream_time,
                "dropped a record for closed sliding windows"
            );
            return Ok(());
        }
        let mut value = Vec::new();
        self.values.encode(&r.value, &mut value)?;
        self.keep(ctx.store(self.store), &key, t, &value)?;
        // The windows that hold `t` already take the record as it comes
        // (in arrival order, as Kafka Streams adds to them).
        let from = window_key(&key, t.saturating_sub(d));
        let mut to = window_key(&key, t);
        to.push(0);
        let existing = ctx.store(self.store).range(&from, &to)?;
        let mut starts = BTreeSet::new();
        for (entry, bytes) in existing {
            let start = window_start(&entry, key.len());
            starts.insert(start);
            if start.saturating_add(d) < close {
                continue; // closed: no longer changed
            }
            let old = self.aggregates.decode(&bytes)?;
            let new = (self.fold.add)(&r.key, r.value.clone(), Some(old.clone()));
            self.store_window(ctx, &r, &key, start, t, new, Some(old))?;
        }
        // The windows the record creates are folded from the kept records.
        for start in self.new_windows(ctx, &key, t, &starts)? {
            self.create(ctx, &r, &key, start)?;
        }
        self.purge(ctx.store(self.store), close)
    }

    /// The windows a record at `t` creates: its left window, its right
    /// window once a record falls in it, and the right window of the
    /// record before it if `t` is the first to fall in it; none that
    /// exists already (`existing`: the starts of those holding `t`).
    fn new_windows(
        &self,
        ctx: &mut TaskContext,
        key: &[u8],
        t: i64,
        existing: &BTreeSet<i64>,
    ) -> Result<BTreeSet<i64>> {
        let d = self.windows.difference;
        let store = ctx.store(self.store);
        let before = store.range(
            &record_key(key, t.saturating_sub(d).saturating_sub(1), 0),
            &record_key(key, t, 0),
        )?;
        // Inclusive of the last time and seq, even at the end of the range.
        let mut last = record_key(key, t.saturating_add(d).saturating_add(1), u32::MAX);
        last.push(0);
        let after = store.range(&record_key(key, t.saturating_add(1), 0), &last)?;
        let mut created = BTreeSet::from([left_window_start(t, d)]);
        if let Some((entry, _)) = before.last() {
            created.insert(record_time(entry, key.len()).saturating_add(1));
        }
        let right = t.saturating_add(1);
        if !after.is_empty() && store.get(&window_key(key, right))?.is_none() {
            created.insert(right);
        }
        created.retain(|start| !existing.contains(start));
        let close = ctx.stream_time.saturating_sub(self.windows.grace);
        created.retain(|start| start.saturating_add(d) >= close);
        Ok(created)
    }

    /// Creates window `[start, start + d]` of `key`, folded from its kept
    /// records in time order, and forwards it.
    fn create(
        &mut self,
        ctx: &mut TaskContext,
        r: &Record<K, V>,
        key: &[u8],
        start: i64,
    ) -> Result<()> {
        let end = start.saturating_add(self.windows.difference);
        let mut to = record_key(key, end, u32::MAX);
        to.push(0);
        let records = ctx
            .store(self.store)
            .range(&record_key(key, start, 0), &to)?;
        let mut aggregate = (self.fold.initial)();
        let mut latest = start;
        for (entry, bytes) in &records {
            let value = self.values.decode(bytes)?;
            aggregate = Some((self.fold.add)(&r.key, value, aggregate));
            latest = latest.max(record_time(entry, key.len()));
        }
        match aggregate {
            Some(aggregate) => self.store_window(ctx, r, key, start, latest, aggregate, None),
            None => Ok(()), // a reduce over no record: no window
        }
    }

    /// Stores a window's aggregate and forwards its change, timed at
    /// `timestamp`.
    #[allow(clippy::too_many_arguments)]
    fn store_window(
        &mut self,
        ctx: &mut TaskContext,
        r: &Record<K, V>,
        key: &[u8],
        start: i64,
        timestamp: i64,
        new: A,
        old: Option<A>,
    ) -> Result<()> {
        let mut bytes = Vec::new();
        self.aggregates.encode(&new, &mut bytes)?;
        let store = ctx.store(self.store);
        store.put(&window_key(key, start), Some(bytes));
        store.put(&expiry_key(b'y', start, None, key), Some(Vec::new()));
        let window = Windowed {
            key: r.key.clone(),
            start,
            end: start.saturating_add(self.windows.difference),
        };
        let record = Record {
            key: window,
            value: Change {
                new: Some(new),
                old,
            },
            timestamp,
            headers: r.headers.clone(),
        };
        self.below.forward(ctx, record)
    }

    /// Keeps a record under a sequence number no record of its key and
    /// time has, with its expiry index entry.
    fn keep(&mut self, store: &mut TaskStore, key: &[u8], time: i64, value: &[u8]) -> Result<()> {
        loop {
            let seq = self.seq;
            self.seq = self.seq.wrapping_add(1);
            let entry = record_key(key, time, seq);
            if store.get(&entry)?.is_some() {
                continue;
            }
            store.put(&entry, Some(value.to_vec()));
            store.put(&expiry_key(b'x', time, Some(seq), key), Some(Vec::new()));
            return Ok(());
        }
    }

    /// Deletes the windows that closed and the records no open window or
    /// record still to come can hold (older than `close - 2d - 1`).
    fn purge(&mut self, store: &mut TaskStore, close: i64) -> Result<()> {
        if close <= self.purged_before {
            return Ok(());
        }
        let d = self.windows.difference;
        let closed_windows = close.saturating_sub(d);
        for (index, _) in store.range(b"y", &expiry_key(b'y', closed_windows, None, &[]))? {
            // `y`, start (8), key.
            if let (Some(start), Some(key)) = (index.get(1..9), index.get(9..)) {
                store.put(&window_key(key, from_ordered(start)), None);
            }
            store.put(&index, None);
        }
        let old_records = close.saturating_sub(d.saturating_mul(2).saturating_add(1));
        for (index, _) in store.range(b"x", &expiry_key(b'x', old_records, None, &[]))? {
            // `x`, time (8), seq (4), key.
            if let (Some(time), Some(seq), Some(key)) =
                (index.get(1..9), index.get(9..13), index.get(13..))
            {
                let seq = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
                store.put(&record_key(key, from_ordered(time), seq), None);
            }
            store.put(&index, None);
        }
        self.purged_before = close;
        Ok(())
    }
}

fn window_key(key: &[u8], start: i64) -> Vec<u8> {
    let mut entry = key_prefixed(b'a', key);
    entry.extend_from_slice(&ordered(start));
    entry
}

fn record_key(key: &[u8], time: i64, seq: u32) -> Vec<u8> {
    let mut entry = key_prefixed(b'r', key);
    entry.extend_from_slice(&ordered(time));
    entry.extend_from_slice(&seq.to_be_bytes());
    entry
}

/// The start of the left window of a record at `t`: `t - d`, except that
/// windows start at the epoch at the earliest, as in Kafka Streams, so a
/// record less than `d` after it falls in `[0, d]`.
fn left_window_start(t: i64, d: i64) -> i64 {
    match t >= 0 {
        true => t.saturating_sub(d).max(0),
        false => t.saturating_sub(d),
    }
}

/// The start of a window key whose key is `key_len` bytes.
fn window_start(entry: &[u8], key_len: usize) -> i64 {
    entry
        .get(5 + key_len..13 + key_len)
        .map_or(i64::MIN, from_ordered)
}

/// The time of a record key whose key is `key_len` bytes.
fn record_time(entry: &[u8], key_len: usize) -> i64 {
    entry
        .get(5 + key_len..13 + key_len)
        .map_or(i64::MIN, from_ordered)
}

fn expiry_key(prefix: u8, time: i64, seq: Option<u32>, key: &[u8]) -> Vec<u8> {
    let mut entry = vec![prefix];
    entry.extend_from_slice(&ordered(time));
    if let Some(seq) = seq {
        entry.extend_from_slice(&seq.to_be_bytes());
    }
    entry.extend_from_slice(key);
    entry
}

/// How the store keys a window's row, for reading it by its windowed
/// key.
struct WindowKey<K> {
    keys: Arc<dyn Codec<K>>,
    difference: i64,
}

impl<K: 'static> Codec<Windowed<K>> for WindowKey<K> {
    fn encode(&self, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<()> {
        let mut key = Vec::new();
        self.keys.encode(&value.key, &mut key)?;
        out.extend_from_slice(&window_key(&key, value.start));
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Windowed<K>> {
        let short = || decode_error("sliding-window-key", "too short");
        let length = bytes
            .get(1..5)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(short)? as usize;
        let key = bytes.get(5..5 + length).ok_or_else(short)?;
        let start = bytes.get(5 + length..13 + length).ok_or_else(short)?;
        let start = from_ordered(start);
        Ok(Windowed {
            key: self.keys.decode(key)?,
            start,
            end: start.saturating_add(self.difference),
        })
    }

    fn name(&self) -> &'static str {
        "sliding-window-key"
    }
}
