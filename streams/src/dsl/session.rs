//! Session windows: `KGroupedStream::windowed_by_session(SessionWindows)`,
//! then `count`, `reduce` or `aggregate` per key and session, into a
//! `KTable<Windowed<K>, V>` (Kafka Streams' `SessionWindowedKStream`).
//!
//! A session is a key's run of records with no gap longer than the
//! inactivity gap between two of them. A record at `t` merges every
//! session of its key that ends at or after `t - gap` and starts at or
//! before `t + gap` into one: the merged sessions are deleted (their
//! rows forwarded as deletions) and the new one forwarded, as Kafka
//! Streams does. A record whose merged session ended before stream time
//! minus the grace and the gap is dropped and counted with the skipped
//! records.
//! Sessions that no record can reach any more (ended before stream time
//! minus grace and gap) leave the store.
//!
//! Store keys, in bytes (times as 8 ordered bytes): a session is `k`,
//! key length (4), key, end, start → aggregate; its entry in the expiry
//! index is `t`, end, start, key → empty.

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

/// Sessions of activity separated by an inactivity gap (Kafka Streams'
/// `SessionWindows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionWindows {
    gap: i64,
    grace: i64,
}

impl SessionWindows {
    /// Sessions that end after `gap` without a record; a record that
    /// would change a session ended before stream time is dropped.
    pub fn with_inactivity_gap_and_no_grace(gap: Duration) -> SessionWindows {
        SessionWindows::with_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions that end after `gap` without a record, still changed by
    /// records arriving up to `grace` late.
    pub fn with_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> SessionWindows {
        SessionWindows {
            gap: millis(gap),
            grace: millis(grace),
        }
    }
}

/// A grouped stream cut into sessions, ready to aggregate.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Aggregations per key and session of `windows`.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: self.clone(),
            windows,
        }
    }
}

/// How a session's aggregate is made: its `fold`, and `merge(key, one,
/// other)` of two sessions a record joins.
struct Folds<K, V, A> {
    fold: Fold<K, V, A>,
    merge: Merger<K, A>,
}

type Merger<K, A> = Box<dyn Fn(&K, A, A) -> A + Send + Sync>;

impl<K, V> SessionWindowedKStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// How many records each key had in each session.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let folds = Folds {
            fold: Fold::count(),
            merge: Box::new(|_, a, b| a + b),
        };
        self.aggregate_with("COUNT", folds, materialized)
    }

    /// Each key's values in each session combined with `combine`, which
    /// also combines two sessions a record joins.
    pub fn reduce(
        &self,
        combine: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let combine = Arc::new(combine);
        let merged = Arc::clone(&combine);
        let folds = Folds {
            fold: Fold::reduce(combine),
            merge: Box::new(move |_, a, b| merged(a, b)),
        };
        self.aggregate_with("REDUCE", folds, materialized)
    }

    /// Each key's values in each session folded into `initial()` by
    /// `add`; the sessions a record joins are first combined by `merge`
    /// (Kafka Streams' session merger), starting from `initial()`.
    pub fn aggregate<A>(
        &self,
        initial: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merge: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Send + 'static,
    {
        let folds = Folds {
            fold: Fold::aggregate(initial, add),
            merge: Box::new(merge),
        };
        self.aggregate_with("AGGREGATE", folds, materialized)
    }

    fn aggregate_with<A>(
        &self,
        kind: &str,
        folds: Folds<K, V, A>,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Send + 'static,
    {
        let builder = self.grouped.builder();
        let spec = materialized.spec(|| builder.generated_name("SESSION-AGGREGATE-STATE-STORE"));
        let input = self.grouped.input(&spec.name);
        let node = builder.add_node(
            &format!("SESSION-WINDOW-{kind}"),
            NodeKind::processor(),
            &[input.node],
        );
        let store_name = spec.name.clone();
        builder.add_store(spec, node);
        let children: Children<Windowed<K>, Change<A>> = Children::new();
        let below = children.clone();
        let keys = Arc::clone(&materialized.keys);
        let stored_keys: Arc<dyn Codec<Windowed<K>>> = Arc::new(SessionStoreKey {
            keys: Arc::clone(&keys),
        });
        let view = TableView::of_store(&store_name, stored_keys, Arc::clone(&materialized.values));
        let (values, folds, windows) = (materialized.values, Arc::new(folds), self.windows);
        input.children.add(Arc::new(move |task| {
            let mut sessions = Sessions {
                store: task.store(&store_name),
                keys: Arc::clone(&keys),
                values: Arc::clone(&values),
                folds: Arc::clone(&folds),
                windows,
                below: below.instantiate(task),
                purged_before: i64::MIN,
            };
            step(move |ctx, r: Record<K, V>| sessions.process(ctx, r))
        }));
        // A session can still grow for `gap` after its end, and take
        // records `grace` late: it closes once stream time passes end +
        // gap + grace, so a final result is due a millisecond later.
        let closes_after = self
            .windows
            .gap
            .saturating_add(self.windows.grace)
            .saturating_add(1);
        KTable::new(builder.clone(), node, children, view).windowed_with_grace(closes_after)
    }
}

/// One task's session aggregation.
struct Sessions<K, V, A> {
    store: StoreId,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<A>>,
    folds: Arc<Folds<K, V, A>>,
    windows: SessionWindows,
    below: Fanout<Windowed<K>, Change<A>>,
    /// Sessions ending before this time are purged.
    purged_before: i64,
}

impl<K, V, A> Sessions<K, V, A>
where
    K: Clone + 'static,
    A: Clone + 'static,
{
    fn process(&mut self, ctx: &mut TaskContext, r: Record<K, V>) -> Result<()> {
        let mut key = Vec::new();
        if !self.keys.encode_nullable(&r.key, &mut key)? {
            // Kafka Streams skips records with a null key in aggregations.
            return Ok(());
        }
        let (t, gap) = (r.timestamp, self.windows.gap);
        let overlapping = self.overlapping(ctx, &key, t)?;
        let start = overlapping.iter().map(|s| s.0).fold(t, i64::min);
        let end = overlapping.iter().map(|s| s.1).fold(t, i64::max);
        // Kafka Streams' close time: a session that ended before it can
        // no longer grow (a record would need to be later than the gap).
        let close = ctx
            .stream_time
            .saturating_sub(self.windows.grace)
            .saturating_sub(gap);
        if end < close {
            ctx.skipped += 1;
            tracing::debug!(
                timestamp = t,
                gap,
                stream_time = ctx.stream_time,
                "dropped a record for a closed session"
            );
            return Ok(());
        }
        let Record {
            key: k,
            value,
            headers,
            ..
        } = r;
        let mut aggregate = (self.folds.fold.initial)();
        let mut same_window = None;
        for (old_start, old_end, bytes) in overlapping {
            let old = self.values.decode(&bytes)?;
            aggregate = Some(match aggregate {
                Some(a) => (self.folds.merge)(&k, a, old.clone()),
                None => old.clone(),
            });
            if (old_start, old_end) == (start, end) {
                same_window = Some(old);
                continue;
            }
            forget(ctx.store(self.store), &key, old_end, old_start);
            let gone = Change {
                new: None,
                old: Some(old),
            };
            let window = Windowed {
                key: k.clone(),
                start: old_start,
                end: old_end,
            };
            self.forward(ctx, window, gone, &headers)?;
        }
        let aggregate = (self.folds.fold.add)(&k, value, aggregate);
        let mut bytes = Vec::new();
        self.values.encode(&aggregate, &mut bytes)?;
        let store = ctx.store(self.store);
        store.put(&session_key(&key, end, start), Some(bytes));
        store.put(&index_key(&key, end, start), Some(Vec::new()));
        let change = Change {
            new: Some(aggregate),
            old: same_window,
        };
        self.forward(ctx, Windowed { key: k, start, end }, change, &headers)?;
        self.purge(ctx)
    }

    /// The sessions of `key` that a record at `t` joins: ending at or
    /// after `t - gap`, starting at or before `t + gap`; as start, end and
    /// stored aggregate.
    fn overlapping(
        &self,
        ctx: &mut TaskContext,
        key: &[u8],
        t: i64,
    ) -> Result<Vec<(i64, i64, Vec<u8>)>> {
        let gap = self.windows.gap;
        let from = session_key(key, t.saturating_sub(gap), i64::MIN);
        let to = session_key(key, i64::MAX, i64::MAX);
        let sessions = ctx.store(self.store).range(&from, &to)?;
        Ok(sessions
            .into_iter()
            .filter_map(|(entry, value)| {
                let (end, start) = end_and_start(&entry, key.len())?;
                (start <= t.saturating_add(gap)).then_some((start, end, value))
            })
            .collect())
    }

    /// Forwards a session's change, timed at the session's end (Kafka
    /// Streams' rule for session rows).
    fn forward(
        &mut self,
        ctx: &mut TaskContext,
        window: Windowed<K>,
        change: Change<A>,
        headers: &[crate::record::Header],
    ) -> Result<()> {
        let timestamp = window.end;
        let record = Record {
            key: window,
            value: change,
            timestamp,
            headers: headers.to_vec(),
        };
        self.below.forward(ctx, record)
    }

    /// Deletes sessions no record can reach any more.
    fn purge(&mut self, ctx: &mut TaskContext) -> Result<()> {
        let w = self.windows;
        let before = ctx
            .stream_time
            .saturating_sub(w.grace)
            .saturating_sub(w.gap);
        if before <= self.purged_before {
            return Ok(());
        }
        let store = ctx.store(self.store);
        let mut to = vec![b't'];
        to.extend_from_slice(&ordered(before));
        for (index, _) in store.range(b"t", &to)? {
            // `t`, end (8), start (8), key.
            if let (Some(end), Some(start), Some(key)) =
                (index.get(1..9), index.get(9..17), index.get(17..))
            {
                let (end, start) = (from_ordered(end), from_ordered(start));
                store.put(&session_key(key, end, start), None);
            }
            store.put(&index, None);
        }
        self.purged_before = before;
        Ok(())
    }
}

/// Deletes one session and its index entry.
fn forget(store: &mut TaskStore, key: &[u8], end: i64, start: i64) {
    store.put(&session_key(key, end, start), None);
    store.put(&index_key(key, end, start), None);
}

fn session_key(key: &[u8], end: i64, start: i64) -> Vec<u8> {
    let mut entry = key_prefixed(b'k', key);
    entry.extend_from_slice(&ordered(end));
    entry.extend_from_slice(&ordered(start));
    entry
}

fn index_key(key: &[u8], end: i64, start: i64) -> Vec<u8> {
    let mut entry = Vec::with_capacity(17 + key.len());
    entry.push(b't');
    entry.extend_from_slice(&ordered(end));
    entry.extend_from_slice(&ordered(start));
    entry.extend_from_slice(key);
    entry
}

/// The end and start of a session key whose key is `key_len` bytes.
fn end_and_start(entry: &[u8], key_len: usize) -> Option<(i64, i64)> {
    let at = 5 + key_len;
    let end = entry.get(at..at + 8)?;
    let start = entry.get(at + 8..at + 16)?;
    Some((from_ordered(end), from_ordered(start)))
}

/// How the session store keys its rows (see the module's comment), for
/// reading a session's row by its windowed key.
struct SessionStoreKey<K> {
    keys: Arc<dyn Codec<K>>,
}

impl<K: 'static> Codec<Windowed<K>> for SessionStoreKey<K> {
    fn encode(&self, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<()> {
        let mut key = Vec::new();
        self.keys.encode(&value.key, &mut key)?;
        out.extend_from_slice(&session_key(&key, value.end, value.start));
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Windowed<K>> {
        let length = bytes
            .get(1..5)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| decode_error(self.name(), "too short"))? as usize;
        let key = bytes
            .get(5..5 + length)
            .ok_or_else(|| decode_error(self.name(), "too short"))?;
        let (end, start) =
            end_and_start(bytes, length).ok_or_else(|| decode_error(self.name(), "too short"))?;
        Ok(Windowed {
            key: self.keys.decode(key)?,
            start,
            end,
        })
    }

    fn name(&self) -> &'static str {
        "session-store-key"
    }
}

/// A session-windowed key as Kafka Streams' `SessionWindowedSerializer`
/// writes it: the key's bytes, then the session's end and start (8 bytes
/// each, big-endian).
pub struct SessionWindowed<C>(pub C);

impl<K, C: Codec<K>> Codec<Windowed<K>> for SessionWindowed<C> {
    fn encode(&self, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<()> {
        self.0.encode(&value.key, out)?;
        out.extend_from_slice(&value.end.to_be_bytes());
        out.extend_from_slice(&value.start.to_be_bytes());
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Windowed<K>> {
        let Some(at) = bytes.len().checked_sub(16) else {
            return Err(decode_error(self.name(), "fewer than 16 bytes"));
        };
        let time = |from: usize| {
            let mut array = [0u8; 8];
            array.copy_from_slice(&bytes[from..from + 8]);
            i64::from_be_bytes(array)
        };
        Ok(Windowed {
            key: self.0.decode(&bytes[..at])?,
            start: time(at + 8),
            end: time(at),
        })
    }

    fn name(&self) -> &'static str {
        "session-windowed"
    }

    fn is_windowed(&self) -> bool {
        true
    }

    fn unwindowed<'a>(&self, encoded: &'a [u8]) -> &'a [u8] {
        &encoded[..encoded.len().saturating_sub(16)]
    }
}
