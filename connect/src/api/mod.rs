//! The connector API: what a connector implements and what the worker
//! hands it, in Kafka Connect's terms.
//!
//! [`config`] defines and checks config maps, and [`keys`] names the
//! keys every connector has; [`record`] holds the records tasks exchange
//! with the worker; [`connector`] the traits ([`SourceConnector`],
//! [`SourceTask`], [`SinkConnector`], [`SinkTask`]); [`context`] what a
//! task gets when it starts. This module knows nothing of the worker, the
//! broker or bytes: converters and the worker build on it, never the
//! other way round.

pub mod config;
pub mod connector;
pub mod context;
pub mod keys;
pub mod record;

pub use config::{
    config_map, ConfigDef, ConfigKey, ConfigMap, ConfigType, ConfigValue, DefaultValue, Importance,
    ParsedConfig, Password, TypedValue, Validator,
};
pub use connector::{
    done, Connector, ConnectorType, SinkConnector, SinkTask, SourceConnector, SourceTask,
};
pub use context::{OffsetStorageReader, SinkTaskContext, SourceTaskContext};
pub use record::{Headers, SinkRecord, SourceOffset, SourcePartition, SourceRecord, Value};
pub use spool_client::TopicPartition;
