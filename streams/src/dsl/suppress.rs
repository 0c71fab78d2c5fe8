//! `KTable::suppress`: holds a table's updates back and forwards only the
//! last one per key, when it is due (Kafka Streams' `Suppressed`):
//! - `until_window_closes`: a windowed aggregation's final result, once
//!   stream time reaches the window's end plus its grace (emit-final);
//!   a window deleted before it closed forwards nothing;
//! - `until_time_limit(limit)`: a key's latest value `limit` of stream
//!   time after its first held update (a rate limit), deletions included.
//!
//! The held updates live in a store (`<name>`, changelogged like every
//! store), so a restarted task forwards what it held before the crash,
//! exactly once under `exactly_once`. Keys, in bytes: `k`, key → the
//! layout's number (1 byte, `HELD_FORMAT`), due time (8), record time
//! (8), the latest value and the value before the first held update
//! (each a flag, a 4-byte length and bytes); and its due
//! index `e`, due time (8 ordered), key → empty. A due update goes out
//! when a record moves stream time to its due time (as in Kafka Streams,
//! wall-clock time alone moves nothing), with the value before the first
//! held update as its old value, so a `group_by` or a join below takes
//! it back out.

use std::sync::Arc;
use std::time::Duration;

use super::ktable::{Change, KTable};
use super::Windowed;
use crate::codec::{decode_error, Codec};
use crate::record::Record;
use crate::state::{StoreKind, StoreSpec};
use crate::topology::node::{step, Children, Fanout};
use crate::topology::{NodeKind, StoreId, TaskContext};
use crate::Result;

/// When a held update is due: the window's end (plus the table's grace),
/// or the first held update's time plus a limit.
#[derive(Clone)]
enum Due<K> {
    WindowCloses(Arc<dyn Fn(&K) -> i64 + Send + Sync>),
    TimeLimit(i64),
}

/// How `KTable::suppress` holds updates back, with the codecs of its
/// store.
pub struct Suppressed<K, V> {
    due: Due<K>,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<V>>,
    name: Option<String>,
    kind: StoreKind,
}

impl<K: 'static, V: 'static> Suppressed<Windowed<K>, V> {
    /// Each window's final result, once the window closes (Kafka
    /// Streams' `untilWindowCloses` with an unbounded buffer). `keys`
    /// writes windowed keys (`TimeWindowed`, `SessionWindowed`).
    pub fn until_window_closes(
        keys: impl Codec<Windowed<K>>,
        values: impl Codec<V>,
    ) -> Suppressed<Windowed<K>, V> {
        Suppressed {
            due: Due::WindowCloses(Arc::new(|w: &Windowed<K>| w.end)),
            keys: Arc::new(keys),
            values: Arc::new(values),
            name: None,
            kind: StoreKind::RocksDb,
        }
    }
}

impl<K: 'static, V: 'static> Suppressed<K, V> {
    /// A key's latest value, `limit` after its first held update (Kafka
    /// Streams' `untilTimeLimit` with an unbounded buffer).
    pub fn until_time_limit(
        limit: Duration,
        keys: impl Codec<K>,
        values: impl Codec<V>,
    ) -> Suppressed<K, V> {
        Suppressed {
            due: Due::TimeLimit(i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)),
            keys: Arc::new(keys),
            values: Arc::new(values),
            name: None,
            kind: StoreKind::RocksDb,
        }
    }

    /// Names the node and its store.
    pub fn named(mut self, name: &str) -> Suppressed<K, V> {
        self.name = Some(name.to_string());
        self
    }

    /// Holds the updates in memory (restored from the changelog on a
    /// start) instead of RocksDB.
    pub fn in_memory(mut self) -> Suppressed<K, V> {
        self.kind = StoreKind::InMemory;
        self
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// This table's updates held back as `suppressed` says; the result
    /// reads its rows through this table (a lookup sees the latest row).
    pub fn suppress(&self, suppressed: Suppressed<K, V>) -> KTable<K, V> {
        let grace = match (&suppressed.due, self.window_grace) {
            (Due::WindowCloses(_), None) => {
                self.builder.refuse(
                    "suppress(until_window_closes) below a table that no windowed aggregation made: it has no windows to close".into(),
                );
                0
            }
            (_, grace) => grace.unwrap_or(0),
        };
        let store = suppressed
            .name
            .clone()
            .unwrap_or_else(|| self.builder.generated_name("KTABLE-SUPPRESS-STATE-STORE"));
        let node = self
            .builder
            .add_node("KTABLE-SUPPRESS", NodeKind::processor(), &[self.node]);
        let spec = StoreSpec {
            name: store.clone(),
            kind: suppressed.kind,
            logged: true,
        };
        self.builder.add_store(spec, node);
        let children: Children<K, Change<V>> = Children::new();
        let below = children.clone();
        let suppressed = Arc::new(suppressed);
        self.children.add(Arc::new(move |task| {
            let mut held = Held {
                store: task.store(&store),
                suppressed: Arc::clone(&suppressed),
                grace,
                below: below.instantiate(task),
            };
            step(move |ctx, r: Record<K, Change<V>>| {
                held.hold(ctx, r)?;
                held.forward_due(ctx)
            })
        }));
        let mut table = KTable::new(self.builder.clone(), node, children, self.view.clone());
        table.window_grace = self.window_grace;
        table
    }
}

/// One task's held updates.
struct Held<K, V> {
    store: StoreId,
    suppressed: Arc<Suppressed<K, V>>,
    grace: i64,
    below: Fanout<K, Change<V>>,
}

impl<K: Clone + 'static, V: Clone + 'static> Held<K, V> {
    /// Holds the update `r` brings as its key's latest; the value the key
    /// had before its first held update stays the old value.
    fn hold(&mut self, ctx: &mut TaskContext, r: Record<K, Change<V>>) -> Result<()> {
        let mut key = Vec::new();
        self.suppressed.keys.encode(&r.key, &mut key)?;
        let entry = prefixed(b'k', &key);
        let values = &self.suppressed.values;
        let store = ctx.store(self.store);
        let held_bytes = store.get(&entry)?;
        let held = held_bytes.as_deref().map(read_held).transpose()?;
        let due = match (&self.suppressed.due, &held) {
            (Due::WindowCloses(end), _) => end(&r.key).saturating_add(self.grace),
            (Due::TimeLimit(_), Some(held)) => held.due,
            (Due::TimeLimit(limit), None) => r.timestamp.saturating_add(*limit),
        };
        let mut bytes = Vec::with_capacity(32);
        bytes.push(HELD_FORMAT);
        bytes.extend_from_slice(&due.to_be_bytes());
        bytes.extend_from_slice(&r.timestamp.to_be_bytes());
        let mut new = Vec::new();
        let new = match &r.value.new {
            Some(value) => values
                .encode(value, &mut new)
                .map(|()| Some(new.as_slice()))?,
            None => None,
        };
        put_optional(&mut bytes, new);
        let mut prior = Vec::new();
        let old = match (&held, &r.value.old) {
            (Some(held), _) => held.old,
            (None, Some(old)) => values
                .encode(old, &mut prior)
                .map(|()| Some(prior.as_slice()))?,
            (None, None) => None,
        };
        put_optional(&mut bytes, old);
        if let Some(previous) = held.map(|h| h.due).filter(|&d| d != due) {
            store.put(&due_key(previous, &key), None);
        }
        store.put(&entry, Some(bytes));
        store.put(&due_key(due, &key), Some(Vec::new()));
        Ok(())
    }

    /// Forwards, in order of their due times, the held updates due by
    /// stream time, and forgets them.
    fn forward_due(&mut self, ctx: &mut TaskContext) -> Result<()> {
        let to = due_key(ctx.stream_time.saturating_add(1), &[]);
        let due = ctx.store(self.store).range(b"e", &to)?;
        for (index, _) in due {
            let Some(key) = index.get(9..) else { continue };
            let entry = prefixed(b'k', key);
            let store = ctx.store(self.store);
            store.put(&index, None);
            let Some(bytes) = store.get(&entry)? else {
                continue;
            };
            store.put(&entry, None);
            let held = read_held(&bytes)?;
            let values = &self.suppressed.values;
            let new = held.new.map(|v| values.decode(v)).transpose()?;
            let old = held.old.map(|v| values.decode(v)).transpose()?;
            let final_results = matches!(self.suppressed.due, Due::WindowCloses(_));
            if new.is_none() && (final_results || old.is_none()) {
                // A window deleted before it closed, or a key that came
                // and went while held: nothing to tell.
                continue;
            }
            let record = Record::new(
                self.suppressed.keys.decode(key)?,
                Change { new, old },
                held.timestamp,
            );
            self.below.forward(ctx, record)?;
        }
        Ok(())
    }
}

fn prefixed(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(1 + key.len());
    entry.push(prefix);
    entry.extend_from_slice(key);
    entry
}

/// The due index's key: `e`, the due time (8 bytes ordered), the key.
fn due_key(due: i64, key: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(9 + key.len());
    entry.push(b'e');
    entry.extend_from_slice(&((due as u64) ^ (1 << 63)).to_be_bytes());
    entry.extend_from_slice(key);
    entry
}

/// A held update: when it is due, its record's time, the key's latest
/// value and the one it had before its first held update (`None`: no
/// value, a deletion or a new key), as bytes.
struct HeldUpdate<'a> {
    due: i64,
    timestamp: i64,
    new: Option<&'a [u8]>,
    old: Option<&'a [u8]>,
}

/// The layout of a held update, its first byte: a store written by a
/// later layout is refused by name, not misread.
const HELD_FORMAT: u8 = 1;

fn read_held(bytes: &[u8]) -> Result<HeldUpdate<'_>> {
    let short = || decode_error("suppress-buffer", "a held update too short");
    match bytes.first() {
        Some(&HELD_FORMAT) => {}
        Some(other) => {
            return Err(decode_error(
                "suppress-buffer",
                format!("a held update in layout {other}; this version reads layout {HELD_FORMAT}"),
            ))
        }
        None => return Err(short()),
    }
    let bytes = &bytes[1..];
    let field = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes)
            .ok_or_else(short)
    };
    let (due, timestamp) = (field(0)?, field(8)?);
    let rest = bytes.get(16..).ok_or_else(short)?;
    let (new, rest) = take_optional(rest).ok_or_else(short)?;
    let (old, _) = take_optional(rest).ok_or_else(short)?;
    Ok(HeldUpdate {
        due,
        timestamp,
        new,
        old,
    })
}

/// Appends an optional value: a flag, then its length (4 bytes) and bytes.
fn put_optional(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(value) => {
            out.push(1);
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
        None => out.push(0),
    }
}

/// An optional value `put_optional` wrote, and the bytes after it.
fn take_optional(bytes: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    match bytes.first()? {
        0 => Some((None, bytes.get(1..)?)),
        _ => {
            let length = u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?) as usize;
            let value = bytes.get(5..5 + length)?;
            Some((Some(value), bytes.get(5 + length..)?))
        }
    }
}
