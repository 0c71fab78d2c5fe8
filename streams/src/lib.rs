//! spool-streams: the Kafka-Streams-like DSL, RocksDB state stores and the
//! exactly-once runtime. Not built yet; it will
//! be built on spool-client (and run embedded through spool-broker's
//! `Node`), and exists so the workspace has its final shape.
