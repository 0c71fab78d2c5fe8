//! `TopologyTestDriver`: runs a topology in the calling thread, without a
//! broker, one task for every source topic (partitioning is not modelled
//! yet): pipe records into input topics, read what sinks wrote.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::codec::Codec;
use crate::record::Record;
use crate::topology::{
    OnDecodeError, OutputRecord, RawRecord, TaskContext, TaskTopology, Topology,
};
use crate::Result;

/// A topic as a test reads or writes it, with its codecs.
pub struct TestTopic<K, V> {
    name: String,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<V>>,
}

impl<K: 'static, V: 'static> TestTopic<K, V> {
    pub fn new(name: &str, keys: impl Codec<K>, values: impl Codec<V>) -> TestTopic<K, V> {
        TestTopic {
            name: name.to_string(),
            keys: Arc::new(keys),
            values: Arc::new(values),
        }
    }
}

/// A topology run in place, for tests.
pub struct TopologyTestDriver {
    task: TaskTopology,
    ctx: TaskContext,
    outputs: BTreeMap<String, VecDeque<OutputRecord>>,
}

impl TopologyTestDriver {
    pub fn new(topology: &Topology) -> TopologyTestDriver {
        TopologyTestDriver::with_policy(topology, OnDecodeError::default())
    }

    /// A driver whose sources handle undecodable records as `policy` says.
    pub fn with_policy(topology: &Topology, policy: OnDecodeError) -> TopologyTestDriver {
        TopologyTestDriver {
            task: topology.instantiate(),
            ctx: TaskContext::new(policy),
            outputs: BTreeMap::new(),
        }
    }

    /// Pipes one record, encoded by `topic`'s codecs.
    pub fn pipe<K: 'static, V: 'static>(
        &mut self,
        topic: &TestTopic<K, V>,
        key: &K,
        value: &V,
        timestamp: i64,
    ) -> Result<()> {
        let (mut key_bytes, mut value_bytes) = (Vec::new(), Vec::new());
        let has_key = topic.keys.encode_nullable(key, &mut key_bytes)?;
        let has_value = topic.values.encode_nullable(value, &mut value_bytes)?;
        self.pipe_raw(
            &topic.name,
            has_key.then_some(key_bytes.as_slice()),
            has_value.then_some(value_bytes.as_slice()),
            timestamp,
        )
    }

    /// Pipes one record as bytes (a poison record, say).
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<()> {
        let raw = RawRecord {
            key,
            value,
            timestamp,
            headers: &[],
        };
        let outcome = self.task.process(&mut self.ctx, topic, raw);
        for record in self.ctx.output.drain(..) {
            self.outputs
                .entry(record.topic.clone())
                .or_default()
                .push_back(record);
        }
        outcome
    }

    /// Takes every record written to `topic` so far, decoded.
    pub fn read<K: 'static, V: 'static>(
        &mut self,
        topic: &TestTopic<K, V>,
    ) -> Result<Vec<Record<K, V>>> {
        let written = self.outputs.remove(&topic.name).unwrap_or_default();
        written
            .into_iter()
            .map(|r| {
                Ok(Record {
                    key: topic.keys.decode_nullable(r.key.as_deref())?,
                    value: topic.values.decode_nullable(r.value.as_deref())?,
                    timestamp: r.timestamp,
                    headers: r.headers,
                })
            })
            .collect()
    }

    /// Records skipped because they did not decode.
    pub fn skipped_records(&self) -> u64 {
        self.ctx.skipped
    }
}
