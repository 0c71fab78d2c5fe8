//! What the worker hands a task when it starts it: who the task is; for
//! a source task, the committed source offsets to resume from; for a sink
//! task, a way to ask the worker to read partitions from other offsets.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use spool_client::TopicPartition;

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

/// Who a sink task is, and where it wants its partitions read from
/// (Kafka's `SinkTaskContext`, with its `offset` calls; without its
/// pause, resume and commit requests).
///
/// Clones share the requested offsets: the worker keeps one clone and the
/// task gets another.
#[derive(Clone, Debug)]
pub struct SinkTaskContext {
    connector: String,
    task: u32,
    /// Offsets asked for with [`SinkTaskContext::offset`] and not yet
    /// applied by the worker.
    requested: Arc<Mutex<BTreeMap<TopicPartition, u64>>>,
}

impl SinkTaskContext {
    pub fn new(connector: impl Into<String>, task: u32) -> SinkTaskContext {
        SinkTaskContext {
            connector: connector.into(),
            task,
            requested: Arc::default(),
        }
    }

    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// The task's number within its connector, from 0.
    pub fn task(&self) -> u32 {
        self.task
    }

    /// Asks the worker to read `partition` from `offset` next (Kafka's
    /// `context.offset(tp, offset)`): a sink that stores its offsets in
    /// its outside system, for exactly-once, calls it from `open` with
    /// the offsets stored there, which may be ahead of (or behind) what
    /// the group committed. The worker seeks the partition after the call
    /// returns and before the next `put`: records of it already fetched
    /// are dropped, and its next commit stores `offset` for it. A later
    /// request for the same partition replaces an earlier one.
    pub fn offset(&self, partition: TopicPartition, offset: u64) {
        self.requested.lock().insert(partition, offset);
    }

    /// [`SinkTaskContext::offset`] for several partitions at once (Kafka's
    /// `context.offset(Map)`).
    pub fn offsets(&self, offsets: impl IntoIterator<Item = (TopicPartition, u64)>) {
        self.requested.lock().extend(offsets);
    }

    /// The offsets asked for since the last call, for the worker to apply.
    pub fn take_requested_offsets(&self) -> BTreeMap<TopicPartition, u64> {
        std::mem::take(&mut *self.requested.lock())
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

    #[test]
    fn offsets_a_sink_task_asks_for_reach_the_worker_once() {
        let worker_side = SinkTaskContext::new("sink", 0);
        let task_side = worker_side.clone();
        task_side.offset(TopicPartition::new("t", 0), 5);
        task_side.offsets([
            (TopicPartition::new("t", 1), 7),
            (TopicPartition::new("t", 0), 9),
        ]);
        let requested = worker_side.take_requested_offsets();
        assert_eq!(
            requested.into_iter().collect::<Vec<_>>(),
            [
                (TopicPartition::new("t", 0), 9),
                (TopicPartition::new("t", 1), 7)
            ]
        );
        assert!(worker_side.take_requested_offsets().is_empty());
    }
}
