//! spool-streams: the Kafka-Streams-like library of spool (issue 19; the
//! design is in docs/streams.md).
//!
//! Built so far: [`codec`] (how keys and values cross topics and stores),
//! the stateless DSL ([`StreamsBuilder`], [`KStream`]: filter, map,
//! flat-map, select-key, peek, for-each, merge, split, to), the compiled
//! per-task topology with its description, and [`TopologyTestDriver`].
//! Grouping, tables, state stores and the exactly-once runtime follow, on
//! spool-client (and embedded through spool-broker's `Node`).

pub mod codec;
mod driver;
mod dsl;
mod error;
mod record;
mod topology;

pub use codec::{BigEndian, Bincode, Codec, Json, Nullable, RawBytes, Unit, Utf8};
pub use driver::{TestTopic, TopologyTestDriver};
pub use dsl::{Consumed, KStream, Produced, Split, StreamsBuilder};
pub use error::{Result, StreamsError};
pub use record::{Header, Record};
pub use topology::{Description, NodeKind, OnDecodeError, OutputRecord, RawRecord, Topology};
