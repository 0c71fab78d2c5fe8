//! The keys every connector's config map has, whatever its class: Kafka's
//! `ConnectorConfig` and `SinkConnectorConfig`. The worker defines and
//! checks them; connectors receive them in their config maps, and a sink
//! task finds its topics under [`TOPICS`].

/// The connector's name, unique on the worker.
pub const NAME: &str = "name";
/// The connector's class (or its short names; see `connectors::plugins`).
pub const CONNECTOR_CLASS: &str = "connector.class";
/// The most tasks the connector may split into.
pub const TASKS_MAX: &str = "tasks.max";
/// A sink's topics, comma-separated.
pub const TOPICS: &str = "topics";
/// The converter of record keys; the worker's when absent.
pub const KEY_CONVERTER: &str = "key.converter";
/// The converter of record values; the worker's when absent.
pub const VALUE_CONVERTER: &str = "value.converter";
