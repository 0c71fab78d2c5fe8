//! spool: stream processing on its own replicated log.
//!
//! This facade re-exports the project's crates, lowest layer first:
//! - [`record`]: the record batch format;
//! - [`storage`]: segment storage and topic configuration;
//! - [`protocol`]: the wire protocol between clients and brokers;
//! - [`raft`]: replication with openraft, cluster metadata;
//! - [`client`]: producer, consumer and admin over any transport;
//! - [`broker`]: the broker, its gRPC service and Kafka listener, and the
//!   embedded transport;
//! - [`streams`]: the stream-processing DSL and runtime;
//! - [`connect`]: the connector runtime.

pub use spool_broker as broker;
pub use spool_client as client;
pub use spool_connect as connect;
pub use spool_protocol as protocol;
pub use spool_raft as raft;
pub use spool_record as record;
pub use spool_storage as storage;
pub use spool_streams as streams;
