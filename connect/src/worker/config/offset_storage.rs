//! The worker keys of the offsets topic (Kafka's `offset.storage.*`),
//! with their defaults: defined here, below everything that reads them.

use std::sync::Arc;

use crate::api::{
    ConfigDef, ConfigKey, ConfigType, Importance, ParsedConfig, TypedValue, Validator,
};
use crate::{ConnectError, Result};

/// The topic source offsets are kept in (Kafka's key).
pub const OFFSET_STORAGE_TOPIC: &str = "offset.storage.topic";
/// The partitions the offsets topic is created with (Kafka's key).
pub const OFFSET_STORAGE_PARTITIONS: &str = "offset.storage.partitions";
/// The replicas the offsets topic is created with (Kafka's key).
pub const OFFSET_STORAGE_REPLICATION_FACTOR: &str = "offset.storage.replication.factor";
/// The offsets topic of an exactly-once worker that names none: the name
/// Kafka's sample distributed config gives it.
pub const DEFAULT_OFFSETS_TOPIC: &str = "connect-offsets";
/// Kafka's default partition count of the offsets topic.
pub const DEFAULT_OFFSET_STORAGE_PARTITIONS: u32 = 25;

/// The worker keys of the offsets topic, with Kafka's defaults (why each
/// is what it is: `WorkerConfig`'s fields).
pub(in crate::worker) fn worker_config_def() -> ConfigDef {
    ConfigDef::new()
        // None: the file, as in Kafka's standalone worker.
        .define(
            ConfigKey::new(
                OFFSET_STORAGE_TOPIC,
                ConfigType::String,
                Importance::High,
                "The compacted topic to store source offsets in, in Kafka Connect's format; \
                 the file when absent (`connect-offsets` under exactly-once).",
            )
            .optional()
            .validator(Validator::NonEmptyString),
        )
        // Kafka's 25: every source partition of every connector is a key,
        // and writes spread by key.
        .define(
            ConfigKey::new(
                OFFSET_STORAGE_PARTITIONS,
                ConfigType::Int,
                Importance::Low,
                "The number of partitions used when creating the offset storage topic.",
            )
            .default_value(DEFAULT_OFFSET_STORAGE_PARTITIONS.to_string())
            .validator(Validator::at_least(1)),
        )
        // -1, the cluster's default (min(3, brokers)), where Kafka says 3:
        // a single broker, spool's embedded default, cannot hold three.
        .define(
            ConfigKey::new(
                OFFSET_STORAGE_REPLICATION_FACTOR,
                ConfigType::Int,
                Importance::Low,
                "Replication factor used when creating the offset storage topic; -1 for the \
                 cluster's default.",
            )
            .default_value("-1")
            .validator(Validator::Custom(Arc::new(valid_replication_factor))),
        )
}

/// Kafka's rule: -1 (the cluster's default) or at least 1.
pub(in crate::worker) fn valid_replication_factor(
    value: &TypedValue,
) -> std::result::Result<(), String> {
    match value {
        TypedValue::Int(n) if *n == -1 || *n >= 1 => Ok(()),
        TypedValue::Int(_) => Err("must be -1 (the cluster's default) or at least 1".into()),
        _ => Ok(()),
    }
}

/// `offset.storage.partitions` of a parsed worker config.
pub(in crate::worker) fn partitions(parsed: &ParsedConfig) -> Result<u32> {
    u32::try_from(parsed.int(OFFSET_STORAGE_PARTITIONS)?)
        .map_err(|_| ConnectError::config(OFFSET_STORAGE_PARTITIONS, "must be positive"))
}

/// `offset.storage.replication.factor` of a parsed worker config; `None`
/// for the cluster's default (-1).
pub(in crate::worker) fn replication_factor(parsed: &ParsedConfig) -> Result<Option<u32>> {
    Ok(u32::try_from(parsed.int(OFFSET_STORAGE_REPLICATION_FACTOR)?).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConfigMap;

    #[test]
    fn the_worker_keys_take_kafkas_defaults_and_rules() {
        let def = worker_config_def();
        let defaults = def.parse(&ConfigMap::new()).unwrap();
        assert_eq!(partitions(&defaults).unwrap(), 25);
        assert_eq!(replication_factor(&defaults).unwrap(), None);
        let map: ConfigMap = [(
            OFFSET_STORAGE_REPLICATION_FACTOR.to_string(),
            "0".to_string(),
        )]
        .into();
        let error = def.parse(&map).unwrap_err();
        assert!(error.to_string().contains("-1"), "{error}");
        let map: ConfigMap = [(
            OFFSET_STORAGE_REPLICATION_FACTOR.to_string(),
            "3".to_string(),
        )]
        .into();
        assert_eq!(
            replication_factor(&def.parse(&map).unwrap()).unwrap(),
            Some(3)
        );
    }
}
