//! A task's error handler: reports a failed record (log, dead-letter
//! topic, counts) and then fails the task or skips the record, as
//! `errors.tolerance` says; and retries retriable failures with Kafka's
//! backoff (Kafka's `RetryWithToleranceOperator`).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::dead_letter::DeadLetterQueue;
use super::original::Original;
use super::retry::Retry;
use super::{ErrorCounters, ErrorPolicy, Failure, Tolerance};
use crate::worker::task::{Target, TaskSetup};
use crate::{ConnectError, Result};

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
