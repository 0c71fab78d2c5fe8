//! A built topology: its sources, ready to be compiled once per task,
//! and its description. What a task runs and writes lives here too.

mod describe;
pub(crate) mod node;

use std::collections::BTreeMap;

pub(crate) use describe::NodeDescription;
pub use describe::{Description, NodeKind};
pub use node::RawRecord;
use node::{SourceEntry, SourceFactory};

use crate::record::Header;
use crate::{Result, StreamsError};

/// What to do with a record whose key or value does not decode (Kafka
/// Streams' `default.deserialization.exception.handler`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnDecodeError {
    /// Skip it, log it and count it (the default: one poison record must
    /// not stop an application; the count shows it happened).
    #[default]
    LogAndContinue,
    /// Stop the task with the error.
    Fail,
}

/// A record a sink wrote, encoded, on its way to its topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Vec<Header>,
}

/// What one task's nodes share while processing: where sinks write and
/// how bad input is handled.
#[derive(Debug, Default)]
pub struct TaskContext {
    pub(crate) output: Vec<OutputRecord>,
    pub(crate) on_decode_error: OnDecodeError,
    /// Records skipped because they did not decode.
    pub(crate) skipped: u64,
}

impl TaskContext {
    pub(crate) fn new(on_decode_error: OnDecodeError) -> TaskContext {
        TaskContext {
            on_decode_error,
            ..TaskContext::default()
        }
    }

    /// Applies the decode-error policy to a failed decode of a record of
    /// `topic`: `Ok(())` to skip it, or the error that stops the task.
    pub(crate) fn decode_failed(&mut self, topic: &str, error: StreamsError) -> Result<()> {
        match self.on_decode_error {
            OnDecodeError::LogAndContinue => {
                self.skipped += 1;
                tracing::warn!(%topic, %error, "skipped a record that does not decode");
                Ok(())
            }
            OnDecodeError::Fail => Err(StreamsError::Source {
                topic: topic.to_string(),
                source: Box::new(error),
            }),
        }
    }
}

/// A program's topology, as `StreamsBuilder::build` checked it.
pub struct Topology {
    pub(crate) sources: BTreeMap<String, SourceFactory>,
    pub(crate) description: Description,
}

impl Topology {
    /// The topics the topology reads.
    pub fn source_topics(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// Its nodes and sub-topologies (`describe().to_string()` prints
    /// Kafka Streams' text, `describe().mermaid()` a graph).
    pub fn describe(&self) -> &Description {
        &self.description
    }

    /// One task's instance of every node.
    pub(crate) fn instantiate(&self) -> TaskTopology {
        TaskTopology {
            sources: self
                .sources
                .iter()
                .map(|(topic, factory)| (topic.clone(), factory()))
                .collect(),
        }
    }
}

/// The nodes of one task, entered by topic.
pub(crate) struct TaskTopology {
    sources: BTreeMap<String, Box<dyn SourceEntry>>,
}

impl TaskTopology {
    /// Runs one input record of `topic` through the topology.
    pub(crate) fn process(
        &mut self,
        ctx: &mut TaskContext,
        topic: &str,
        raw: RawRecord<'_>,
    ) -> Result<()> {
        let source = self
            .sources
            .get_mut(topic)
            .ok_or_else(|| StreamsError::UnknownTopic(topic.to_string()))?;
        source.process_raw(ctx, raw)
    }
}
