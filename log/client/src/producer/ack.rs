//! Acknowledgements: one outcome per batch, shared by all its records.
//!
//! A record's future holds the batch's [`BatchAck`] and its index in the
//! batch, so sending a record costs a reference count, not a channel. The
//! request that carries the batch sets the outcome once; every record of the
//! batch reads it.

use std::sync::{Arc, OnceLock};

use tokio::sync::{Notify, Semaphore};

use super::RecordMetadata;
use crate::{ClientError, Result};
use spool_protocol::proto::ErrorCode;

/// How a batch ended.
#[derive(Clone, Debug)]
pub(super) enum Outcome {
    /// Appended at this base offset (`None`: acks=none, nobody waited).
    Appended(Option<u64>),
    /// The broker refused it with this code.
    Refused { code: ErrorCode, message: String },
    /// The request failed in transport after the last retry.
    Unreachable { reason: String },
    /// The producer stopped before the batch was answered.
    Abandoned,
}

/// The outcome of one batch, set once, awaited by each of its records.
pub(super) struct BatchAck {
    topic: Arc<str>,
    partition: u32,
    outcome: OnceLock<Outcome>,
    done: Notify,
}

impl BatchAck {
    pub(super) fn new(topic: Arc<str>, partition: u32) -> Arc<BatchAck> {
        Arc::new(BatchAck {
            topic,
            partition,
            outcome: OnceLock::new(),
            done: Notify::new(),
        })
    }

    pub(super) fn topic(&self) -> &str {
        &self.topic
    }

    pub(super) fn partition(&self) -> u32 {
        self.partition
    }

    /// Sets the outcome and wakes every waiting record. Later calls do
    /// nothing: the first outcome is the true one.
    pub(super) fn complete(&self, outcome: Outcome) {
        if self.outcome.set(outcome).is_ok() {
            self.done.notify_waiters();
        }
    }

    /// Waits until the outcome is set.
    pub(super) async fn wait(&self) -> &Outcome {
        loop {
            // Registered before the check: a `notify_waiters` between the
            // check and the await still wakes this future.
            let notified = self.done.notified();
            if let Some(outcome) = self.outcome.get() {
                return outcome;
            }
            notified.await;
        }
    }

    /// The acknowledgement of the record at `index` in this batch.
    pub(super) async fn record(self: Arc<Self>, index: u32) -> Result<RecordMetadata> {
        let outcome = self.wait().await;
        self.result_at(outcome, index)
    }

    /// The acknowledgements of `count` records from `first`, read with one
    /// wait.
    pub(super) async fn records(
        &self,
        first: u32,
        count: u32,
        results: &mut Vec<RecordMetadata>,
    ) -> Result<()> {
        let outcome = self.wait().await;
        for index in first..first + count {
            results.push(self.result_at(outcome, index)?);
        }
        Ok(())
    }

    fn result_at(&self, outcome: &Outcome, index: u32) -> Result<RecordMetadata> {
        match outcome {
            Outcome::Appended(base) => Ok(RecordMetadata {
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                offset: base.map(|b| b + u64::from(index)),
            }),
            Outcome::Refused { code, message } => Err(ClientError::Broker {
                code: *code,
                message: message.clone(),
            }),
            Outcome::Unreachable { reason } => Err(ClientError::Transport {
                address: String::new(),
                reason: reason.clone(),
            }),
            Outcome::Abandoned => Err(super::closed()),
        }
    }
}

/// Ownership of a batch's acknowledgement and buffer space, from its first
/// record to its answer. Dropped unanswered (the producer stopped, a task
/// panicked), it fails the batch's records instead of leaving them waiting
/// forever, and it always gives the buffer space back.
pub(super) struct BatchHandle {
    pub(super) ack: Arc<BatchAck>,
    buffer: Arc<Semaphore>,
    records: u32,
}

impl BatchHandle {
    pub(super) fn new(ack: Arc<BatchAck>, buffer: Arc<Semaphore>) -> BatchHandle {
        BatchHandle {
            ack,
            buffer,
            records: 0,
        }
    }

    /// Counts one more record (its buffer permit was taken by the sender).
    pub(super) fn add_record(&mut self) -> u32 {
        self.records += 1;
        self.records - 1
    }
}

impl Drop for BatchHandle {
    fn drop(&mut self) {
        self.ack.complete(Outcome::Abandoned);
        self.buffer.add_permits(self.records as usize);
    }
}
