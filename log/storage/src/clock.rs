//! Wall-clock time for rolling and retention, replaceable in tests, and
//! [`SteadyClock`]: the wall clock as a broker keeps it, immune to steps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that moves only when told to; for deterministic tests.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn new(now_ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(now_ms)))
    }
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst)
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Wall-clock milliseconds that never jump: the wall clock read once, when
/// the clock is made, plus the monotonic time elapsed since. What a broker
/// runs on (retention, segment rolls, transaction timeouts, producer-id
/// expiry), so that a step of the system clock while it runs (NTP stepping
/// it, an operator setting it, a virtual machine resumed) neither deletes
/// data early by retention (a step forward would make every segment look
/// old), nor aborts open transactions, nor holds back rolls and retention
/// for as long as a step back. The monotonic clock follows NTP's gradual
/// corrections (slewing), so only steps are ignored; [`SteadyClock::step_ms`]
/// says how far the wall clock has been stepped since, for a warning, and
/// the broker takes the wall clock's time again when it restarts.
#[derive(Debug)]
pub struct SteadyClock {
    wall: Arc<dyn Clock>,
    wall_at_start: u64,
    start: Instant,
}

impl SteadyClock {
    /// Keeps time from `wall` as it reads now (the system clock in a
    /// broker; a test's jumping clock in tests).
    pub fn over(wall: Arc<dyn Clock>) -> SteadyClock {
        SteadyClock {
            wall_at_start: wall.now_ms(),
            wall,
            start: Instant::now(),
        }
    }

    /// How far the wall clock is from this clock now, in milliseconds
    /// (positive: the wall clock is ahead): the sum of the steps since this
    /// clock was made, give or take a millisecond.
    pub fn step_ms(&self) -> i64 {
        self.wall.now_ms() as i64 - self.now_ms() as i64
    }
}

impl Clock for SteadyClock {
    fn now_ms(&self) -> u64 {
        self.wall_at_start + self.start.elapsed().as_millis() as u64
    }
}
