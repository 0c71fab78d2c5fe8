//! What the worker hands a task when it starts it: who the task is and,
//! for a source task, the committed source offsets to resume from.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::record::{SourceOffset, SourcePartition, Value};

/// The committed offsets of a connector's source partitions, as they were
/// when its task started (Kafka's `OffsetStorageReader`).
#[derive(Clone, Debug, Default)]
pub struct OffsetStorageReader {
    /// By [`partition_key`]: `SourcePartition` holds JSON values, which
    /// have no order of their own.
    offsets: Arc<BTreeMap<String, SourceOffset>>,
}

impl OffsetStorageReader {
    pub fn new(
        offsets: impl IntoIterator<Item = (SourcePartition, SourceOffset)>,
    ) -> OffsetStorageReader {
        let offsets = offsets
            .into_iter()
            .map(|(partition, offset)| (partition_key(&partition), offset))
            .collect();
        OffsetStorageReader {
            offsets: Arc::new(offsets),
        }
    }

    /// The last committed offset of `partition`; `None` if none was ever
    /// committed (read it from the start).
    pub fn offset(&self, partition: &SourcePartition) -> Option<&SourceOffset> {
        self.offsets.get(&partition_key(partition))
    }
}

/// A source partition as one string: its compact JSON, whose object keys
/// come sorted (the map is sorted), so equal partitions give equal keys.
pub fn partition_key(partition: &SourcePartition) -> String {
    let object: serde_json::Map<String, Value> = partition
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(object).to_string()
}

/// Who a source task is, and where its connector's sources were read to
/// (Kafka's `SourceTaskContext`).
#[derive(Clone, Debug)]
pub struct SourceTaskContext {
    connector: String,
    task: u32,
    offsets: OffsetStorageReader,
}

impl SourceTaskContext {
    pub fn new(
        connector: impl Into<String>,
        task: u32,
        offsets: OffsetStorageReader,
    ) -> SourceTaskContext {
        SourceTaskContext {
            connector: connector.into(),
            task,
            offsets,
        }
    }

    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// The task's number within its connector, from 0.
    pub fn task(&self) -> u32 {
        self.task
    }

    pub fn offsets(&self) -> &OffsetStorageReader {
        &self.offsets
    }
}

/// Who a sink task is (Kafka's `SinkTaskContext`, without the controls
/// this slice does not offer yet).
#[derive(Clone, Debug)]
pub struct SinkTaskContext {
    connector: String,
    task: u32,
}

impl SinkTaskContext {
    pub fn new(connector: impl Into<String>, task: u32) -> SinkTaskContext {
        SinkTaskContext {
            connector: connector.into(),
            task,
        }
    }

    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// The task's number within its connector, from 0.
    pub fn task(&self) -> u32 {
        self.task
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_is_found_by_an_equal_partition() {
        let partition: SourcePartition = [("filename".to_string(), Value::from("/tmp/a"))].into();
        let offset: SourceOffset = [("position".to_string(), Value::from(42u64))].into();
        let reader = OffsetStorageReader::new([(partition.clone(), offset.clone())]);
        assert_eq!(reader.offset(&partition), Some(&offset));
        let other: SourcePartition = [("filename".to_string(), Value::from("/tmp/b"))].into();
        assert_eq!(reader.offset(&other), None);
        assert_eq!(partition_key(&partition), r#"{"filename":"/tmp/a"}"#);
    }
}
