//! Error handling of a task's records, as Kafka Connect's (KIP-298, and
//! KIP-779 for source records the broker refuses), under Kafka's keys.
//!
//! A record can fail at a stage of its way through a task: a transform
//! (`TRANSFORMATION`), the key or value converter (`KEY_CONVERTER`,
//! `VALUE_CONVERTER`), or producing a source record (`KAFKA_PRODUCE`);
//! polling a sink's topics may fail too (Kafka's `KAFKA_CONSUME`), which
//! is retried but concerns no one record. What then happens is the
//! connector's choice:
//!
//! - `errors.retry.timeout` and `errors.retry.delay.max.ms`: a retriable
//!   failure is tried again, with Kafka's exponential backoff (300 ms,
//!   doubled each time, capped by the maximum delay with jitter past it),
//!   until the timeout. Retriable are the failures that may pass by
//!   themselves: the broker unreachable or timing out, and the broker's
//!   retriable error codes (a partition's leader moving, a coordinator
//!   loading); they arise in producing source records, writing to the
//!   dead-letter topic and polling. Conversion and transform errors are
//!   never retriable: the same record fails the same way.
//! - Every failure that is not retried away is reported: logged with
//!   `errors.log.enable` (the record's details with
//!   `errors.log.include.messages`), and written to the dead-letter topic
//!   `errors.deadletterqueue.topic.name` if set, with Kafka's
//!   `__connect.errors.*` headers if
//!   `errors.deadletterqueue.context.headers.enable` (see
//!   `dead_letter`).
//! - `errors.tolerance=none` (the default) then fails the task; `all`
//!   skips the record and goes on. A skipped record's offset is committed
//!   as if it was written, so the pipeline does not stop on it, and its
//!   dead-letter copy is acknowledged before that commit, so it is never
//!   lost. A dead letter the topic will not take (after retries) fails
//!   the task whatever the tolerance, where Kafka logs it and drops the
//!   record: skipping a record nobody kept would lose it.
//!
//! A source record the broker refuses after the producer's own retries
//! (KIP-779) fails the task with `none`; with `all` it is logged and
//! skipped. Errors of the connector's own task (`poll`, `put`, `flush`)
//! always fail the task, as in Kafka.
//!
//! Unlike Kafka, which defines the dead-letter topic for sinks only, a
//! source connector may have one too: it receives the record as the
//! connector's converters would have written it before any transform, or
//! the record's JSON text where a converter cannot write it.
//!
//! Counts are kept per task (`metrics`), read through
//! `Worker::task_error_metrics`.

mod dead_letter;
mod handler;
mod metrics;
mod original;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use spool_client::proto::ErrorCode;

pub(crate) use self::handler::ErrorHandler;
pub(crate) use self::metrics::ErrorCounters;
pub use self::metrics::TaskErrorMetrics;
pub(crate) use self::original::Original;

use crate::api::keys::TOPICS;
use crate::api::{
    ConfigDef, ConfigKey, ConfigType, ConnectorType, Importance, ParsedConfig, TypedValue,
    Validator,
};
use crate::convert::{Converter, ConverterClass};
use crate::{ConnectError, Result};

/// `none` or `all`: whether a failed record fails the task or is skipped.
pub const ERRORS_TOLERANCE: &str = "errors.tolerance";
/// How long a retriable failure is retried, in ms; -1 for ever.
pub const ERRORS_RETRY_TIMEOUT: &str = "errors.retry.timeout";
/// The longest wait between two retries, in ms.
pub const ERRORS_RETRY_DELAY_MAX_MS: &str = "errors.retry.delay.max.ms";
/// Whether each error is logged.
pub const ERRORS_LOG_ENABLE: &str = "errors.log.enable";
/// Whether a logged error shows its record.
pub const ERRORS_LOG_INCLUDE_MESSAGES: &str = "errors.log.include.messages";
/// The dead-letter topic; none when blank.
pub const DLQ_TOPIC_NAME: &str = "errors.deadletterqueue.topic.name";
/// The replication factor the dead-letter topic is created with.
pub const DLQ_TOPIC_REPLICATION_FACTOR: &str = "errors.deadletterqueue.topic.replication.factor";
/// Whether dead letters carry Kafka's `__connect.errors.*` headers.
pub const DLQ_CONTEXT_HEADERS_ENABLE: &str = "errors.deadletterqueue.context.headers.enable";

/// The error-handling keys every connector has (Kafka's `ConnectorConfig`
/// and `SinkConnectorConfig` define them), with Kafka's defaults and why
/// they are what they are.
pub fn config_def() -> ConfigDef {
    let key = |name: &str, config_type: ConfigType, doc: &str| {
        ConfigKey::new(name, config_type, Importance::Medium, doc)
    };
    ConfigDef::new()
        // Fail fast by default: a pipeline that skips records silently
        // loses data nobody decided to lose.
        .define(
            key(
                ERRORS_TOLERANCE,
                ConfigType::String,
                "Behavior for tolerating errors during connector operation: 'none' (the \
                 default) fails the task at the first error; 'all' skips problematic records.",
            )
            .default_value("none")
            .validator(Validator::OneOf(vec!["none".into(), "all".into()])),
        )
        // No retries by default: only retriable failures are retried, and
        // the producer already retries those for a few seconds itself.
        .define(
            key(
                ERRORS_RETRY_TIMEOUT,
                ConfigType::Long,
                "The maximum duration in milliseconds that a failed operation will be \
                 reattempted; 0 (the default) for no retries, -1 for infinite retries.",
            )
            .default_value("0")
            .validator(Validator::at_least(-1)),
        )
        // A minute: long enough to ride out a broker restart, short enough
        // that a recovered broker is noticed soon.
        .define(
            key(
                ERRORS_RETRY_DELAY_MAX_MS,
                ConfigType::Long,
                "The maximum duration in milliseconds between consecutive retry attempts; \
                 jitter is added to the delay once this limit is reached.",
            )
            .default_value("60000")
            .validator(Validator::at_least(0)),
        )
        // Off by default, as in Kafka: with tolerance none the task's
        // failure is logged anyway, and with all a bad stream of records
        // would flood the log.
        .define(
            key(
                ERRORS_LOG_ENABLE,
                ConfigType::Boolean,
                "If true, write each error and the details of the failed operation and \
                 problematic record to the Connect application log.",
            )
            .default_value("false"),
        )
        // Off by default: records may hold data that must not reach logs.
        .define(
            key(
                ERRORS_LOG_INCLUDE_MESSAGES,
                ConfigType::Boolean,
                "Whether to include in the log the Connect record that resulted in a failure.",
            )
            .default_value("false"),
        )
        .merge(&dead_letter_def())
}

/// The dead-letter keys (Kafka's `SinkConnectorConfig`).
fn dead_letter_def() -> ConfigDef {
    let key = |name: &str, config_type: ConfigType, doc: &str| {
        ConfigKey::new(name, config_type, Importance::Medium, doc)
    };
    ConfigDef::new()
        // Blank by default: a dead-letter topic is a decision about where
        // bad records go, which only the connector's owner can make.
        .define(
            key(
                DLQ_TOPIC_NAME,
                ConfigType::String,
                "The topic to write records that fail in this connector, its transformations \
                 or converters to (the dead letter queue); none when blank.",
            )
            .default_value(""),
        )
        // -1, the cluster's default: 3 replicas, or every broker of a
        // smaller cluster. Kafka's default is a fixed 3, which makes the
        // topic's creation fail (and every task with a dead-letter topic)
        // on a cluster of fewer than three brokers, a single node included;
        // where 3 can be met, -1 gives the same.
        .define(
            key(
                DLQ_TOPIC_REPLICATION_FACTOR,
                ConfigType::Int,
                "Replication factor used to create the dead letter queue topic when it \
                 doesn't already exist; -1 for the cluster's default (3, or every broker of \
                 a smaller cluster).",
            )
            .default_value("-1")
            .validator(Validator::Custom(Arc::new(replication_factor))),
        )
        // Off by default, as in Kafka: the headers make each dead letter
        // several hundred bytes larger.
        .define(
            key(
                DLQ_CONTEXT_HEADERS_ENABLE,
                ConfigType::Boolean,
                "If true, add headers containing error context (keys starting with \
                 __connect.errors.) to the messages written to the dead letter queue.",
            )
            .default_value("false"),
        )
}

fn replication_factor(value: &TypedValue) -> std::result::Result<(), String> {
    match value {
        TypedValue::Int(n) if *n == -1 || *n >= 1 => Ok(()),
        TypedValue::Int(_) => Err("must be at least 1, or -1 for the cluster's default".into()),
        _ => Ok(()),
    }
}

/// What `errors.tolerance` allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tolerance {
    None,
    All,
}

/// A connector's error handling, from its config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ErrorPolicy {
    pub(crate) tolerance: Tolerance,
    /// `None`: retry for ever (`-1`).
    pub(crate) retry_timeout: Option<Duration>,
    pub(crate) retry_delay_max: Duration,
    pub(crate) log_enable: bool,
    pub(crate) log_include_messages: bool,
    pub(crate) dead_letter_topic: Option<String>,
    /// 0: the cluster's default.
    pub(crate) dead_letter_replication: u32,
    pub(crate) context_headers: bool,
}

impl ErrorPolicy {
    /// The policy of a connector config parsed with [`config_def`]'s keys
    /// among its own. A sink's dead-letter topic may not be one of its
    /// topics (Kafka's check): the sink would read its own dead letters.
    pub(crate) fn from_config(
        parsed: &ParsedConfig,
        connector_type: ConnectorType,
    ) -> Result<ErrorPolicy> {
        let millis = |key: &str| -> Result<Option<Duration>> {
            let ms = parsed.long(key)?;
            Ok(u64::try_from(ms).ok().map(Duration::from_millis))
        };
        let dead_letter_topic = match parsed.string(DLQ_TOPIC_NAME)? {
            "" => None,
            topic => Some(topic.to_string()),
        };
        if let (Some(topic), ConnectorType::Sink) = (&dead_letter_topic, connector_type) {
            if parsed.list(TOPICS)?.contains(topic) {
                return Err(ConnectError::config(
                    TOPICS,
                    format!(
                        "The DLQ topic '{topic}' may not be included in the list of topics \
                         consumed by the connector"
                    ),
                ));
            }
        }
        Ok(ErrorPolicy {
            tolerance: match parsed.string(ERRORS_TOLERANCE)? {
                "all" => Tolerance::All,
                _ => Tolerance::None,
            },
            retry_timeout: millis(ERRORS_RETRY_TIMEOUT)?,
            retry_delay_max: millis(ERRORS_RETRY_DELAY_MAX_MS)?.unwrap_or(Duration::ZERO),
            log_enable: parsed.boolean(ERRORS_LOG_ENABLE)?,
            log_include_messages: parsed.boolean(ERRORS_LOG_INCLUDE_MESSAGES)?,
            dead_letter_topic,
            dead_letter_replication: u32::try_from(parsed.int(DLQ_TOPIC_REPLICATION_FACTOR)?)
                .unwrap_or(0),
            context_headers: parsed.boolean(DLQ_CONTEXT_HEADERS_ENABLE)?,
        })
    }

    /// Whether a failed record's original must be kept for a report.
    pub(crate) fn keeps_originals(&self) -> bool {
        self.dead_letter_topic.is_some() || (self.log_enable && self.log_include_messages)
    }

    /// Whether a failed send is worth handling beyond failing the task:
    /// it may be retried, or its records skipped one by one.
    pub(crate) fn handles_send_failures(&self) -> bool {
        self.tolerance == Tolerance::All || self.retry_timeout != Some(Duration::ZERO)
    }
}

/// Where on its way through a task a record failed (Kafka's `Stage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Transformation,
    KeyConverter,
    ValueConverter,
    KafkaProduce,
}

impl Stage {
    /// Kafka's name, as the `__connect.errors.stage` header carries it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stage::Transformation => "TRANSFORMATION",
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

/// Kafka's class of the task loop that produces source records.
const WORKER_SOURCE_TASK: &str = "org.apache.kafka.connect.runtime.WorkerSourceTask";

/// A record's failure: where, in which class (Kafka's executing class),
/// and why. The error is boxed: a failure travels as the error of every
/// record's conversion, whose result should stay small.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) stage: Stage,
    pub(crate) class: &'static str,
    pub(crate) error: Box<ConnectError>,
}

impl Failure {
    /// A converter's failure; `stage` says whether it converted the key
    /// or the value.
    pub(crate) fn converter(
        stage: Stage,
        converter: &dyn Converter,
        error: ConnectError,
    ) -> Failure {
        let name = converter.name();
        let class = [
            ConverterClass::Json,
            ConverterClass::String,
            ConverterClass::ByteArray,
        ]
        .into_iter()
        .map(ConverterClass::class_name)
        .find(|class| class.rsplit('.').next() == Some(name))
        .unwrap_or(name);
        Failure {
            stage,
            class,
            error: Box::new(error),
        }
    }

    /// A transform chain's failure.
    pub(crate) fn transform(error: ConnectError) -> Failure {
        let class = match &error {
            ConnectError::Transform { transform, .. } => *transform,
            _ => "org.apache.kafka.connect.runtime.TransformationChain",
        };
        Failure {
            stage: Stage::Transformation,
            class,
            error: Box::new(error),
        }
    }

    /// A source record the broker or the producer refused.
    pub(crate) fn produce(error: ConnectError) -> Failure {
        Failure {
            stage: Stage::KafkaProduce,
            class: WORKER_SOURCE_TASK,
            error: Box::new(error),
        }
    }
}

/// Whether trying again may succeed: the broker unreachable or timing
/// out, or one of its retriable codes (see the module's comment).
pub(crate) fn is_retriable(error: &ConnectError) -> bool {
    matches!(error, ConnectError::Client { source, .. } if source.is_retriable())
}

/// Kafka's exception class for `error`, as the
/// `__connect.errors.exception.class.name` header names it: a
/// `DataException` for what a converter or transform cannot handle, the
/// client exception of the broker's error code for a refused record, a
/// `ConnectException` otherwise.
pub(crate) fn exception_class(error: &ConnectError) -> &'static str {
    match error {
        ConnectError::Conversion { .. } | ConnectError::Transform { .. } => {
            "org.apache.kafka.connect.errors.DataException"
        }
        ConnectError::Client { source, .. } if source.is_retriable() => {
            "org.apache.kafka.common.errors.RetriableException"
        }
        ConnectError::Client { source, .. } => match source.code() {
            ErrorCode::UnknownTopicOrPartition => {
                "org.apache.kafka.common.errors.UnknownTopicOrPartitionException"
            }
            ErrorCode::RecordTooLarge => "org.apache.kafka.common.errors.RecordTooLargeException",
            ErrorCode::InvalidTopic => "org.apache.kafka.common.errors.InvalidTopicException",
            _ => "org.apache.kafka.common.KafkaException",
        },
        _ => "org.apache.kafka.connect.errors.ConnectException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConfigMap;
    use crate::convert::JsonConverter;

    fn parse(pairs: &[(&str, &str)], connector_type: ConnectorType) -> Result<ErrorPolicy> {
        let map: ConfigMap = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let def = config_def().define(
            ConfigKey::new(TOPICS, ConfigType::List, Importance::High, "topics").optional(),
        );
        ErrorPolicy::from_config(&def.parse(&map)?, connector_type)
    }

    #[test]
    fn kafkas_defaults_fail_fast_and_keys_are_checked() {
        let policy = parse(&[], ConnectorType::Source).unwrap();
        assert_eq!(policy.tolerance, Tolerance::None);
        assert_eq!(policy.retry_timeout, Some(Duration::ZERO));
        assert_eq!(policy.retry_delay_max, Duration::from_secs(60));
        assert_eq!(policy.dead_letter_topic, None);
        assert_eq!(policy.dead_letter_replication, 0, "the cluster's default");
        assert!(!policy.keeps_originals() && !policy.handles_send_failures());

        let all = parse(
            &[
                (ERRORS_TOLERANCE, "all"),
                (ERRORS_RETRY_TIMEOUT, "-1"),
                (DLQ_TOPIC_NAME, " dlq "),
                (DLQ_TOPIC_REPLICATION_FACTOR, "2"),
            ],
            ConnectorType::Sink,
        )
        .unwrap();
        assert_eq!(all.tolerance, Tolerance::All);
        assert_eq!(all.retry_timeout, None);
        assert_eq!(all.dead_letter_topic.as_deref(), Some("dlq"));
        assert_eq!(all.dead_letter_replication, 2);

        for (key, value) in [
            (ERRORS_TOLERANCE, "some"),
            (ERRORS_RETRY_TIMEOUT, "-2"),
            (DLQ_TOPIC_REPLICATION_FACTOR, "0"),
            (ERRORS_LOG_ENABLE, "yes"),
        ] {
            let error = parse(&[(key, value)], ConnectorType::Source).unwrap_err();
            assert!(
                matches!(&error, ConnectError::InvalidConfig { key: named, .. } if named == key),
                "{error}"
            );
        }
        let own = parse(
            &[(TOPICS, "a,dlq"), (DLQ_TOPIC_NAME, "dlq")],
            ConnectorType::Sink,
        )
        .unwrap_err();
        assert!(own.to_string().contains("may not be included"), "{own}");
    }

    #[test]
    fn failures_carry_kafkas_class_names() {
        let converter = JsonConverter::new(false);
        let error = converter.decode("t", Some(&b"{"[..])).unwrap_err();
        let failure = Failure::converter(Stage::ValueConverter, &converter, error);
        assert_eq!(failure.class, "org.apache.kafka.connect.json.JsonConverter");
        assert_eq!(failure.stage.name(), "VALUE_CONVERTER");
        assert_eq!(
            exception_class(&failure.error),
            "org.apache.kafka.connect.errors.DataException"
        );
        assert!(!is_retriable(&failure.error));
        let timeout = ConnectError::client("x", spool_client::ClientError::Timeout("t".into()));
        assert!(is_retriable(&timeout));
        assert_eq!(
            exception_class(&timeout),
            "org.apache.kafka.common.errors.RetriableException"
        );
    }
}
