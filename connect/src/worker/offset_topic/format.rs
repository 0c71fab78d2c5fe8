//! Kafka Connect's format of the offsets topic, written and read: the
//! key `["<connector>", {<source partition>}]` and the value `{<source
//! offset>}`, compact JSON as Kafka's internal JsonConverter (schemas off)
//! writes them, and a null value as the tombstone that forgets a
//! partition.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use spool_client::{ConsumerRecord, ProducerRecord};

use crate::api::context::partition_key;
use crate::api::{SourceOffset, SourcePartition, Value};
use crate::{ConnectError, Result};

/// Connector → partition key → its partition and offset: what the topic
/// says, each key's last record applied.
pub(super) type Offsets = BTreeMap<String, BTreeMap<String, (SourcePartition, SourceOffset)>>;

/// The offsets topic's record of `connector`'s source `partition` (see
/// the module's comment); no `offset` makes it a tombstone.
pub(crate) fn offset_record(
    topic: &Arc<str>,
    connector: &str,
    partition: &SourcePartition,
    offset: Option<&SourceOffset>,
) -> Result<ProducerRecord> {
    let key = Value::Array(vec![Value::from(connector), object(partition)]);
    let value = match offset {
        Some(offset) => Some(json_bytes(&object(offset))?),
        None => None,
    };
    Ok(ProducerRecord {
        topic: Arc::clone(topic),
        partition: None,
        key: Some(json_bytes(&key)?),
        value,
        headers: Vec::new(),
        timestamp: None,
    })
}

fn object(map: &BTreeMap<String, Value>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Compact JSON, as Kafka's JsonConverter writes it.
fn json_bytes(value: &Value) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ConnectError::Task(format!("cannot write a source offset as JSON: {e}")))
}

/// A key's connector and source partition; `None` if it is not Kafka's
/// `["<connector>", {...}]`.
fn decode_key(bytes: &[u8]) -> Option<(String, SourcePartition)> {
    let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(bytes) else {
        return None;
    };
    match <[Value; 2]>::try_from(parts) {
        Ok([Value::String(connector), Value::Object(partition)]) => {
            Some((connector, partition.into_iter().collect()))
        }
        _ => None,
    }
}

/// Applies one record of the offsets topic to `offsets`. A record that is
/// not in Kafka's format is skipped with a warning, as Kafka skips it:
/// someone else's record in the topic must not stop every connector.
pub(super) fn apply(offsets: &mut Offsets, record: &ConsumerRecord) {
    let Some((connector, partition)) = record.key.as_deref().and_then(decode_key) else {
        tracing::warn!(
            topic = %record.topic,
            partition = record.partition,
            offset = record.offset,
            "skipping an offsets record whose key is not [\"<connector>\", {{...}}]"
        );
        return;
    };
    let offset = match record.value.as_deref().map(serde_json::from_slice::<Value>) {
        None | Some(Ok(Value::Null)) => None,
        Some(Ok(Value::Object(offset))) => Some(offset.into_iter().collect::<SourceOffset>()),
        Some(_) => {
            tracing::warn!(
                connector = %connector,
                offset = record.offset,
                "skipping an offsets record whose value is not a JSON object"
            );
            return;
        }
    };
    let key = partition_key(&partition);
    match offset {
        Some(offset) => {
            offsets
                .entry(connector)
                .or_default()
                .insert(key, (partition, offset));
        }
        None => {
            if let Some(entries) = offsets.get_mut(&connector) {
                entries.remove(&key);
                if entries.is_empty() {
                    offsets.remove(&connector);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(file: &str) -> SourcePartition {
        [("filename".to_string(), Value::from(file))].into()
    }

    fn offset(position: u64) -> SourceOffset {
        [("position".to_string(), Value::from(position))].into()
    }

    fn consumed(record: &ProducerRecord) -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::clone(&record.topic),
            partition: 0,
            offset: 0,
            timestamp: 0,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn records_are_kafkas_keys_and_values() {
        let topic: Arc<str> = Arc::from("connect-offsets");
        let record =
            offset_record(&topic, "files", &partition("/tmp/a"), Some(&offset(42))).unwrap();
        assert_eq!(
            record.key.as_deref(),
            Some(&br#"["files",{"filename":"/tmp/a"}]"#[..])
        );
        assert_eq!(record.value.as_deref(), Some(&br#"{"position":42}"#[..]));
        assert_eq!(record.partition, None, "placed by the key's hash");
        let tombstone = offset_record(&topic, "files", &partition("/tmp/a"), None).unwrap();
        assert_eq!(tombstone.key, record.key);
        assert_eq!(tombstone.value, None);
    }

    #[test]
    fn records_apply_in_order_and_tombstones_forget() {
        let topic: Arc<str> = Arc::from("connect-offsets");
        let mut offsets = Offsets::new();
        for (file, position) in [("/a", 10), ("/b", 5), ("/a", 20)] {
            let record = offset_record(&topic, "files", &partition(file), Some(&offset(position)));
            apply(&mut offsets, &consumed(&record.unwrap()));
        }
        let files = &offsets["files"];
        assert_eq!(files.len(), 2);
        assert_eq!(files[&partition_key(&partition("/a"))].1, offset(20));
        let tombstone = offset_record(&topic, "files", &partition("/b"), None).unwrap();
        apply(&mut offsets, &consumed(&tombstone));
        assert_eq!(offsets["files"].len(), 1);
        let last = offset_record(&topic, "files", &partition("/a"), None).unwrap();
        apply(&mut offsets, &consumed(&last));
        assert!(
            offsets.is_empty(),
            "a connector without offsets is forgotten"
        );
    }

    #[test]
    fn records_not_in_kafkas_format_are_skipped() {
        let mut offsets = Offsets::new();
        let cases: [(&str, &str); 4] = [
            ("not json", "{}"),
            (r#"["files"]"#, r#"{"position":1}"#),
            (r#"[1,{"filename":"/a"}]"#, r#"{"position":1}"#),
            (r#"["files",{"filename":"/a"}]"#, "[1]"),
        ];
        for (key, value) in cases {
            let record = ConsumerRecord {
                topic: Arc::from("connect-offsets"),
                partition: 0,
                offset: 0,
                timestamp: 0,
                key: Some(Bytes::copy_from_slice(key.as_bytes())),
                value: Some(Bytes::copy_from_slice(value.as_bytes())),
                headers: Vec::new(),
            };
            apply(&mut offsets, &record);
        }
        assert!(offsets.is_empty());
        assert_eq!(
            decode_key(br#"["files",{"filename":"/a"}]"#),
            Some(("files".to_string(), partition("/a")))
        );
    }
}
