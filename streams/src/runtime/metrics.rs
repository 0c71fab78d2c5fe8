//! What an application reports about itself: counters every thread adds
//! to, read as a [`StreamsMetrics`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    processed: AtomicU64,
    skipped: AtomicU64,
    commits: AtomicU64,
    commit_micros: AtomicU64,
    restored: AtomicU64,
    replaced: AtomicU64,
    global_loaded: AtomicU64,
}

/// Counters since the application started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamsMetrics {
    /// Input records run through the topology.
    pub records_processed: u64,
    /// Input records skipped because they did not decode (Kafka Streams'
    /// `dropped-records-total`).
    pub records_skipped: u64,
    pub commits: u64,
    /// Time spent committing (changelogs, offsets, the transaction, the
    /// stores), in microseconds: with `commits`, the commit latency.
    pub commit_micros: u64,
    /// Changelog records applied while restoring stores.
    pub records_restored: u64,
    /// Threads that failed and were replaced.
    pub threads_replaced: u64,
    /// Records of global tables' topics read into their stores.
    pub global_records_loaded: u64,
}

impl Metrics {
    pub fn processed(&self, n: u64) {
        self.processed.fetch_add(n, Relaxed);
    }
    pub fn skipped(&self, n: u64) {
        self.skipped.fetch_add(n, Relaxed);
    }
    pub fn committed(&self, took: std::time::Duration) {
        self.commits.fetch_add(1, Relaxed);
        self.commit_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }
    pub fn restored(&self, n: u64) {
        self.restored.fetch_add(n, Relaxed);
    }
    pub fn thread_replaced(&self) {
        self.replaced.fetch_add(1, Relaxed);
    }
    pub fn global_loaded(&self, n: u64) {
        self.global_loaded.fetch_add(n, Relaxed);
    }
    pub fn snapshot(&self) -> StreamsMetrics {
        StreamsMetrics {
            records_processed: self.processed.load(Relaxed),
            records_skipped: self.skipped.load(Relaxed),
            commits: self.commits.load(Relaxed),
            commit_micros: self.commit_micros.load(Relaxed),
            records_restored: self.restored.load(Relaxed),
            threads_replaced: self.replaced.load(Relaxed),
            global_records_loaded: self.global_loaded.load(Relaxed),
        }
    }
}
