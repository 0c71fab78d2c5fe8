//! spool-streams: the Kafka-Streams-like DSL, RocksDB state stores and the
//! exactly-once runtime. Not built yet: the log core (spool-log) comes
//! first; this crate exists so the workspace has its final shape.
