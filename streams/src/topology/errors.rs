//! What a task does with a record it cannot handle: one that does not
//! decode, or one whose processing fails. Either is skipped (logged,
//! counted, and written to the dead-letter topic when one is set) or
//! stops the task, as configured.
//!
//! Dead letters carry the record's key, value and headers as read, plus
//! Kafka Streams' dead-letter headers (KIP-1034), so tools written for
//! Kafka Streams' dead-letter queues read them alike.

use super::{OutputRecord, RawRecord};
use crate::record::Header;
use crate::StreamsError;

/// What to do with a record whose key or value does not decode (Kafka
/// Streams' `deserialization.exception.handler`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnDecodeError {
    /// Skip it, log it and count it (the default: one poison record must
    /// not stop an application; the count shows it happened).
    #[default]
    LogAndContinue,
    /// Stop the task with the error.
    Fail,
}

/// What to do with a record whose processing returned an error (Kafka
/// Streams' `processing.exception.handler`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnProcessingError {
    /// Stop the task (the default, as in Kafka Streams: a failing
    /// processor is a bug to see, not to skip over).
    #[default]
    Fail,
    /// Skip the record, log it, count it. Store writes it made before
    /// failing stay.
    LogAndContinue,
}

/// A task's error policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorHandling {
    pub on_decode_error: OnDecodeError,
    pub on_processing_error: OnProcessingError,
    /// `errors.dead.letter.queue.topic.name`: skipped records go here
    /// (none by default).
    pub dead_letter_topic: Option<String>,
}

/// Where the record being processed came from, for dead letters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Origin {
    pub topic: String,
    pub partition: Option<u32>,
    pub offset: Option<u64>,
}

/// KIP-1034's header names.
const EXCEPTION: &str = "__streams.errors.exception";
const MESSAGE: &str = "__streams.errors.message";
const TOPIC: &str = "__streams.errors.topic";
const PARTITION: &str = "__streams.errors.partition";
const OFFSET: &str = "__streams.errors.offset";

/// The dead letter of `raw`, which failed with `error` at `stage`.
pub(crate) fn dead_letter(
    topic: &str,
    raw: &RawRecord<'_>,
    origin: &Origin,
    stage: &str,
    error: &StreamsError,
) -> OutputRecord {
    let header = |key: &str, value: String| Header {
        key: key.to_string(),
        value: Some(value.into_bytes()),
    };
    let mut headers = raw.headers.to_vec();
    headers.push(header(EXCEPTION, format!("spool_streams::{stage}")));
    headers.push(header(MESSAGE, error.to_string()));
    headers.push(header(TOPIC, origin.topic.clone()));
    if let Some(partition) = origin.partition {
        headers.push(header(PARTITION, partition.to_string()));
    }
    if let Some(offset) = origin.offset {
        headers.push(header(OFFSET, offset.to_string()));
    }
    OutputRecord {
        topic: topic.into(),
        key: raw.key.map(<[u8]>::to_vec),
        value: raw.value.map(<[u8]>::to_vec),
        timestamp: raw.timestamp,
        headers,
        partition: None,
    }
}
