//! What an application reports about itself: counters every thread adds
//! to, read as a [`StreamsMetrics`] snapshot; each task's own figures
//! ([`TaskMetrics`]), published by its thread after every polled batch;
//! and both rendered in Prometheus' text format for the instance's
//! metrics endpoint (`StreamsConfig::metrics_listen`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

use super::task::TaskId;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    processed: AtomicU64,
    skipped: AtomicU64,
    commits: AtomicU64,
    commit_micros: AtomicU64,
    restored: AtomicU64,
    replaced: AtomicU64,
    global_loaded: AtomicU64,
    tasks: Mutex<BTreeMap<TaskId, TaskMetrics>>,
}

/// Counters since the application started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamsMetrics {
    /// Input records run through the topology.
    pub records_processed: u64,
    /// Input records skipped because they did not decode, failed
    /// processing under log-and-continue, or came for a closed window
    /// (Kafka Streams' `dropped-records-total`).
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

/// A per-task series: name, Prometheus type, help, and its value.
type TaskFigure = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TaskMetrics) -> u64,
);

/// One task's figures, as its thread last published them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Input records it processed since it was opened here.
    pub records_processed: u64,
    /// Changelog records it restored when it was opened here.
    pub records_restored: u64,
    /// Records of its input partitions not fetched yet (the consumer's
    /// view at its last fetch).
    pub records_lag: u64,
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

    /// Replaces the figures of a thread's tasks: `owned` are all the tasks
    /// it runs now, `gone` those it stopped running.
    pub fn publish_tasks(
        &self,
        owned: impl Iterator<Item = (TaskId, TaskMetrics)>,
        gone: &[TaskId],
    ) {
        let mut tasks = self.tasks.lock();
        for id in gone {
            tasks.remove(id);
        }
        tasks.extend(owned);
    }

    pub fn tasks(&self) -> Vec<(TaskId, TaskMetrics)> {
        self.tasks.lock().iter().map(|(id, m)| (*id, *m)).collect()
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

    /// Everything in Prometheus' text format, labelled with the
    /// application id (and the task, for a task's figures).
    pub fn render(&self, application: &str) -> String {
        let s = self.snapshot();
        let app = application.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::new();
        let counters = [
            (
                "records_processed_total",
                "Input records processed.",
                s.records_processed,
            ),
            (
                "records_skipped_total",
                "Input records skipped (bad input, closed windows).",
                s.records_skipped,
            ),
            ("commits_total", "Commits finished.", s.commits),
            (
                "records_restored_total",
                "Changelog records restored.",
                s.records_restored,
            ),
            (
                "threads_replaced_total",
                "Failed threads replaced.",
                s.threads_replaced,
            ),
            (
                "global_records_loaded_total",
                "Global table records loaded.",
                s.global_records_loaded,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP spool_streams_{name} {help}\n# TYPE spool_streams_{name} counter"
            );
            let _ = writeln!(out, "spool_streams_{name}{{application=\"{app}\"}} {value}");
        }
        let seconds = s.commit_micros as f64 / 1e6;
        let _ = writeln!(out, "# HELP spool_streams_commit_seconds_total Time spent committing.\n# TYPE spool_streams_commit_seconds_total counter");
        let _ = writeln!(
            out,
            "spool_streams_commit_seconds_total{{application=\"{app}\"}} {seconds}"
        );
        let tasks = self.tasks();
        let per_task: [TaskFigure; 3] = [
            (
                "task_records_processed_total",
                "counter",
                "Input records a task processed here.",
                |m| m.records_processed,
            ),
            (
                "task_records_restored_total",
                "counter",
                "Changelog records a task restored here.",
                |m| m.records_restored,
            ),
            (
                "task_records_lag",
                "gauge",
                "Records of a task's inputs not fetched yet.",
                |m| m.records_lag,
            ),
        ];
        for (name, kind, help, value) in per_task {
            let _ = writeln!(
                out,
                "# HELP spool_streams_{name} {help}\n# TYPE spool_streams_{name} {kind}"
            );
            for (id, metrics) in &tasks {
                let _ = writeln!(
                    out,
                    "spool_streams_{name}{{application=\"{app}\",task=\"{id}\"}} {}",
                    value(metrics)
                );
            }
        }
        out
    }
}
