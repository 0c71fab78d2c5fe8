//! spool: stream processing on its own replicated log.
//!
//! This facade re-exports the project's crates:
//! - [`log`]: record format and segment storage (later: replication, broker,
//!   client);
//! - [`streams`]: the stream-processing DSL and runtime;
//! - [`connect`]: the connector runtime.

pub use spool_connect as connect;
pub use spool_log as log;
pub use spool_streams as streams;
