//! `WorkerConfig`: a standalone worker's settings, under Kafka Connect's
//! keys, each default next to why it is what it is.
//!
//! The worker config is a TOML file whose keys are Kafka's property
//! names. TOML reads `offset.flush.interval.ms = 1000` as nested tables;
//! they are flattened back into dotted keys, so a key may be written
//! bare or quoted. A key that extends another one's name must be quoted
//! (`"value.converter.schemas.enable" = false` next to
//! `value.converter = "json"`), since TOML cannot make `value.converter`
//! both a string and a table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub(super) mod exactly_once;
pub(super) mod offset_storage;

use crate::api::keys::{CONNECTOR_CLASS, KEY_CONVERTER, NAME, TASKS_MAX, TOPICS, VALUE_CONVERTER};
use crate::api::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, ConnectorType, Importance, Password, TypedValue,
    Validator,
};
use crate::connectors::resolve_class;
use crate::convert::{ConverterClass, JSON_CONVERTER};
use crate::{ConnectError, Result};
use exactly_once::ENABLED;
pub use exactly_once::{
    DEFAULT_GROUP_ID, EXACTLY_ONCE_SOURCE_SUPPORT, EXACTLY_ONCE_SUPPORT, GROUP_ID,
    TRANSACTION_BOUNDARY, TRANSACTION_BOUNDARY_INTERVAL_MS,
};
pub use offset_storage::{
    DEFAULT_OFFSETS_TOPIC, DEFAULT_OFFSET_STORAGE_PARTITIONS, OFFSET_STORAGE_PARTITIONS,
    OFFSET_STORAGE_REPLICATION_FACTOR, OFFSET_STORAGE_TOPIC,
};

/// The broker address (spool's `--bootstrap`).
pub const BOOTSTRAP: &str = "bootstrap";
/// Kafka's name for it, read when `bootstrap` is absent.
pub const BOOTSTRAP_SERVERS: &str = "bootstrap.servers";
pub const OFFSET_STORAGE_FILE: &str = "offset.storage.file.filename";
pub const OFFSET_FLUSH_INTERVAL_MS: &str = "offset.flush.interval.ms";
pub const TASK_SHUTDOWN_TIMEOUT_MS: &str = "task.shutdown.graceful.timeout.ms";
/// Where the REST API listens (Kafka's key).
pub const LISTENERS: &str = "listeners";
/// The bearer token every REST request must carry (spool's key).
pub const REST_AUTH_TOKEN: &str = "rest.auth.token";

/// Kafka Connect's port, on the loopback interface: where Kafka's tools
/// and scripts look for a worker, and reachable from nowhere else until
/// the operator decides to expose it (Kafka's own default, `http://:8083`,
/// listens on every interface, with no authentication).
pub const DEFAULT_LISTENER: &str = "http://127.0.0.1:8083";

/// What a worker's status shows as its id until a REST layer, which
/// knows its advertised address (Kafka's worker id), sets one.
pub const STANDALONE_WORKER_ID: &str = "standalone";

/// A standalone worker's settings. [`WorkerConfig::new`] gives Kafka's
/// defaults; change fields directly, or read a file with
/// [`WorkerConfig::from_file`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// `bootstrap` (or Kafka's `bootstrap.servers`; default none): the
    /// broker the program should connect to. The worker itself takes a
    /// ready `Client`; this is for the program that builds it, which
    /// embeds a broker when it is absent.
    pub bootstrap: Option<String>,
    /// `offset.storage.file.filename` (required, as in Kafka's standalone
    /// worker, unless the offsets are in a topic): where source offsets are
    /// kept between runs. Unused when [`WorkerConfig::offsets_topic`] names
    /// a topic.
    pub offset_storage_file: Option<PathBuf>,
    /// `offset.storage.topic` (default none): keep source offsets in this
    /// compacted topic, in Kafka's format, as Kafka's distributed worker
    /// does, instead of the file. None by default, as in Kafka's
    /// standalone worker, whose offsets are a file; exactly-once sources
    /// need a topic, and use `connect-offsets` when none is named.
    pub offset_storage_topic: Option<String>,
    /// `offset.storage.partitions` (default 25, Kafka's): the partitions
    /// the worker creates the offsets topic with when it is missing. Many,
    /// since every source partition of every connector has a key there
    /// and writes spread by key; an existing topic keeps its own count.
    pub offset_storage_partitions: u32,
    /// `offset.storage.replication.factor` (default -1, here `None`): the
    /// replicas the offsets topic is created with; -1 takes the cluster's
    /// default, min(3, brokers). Kafka's default is 3, which a single
    /// broker (spool's embedded default) cannot satisfy; -1 gives 3 on a
    /// cluster of three or more anyway.
    pub offset_storage_replication_factor: Option<u32>,
    /// `group.id` (default `connect-cluster`, the name Kafka's sample
    /// distributed config uses): the worker group's name, which prefixes
    /// the transactional ids of exactly-once source tasks
    /// (`<group.id>-<connector>-<task>`), so two groups sharing a cluster
    /// never fence each other's tasks.
    pub group_id: String,
    /// `exactly.once.source.support` (`enabled` or `disabled`; default
    /// disabled, as in Kafka): whether source tasks write their records
    /// and offsets in transactions (see `exactly_once`). Off by default:
    /// it costs a transaction per poll (a few coordinator round trips),
    /// needs the offsets topic, and only read_committed consumers profit.
    pub exactly_once_source_support: bool,
    /// `offset.flush.interval.ms` (default 10 s, Kafka's): how often a
    /// source task waits for its sends to be acknowledged and stores its
    /// offsets, and a sink task flushes and commits. It bounds what a
    /// crash sends or delivers again; shorter costs throughput, as each
    /// flush waits for every record in flight.
    pub offset_flush_interval: Duration,
    /// `task.shutdown.graceful.timeout.ms` (default 5 s, Kafka's): how
    /// long stopping a connector waits for each task to flush and stop
    /// before it abandons the task.
    pub task_shutdown_timeout: Duration,
    /// `key.converter` and `value.converter` (default Kafka's
    /// JsonConverter, with `schemas.enable` true), and every key under
    /// them: the converters of connectors that name none.
    pub converters: ConfigMap,
    /// The worker's id in statuses (default [`STANDALONE_WORKER_ID`]).
    pub worker_id: String,
    /// `listeners` (default [`DEFAULT_LISTENER`]): the addresses the REST
    /// API listens on, comma-separated `http://host:port` entries as in
    /// Kafka (`http://:8083` is every interface). HTTPS is not served:
    /// put a TLS proxy in front of a worker that must be reached from
    /// another machine.
    pub listeners: Vec<String>,
    /// `rest.auth.token` (default none): when set, every REST request must
    /// carry `Authorization: Bearer <token>`, or is answered 401. Off by
    /// default as in Kafka, whose REST API authenticates nobody unless an
    /// extension is configured; the loopback default listener is the
    /// protection until then.
    pub rest_auth_token: Option<Password>,
}

impl WorkerConfig {
    /// Kafka's defaults, with offsets kept in `offset_storage_file`.
    pub fn new(offset_storage_file: impl Into<PathBuf>) -> WorkerConfig {
        WorkerConfig {
            bootstrap: None,
            offset_storage_file: Some(offset_storage_file.into()),
            offset_storage_topic: None,
            offset_storage_partitions: DEFAULT_OFFSET_STORAGE_PARTITIONS,
            offset_storage_replication_factor: None,
            group_id: DEFAULT_GROUP_ID.to_string(),
            exactly_once_source_support: false,
            offset_flush_interval: Duration::from_millis(10_000),
            task_shutdown_timeout: Duration::from_millis(5_000),
            converters: [
                (KEY_CONVERTER.to_string(), JSON_CONVERTER.to_string()),
                (VALUE_CONVERTER.to_string(), JSON_CONVERTER.to_string()),
            ]
            .into(),
            worker_id: STANDALONE_WORKER_ID.to_string(),
            listeners: vec![DEFAULT_LISTENER.to_string()],
            rest_auth_token: None,
        }
    }

    /// The keys a worker config accepts (others are refused by none, as in
    /// Kafka: they may configure converters).
    pub fn config_def() -> ConfigDef {
        let converter = |key: &str| {
            ConfigKey::new(
                key,
                ConfigType::String,
                Importance::High,
                "The converter of records' keys or values for connectors that name none.",
            )
            .default_value(JSON_CONVERTER)
            .validator(Validator::OneOf(ConverterClass::names()))
        };
        ConfigDef::new()
            .define(
                ConfigKey::new(
                    BOOTSTRAP,
                    ConfigType::String,
                    Importance::High,
                    "The broker.",
                )
                .optional(),
            )
            .define(
                ConfigKey::new(
                    BOOTSTRAP_SERVERS,
                    ConfigType::List,
                    Importance::High,
                    "Kafka's name of `bootstrap`; its first entry is used.",
                )
                .optional(),
            )
            .define(
                ConfigKey::new(
                    OFFSET_STORAGE_FILE,
                    ConfigType::String,
                    Importance::High,
                    "The file to store source offsets in; required unless they are in a topic.",
                )
                .optional()
                .validator(Validator::NonEmptyString),
            )
            .define(
                ConfigKey::new(
                    OFFSET_FLUSH_INTERVAL_MS,
                    ConfigType::Long,
                    Importance::Low,
                    "Interval at which to flush and commit offsets.",
                )
                .default_value("10000")
                .validator(Validator::at_least(1)),
            )
            .define(
                ConfigKey::new(
                    TASK_SHUTDOWN_TIMEOUT_MS,
                    ConfigType::Long,
                    Importance::Low,
                    "How long to wait for a task to stop before abandoning it.",
                )
                .default_value("5000")
                .validator(Validator::at_least(0)),
            )
            .define(converter(KEY_CONVERTER))
            .define(converter(VALUE_CONVERTER))
            .define(
                ConfigKey::new(
                    LISTENERS,
                    ConfigType::List,
                    Importance::Low,
                    "List of comma-separated URIs the REST API will listen on.",
                )
                .default_value(DEFAULT_LISTENER)
                .validator(Validator::NonEmptyList)
                .validator(Validator::Custom(Arc::new(valid_listeners))),
            )
            .define(
                ConfigKey::new(
                    REST_AUTH_TOKEN,
                    ConfigType::Password,
                    Importance::Medium,
                    "The bearer token every REST request must carry; none when absent.",
                )
                .optional(),
            )
            .merge(&offset_storage::worker_config_def())
            .merge(&exactly_once::worker_config_def())
    }

    /// The topic source offsets are kept in: `offset.storage.topic`, or
    /// `connect-offsets` when exactly-once sources are enabled without
    /// one (their offsets must be written in their transactions, which a
    /// file cannot take part in); `None` keeps them in the file.
    pub fn offsets_topic(&self) -> Option<&str> {
        match (&self.offset_storage_topic, self.exactly_once_source_support) {
            (Some(topic), _) => Some(topic.as_str()),
            (None, true) => Some(DEFAULT_OFFSETS_TOPIC),
            (None, false) => None,
        }
    }

    /// A config from Kafka-style properties.
    pub fn from_map(map: &ConfigMap) -> Result<WorkerConfig> {
        let parsed = WorkerConfig::config_def().parse(map)?;
        let bootstrap = match parsed.optional_string(BOOTSTRAP)? {
            Some(address) => Some(address.to_string()),
            None => parsed.list(BOOTSTRAP_SERVERS)?.first().cloned(),
        };
        let millis = |key: &str| -> Result<Duration> {
            let ms = u64::try_from(parsed.long(key)?)
                .map_err(|_| ConnectError::config(key, "must not be negative"))?;
            Ok(Duration::from_millis(ms))
        };
        let mut converters: ConfigMap = map
            .iter()
            .filter(|(key, _)| key.starts_with(KEY_CONVERTER) || key.starts_with(VALUE_CONVERTER))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        for key in [KEY_CONVERTER, VALUE_CONVERTER] {
            converters.insert(key.to_string(), parsed.string(key)?.to_string());
        }
        let offset_storage_topic = parsed.optional_string(OFFSET_STORAGE_TOPIC)?;
        let exactly_once_source_support = parsed.string(EXACTLY_ONCE_SOURCE_SUPPORT)? == ENABLED;
        let offset_storage_file = parsed.optional_string(OFFSET_STORAGE_FILE)?;
        if offset_storage_file.is_none()
            && offset_storage_topic.is_none()
            && !exactly_once_source_support
        {
            return Err(missing_offsets_file());
        }
        Ok(WorkerConfig {
            bootstrap,
            offset_storage_file: offset_storage_file.map(PathBuf::from),
            offset_storage_topic: offset_storage_topic.map(str::to_string),
            offset_storage_partitions: offset_storage::partitions(&parsed)?,
            offset_storage_replication_factor: offset_storage::replication_factor(&parsed)?,
            group_id: parsed.string(GROUP_ID)?.to_string(),
            exactly_once_source_support,
            offset_flush_interval: millis(OFFSET_FLUSH_INTERVAL_MS)?,
            task_shutdown_timeout: millis(TASK_SHUTDOWN_TIMEOUT_MS)?,
            converters,
            worker_id: STANDALONE_WORKER_ID.to_string(),
            listeners: parsed.list(LISTENERS)?.to_vec(),
            rest_auth_token: parsed.password(REST_AUTH_TOKEN)?.cloned(),
        })
    }

    /// A config from TOML text (see the module's comment).
    pub fn from_toml(text: &str) -> Result<WorkerConfig> {
        WorkerConfig::from_map(&toml_properties(text, Path::new("(text)"))?)
    }

    /// A config from a TOML file.
    pub fn from_file(path: &Path) -> Result<WorkerConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| ConnectError::io(path, e))?;
        WorkerConfig::from_map(&toml_properties(&text, path)?)
    }
}

/// Kafka's message for a missing `offset.storage.file.filename`, with the
/// way out a topic offers.
pub(super) fn missing_offsets_file() -> ConnectError {
    ConnectError::config(
        OFFSET_STORAGE_FILE,
        format!(
            "missing required configuration \"{OFFSET_STORAGE_FILE}\" which has no default \
             value (or set `{OFFSET_STORAGE_TOPIC}` to keep offsets in a topic)"
        ),
    )
}

/// The keys every connector has, whatever its class (Kafka's
/// `ConnectorConfig`; for a sink also `SinkConnectorConfig`'s `topics`).
/// A connector's own keys are merged over these.
pub fn connector_config_def(connector_type: ConnectorType) -> ConfigDef {
    let converter = |key: &str| {
        ConfigKey::new(
            key,
            ConfigType::String,
            Importance::Low,
            "The converter of this connector's record keys or values; the worker's when absent.",
        )
        .optional()
        .validator(Validator::OneOf(ConverterClass::names()))
    };
    let def = ConfigDef::new()
        .define(
            ConfigKey::new(
                NAME,
                ConfigType::String,
                Importance::High,
                "Globally unique name to use for this connector.",
            )
            .validator(Validator::NonEmptyString),
        )
        .define(
            ConfigKey::new(
                CONNECTOR_CLASS,
                ConfigType::String,
                Importance::High,
                "Name or alias of the class for this connector.",
            )
            .validator(Validator::Custom(Arc::new(known_class))),
        )
        .define(
            // Kafka's default: one task unless asked for more, since many
            // connectors (a file) cannot split.
            ConfigKey::new(
                TASKS_MAX,
                ConfigType::Int,
                Importance::High,
                "Maximum number of tasks to use for this connector.",
            )
            .default_value("1")
            .validator(Validator::at_least(1)),
        )
        .define(converter(KEY_CONVERTER))
        .define(converter(VALUE_CONVERTER))
        // `transforms`, `predicates` and `errors.*`, defined where they
        // are used.
        .merge(&crate::transforms::config_def())
        .merge(&super::errors::config_def());
    match connector_type {
        // `exactly.once.support` and `transaction.boundary`: Kafka's
        // `SourceConnectorConfig` keys, read where exactly-once is built.
        ConnectorType::Source => def.merge(&exactly_once::connector_config_def()),
        ConnectorType::Sink => def
            .define(
                ConfigKey::new(
                    TOPICS,
                    ConfigType::List,
                    Importance::High,
                    "List of topics to consume, separated by commas.",
                )
                .validator(Validator::NonEmptyList),
            )
            // `consumer.override.isolation.level`, read where the sink
            // loop builds its consumer.
            .merge(&super::sink::config_def()),
    }
}

fn valid_listeners(value: &TypedValue) -> std::result::Result<(), String> {
    match value {
        TypedValue::List(listeners) => listeners
            .iter()
            .try_for_each(|listener| listener_address(listener).map(|_| ())),
        _ => Ok(()),
    }
}

/// The `host:port` a `listeners` entry binds: `http://host:port` as in
/// Kafka, an empty host meaning every interface (`http://:8083`).
pub fn listener_address(listener: &str) -> std::result::Result<String, String> {
    let listener = listener.trim();
    let Some(address) = listener.strip_prefix("http://") else {
        return Err(match listener.starts_with("https://") {
            true => format!(
                "`{listener}`: the REST API speaks HTTP only; put a TLS proxy in front of it"
            ),
            false => format!("`{listener}` is not an http://host:port listener"),
        });
    };
    let address = address.strip_suffix('/').unwrap_or(address);
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("`{listener}` has no port"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("`{listener}` has no valid port"));
    }
    Ok(match host {
        "" => format!("0.0.0.0:{port}"),
        host => format!("{host}:{port}"),
    })
}

fn known_class(value: &TypedValue) -> std::result::Result<(), String> {
    match value {
        TypedValue::String(name) if resolve_class(name).is_none() => {
            Err(format!("no connector class `{name}`"))
        }
        _ => Ok(()),
    }
}

/// TOML text as Kafka-style properties: nested tables flattened into
/// dotted keys, scalars as their text, arrays comma-separated.
pub fn toml_properties(text: &str, path: &Path) -> Result<ConfigMap> {
    let invalid = |reason: String| ConnectError::InvalidFile {
        path: path.to_path_buf(),
        reason,
    };
    let table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let mut properties = ConfigMap::new();
    flatten("", table, &mut properties).map_err(invalid)?;
    Ok(properties)
}

fn flatten(
    prefix: &str,
    table: toml::Table,
    out: &mut ConfigMap,
) -> std::result::Result<(), String> {
    for (key, value) in table {
        let name = match prefix {
            "" => key,
            _ => format!("{prefix}.{key}"),
        };
        let text = match value {
            toml::Value::Table(inner) => {
                flatten(&name, inner, out)?;
                continue;
            }
            toml::Value::Array(items) => items
                .iter()
                .map(|item| scalar(item).ok_or_else(|| format!("`{name}` holds a nested value")))
                .collect::<std::result::Result<Vec<_>, _>>()?
                .join(","),
            value => scalar(&value).ok_or_else(|| format!("`{name}` has no scalar value"))?,
        };
        out.insert(name, text);
    }
    Ok(())
}

fn scalar(value: &toml::Value) -> Option<String> {
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) | toml::Value::Table(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_file_reads_with_kafkas_keys_bare_or_quoted() {
        let config = WorkerConfig::from_toml(
            r#"
            bootstrap = "127.0.0.1:9292"
            offset.storage.file.filename = "/var/lib/spool/connect.offsets"
            "offset.flush.interval.ms" = 500
            value.converter = "string"
            "key.converter.schemas.enable" = false
            "#,
        )
        .unwrap();
        assert_eq!(config.bootstrap.as_deref(), Some("127.0.0.1:9292"));
        assert_eq!(
            config.offset_storage_file,
            Some(PathBuf::from("/var/lib/spool/connect.offsets"))
        );
        assert_eq!(config.offset_flush_interval, Duration::from_millis(500));
        assert_eq!(config.task_shutdown_timeout, Duration::from_secs(5));
        assert_eq!(config.converters["value.converter"], "string");
        assert_eq!(config.converters["key.converter"], JSON_CONVERTER);
        assert_eq!(config.converters["key.converter.schemas.enable"], "false");
    }

    #[test]
    fn kafkas_bootstrap_servers_and_defaults() {
        let config = WorkerConfig::from_toml(
            r#"
            "bootstrap.servers" = ["b1:9292", "b2:9292"]
            "offset.storage.file.filename" = "offsets.json"
            "#,
        )
        .unwrap();
        assert_eq!(config.bootstrap.as_deref(), Some("b1:9292"));
        let defaults = WorkerConfig::new("offsets.json");
        assert_eq!(config.offset_flush_interval, defaults.offset_flush_interval);
        assert_eq!(config.converters, defaults.converters);
    }

    #[test]
    fn the_rest_listener_and_token_read_with_kafkas_defaults() {
        let defaults = WorkerConfig::from_toml("\"offset.storage.file.filename\" = \"o\"").unwrap();
        assert_eq!(defaults.listeners, [DEFAULT_LISTENER]);
        assert_eq!(defaults.rest_auth_token, None);
        let config = WorkerConfig::from_toml(
            r#"
            "offset.storage.file.filename" = "o"
            listeners = "http://:8083, http://[::1]:9083"
            "rest.auth.token" = "s3cret"
            "#,
        )
        .unwrap();
        assert_eq!(config.listeners, ["http://:8083", "http://[::1]:9083"]);
        assert_eq!(
            config.rest_auth_token.as_ref().map(Password::value),
            Some("s3cret")
        );
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "the token never shows"
        );
        assert_eq!(listener_address("http://:8083").unwrap(), "0.0.0.0:8083");
        assert_eq!(listener_address("http://[::1]:9083").unwrap(), "[::1]:9083");
        for bad in [
            "https://127.0.0.1:8443",
            "127.0.0.1:8083",
            "http://host",
            "http://h:x",
        ] {
            let text =
                "\"offset.storage.file.filename\" = \"o\"\nlisteners = \"".to_string() + bad + "\"";
            let error = WorkerConfig::from_toml(&text).unwrap_err();
            assert!(
                matches!(&error, ConnectError::InvalidConfig { key, .. } if key == LISTENERS),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn a_bad_worker_config_names_the_key() {
        let missing = WorkerConfig::from_toml("bootstrap = \"x\"").unwrap_err();
        assert!(
            matches!(&missing, ConnectError::InvalidConfig { key, .. }
                if key == OFFSET_STORAGE_FILE),
            "{missing}"
        );
        let negative = WorkerConfig::from_toml(
            "\"offset.storage.file.filename\" = \"o\"\n\"offset.flush.interval.ms\" = 0",
        )
        .unwrap_err();
        assert!(
            negative.to_string().contains(OFFSET_FLUSH_INTERVAL_MS),
            "{negative}"
        );
        let converter = WorkerConfig::from_toml(
            "\"offset.storage.file.filename\" = \"o\"\n\"value.converter\" = \"avro\"",
        )
        .unwrap_err();
        assert!(
            converter.to_string().contains("value.converter"),
            "{converter}"
        );
        let broken = WorkerConfig::from_toml("offset = [").unwrap_err();
        assert!(
            matches!(broken, ConnectError::InvalidFile { .. }),
            "{broken}"
        );
    }
}
