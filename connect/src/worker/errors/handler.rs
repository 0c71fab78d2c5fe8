//! A task's error handler: reports a failed record (log, dead-letter
//! topic, counts) and then fails the task or skips the record, as
//! `errors.tolerance` says; and retries retriable failures with Kafka's
//! backoff (Kafka's `RetryWithToleranceOperator`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use spool_client::{ConsumerRecord, ProducerRecord};
use tokio::sync::watch;

use super::dead_letter::DeadLetterQueue;
use super::{is_retriable, ErrorCounters, ErrorPolicy, Failure, Tolerance};
use crate::api::context::partition_key;
use crate::api::{SourceOffset, SourcePartition, Value};
use crate::convert::Converter;
use crate::transforms::TransformRecord;
use crate::worker::task::{Target, TaskSetup};
use crate::{ConnectError, Result};

/// Kafka's first retry delay (`RETRIES_DELAY_MIN_MS`), doubled for each
/// retry after it.
const RETRY_DELAY_MIN: Duration = Duration::from_millis(300);

/// The record a failure concerns, as a report needs it.
pub(crate) enum Original<'a> {
    /// A sink's record as consumed.
    Consumed(&'a ConsumerRecord),
    /// A source record as polled, before transforms, with what writes it.
    Polled {
        record: &'a TransformRecord,
        source_partition: &'a SourcePartition,
        source_offset: &'a SourceOffset,
        key: &'a dyn Converter,
        value: &'a dyn Converter,
    },
    /// A source record as produced.
    Produced(&'a ProducerRecord),
    /// Not kept: nothing asked for it (no dead-letter topic, no record in
    /// the log).
    Omitted,
}

fn json_text(value: Option<&Value>) -> String {
    value.map_or_else(|| "null".to_string(), Value::to_string)
}

fn bytes_text(raw: Option<&Bytes>) -> String {
    raw.map_or_else(
        || "null".to_string(),
        |b| String::from_utf8_lossy(b).into_owned(),
    )
}

impl Original<'_> {
    /// The record for a log line, as Kafka's `LogReporter` shows it: a
    /// sink record by its place only, a source record in full.
    fn describe(&self) -> String {
        match self {
            Original::Consumed(r) => format!(
                ", where consumed record is {{topic='{}', partition={}, offset={}, timestamp={}}}",
                r.topic, r.partition, r.offset, r.timestamp
            ),
            Original::Polled {
                record,
                source_partition,
                source_offset,
                ..
            } => format!(
                ", where source record is {{topic='{}', partition={:?}, key={}, value={}, \
                 headers={:?}, timestamp={:?}, sourcePartition={}, sourceOffset={}}}",
                record.topic,
                record.partition,
                json_text(record.key.as_ref()),
                json_text(record.value.as_ref()),
                record.headers,
                record.timestamp,
                partition_key(source_partition),
                partition_key(source_offset)
            ),
            Original::Produced(r) => format!(
                ", where source record is {{topic='{}', partition={:?}, key={}, value={}, \
                 timestamp={:?}}}",
                r.topic,
                r.partition,
                bytes_text(r.key.as_ref()),
                bytes_text(r.value.as_ref()),
                r.timestamp
            ),
            Original::Omitted => String::new(),
        }
    }
}

/// A task's error handler (see the module's comment).
pub(crate) struct ErrorHandler {
    policy: Arc<super::ErrorPolicy>,
    counters: Arc<ErrorCounters>,
    connector: String,
    task: u32,
    dead_letters: Option<DeadLetterQueue>,
    /// To stop retrying once the connector is stopped.
    target: watch::Receiver<Target>,
}

impl ErrorHandler {
    /// The handler of the task `setup` describes; creates its connector's
    /// dead-letter topic if there is one and it does not exist yet.
    pub(crate) async fn open(setup: &TaskSetup) -> Result<ErrorHandler> {
        let policy = Arc::clone(&setup.pipeline.errors);
        let dead_letters =
            DeadLetterQueue::open(&setup.client, &policy, &setup.connector, setup.id).await?;
        Ok(ErrorHandler {
            counters: setup.status.error_counters(setup.id),
            connector: setup.connector.clone(),
            task: setup.id,
            dead_letters,
            target: setup.target.clone(),
            policy,
        })
    }

    pub(crate) fn policy(&self) -> &ErrorPolicy {
        &self.policy
    }

    /// Retries of one operation, from now.
    pub(crate) fn retry(&self) -> Retry {
        Retry {
            deadline: self
                .policy
                .retry_timeout
                .and_then(|timeout| Instant::now().checked_add(timeout)),
            delay_max: self.policy.retry_delay_max,
            attempt: 0,
            counters: Arc::clone(&self.counters),
            target: self.target.clone(),
        }
    }

    /// Reports `failure` of `original` (log, dead letter, counts); then
    /// `Ok` to skip the record (`errors.tolerance=all`), or the error that
    /// fails the task. A dead letter that cannot be written fails the
    /// task whatever the tolerance: skipping its record would lose it.
    pub(crate) async fn failed(&self, failure: Failure, original: Original<'_>) -> Result<()> {
        self.counters.failure();
        self.counters.error();
        if self.policy.log_enable {
            self.log(&failure, &original);
            self.counters.logged();
        }
        if let Some(queue) = &self.dead_letters {
            self.dead_letter(queue, &failure, &original).await?;
        }
        match self.policy.tolerance {
            Tolerance::All => {
                self.counters.skipped(1);
                Ok(())
            }
            Tolerance::None => Err(ConnectError::Task(format!(
                "Tolerance exceeded in error handler: stage {} with class {} failed: {}",
                failure.stage.name(),
                failure.class,
                failure.error.trace()
            ))),
        }
    }

    async fn dead_letter(
        &self,
        queue: &DeadLetterQueue,
        failure: &Failure,
        original: &Original<'_>,
    ) -> Result<()> {
        self.counters.dead_letter_request();
        let Some(letter) = queue.letter(failure, original) else {
            // Kafka counts a report without its record as a failed one.
            self.counters.dead_letter_failure();
            tracing::warn!(
                connector = %self.connector,
                task = self.task,
                "a failed record was not kept; nothing was written to the dead-letter topic"
            );
            return Ok(());
        };
        if let Err(error) = queue.write(letter, self.retry()).await {
            self.counters.dead_letter_failure();
            return Err(error);
        }
        Ok(())
    }

    /// `records` source records the producer could not deliver (KIP-779):
    /// with `errors.tolerance=all` they are logged and skipped (their
    /// source offsets are committed); else `error` fails the task.
    pub(crate) fn undelivered(&self, error: ConnectError, records: usize) -> Result<()> {
        self.counters.failure();
        self.counters.error();
        if self.policy.tolerance == Tolerance::None {
            return Err(error);
        }
        tracing::error!(
            connector = %self.connector,
            task = self.task,
            records,
            error = %error.trace(),
            "source records could not be delivered; skipping them (errors.tolerance=all)"
        );
        self.counters.logged();
        self.counters
            .skipped(u64::try_from(records).unwrap_or(u64::MAX));
        Ok(())
    }

    /// Kafka's `LogReporter` line.
    fn log(&self, failure: &Failure, original: &Original<'_>) {
        let record = match self.policy.log_include_messages {
            true => original.describe(),
            false => String::new(),
        };
        tracing::error!(
            connector = %self.connector,
            task = self.task,
            error = %failure.error.trace(),
            "Error encountered in task {}-{}. Executing stage '{}' with class '{}'{}.",
            self.connector,
            self.task,
            failure.stage.name(),
            failure.class,
            record
        );
    }
}

/// The retries of one operation: each retriable failure waits Kafka's
/// backoff and is tried again, until `errors.retry.timeout` from the
/// first attempt, or until the connector stops.
pub(crate) struct Retry {
    /// `None`: retry for ever.
    deadline: Option<Instant>,
    delay_max: Duration,
    attempt: u32,
    counters: Arc<ErrorCounters>,
    target: watch::Receiver<Target>,
}

impl Retry {
    /// `Ok` once it is time to try again after `error`; `Err(error)` when
    /// it is not retriable, the time is up, or the connector stops.
    pub(crate) async fn after(&mut self, error: ConnectError) -> Result<()> {
        if !is_retriable(&error) {
            return Err(error);
        }
        let now = Instant::now();
        let remaining = match self.deadline {
            Some(deadline) if deadline <= now => return Err(error),
            Some(deadline) => deadline - now,
            None => Duration::MAX,
        };
        self.attempt = self.attempt.saturating_add(1);
        let delay = backoff(self.attempt, self.delay_max).min(remaining);
        self.counters.failure();
        tracing::debug!(error = %error, attempt = self.attempt, delay = ?delay, "retrying");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopping(&mut self.target) => return Err(error),
        }
        self.counters.retry();
        Ok(())
    }
}

/// Kafka's backoff before retry `attempt` (from 1): 300 ms doubled each
/// time; past `max`, a random delay below `max`, so that many tasks
/// failing together do not retry together.
fn backoff(attempt: u32, max: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    let exponential = RETRY_DELAY_MIN.saturating_mul(factor);
    if exponential <= max {
        return exponential;
    }
    // The clock's nanoseconds are random enough for jitter, and need no
    // random-number generator.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    max.mul_f64(f64::from(nanos) / 1e9)
}

/// Resolves once the connector is stopped (or gone).
async fn stopping(target: &mut watch::Receiver<Target>) {
    loop {
        if *target.borrow_and_update() == Target::Stopped {
            return;
        }
        if target.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_300_ms_up_to_the_maximum() {
        let max = Duration::from_secs(2);
        assert_eq!(backoff(1, max), Duration::from_millis(300));
        assert_eq!(backoff(2, max), Duration::from_millis(600));
        assert_eq!(backoff(3, max), Duration::from_millis(1_200));
        assert!(backoff(4, max) < max, "jitter below the maximum");
        assert!(backoff(40, max) < max);
        assert_eq!(backoff(5, Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn only_retriable_errors_are_retried_and_only_in_time() {
        let (sender, receiver) = watch::channel(Target::Started);
        // No delay (a zero maximum), so the test does not wait.
        let mut retry = Retry {
            deadline: Instant::now().checked_add(Duration::from_secs(60)),
            delay_max: Duration::ZERO,
            attempt: 0,
            counters: Arc::new(ErrorCounters::default()),
            target: receiver,
        };
        let timeout = || ConnectError::client("x", spool_client::ClientError::Timeout("t".into()));
        assert!(retry.after(timeout()).await.is_ok());
        assert!(retry.after(timeout()).await.is_ok());
        let data = ConnectError::Task("no".into());
        assert!(retry.after(data).await.is_err(), "not retriable");
        retry.deadline = Some(Instant::now());
        assert!(retry.after(timeout()).await.is_err(), "the time is up");
        assert_eq!(retry.counters.snapshot().total_retries, 2);

        // Retrying for ever, 300 ms away: a stop ends it at once.
        let mut forever = Retry {
            deadline: None,
            delay_max: Duration::from_secs(60),
            attempt: 0,
            ..retry
        };
        sender.send_replace(Target::Stopped);
        assert!(forever.after(timeout()).await.is_err(), "stopped");
    }
}
