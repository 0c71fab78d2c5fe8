//! Retries of a failing operation with Kafka Connect's backoff (from
//! `RETRIES_DELAY_MIN_MS`, doubling, with jitter, up to
//! `errors.retry.delay.max.ms`), until `errors.retry.timeout` or the
//! connector's stop.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::{is_retriable, ErrorCounters};
use crate::worker::task::Target;
use crate::{ConnectError, Result};

/// Kafka's first retry delay (`RETRIES_DELAY_MIN_MS`), doubled for each
/// retry after it.
const RETRY_DELAY_MIN: Duration = Duration::from_millis(300);

/// The retries of one operation: each retriable failure waits Kafka's
/// backoff and is tried again, until `errors.retry.timeout` from the
/// first attempt, or until the connector stops.
pub(crate) struct Retry {
    /// `None`: retry for ever.
    pub(super) deadline: Option<Instant>,
    pub(super) delay_max: Duration,
    pub(super) attempt: u32,
    pub(super) counters: Arc<ErrorCounters>,
    pub(super) target: watch::Receiver<Target>,
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
