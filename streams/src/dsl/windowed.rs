//! Windowed aggregations: `KGroupedStream::windowed_by(TimeWindows)`,
//! then `count`, `reduce` or `aggregate` per key and time window, into a
//! `KTable<Windowed<K>, V>`.
//!
//! A windowing node puts each record into every window its timestamp
//! falls in (one for tumbling windows, `size / advance` for hopping
//! ones), keyed `Windowed { key, start, end }`; the ordinary aggregation
//! node then keeps one row per key and window. Its store keys are the
//! window's start (8 bytes, ordered) then the key, so the windows that
//! closed are one range at the front of the store: the windowing node
//! deletes them as stream time passes `end + grace` (their tombstones
//! reach the changelog, which compaction then empties), and drops a record
//! that arrives for a closed window, counted with the skipped records
//! (Kafka Streams' `dropped-records`).

use std::sync::Arc;
use std::time::Duration;

use super::config::Materialized;
use super::grouped::{aggregate_into, KGroupedStream};
use super::time_keys::{from_ordered, millis, ordered};
use super::{KStream, KTable};
use crate::codec::{decode_error, Codec};
use crate::record::Record;
use crate::topology::node::{step, Children};
use crate::topology::{NodeKind, StoreId, TaskContext};
use crate::Result;

/// Windows of a fixed size on record timestamps (Kafka Streams'
/// `TimeWindows`): tumbling, or hopping with `advance_by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindows {
    size: i64,
    advance: i64,
    grace: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size`: each record in exactly one, closed as
    /// soon as stream time reaches their end.
    pub fn of_size_with_no_grace(size: Duration) -> TimeWindows {
        TimeWindows::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` that still take records arriving up to
    /// `grace` after their end (out-of-order input).
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> TimeWindows {
        let size = millis(size);
        TimeWindows {
            size,
            advance: size,
            grace: millis(grace),
        }
    }

    /// Hopping windows: a new window starts every `advance` (at most the
    /// size), so a record is in `size / advance` windows.
    pub fn advance_by(mut self, advance: Duration) -> TimeWindows {
        self.advance = millis(advance);
        self
    }

    /// The size in milliseconds (a windowed key's `end - start`).
    pub fn size_ms(&self) -> i64 {
        self.size
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.size <= 0 || self.advance <= 0 || self.advance > self.size || self.grace < 0 {
            return Err(format!(
                "time windows of size {} ms advancing by {} ms: the size must be positive and the advance in 1..=size",
                self.size, self.advance
            ));
        }
        Ok(())
    }

    /// The starts of the windows `[start, start + size)` holding
    /// `timestamp`, aligned to multiples of the advance from the epoch.
    fn starts(&self, timestamp: i64) -> impl Iterator<Item = i64> {
        let last = timestamp - timestamp.rem_euclid(self.advance);
        let earliest = timestamp - self.size + 1;
        let first = earliest + (self.advance - earliest.rem_euclid(self.advance)) % self.advance;
        // Windows start at or after the epoch; 0 is a multiple of the
        // advance, so starting there keeps the alignment.
        (first.max(0)..=last).step_by(self.advance as usize)
    }
}

/// A key in one time window `[start, end)`, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    pub key: K,
    pub start: i64,
    pub end: i64,
}

/// A windowed key as Kafka Streams' `TimeWindowedSerializer` writes it:
/// the key's bytes, then the window's start (8 bytes, big-endian); the
/// end is the start plus the windows' size, which the reader knows.
pub struct TimeWindowed<C> {
    keys: C,
    size: i64,
}

impl<C> TimeWindowed<C> {
    pub fn new(keys: C, size: Duration) -> TimeWindowed<C> {
        TimeWindowed {
            keys,
            size: millis(size),
        }
    }
}

impl<K, C: Codec<K>> Codec<Windowed<K>> for TimeWindowed<C> {
    fn encode(&self, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<()> {
        self.keys.encode(&value.key, out)?;
        out.extend_from_slice(&value.start.to_be_bytes());
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Windowed<K>> {
        let Some(at) = bytes.len().checked_sub(8) else {
            return Err(decode_error(self.name(), "fewer than 8 bytes"));
        };
        let mut start = [0u8; 8];
        start.copy_from_slice(&bytes[at..]);
        let start = i64::from_be_bytes(start);
        Ok(Windowed {
            key: self.keys.decode(&bytes[..at])?,
            start,
            end: start.saturating_add(self.size),
        })
    }

    fn name(&self) -> &'static str {
        "time-windowed"
    }

    fn is_windowed(&self) -> bool {
        true
    }

    fn unwindowed<'a>(&self, encoded: &'a [u8]) -> &'a [u8] {
        &encoded[..encoded.len().saturating_sub(8)]
    }
}

/// How a window store keys its rows: the start first, ordered as numbers
/// (sign bit flipped, big-endian), so closed windows are a prefix range.
struct WindowStoreKey<K> {
    keys: Arc<dyn Codec<K>>,
    size: i64,
}

impl<K: 'static> Codec<Windowed<K>> for WindowStoreKey<K> {
    fn encode(&self, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&ordered(value.start));
        self.keys.encode(&value.key, out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Windowed<K>> {
        if bytes.len() < 8 {
            return Err(decode_error(self.name(), "fewer than 8 bytes"));
        }
        let start = from_ordered(&bytes[..8]);
        Ok(Windowed {
            key: self.keys.decode(&bytes[8..])?,
            start,
            end: start.saturating_add(self.size),
        })
    }

    fn name(&self) -> &'static str {
        "window-store-key"
    }
}

/// A grouped stream cut into time windows, ready to aggregate.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Aggregations per key and window of `windows`.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        if let Err(e) = windows.check() {
            self.builder().refuse(e);
        }
        TimeWindowedKStream {
            grouped: self.clone(),
            windows,
        }
    }
}

impl<K, V> TimeWindowedKStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// How many records each key had in each window.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate_with("COUNT", materialized, |_, _, count| count.unwrap_or(0) + 1)
    }

    /// Each key's values in each window combined with `combine`.
    pub fn reduce(
        &self,
        combine: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        self.aggregate_with(
            "REDUCE",
            materialized,
            move |_, value, previous| match previous {
                Some(previous) => combine(previous, value),
                None => value,
            },
        )
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
        self.aggregate_with("AGGREGATE", materialized, move |key, value, previous| {
            add(key, value, previous.unwrap_or_else(&initial))
        })
    }

    fn aggregate_with<A>(
        &self,
        kind: &str,
        materialized: Materialized<K, A>,
        combine: impl Fn(&K, V, Option<A>) -> A + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Send + 'static,
    {
        let builder = self.grouped.builder();
        let spec = materialized.spec(|| builder.generated_name("AGGREGATE-STATE-STORE"));
        let input = self.grouped.input(&spec.name);
        let windowed = windowing(&input, self.windows, &spec.name);
        let stored = Materialized {
            keys: Arc::new(WindowStoreKey {
                keys: Arc::clone(&materialized.keys),
                size: self.windows.size,
            }) as Arc<dyn Codec<Windowed<K>>>,
            values: materialized.values,
            name: materialized.name,
            kind: materialized.kind,
            logged: materialized.logged,
        };
        aggregate_into(&windowed, kind, spec, stored, move |w, value, previous| {
            Some(combine(&w.key, value, previous))
        })
        .windowed_with_grace(self.windows.grace)
    }
}

/// The windowing node below `input`: each record once per window it
/// falls in, late ones dropped, closed windows deleted from `store`.
fn windowing<K, V>(
    input: &KStream<K, V>,
    windows: TimeWindows,
    store: &str,
) -> KStream<Windowed<K>, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let builder = &input.builder;
    let node = builder.add_node("WINDOWED", NodeKind::processor(), &[input.node]);
    let children: Children<Windowed<K>, V> = Children::new();
    let below = children.clone();
    let store = store.to_string();
    input.children.add(Arc::new(move |task| {
        let mut below = below.instantiate(task);
        let mut closer = Closer {
            store: task.store(&store),
            windows,
            closed_before: i64::MIN,
        };
        step(move |ctx, r: Record<K, V>| {
            closer.close_windows(ctx)?;
            let mut late = false;
            for start in windows.starts(r.timestamp) {
                if start + windows.size + windows.grace <= ctx.stream_time {
                    late = true;
                    continue;
                }
                let windowed = Windowed {
                    key: r.key.clone(),
                    start,
                    end: start + windows.size,
                };
                let record = Record {
                    key: windowed,
                    value: r.value.clone(),
                    timestamp: r.timestamp,
                    headers: r.headers.clone(),
                };
                below.forward(ctx, record)?;
            }
            if late {
                // Kafka Streams counts it in dropped-records and logs it.
                ctx.skipped += 1;
                tracing::debug!(
                    timestamp = r.timestamp,
                    stream_time = ctx.stream_time,
                    "dropped a record for a closed window"
                );
            }
            Ok(())
        })
    }));
    KStream::new(builder.clone(), node, children)
}

/// Deletes a task's closed windows from its window store.
struct Closer {
    store: StoreId,
    windows: TimeWindows,
    /// Windows starting before this are deleted already.
    closed_before: i64,
}

impl Closer {
    /// Deletes the windows that closed since the last call; a window
    /// `[s, s + size)` is closed once stream time reaches
    /// `s + size + grace`. Scans only when a new window has closed.
    fn close_windows(&mut self, ctx: &mut TaskContext) -> Result<()> {
        let w = self.windows;
        let open_from = ctx.stream_time.saturating_sub(w.size + w.grace) + 1;
        if open_from <= self.closed_before || ctx.stream_time == i64::MIN {
            return Ok(());
        }
        // The next window start at or after open_from: every earlier one
        // is closed.
        let boundary = open_from + (w.advance - open_from.rem_euclid(w.advance)) % w.advance;
        if boundary <= self.closed_before {
            return Ok(());
        }
        let store = ctx.store(self.store);
        for (key, _) in store.range(&[], &ordered(boundary))? {
            store.put(&key, None);
        }
        self.closed_before = boundary;
        Ok(())
    }
}
