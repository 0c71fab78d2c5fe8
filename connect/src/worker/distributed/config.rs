//! `DistributedConfig`: a distributed worker's settings, under Kafka
//! Connect's keys, each default next to why it is what it is. The keys a
//! standalone worker has too (converters, listeners, offsets, exactly-once,
//! `group.id`) are read into the same [`WorkerConfig`]; only the group's
//! and the internal topics' keys are here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{ConfigDef, ConfigKey, ConfigMap, ConfigType, Importance, Validator};
use crate::worker::config::offset_storage::{
    valid_replication_factor, DEFAULT_OFFSETS_TOPIC, OFFSET_STORAGE_TOPIC,
};
use crate::worker::config::{listener_address, toml_properties, WorkerConfig, LISTENERS};
use crate::{ConnectError, Result};

/// The compacted topic connector configs, target states and task configs
/// are kept in (Kafka's key).
pub const CONFIG_STORAGE_TOPIC: &str = "config.storage.topic";
pub const CONFIG_STORAGE_REPLICATION_FACTOR: &str = "config.storage.replication.factor";
/// The compacted topic connector and task statuses are kept in (Kafka's key).
pub const STATUS_STORAGE_TOPIC: &str = "status.storage.topic";
pub const STATUS_STORAGE_PARTITIONS: &str = "status.storage.partitions";
pub const STATUS_STORAGE_REPLICATION_FACTOR: &str = "status.storage.replication.factor";
/// How long the group waits for a silent worker before its work moves.
pub const SESSION_TIMEOUT_MS: &str = "session.timeout.ms";
/// How often a worker tells the group it is alive.
pub const HEARTBEAT_INTERVAL_MS: &str = "heartbeat.interval.ms";
/// How long the group waits for every worker to rejoin in a rebalance.
pub const REBALANCE_TIMEOUT_MS: &str = "rebalance.timeout.ms";
/// How long the work of a worker that left stays unassigned, waiting for
/// it to come back (KIP-415).
pub const SCHEDULED_REBALANCE_MAX_DELAY_MS: &str = "scheduled.rebalance.max.delay.ms";

/// The config topic of a worker that names none (the name in Kafka's
/// sample distributed config).
pub const DEFAULT_CONFIGS_TOPIC: &str = "connect-configs";
/// The status topic of a worker that names none (likewise).
pub const DEFAULT_STATUS_TOPIC: &str = "connect-status";

/// A distributed worker's settings. [`DistributedConfig::new`] gives
/// Kafka's defaults around a [`WorkerConfig`]; read a file with
/// [`DistributedConfig::from_file`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistributedConfig {
    /// The keys a standalone worker has too. Its `offset_storage_topic`
    /// is always set (`connect-offsets` by default): workers share their
    /// source offsets through it. Its `group_id` (`group.id`, default
    /// `connect-cluster`) names the worker group, and prefixes the
    /// transactional ids of exactly-once source tasks. Its `worker_id` is
    /// what statuses show for this worker: the address of its first
    /// listener when read from a file, as in Kafka (the address the REST
    /// API really bound under `spool connect distributed`); a program that
    /// builds the config sets it, unique in the group.
    pub worker: WorkerConfig,
    /// `config.storage.topic` (default `connect-configs`). Created with one
    /// partition, as Kafka creates it: every worker must read connector
    /// configs, task configs and their commits in one order.
    pub config_storage_topic: String,
    /// `config.storage.replication.factor` (default -1, here `None`: the
    /// cluster's default, min(3, brokers); Kafka says 3, which a single
    /// broker cannot hold).
    pub config_storage_replication_factor: Option<u32>,
    /// `status.storage.topic` (default `connect-status`).
    pub status_storage_topic: String,
    /// `status.storage.partitions` (default 5, Kafka's): statuses are small
    /// and written on changes only; a few partitions spread them.
    pub status_storage_partitions: u32,
    /// `status.storage.replication.factor` (default -1, as the config
    /// topic's).
    pub status_storage_replication_factor: Option<u32>,
    /// `session.timeout.ms` (default 10 s, Kafka Connect's): how long the
    /// group waits for a worker that stopped answering (killed, cut off)
    /// before its connectors and tasks move to the others. Shorter moves
    /// work sooner and turns pauses into rebalances; the broker accepts
    /// 6 s at the least by default.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (default 3 s, Kafka's): how often a worker
    /// tells the group it lives, and so how soon it learns of a
    /// rebalance; under a third of the session timeout, so two lost
    /// heartbeats do not end a session.
    pub heartbeat_interval: Duration,
    /// `rebalance.timeout.ms` (default 60 s, Kafka Connect's): how long a
    /// rebalance waits for every worker to rejoin, which a worker does
    /// once it stopped what it gives up; longer than
    /// `task.shutdown.graceful.timeout.ms`, so a slow task does not drop
    /// its worker from the group.
    pub rebalance_timeout: Duration,
    /// `scheduled.rebalance.max.delay.ms` (default 0; Kafka's is 5
    /// minutes): how long the work of a worker that left the group stays
    /// unassigned, waiting for it to come back, before it moves to the
    /// others (KIP-415). 0, so that a dead worker's tasks move as soon as
    /// its session expires; set Kafka's 300000 to ride out rolling restarts
    /// without moving tasks.
    pub scheduled_rebalance_max_delay: Duration,
}

impl DistributedConfig {
    /// Kafka's defaults around `worker`, whose offsets go to
    /// `connect-offsets` unless it names a topic.
    pub fn new(mut worker: WorkerConfig) -> DistributedConfig {
        if worker.offset_storage_topic.is_none() {
            worker.offset_storage_topic = Some(DEFAULT_OFFSETS_TOPIC.to_string());
        }
        DistributedConfig {
            worker,
            config_storage_topic: DEFAULT_CONFIGS_TOPIC.to_string(),
            config_storage_replication_factor: None,
            status_storage_topic: DEFAULT_STATUS_TOPIC.to_string(),
            status_storage_partitions: 5,
            status_storage_replication_factor: None,
            session_timeout: Duration::from_millis(10_000),
            heartbeat_interval: Duration::from_millis(3_000),
            rebalance_timeout: Duration::from_millis(60_000),
            scheduled_rebalance_max_delay: Duration::ZERO,
        }
    }

    /// The keys of this config besides [`WorkerConfig::config_def`]'s, with
    /// their defaults and checks.
    pub fn config_def() -> ConfigDef {
        let topic = |key: &str, default: &str, doc: &str| {
            ConfigKey::new(key, ConfigType::String, Importance::High, doc)
                .default_value(default)
                .validator(Validator::NonEmptyString)
        };
        let replication = |key: &str| {
            ConfigKey::new(
                key,
                ConfigType::Int,
                Importance::Low,
                "Replication factor used when creating the topic; -1 for the cluster's default.",
            )
            .default_value("-1")
            .validator(Validator::Custom(Arc::new(valid_replication_factor)))
        };
        let millis = |key: &str, default: &str, doc: &str| {
            ConfigKey::new(key, ConfigType::Int, Importance::Medium, doc)
                .default_value(default)
                .validator(Validator::at_least(0))
        };
        ConfigDef::new()
            .define(topic(
                CONFIG_STORAGE_TOPIC,
                DEFAULT_CONFIGS_TOPIC,
                "The compacted, single-partition topic connector configurations are stored in.",
            ))
            .define(replication(CONFIG_STORAGE_REPLICATION_FACTOR))
            .define(topic(
                STATUS_STORAGE_TOPIC,
                DEFAULT_STATUS_TOPIC,
                "The compacted topic connector and task statuses are stored in.",
            ))
            .define(
                ConfigKey::new(
                    STATUS_STORAGE_PARTITIONS,
                    ConfigType::Int,
                    Importance::Low,
                    "The number of partitions used when creating the status storage topic.",
                )
                .default_value("5")
                .validator(Validator::at_least(1)),
            )
            .define(replication(STATUS_STORAGE_REPLICATION_FACTOR))
            .define(millis(
                SESSION_TIMEOUT_MS,
                "10000",
                "The timeout used to detect worker failures.",
            ))
            .define(millis(
                HEARTBEAT_INTERVAL_MS,
                "3000",
                "The expected time between heartbeats to the group coordinator.",
            ))
            .define(millis(
                REBALANCE_TIMEOUT_MS,
                "60000",
                "The maximum allowed time for each worker to join the group once a rebalance \
                 has begun.",
            ))
            .define(millis(
                SCHEDULED_REBALANCE_MAX_DELAY_MS,
                "0",
                "The maximum delay that is scheduled in order to wait for the return of one or \
                 more departed workers before rebalancing and reassigning their connectors and \
                 tasks to the group.",
            ))
    }

    /// A config from Kafka-style properties: the worker's keys (its
    /// offsets in `connect-offsets` unless `offset.storage.topic` names a
    /// topic; its id the address of its first listener) and these.
    pub fn from_map(map: &ConfigMap) -> Result<DistributedConfig> {
        let mut map = map.clone();
        map.entry(OFFSET_STORAGE_TOPIC.to_string())
            .or_insert_with(|| DEFAULT_OFFSETS_TOPIC.to_string());
        let mut worker = WorkerConfig::from_map(&map)?;
        if let Some(address) = worker.listeners.first().map(|l| listener_address(l)) {
            worker.worker_id = address.map_err(|reason| ConnectError::config(LISTENERS, reason))?;
        }
        let parsed = DistributedConfig::config_def().parse(&map)?;
        let millis = |key: &str| -> Result<Duration> {
            let ms = u64::try_from(parsed.int(key)?)
                .map_err(|_| ConnectError::config(key, "must not be negative"))?;
            Ok(Duration::from_millis(ms))
        };
        let replication =
            |key: &str| -> Result<Option<u32>> { Ok(u32::try_from(parsed.int(key)?).ok()) };
        let config = DistributedConfig {
            worker,
            config_storage_topic: parsed.string(CONFIG_STORAGE_TOPIC)?.to_string(),
            config_storage_replication_factor: replication(CONFIG_STORAGE_REPLICATION_FACTOR)?,
            status_storage_topic: parsed.string(STATUS_STORAGE_TOPIC)?.to_string(),
            status_storage_partitions: u32::try_from(parsed.int(STATUS_STORAGE_PARTITIONS)?)
                .map_err(|_| ConnectError::config(STATUS_STORAGE_PARTITIONS, "must be positive"))?,
            status_storage_replication_factor: replication(STATUS_STORAGE_REPLICATION_FACTOR)?,
            session_timeout: millis(SESSION_TIMEOUT_MS)?,
            heartbeat_interval: millis(HEARTBEAT_INTERVAL_MS)?,
            rebalance_timeout: millis(REBALANCE_TIMEOUT_MS)?,
            scheduled_rebalance_max_delay: millis(SCHEDULED_REBALANCE_MAX_DELAY_MS)?,
        };
        config.check()?;
        Ok(config)
    }

    /// Refuses settings that cannot work together, naming the key.
    fn check(&self) -> Result<()> {
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.session_timeout {
            return Err(ConnectError::config(
                HEARTBEAT_INTERVAL_MS,
                format!(
                    "must be above 0 and below {SESSION_TIMEOUT_MS} ({} ms), or the group drops \
                     a worker between two heartbeats",
                    self.session_timeout.as_millis()
                ),
            ));
        }
        let offsets = self.worker.offset_storage_topic.as_deref();
        if self.config_storage_topic == self.status_storage_topic
            || offsets == Some(self.config_storage_topic.as_str())
            || offsets == Some(self.status_storage_topic.as_str())
        {
            return Err(ConnectError::config(
                CONFIG_STORAGE_TOPIC,
                "the config, status and offsets topics must be three different topics",
            ));
        }
        Ok(())
    }

    /// A config from TOML text (the keys as `WorkerConfig::from_toml` reads
    /// them).
    pub fn from_toml(text: &str) -> Result<DistributedConfig> {
        DistributedConfig::from_map(&toml_properties(text, Path::new("(text)"))?)
    }

    /// A config from a TOML file.
    pub fn from_file(path: &Path) -> Result<DistributedConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| ConnectError::io(path, e))?;
        DistributedConfig::from_map(&toml_properties(&text, path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_toml_reads_with_kafkas_keys_and_defaults() {
        let config = DistributedConfig::from_toml(
            r#"
            "bootstrap.servers" = "127.0.0.1:9292"
            "group.id" = "connect-prod"
            "listeners" = "http://127.0.0.1:8084"
            "session.timeout.ms" = 6000
            "heartbeat.interval.ms" = 1000
            "status.storage.topic" = "statuses"
            "#,
        )
        .unwrap();
        assert_eq!(config.worker.group_id, "connect-prod");
        assert_eq!(config.worker.worker_id, "127.0.0.1:8084");
        assert_eq!(
            config.worker.offset_storage_topic.as_deref(),
            Some("connect-offsets")
        );
        assert_eq!(config.config_storage_topic, "connect-configs");
        assert_eq!(config.status_storage_topic, "statuses");
        assert_eq!(config.status_storage_partitions, 5);
        assert_eq!(config.session_timeout, Duration::from_secs(6));
        assert_eq!(config.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(config.rebalance_timeout, Duration::from_secs(60));
        assert_eq!(config.scheduled_rebalance_max_delay, Duration::ZERO);
        let defaults = DistributedConfig::new(WorkerConfig::new("unused"));
        assert_eq!(defaults.session_timeout, Duration::from_secs(10));
        assert_eq!(
            defaults.worker.offset_storage_topic.as_deref(),
            Some("connect-offsets")
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused_naming_the_key() {
        let heartbeat = DistributedConfig::from_toml(
            "\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 6000",
        )
        .unwrap_err();
        assert!(
            matches!(&heartbeat, ConnectError::InvalidConfig { key, .. }
                if key == HEARTBEAT_INTERVAL_MS),
            "{heartbeat}"
        );
        let shared = DistributedConfig::from_toml("\"status.storage.topic\" = \"connect-configs\"")
            .unwrap_err();
        assert!(shared.to_string().contains("three different"), "{shared}");
    }
}
