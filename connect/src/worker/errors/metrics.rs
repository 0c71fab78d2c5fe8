//! Each task's error-handling counts, named as Kafka Connect's
//! `task-error-metrics` group names them, so dashboards built for Kafka
//! read the same numbers.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A task's error-handling metrics at one moment (Kafka's
/// `task-error-metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TaskErrorMetrics {
    /// Failed attempts at a record's stage, retried ones included.
    pub total_record_failures: u64,
    /// Records that failed for good (after any retries).
    pub total_record_errors: u64,
    /// Records skipped after an error (`errors.tolerance=all`), dead-
    /// lettered or not; their offsets were committed as if written.
    pub total_records_skipped: u64,
    /// Retries of retriable failures.
    pub total_retries: u64,
    /// Errors written to the log (`errors.log.enable`).
    pub total_errors_logged: u64,
    /// Records sent to the dead-letter topic.
    pub deadletterqueue_produce_requests: u64,
    /// Records the dead-letter topic could not take.
    pub deadletterqueue_produce_failures: u64,
    /// When the last error happened, in milliseconds since the epoch; 0
    /// before the first, as Kafka's metric shows it.
    pub last_error_timestamp: i64,
}

/// The live counts behind [`TaskErrorMetrics`], updated by a task and
/// read by the worker.
#[derive(Debug, Default)]
pub(crate) struct ErrorCounters {
    record_failures: AtomicU64,
    record_errors: AtomicU64,
    records_skipped: AtomicU64,
    retries: AtomicU64,
    errors_logged: AtomicU64,
    dead_letter_requests: AtomicU64,
    dead_letter_failures: AtomicU64,
    last_error_timestamp: AtomicI64,
}

/// Counts are independent of one another and of any other memory, so the
/// cheapest ordering is enough.
const ORDER: Ordering = Ordering::Relaxed;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl ErrorCounters {
    pub(crate) fn failure(&self) {
        self.record_failures.fetch_add(1, ORDER);
    }

    /// A record failed for good, now.
    pub(crate) fn error(&self) {
        self.record_errors.fetch_add(1, ORDER);
        self.last_error_timestamp.store(now_ms(), ORDER);
    }

    pub(crate) fn skipped(&self, records: u64) {
        self.records_skipped.fetch_add(records, ORDER);
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, ORDER);
    }

    pub(crate) fn logged(&self) {
        self.errors_logged.fetch_add(1, ORDER);
    }

    pub(crate) fn dead_letter_request(&self) {
        self.dead_letter_requests.fetch_add(1, ORDER);
    }

    pub(crate) fn dead_letter_failure(&self) {
        self.dead_letter_failures.fetch_add(1, ORDER);
    }

    pub(crate) fn snapshot(&self) -> TaskErrorMetrics {
        TaskErrorMetrics {
            total_record_failures: self.record_failures.load(ORDER),
            total_record_errors: self.record_errors.load(ORDER),
            total_records_skipped: self.records_skipped.load(ORDER),
            total_retries: self.retries.load(ORDER),
            total_errors_logged: self.errors_logged.load(ORDER),
            deadletterqueue_produce_requests: self.dead_letter_requests.load(ORDER),
            deadletterqueue_produce_failures: self.dead_letter_failures.load(ORDER),
            last_error_timestamp: self.last_error_timestamp.load(ORDER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_carry_kafkas_names() {
        let counters = ErrorCounters::default();
        counters.failure();
        counters.failure();
        counters.error();
        counters.skipped(3);
        counters.dead_letter_request();
        let metrics = counters.snapshot();
        assert_eq!(metrics.total_record_failures, 2);
        assert_eq!(metrics.total_records_skipped, 3);
        assert!(metrics.last_error_timestamp > 0);
        let json = serde_json::to_value(metrics).unwrap();
        assert_eq!(json["total-record-errors"], 1);
        assert_eq!(json["deadletterqueue-produce-requests"], 1);
        assert_eq!(json["deadletterqueue-produce-failures"], 0);
    }
}
