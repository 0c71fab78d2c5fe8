//! The record transforms work on, and how the worker's records become one
//! and back.
//!
//! Kafka's transforms are generic over `ConnectRecord`, the part source
//! and sink records share. Here that part is a plain struct,
//! [`TransformRecord`], and [`ConnectRecord`] splits a worker record into
//! it plus what transforms may not touch (a source record's source
//! partition and offset, a sink record's offset), and joins them again.

use crate::api::{Headers, SinkRecord, SourceOffset, SourcePartition, SourceRecord, Value};

/// Which half of a record a `$Key` or `$Value` transform works on, as
/// Kafka's nested `Key` and `Value` classes choose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

/// A record as a transform sees it: Kafka's `ConnectRecord` without
/// schemas.
///
/// Keys and values are schema-less JSON values; a record the converter
/// read with a schema (a `Struct`) is a JSON object here, so every
/// transform takes Kafka's schema-less path. A JSON `null` key or value
/// is `None`, as the converters write it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransformRecord {
    pub topic: String,
    /// The partition, if the record names one (a sink record always does).
    pub partition: Option<u32>,
    /// The record's offset in its partition: sink records only, as
    /// Kafka's `kafkaOffset` (a source record has none until produced).
    pub offset: Option<u64>,
    pub key: Option<Value>,
    pub value: Option<Value>,
    pub headers: Headers,
    /// Milliseconds since the epoch; `None` when a source record leaves it
    /// to the producer's clock.
    pub timestamp: Option<i64>,
}

impl TransformRecord {
    /// A record of `topic` with a value only; set other fields directly.
    pub fn new(topic: impl Into<String>, value: Option<Value>) -> TransformRecord {
        TransformRecord {
            topic: topic.into(),
            value,
            ..TransformRecord::default()
        }
    }

    /// The key or the value.
    pub fn part(&self, part: Part) -> Option<&Value> {
        match part {
            Part::Key => self.key.as_ref(),
            Part::Value => self.value.as_ref(),
        }
    }

    /// The key or the value, to change it.
    pub fn part_mut(&mut self, part: Part) -> &mut Option<Value> {
        match part {
            Part::Key => &mut self.key,
            Part::Value => &mut self.value,
        }
    }

    /// Whether the value is absent: a tombstone (Kafka's
    /// `RecordIsTombstone`).
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// `Some(null)` as `None`: the converters write both as no bytes, and a
/// transform asking "is there a value?" must get one answer for both.
fn present(value: Option<Value>) -> Option<Value> {
    value.filter(|v| !v.is_null())
}

/// A record a transform chain can run on (Kafka's `ConnectRecord`): it
/// splits into the [`TransformRecord`] transforms see and the rest, which
/// they may not change, and is joined again afterwards.
pub trait ConnectRecord: Sized {
    /// What transforms do not see.
    type Rest;

    fn split(self) -> (TransformRecord, Self::Rest);

    fn join(record: TransformRecord, rest: Self::Rest) -> Self;
}

impl ConnectRecord for TransformRecord {
    type Rest = ();

    fn split(self) -> (TransformRecord, ()) {
        (self, ())
    }

    fn join(record: TransformRecord, _rest: ()) -> TransformRecord {
        record
    }
}

impl ConnectRecord for SourceRecord {
    /// A source record keeps where it came from: Kafka's `newRecord` on a
    /// `SourceRecord` copies its source partition and offset.
    type Rest = (SourcePartition, SourceOffset);

    fn split(self) -> (TransformRecord, Self::Rest) {
        let record = TransformRecord {
            topic: self.topic,
            partition: self.partition,
            offset: None,
            key: present(self.key),
            value: present(self.value),
            headers: self.headers,
            timestamp: self.timestamp,
        };
        (record, (self.source_partition, self.source_offset))
    }

    fn join(record: TransformRecord, rest: Self::Rest) -> SourceRecord {
        SourceRecord {
            source_partition: rest.0,
            source_offset: rest.1,
            topic: record.topic,
            partition: record.partition,
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: record.timestamp,
        }
    }
}

/// What a sink record's transforms do not see or may not take away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkRest {
    /// The partition, kept if a transform clears the transform record's.
    pub partition: u32,
    /// The offset the worker commits for the record, whatever transforms
    /// do (Kafka's `SinkRecord.newRecord` keeps `kafkaOffset`).
    pub offset: u64,
    /// The timestamp, kept if a transform clears the transform record's.
    pub timestamp: i64,
}

impl ConnectRecord for SinkRecord {
    type Rest = SinkRest;

    fn split(self) -> (TransformRecord, SinkRest) {
        let rest = SinkRest {
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
        };
        let record = TransformRecord {
            topic: self.topic,
            partition: Some(self.partition),
            offset: Some(self.offset),
            key: present(self.key),
            value: present(self.value),
            headers: self.headers,
            timestamp: Some(self.timestamp),
        };
        (record, rest)
    }

    fn join(record: TransformRecord, rest: SinkRest) -> SinkRecord {
        SinkRecord {
            topic: record.topic,
            partition: record.partition.unwrap_or(rest.partition),
            offset: rest.offset,
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: record.timestamp.unwrap_or(rest.timestamp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_source_record_keeps_its_source_position_through_a_split() {
        let partition: SourcePartition = [("filename".to_string(), json!("a"))].into();
        let offset: SourceOffset = [("position".to_string(), json!(3))].into();
        let mut record = SourceRecord::new(partition, offset, "t", Some(Value::Null));
        record.key = Some(json!("k"));
        let (mut transformable, rest) = record.clone().split();
        assert_eq!(transformable.value, None, "a null value is a tombstone");
        assert_eq!(transformable.offset, None);
        transformable.topic = "u".into();
        let joined = SourceRecord::join(transformable, rest);
        assert_eq!(joined.topic, "u");
        assert_eq!(joined.source_offset, record.source_offset);
        assert_eq!(joined.source_partition, record.source_partition);
        assert_eq!(joined.key, Some(json!("k")));
    }

    #[test]
    fn a_sink_record_keeps_its_offset_through_a_split() {
        let record = SinkRecord {
            topic: "t".into(),
            partition: 2,
            offset: 9,
            key: None,
            value: Some(json!({"a": 1})),
            headers: Vec::new(),
            timestamp: 1_000,
        };
        let (mut transformable, rest) = record.split();
        assert_eq!(transformable.offset, Some(9));
        assert_eq!(transformable.partition, Some(2));
        transformable.partition = None;
        transformable.offset = Some(1);
        let joined = SinkRecord::join(transformable, rest);
        assert_eq!(
            (joined.partition, joined.offset, joined.timestamp),
            (2, 9, 1_000)
        );
    }
}
