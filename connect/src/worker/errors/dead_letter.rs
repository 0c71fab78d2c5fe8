//! The dead-letter topic (`errors.deadletterqueue.topic.name`): what a
//! dead letter holds, and Kafka's error-context headers.
//!
//! A sink's dead letter is the consumed record as it was read: its key,
//! value, headers and timestamp bytes, untouched (Kafka's). A source's is
//! the record as the task polled it, before any transform, written by the
//! connector's converters; where a converter cannot write it, the key or
//! value is its JSON text instead. A source record the broker refused is
//! the record as it was produced.
//!
//! With `errors.deadletterqueue.context.headers.enable`, the original
//! headers are followed by Kafka's, each a UTF-8 string:
//! `__connect.errors.topic`, `.partition` and `.offset` (where the record
//! was; a source record has no offset, and a partition only if it names
//! one), `.connector.name`, `.task.id`, `.stage` (`VALUE_CONVERTER`,
//! `TRANSFORMATION`, ...), `.class.name` (the converter's or transform's
//! Kafka class), `.exception.class.name` (Kafka's exception class for the
//! error), `.exception.message` and `.exception.stacktrace` (the error
//! with its causes, one per line: what a Rust error has for a stack). A
//! source record's dead letter also carries spool's
//! `__connect.errors.source.partition` and `.source.offset`, the record's
//! source partition and offset as compact JSON, so it can be found in the
//! source system.
//!
//! The topic is created when a task starts if it does not exist (one
//! partition, as Kafka creates it), with
//! `errors.deadletterqueue.topic.replication.factor` replicas (by default
//! the cluster's: 3, or every broker of a smaller cluster).

use std::sync::Arc;

use bytes::Bytes;
use spool_client::proto::ErrorCode;
use spool_client::{Client, Producer, ProducerConfig, ProducerRecord};

use super::original::Original;
use super::retry::Retry;
use super::{exception_class, ErrorPolicy, Failure};
use crate::api::context::partition_key;
use crate::api::{Headers, Value};
use crate::convert::Converter;
use crate::{ConnectError, Result};

/// The prefix of Kafka's error-context headers.
pub(crate) const HEADER_PREFIX: &str = "__connect.errors.";

/// A dead letter's key, value, headers and timestamp.
type Contents = (Option<Bytes>, Option<Bytes>, Headers, Option<i64>);

/// A task's writer to its connector's dead-letter topic.
pub(crate) struct DeadLetterQueue {
    topic: Arc<str>,
    producer: Producer,
    context_headers: bool,
    connector: String,
    task: u32,
}

impl DeadLetterQueue {
    /// The writer `policy` asks for, if any, with its topic created if
    /// needed.
    pub(crate) async fn open(
        client: &Client,
        policy: &ErrorPolicy,
        connector: &str,
        task: u32,
    ) -> Result<Option<DeadLetterQueue>> {
        let Some(topic) = &policy.dead_letter_topic else {
            return Ok(None);
        };
        let created = client
            .admin()
            .create_replicated_topic(topic, 1, policy.dead_letter_replication, &[])
            .await;
        match created {
            Ok(()) => {
                tracing::info!(connector, task, topic = %topic, "created the dead-letter topic")
            }
            Err(e) if e.code() == ErrorCode::TopicAlreadyExists => {}
            Err(e) => {
                let context = format!("creating the dead-letter topic `{topic}`");
                return Err(ConnectError::client(context, e));
            }
        }
        Ok(Some(DeadLetterQueue {
            topic: Arc::from(topic.as_str()),
            // acks=all and idempotent: a dead letter is acknowledged only
            // once it is on a majority's disk, before the offset that
            // skips its record is committed.
            producer: client.producer(ProducerConfig::default()),
            context_headers: policy.context_headers,
            connector: connector.to_string(),
            task,
        }))
    }

    /// The dead letter of `failure`; `None` when the original record was
    /// not kept.
    pub(crate) fn letter(
        &self,
        failure: &Failure,
        original: &Original<'_>,
    ) -> Option<ProducerRecord> {
        let (key, value, mut headers, timestamp) = contents(original)?;
        if self.context_headers {
            headers.extend(self.context(failure, original));
        }
        Some(ProducerRecord {
            topic: Arc::clone(&self.topic),
            partition: None,
            key,
            value,
            headers,
            timestamp,
        })
    }

    /// Writes `letter` and waits for its acknowledgement, retrying
    /// retriable failures as `retry` allows.
    pub(crate) async fn write(&self, letter: ProducerRecord, mut retry: Retry) -> Result<()> {
        loop {
            match self.producer.send_and_wait(letter.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let context = format!("writing a dead letter to `{}`", self.topic);
                    retry.after(ConnectError::client(context, e)).await?;
                }
            }
        }
    }

    /// Kafka's error-context headers (see the module's comment).
    fn context(&self, failure: &Failure, original: &Original<'_>) -> Headers {
        let mut headers = Headers::with_capacity(12);
        let mut add = |name: &str, value: String| {
            headers.push((format!("{HEADER_PREFIX}{name}"), Some(Bytes::from(value))));
        };
        match original {
            Original::Consumed(record) => {
                add("topic", record.topic.to_string());
                add("partition", record.partition.to_string());
                add("offset", record.offset.to_string());
            }
            Original::Polled {
                record,
                source_partition,
                source_offset,
                ..
            } => {
                add("topic", record.topic.clone());
                if let Some(partition) = record.partition {
                    add("partition", partition.to_string());
                }
                add("source.partition", partition_key(source_partition));
                add("source.offset", partition_key(source_offset));
            }
            Original::Produced(record) => {
                add("topic", record.topic.to_string());
                if let Some(partition) = record.partition {
                    add("partition", partition.to_string());
                }
            }
            Original::Omitted => {}
        }
        add("connector.name", self.connector.clone());
        add("task.id", self.task.to_string());
        add("stage", failure.stage.name().to_string());
        add("class.name", failure.class.to_string());
        add(
            "exception.class.name",
            exception_class(&failure.error).to_string(),
        );
        add("exception.message", failure.error.to_string());
        add("exception.stacktrace", failure.error.trace());
        headers
    }
}

/// What a dead letter of `original` holds (see the module's comment).
fn contents(original: &Original<'_>) -> Option<Contents> {
    Some(match original {
        Original::Consumed(record) => (
            record.key.clone(),
            record.value.clone(),
            record.headers.clone(),
            Some(record.timestamp),
        ),
        Original::Polled {
            record, key, value, ..
        } => (
            written(*key, &record.topic, record.key.as_ref()),
            written(*value, &record.topic, record.value.as_ref()),
            record.headers.clone(),
            record.timestamp,
        ),
        Original::Produced(record) => (
            record.key.clone(),
            record.value.clone(),
            record.headers.clone(),
            record.timestamp,
        ),
        Original::Omitted => return None,
    })
}

/// `value` as `converter` writes it, or as JSON text where it cannot.
fn written(converter: &dyn Converter, topic: &str, value: Option<&Value>) -> Option<Bytes> {
    converter
        .encode(topic, value)
        .unwrap_or_else(|_| value.map(|v| Bytes::from(v.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SourceOffset, SourcePartition};
    use crate::convert::{ByteArrayConverter, StringConverter};
    use crate::transforms::TransformRecord;
    use serde_json::json;

    #[test]
    fn a_source_dead_letter_is_converted_or_else_json() {
        let mut record = TransformRecord::new("t", Some(json!({"n": "x"})));
        record.key = Some(json!("k"));
        record.timestamp = Some(5);
        let partition: SourcePartition = [("file".to_string(), json!("in.txt"))].into();
        let offset: SourceOffset = [("position".to_string(), json!(3))].into();
        let original = Original::Polled {
            record: &record,
            source_partition: &partition,
            source_offset: &offset,
            key: &StringConverter,
            value: &ByteArrayConverter,
        };
        let (key, value, headers, timestamp) = contents(&original).unwrap();
        assert_eq!(key.as_deref(), Some(&b"k"[..]));
        // ByteArrayConverter cannot write an object: its JSON text instead.
        assert_eq!(value.as_deref(), Some(&br#"{"n":"x"}"#[..]));
        assert!(headers.is_empty());
        assert_eq!(timestamp, Some(5));
        assert!(contents(&Original::Omitted).is_none());
    }
}
