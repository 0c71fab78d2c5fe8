//! The worker and source connector keys of exactly-once sources
//! (KIP-618's), with their defaults: defined here, below everything that
//! reads them.

use std::sync::Arc;

use crate::api::{ConfigDef, ConfigKey, ConfigType, Importance, TypedValue, Validator};

/// Whether source tasks write in transactions: `enabled` or `disabled`
/// (Kafka's worker key).
pub const EXACTLY_ONCE_SOURCE_SUPPORT: &str = "exactly.once.source.support";
/// The worker group's name, which prefixes transactional ids (Kafka's
/// worker key).
pub const GROUP_ID: &str = "group.id";
/// The group of a worker that names none: the name Kafka's sample
/// distributed config gives it.
pub const DEFAULT_GROUP_ID: &str = "connect-cluster";
/// A source connector's `requested` or `required` (Kafka's key).
pub const EXACTLY_ONCE_SUPPORT: &str = "exactly.once.support";
/// Where a source task's transactions end: `poll` or `interval` (Kafka's
/// key; Kafka's `connector` is refused).
pub const TRANSACTION_BOUNDARY: &str = "transaction.boundary";
/// How long an `interval` transaction stays open (Kafka's key).
pub const TRANSACTION_BOUNDARY_INTERVAL_MS: &str = "transaction.boundary.interval.ms";

pub(in crate::worker) const ENABLED: &str = "enabled";
pub(in crate::worker) const DISABLED: &str = "disabled";
pub(in crate::worker) const REQUESTED: &str = "requested";
pub(in crate::worker) const REQUIRED: &str = "required";
pub(in crate::worker) const POLL: &str = "poll";
pub(in crate::worker) const INTERVAL: &str = "interval";
pub(in crate::worker) const CONNECTOR: &str = "connector";

/// Why `exactly.once.support=required` is refused by a worker without it.
pub(in crate::worker) const REQUIRED_REFUSAL: &str =
    "is `required`, but this worker's exactly.once.source.support is \
                                `disabled`: enable it on the worker, or ask for `requested`";

/// The worker keys of exactly-once sources, with Kafka's defaults (why
/// each is what it is: `WorkerConfig`'s fields).
pub(in crate::worker) fn worker_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new(
                EXACTLY_ONCE_SOURCE_SUPPORT,
                ConfigType::String,
                Importance::High,
                "Whether source tasks write their records and source offsets in transactions, \
                 so read_committed consumers see each record exactly once: 'enabled' or \
                 'disabled'.",
            )
            .default_value(DISABLED)
            .validator(Validator::OneOf(vec![DISABLED.into(), ENABLED.into()])),
        )
        .define(
            ConfigKey::new(
                GROUP_ID,
                ConfigType::String,
                Importance::High,
                "A unique string that identifies the Connect cluster group this worker belongs \
                 to; it prefixes the transactional ids of exactly-once source tasks.",
            )
            .default_value(DEFAULT_GROUP_ID)
            .validator(Validator::NonEmptyString),
        )
}

/// The source connector keys of exactly-once (Kafka's
/// `SourceConnectorConfig`), with Kafka's defaults and why.
pub(in crate::worker) fn connector_config_def() -> ConfigDef {
    ConfigDef::new()
        // `requested`, Kafka's default: the connector runs whether or not
        // the worker offers exactly-once; `required` is the opt-in check.
        .define(
            ConfigKey::new(
                EXACTLY_ONCE_SUPPORT,
                ConfigType::String,
                Importance::Medium,
                "Permitted values are requested, required. If set to 'required', the connector \
                 is refused unless the worker has exactly-once source support enabled.",
            )
            .default_value(REQUESTED)
            .validator(Validator::OneOf(vec![REQUESTED.into(), REQUIRED.into()])),
        )
        // `poll`, Kafka's default: the smallest transactions, so records
        // reach read_committed consumers soonest and a failure aborts the
        // least; `interval` trades that latency for fewer commits.
        .define(
            ConfigKey::new(
                TRANSACTION_BOUNDARY,
                ConfigType::String,
                Importance::Medium,
                "Permitted values are poll, interval. 'poll' commits a transaction for every \
                 non-empty batch of records a task polls; 'interval' commits every \
                 transaction.boundary.interval.ms.",
            )
            .default_value(POLL)
            .validator(Validator::Custom(Arc::new(supported_boundary)))
            .validator(Validator::OneOf(vec![POLL.into(), INTERVAL.into()])),
        )
        // None: the worker's offset.flush.interval.ms, as in Kafka, which
        // is how often a source commits anyway without exactly-once.
        .define(
            ConfigKey::new(
                TRANSACTION_BOUNDARY_INTERVAL_MS,
                ConfigType::Long,
                Importance::Low,
                "If transaction.boundary is 'interval', how often, in milliseconds, a task \
                 commits its transaction; the worker's offset.flush.interval.ms when unset.",
            )
            .optional()
            .validator(Validator::at_least(0)),
        )
}

/// Refuses Kafka's `connector` boundary with the reason, before the list
/// of what is supported would say less.
fn supported_boundary(value: &TypedValue) -> std::result::Result<(), String> {
    match value {
        TypedValue::String(boundary) if boundary == CONNECTOR => Err(
            "transactions defined by the connector are not supported: the connector API has \
             no TransactionContext to define them with; use `poll` or `interval`"
                .into(),
        ),
        _ => Ok(()),
    }
}
