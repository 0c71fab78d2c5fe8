//! spool-connect: the connector runtime of spool, in Kafka Connect's
//! terms, so a Kafka Connect user finds the names, keys and semantics
//! they know.
//!
//! It owns the connector API, converters, the built-in connectors and the
//! standalone worker. Data flows one way through it: [`api`] defines what
//! a connector implements (source and sink connectors and tasks, config
//! definitions, records as schema-less JSON values) and depends on
//! nothing else here; [`convert`] turns keys and values into a topic's
//! bytes and back; [`connectors`] holds the built-in connectors (the file
//! source and sink) and the plugin registry that builds one by class
//! name; [`worker`] runs connectors: it checks a connector's config, asks
//! it for task configs, and drives each task in its own tokio task,
//! producing a source task's records and storing its offsets only once
//! they are acknowledged, and committing a sink task's offsets only once
//! it flushed.
//!
//! The worker takes a `spool_client::Client`, so it runs against an
//! embedded broker (spool-broker's `Node::client`) or a cluster alike.
//! Not built yet: the REST API (the worker's handle already offers its
//! operations), the distributed worker, transforms, dead-letter topics,
//! exactly-once sources, and the PostgreSQL connectors.

pub mod api;
pub mod connectors;
pub mod convert;
mod error;
pub mod worker;

pub use api::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, ConfigValue, Connector, ConnectorType, Importance,
    SinkConnector, SinkRecord, SinkTask, SourceConnector, SourceRecord, SourceTask, Value,
};
pub use connectors::{create_connector, plugins, PluginInfo};
pub use convert::{ByteArrayConverter, Converter, JsonConverter, StringConverter};
pub use error::{ConnectError, Result};
pub use worker::{ConnectorStatus, State, Worker, WorkerConfig};
