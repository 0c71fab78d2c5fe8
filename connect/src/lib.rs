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
//! it flushed; [`rest`] serves Kafka Connect's REST API over a worker,
//! mapping each path onto one of the worker's operations.
//!
//! The worker takes a `spool_client::Client`, so it runs against an
//! embedded broker (spool-broker's `Node::client`) or a cluster alike.
//! [`transforms`] holds Kafka's single-message transforms and predicates,
//! which the worker applies to each record (a source's before converting
//! it, a sink's after), and the worker handles failed records as Kafka's
//! `errors.*` keys say (tolerance, retries, a dead-letter topic).
//! [`DistributedWorker`] runs connectors in a group of workers that share
//! them through compacted topics (`worker::distributed`), served by the
//! same REST API.

pub mod api;
pub mod connectors;
pub mod convert;
mod error;
pub mod rest;
pub mod transforms;
pub mod worker;

pub use api::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, ConfigValue, Connector, ConnectorType, Importance,
    SinkConnector, SinkRecord, SinkTask, SourceConnector, SourceRecord, SourceTask, Value,
};
pub use connectors::{create_connector, plugins, PluginInfo};
pub use convert::{ByteArrayConverter, Converter, JsonConverter, StringConverter};
pub use error::{ConnectError, Result};
pub use rest::{Herder, RestServer};
pub use transforms::TransformChain;
pub use worker::distributed::{DistributedConfig, DistributedWorker};
pub use worker::{
    ConnectorInfo, ConnectorOffset, ConnectorOffsets, ConnectorStatus, State, TargetState, Worker,
    WorkerConfig,
};
