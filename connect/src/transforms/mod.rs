//! Single-message transforms and predicates: Kafka Connect's SMTs, with
//! Kafka's class names, config keys and behaviour, so a Kafka Connect
//! connector config's transforms work unchanged.
//!
//! # Records
//!
//! A transform sees a [`TransformRecord`]: topic, partition, offset (sink
//! records only), key, value, headers and timestamp, as the worker's
//! records carry them. Keys and values are schema-less JSON values
//! (`crate::api::Value`): a record read with a schema (JsonConverter's
//! envelope around a `Struct`) arrives as its payload, a JSON object, so
//! every transform takes the schema-less path of Kafka's, where a
//! `Struct` is a `Map`. The converter infers a schema again on write.
//! Headers are bytes (see `headers` for how field values become header
//! bytes). A JSON `null` key or value is no key or value: for a value, a
//! tombstone.
//!
//! # Configuration
//!
//! As in Kafka, in the connector's config:
//!
//! ```text
//! transforms=route,stamp
//! transforms.route.type=org.apache.kafka.connect.transforms.RegexRouter
//! transforms.route.regex=raw-(.*)
//! transforms.route.replacement=clean-$1
//! transforms.stamp.type=InsertField$Value
//! transforms.stamp.static.field=via
//! transforms.stamp.static.value=spool
//! transforms.stamp.predicate=isRaw
//! transforms.stamp.negate=false
//! predicates=isRaw
//! predicates.isRaw.type=org.apache.kafka.connect.transforms.predicates.TopicNameMatches
//! predicates.isRaw.pattern=clean-.*
//! ```
//!
//! A class is Kafka's full class name or the name without its package
//! (`InsertField$Value`). Transforms run in the order `transforms` lists
//! them; one under a predicate runs only on records the predicate is true
//! for (false, with `negate=true`). [`TransformChain::from_config`]
//! checks the whole chain when a connector is added and refuses an
//! unknown class, a missing or invalid key, or an unlisted predicate,
//! naming the key; Kafka would find some of these only at the first
//! record. Keys a transform does not define are ignored, as in Kafka.
//!
//! # Transforms
//!
//! `$Key`/`$Value` work on the record's key or value:
//! - `InsertField$Key`/`$Value` (`fields`): `topic.field`,
//!   `partition.field`, `offset.field`, `timestamp.field`, `static.field`
//!   with `static.value`.
//! - `ReplaceField$Key`/`$Value` (`fields`): `include`, `exclude`,
//!   `renames` (`old:new,...`).
//! - `MaskField$Key`/`$Value` (`fields`): `fields`, `replacement`.
//! - `Cast$Key`/`$Value` (`cast`): `spec` (`field:type,...` or one type
//!   for the whole key or value).
//! - `ExtractField$Key`/`$Value` (`reshape`): `field`,
//!   `field.syntax.version` (`V1`, or `V2` for dotted nested paths).
//! - `HoistField$Key`/`$Value` (`reshape`): `field`.
//! - `ValueToKey` (`reshape`): `fields`.
//! - `Flatten$Key`/`$Value` (`reshape`): `delimiter` (default `.`).
//! - `RegexRouter` (`routers`): `regex`, `replacement` (`$1` groups).
//! - `TimestampRouter` (`routers`): `topic.format` (default
//!   `${topic}-${timestamp}`), `timestamp.format` (default `yyyyMMdd`;
//!   the supported subset of Java's `SimpleDateFormat` is in
//!   `date_format`).
//! - `HeaderFrom$Key`/`$Value` (`headers`): `fields`, `headers`,
//!   `operation` (`copy` or `move`).
//! - `InsertHeader` (`headers`): `header`, `value.literal`.
//! - `DropHeaders` (`headers`): `headers`.
//! - `Filter` (`headers`): drops the record; use it under a predicate.
//!
//! Predicates (`predicates`): `TopicNameMatches` (`pattern`),
//! `HasHeaderKey` (`name`), `RecordIsTombstone`.
//!
//! Where spool differs from Kafka, it says so at the transform: tombstones
//! pass `MaskField` untouched; regular expressions are Rust's dialect;
//! `timestamp.format` is a subset; `replace.null.with.default` has no
//! effect, as schema-less values have no defaults.
//!
//! # Errors
//!
//! A transform that cannot handle a record (a value that is not an
//! object, a string `Cast` cannot parse) fails with
//! [`crate::ConnectError::Transform`], Kafka's `DataException`; the
//! worker's error handling (`errors.tolerance`, the dead-letter topic)
//! decides what happens to the record. This module knows nothing of the
//! worker: it only turns records into records.

mod cast;
mod chain;
mod date_format;
mod fields;
mod headers;
mod predicates;
mod record;
mod reshape;
mod routers;
mod settings;
#[cfg(test)]
mod tests;

pub use chain::{
    config_def, predicate_classes, report_errors, transform_classes, TransformChain, PREDICATES,
    TRANSFORMS,
};
pub use record::{ConnectRecord, Part, SinkRest, TransformRecord};

use serde_json::Map;

use crate::api::Value;

/// What a transform makes of a record: the record (changed or not),
/// `None` to drop it, or why it cannot handle it.
pub type Outcome = std::result::Result<Option<TransformRecord>, String>;

/// A single-message transform (Kafka's `Transformation`). The chain that
/// runs it wraps its error in [`crate::ConnectError::Transform`] with the
/// transform's alias and class. Shared by a connector's tasks, so it
/// keeps no per-record state.
pub trait Transform: Send + Sync {
    fn apply(&self, record: TransformRecord) -> Outcome;
}

/// A condition on records that gates a transform (Kafka's `Predicate`).
pub trait Predicate: Send + Sync {
    fn test(&self, record: &TransformRecord) -> bool;
}

/// The JSON type of `value`, for errors (where Kafka names a Java class).
pub(crate) fn kind(value: Option<&Value>) -> &'static str {
    match value {
        None | Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

/// Kafka's error for a schema-less key or value that is not a map, with
/// the transform's purpose as Kafka words it.
pub(crate) fn not_object(value: Option<&Value>, purpose: &str) -> String {
    format!(
        "Only Map objects supported in absence of schema for [{purpose}], found: {}",
        kind(value)
    )
}

/// `value` as an object (Kafka's `requireMap`).
pub(crate) fn require_object(
    value: Option<Value>,
    purpose: &str,
) -> std::result::Result<Map<String, Value>, String> {
    match value {
        Some(Value::Object(object)) => Ok(object),
        other => Err(not_object(other.as_ref(), purpose)),
    }
}
