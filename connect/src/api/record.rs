//! The records connectors exchange with the worker: `SourceRecord` (a
//! source task's output, with where it came from) and `SinkRecord` (a
//! sink task's input, with where it sits in the log).
//!
//! Keys and values are [`Value`]s, schema-less data: JSON values. Kafka
//! Connect's data model is a value with an optional schema; the common
//! case by far is JSON on both ends (JsonConverter, JSON files, JSON
//! columns), and serde_json's `Value` is the type every Rust library
//! already speaks, so a connector needs no new data model. A schema is
//! inferred where one is written (JsonConverter's envelope). Bytes are
//! base64 strings, as Kafka's JsonConverter writes BYTES values (see
//! `convert`). `None` is an absent key or value: a tombstone, for a value.

use std::collections::BTreeMap;

use bytes::Bytes;

/// A key or value: schema-less data (see the module's comment).
pub type Value = serde_json::Value;

/// Where a source record comes from (a file, a table), as the source
/// system names it: `{"filename": "/var/log/app.log"}`.
pub type SourcePartition = BTreeMap<String, Value>;

/// How far a source partition has been read, in the source system's
/// terms: `{"position": 4096}`. The worker stores the last offset of each
/// partition once the records up to it are acknowledged, and hands it back
/// to the next task that reads the partition.
pub type SourceOffset = BTreeMap<String, Value>;

/// Record headers, passed through as bytes: header converters are not
/// part of this crate yet, and bytes lose nothing meanwhile.
pub type Headers = Vec<(String, Option<Bytes>)>;

/// A record a source task read, for the worker to produce (Kafka's
/// `SourceRecord`).
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    /// Where the record comes from; with `source_offset`, what the worker
    /// commits once the record is acknowledged.
    pub source_partition: SourcePartition,
    /// The position in `source_partition` just past this record: reading
    /// on from it must not give this record again.
    pub source_offset: SourceOffset,
    pub topic: String,
    /// `None`: chosen by key hash, or sticky for keyless records.
    pub partition: Option<u32>,
    pub key: Option<Value>,
    pub value: Option<Value>,
    pub headers: Headers,
    /// Milliseconds since the epoch; `None`: the producer's clock.
    pub timestamp: Option<i64>,
}

impl SourceRecord {
    /// A record with a value only; set the other fields directly.
    pub fn new(
        source_partition: SourcePartition,
        source_offset: SourceOffset,
        topic: impl Into<String>,
        value: Option<Value>,
    ) -> SourceRecord {
        SourceRecord {
            source_partition,
            source_offset,
            topic: topic.into(),
            partition: None,
            key: None,
            value,
            headers: Headers::new(),
            timestamp: None,
        }
    }
}

/// A record read from a topic for a sink task (Kafka's `SinkRecord`).
#[derive(Clone, Debug, PartialEq)]
pub struct SinkRecord {
    pub topic: String,
    pub partition: u32,
    /// The record's offset in its partition; the worker commits
    /// `offset + 1` for it once the task has flushed it.
    pub offset: u64,
    pub key: Option<Value>,
    pub value: Option<Value>,
    pub headers: Headers,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}
