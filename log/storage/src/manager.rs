//! [`LogManager`]: the partition logs of a broker and the background work on
//! them. One maintenance thread applies `flush.ms` and retention to local
//! logs; one cleaner thread compacts. A replicated log (a Raft replica's)
//! is only compacted and closed here: it is synced by its Raft log store,
//! and its retention goes through openraft (spool-raft). Both work on one
//! log at a time through the log's own methods, so appends and reads on other logs (and on the same log, outside
//! the brief swap of a cleaned segment) are never blocked by them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::log::PartitionLog;
use crate::Result;

/// Timing of the background threads.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// How often `flush.ms` deadlines are checked (default 50 ms): the
    /// granularity of time-based fsync, cheap because an idle log is skipped.
    pub flush_check_interval: Duration,
    /// How often retention runs (default 5 minutes, Kafka's
    /// `log.retention.check.interval.ms`): retention frees whole segments, so
    /// running it more often buys nothing.
    pub retention_check_interval: Duration,
    /// Pause between cleaner sweeps (default 15 s, Kafka's
    /// `log.cleaner.backoff.ms`).
    pub cleaner_backoff: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            flush_check_interval: Duration::from_millis(50),
            retention_check_interval: Duration::from_secs(300),
            cleaner_backoff: Duration::from_secs(15),
        }
    }
}

/// A log and whether its flushing and retention are the manager's.
#[derive(Clone)]
struct Managed {
    log: Arc<PartitionLog>,
    local: bool,
}

type LogMap = RwLock<BTreeMap<String, Managed>>;

/// A stop flag the background threads sleep on.
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    /// Sleeps up to `timeout`; returns true once stop was requested.
    fn wait(&self, timeout: Duration) -> bool {
        let mut stopped = self.stopped.lock();
        if !*stopped {
            self.wake.wait_for(&mut stopped, timeout);
        }
        *stopped
    }
}

/// Owns named partition logs and runs their background work.
pub struct LogManager {
    logs: Arc<LogMap>,
    stop: Arc<Stop>,
    threads: Vec<JoinHandle<()>>,
}

impl LogManager {
    pub fn start(config: ManagerConfig) -> LogManager {
        let logs: Arc<LogMap> = Arc::default();
        let stop = Arc::new(Stop {
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        });
        let maintenance = {
            let (logs, stop, config) = (Arc::clone(&logs), Arc::clone(&stop), config.clone());
            std::thread::Builder::new()
                .name("log-maintenance".into())
                .spawn(move || maintenance_loop(&logs, &stop, &config))
                .expect("spawning a thread")
        };
        let cleaner = {
            let (logs, stop) = (Arc::clone(&logs), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("log-cleaner".into())
                .spawn(move || cleaner_loop(&logs, &stop, config.cleaner_backoff))
                .expect("spawning a thread")
        };
        LogManager {
            logs,
            stop,
            threads: vec![maintenance, cleaner],
        }
    }

    /// Takes on every background duty of a local log.
    pub fn insert(&self, name: impl Into<String>, log: Arc<PartitionLog>) {
        let managed = Managed { log, local: true };
        self.logs.write().insert(name.into(), managed);
    }

    /// Takes on compaction and the closing of a Raft replica's log, whose
    /// syncs and retention are the replica's.
    pub fn insert_replicated(&self, name: impl Into<String>, log: Arc<PartitionLog>) {
        let managed = Managed { log, local: false };
        self.logs.write().insert(name.into(), managed);
    }

    pub fn get(&self, name: &str) -> Option<Arc<PartitionLog>> {
        self.logs.read().get(name).map(|m| Arc::clone(&m.log))
    }

    pub fn remove(&self, name: &str) -> Option<Arc<PartitionLog>> {
        self.logs.write().remove(name).map(|m| m.log)
    }

    pub fn names(&self) -> Vec<String> {
        self.logs.read().keys().cloned().collect()
    }

    /// Stops the background threads and closes every log (flush, indexes,
    /// checkpoint), so the next start recovers nothing. Every log is
    /// closed even when one fails (a log whose fsync failed refuses to);
    /// the first failure is returned.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_threads();
        let logs: Vec<_> = self.logs.read().values().cloned().collect();
        let mut first_failure = None;
        for managed in logs {
            if let Err(e) = managed.log.close() {
                tracing::error!(dir = %managed.log.dir().display(), error = %e, "cannot close a log");
                first_failure.get_or_insert(e);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    fn stop_threads(&mut self) {
        *self.stop.stopped.lock() = true;
        self.stop.wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for LogManager {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// The managed logs, local ones only when `local_only`.
fn snapshot(logs: &LogMap, local_only: bool) -> Vec<(String, Arc<PartitionLog>)> {
    logs.read()
        .iter()
        .filter(|(_, m)| m.local || !local_only)
        .map(|(n, m)| (n.clone(), Arc::clone(&m.log)))
        .collect()
}

fn maintenance_loop(logs: &LogMap, stop: &Stop, config: &ManagerConfig) {
    let mut last_retention = Instant::now();
    while !stop.wait(config.flush_check_interval) {
        let retention_due = last_retention.elapsed() >= config.retention_check_interval;
        for (name, log) in snapshot(logs, true) {
            if let Err(e) = log.flush_if_due() {
                tracing::error!(log = %name, error = %e, "scheduled flush failed");
            }
            if retention_due {
                if let Err(e) = log.apply_retention() {
                    tracing::error!(log = %name, error = %e, "retention failed");
                }
            }
        }
        if retention_due {
            last_retention = Instant::now();
        }
    }
}

fn cleaner_loop(logs: &LogMap, stop: &Stop, backoff: Duration) {
    while !stop.wait(backoff) {
        for (name, log) in snapshot(logs, false) {
            match log.clean_if_dirty() {
                Ok(Some(outcome)) => tracing::info!(log = %name, ?outcome, "compacted"),
                Ok(None) => {}
                Err(e) => tracing::error!(log = %name, error = %e, "cleaning failed"),
            }
        }
    }
}
