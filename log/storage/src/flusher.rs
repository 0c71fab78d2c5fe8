//! Background fsync for one log, so that appends keep filling the page cache
//! while the device syncs what came before. Without a flusher, a due flush
//! runs inline in the append that made it due.
//!
//! The fsync cadence stays what the policy says: an append that makes a
//! flush due waits while an earlier request has not started yet, so requests
//! never merge: there is one fsync per `flush.bytes` appended, and at most
//! about three intervals of data are unsynced (one being synced, one waiting,
//! one being appended). Appends overlap with the sync of earlier intervals.
//!
//! The flusher thread holds only a `Weak` reference: it never keeps a log
//! alive, and it exits once the log is dropped.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
pub(crate) struct FlushSignal {
    state: Mutex<SignalState>,
    wake: Condvar,
}

#[derive(Default)]
struct SignalState {
    requested: bool,
    in_flight: bool,
    stopped: bool,
}

impl FlushSignal {
    /// Waits until no flush is waiting to start (one may be running), then
    /// requests one.
    pub fn request_when_idle(&self) {
        let mut state = self.state.lock();
        while state.requested && !state.stopped {
            self.wake.wait(&mut state);
        }
        state.requested = true;
        self.wake.notify_all();
    }

    /// True once stopped (or when the thread never started): flushes then
    /// run inline again.
    pub fn is_stopped(&self) -> bool {
        self.state.lock().stopped
    }

    pub fn stop(&self) {
        self.state.lock().stopped = true;
        self.wake.notify_all();
    }

    /// Waits for a request and marks it running; false once stopped.
    fn next(&self) -> bool {
        let mut state = self.state.lock();
        while !state.requested && !state.stopped {
            self.wake.wait(&mut state);
        }
        state.requested = false;
        state.in_flight = true;
        !state.stopped
    }

    fn finished(&self) {
        self.state.lock().in_flight = false;
        self.wake.notify_all();
    }
}

/// Starts the flusher thread `name`: on each request it calls `flush`,
/// which answers false once its log is gone (the thread then exits).
/// The caller's closure holds the log weakly (see the module's comment).
pub(crate) fn spawn(
    name: String,
    signal: Arc<FlushSignal>,
    mut flush: impl FnMut() -> bool + Send + 'static,
) {
    let signal_for_failure = Arc::clone(&signal);
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        while signal.next() {
            let alive = flush();
            signal.finished();
            if !alive {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a flusher thread; flushes stay inline");
        signal_for_failure.stop();
    }
}
