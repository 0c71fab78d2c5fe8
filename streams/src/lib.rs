//! spool-streams: the Kafka-Streams-like library of spool (issue 19; the
//! design is in docs/streams.md).
//!
//! [`codec`] says how keys and values cross topics and stores; the DSL
//! ([`StreamsBuilder`], [`KStream`], [`KGroupedStream`], [`KTable`])
//! builds a [`Topology`], split into sub-topologies at repartition
//! topics; [`state`] keeps each task's stores (RocksDB or memory, over a
//! transactional overlay); [`KafkaStreams`] runs a topology against a
//! broker or cluster under at-least-once or exactly-once; and
//! [`TopologyTestDriver`] runs one in place for tests.

pub mod codec;
mod driver;
mod dsl;
mod error;
pub mod processor;
mod record;
mod runtime;
pub mod state;
mod topology;

pub use codec::{BigEndian, Bincode, Codec, Json, Nullable, RawBytes, Unit, Utf8};
pub use driver::{TestTopic, TopologyTestDriver, DRIVER_APPLICATION_ID};
pub use dsl::{
    Change, Consumed, GlobalKTable, Grouped, JoinWindows, Joined, KGroupedStream, KGroupedTable,
    KStream, KTable, Materialized, Produced, SessionWindowed, SessionWindowedKStream,
    SessionWindows, SlidingWindowedKStream, SlidingWindows, Split, StreamJoined, StreamsBuilder,
    Suppressed, TimeWindowed, TimeWindowedKStream, TimeWindows, Windowed,
};
pub use error::{Result, StreamsError};
pub use processor::{
    KeyValueStore, Processor, ProcessorContext, ProcessorInit, PunctuationType, StoreHandle,
};
pub use record::{Header, Record};
pub use runtime::{
    KafkaStreams, OnThreadFailure, ProcessingGuarantee, StreamsConfig, StreamsMetrics, TaskId,
    TaskMetrics,
};
pub use topology::{
    Description, ErrorHandling, NodeKind, OnDecodeError, OnProcessingError, OutputRecord,
    RawRecord, SubTopology, TopicName, Topology,
};
