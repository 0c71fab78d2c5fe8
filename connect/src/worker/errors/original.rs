//! The record a failure concerns, as the error log and the dead-letter
//! topic's headers show it.

use bytes::Bytes;
use spool_client::{ConsumerRecord, ProducerRecord};

use crate::api::context::partition_key;
use crate::api::{SourceOffset, SourcePartition, Value};
use crate::convert::Converter;
use crate::transforms::TransformRecord;

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
    pub(super) fn describe(&self) -> String {
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
