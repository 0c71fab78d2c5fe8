//! Converters: between a record's key or value as a connector sees it (a
//! [`Value`]) and the bytes in a topic, as Kafka Connect's `Converter`.
//!
//! The worker converts every source record on its way out and every sink
//! record on its way in; a connector never sees bytes. Which converter is
//! chosen by Kafka's keys, per connector or else from the worker config:
//! `key.converter` and `value.converter` take Kafka's class names
//! ([`JSON_CONVERTER`], [`STRING_CONVERTER`], [`BYTE_ARRAY_CONVERTER`]) or
//! the short names `json`, `string` and `bytes`; `<prefix>.schemas.enable`
//! configures the JSON converter.
//!
//! `None` (an absent key, or a tombstone's value) stays `None` both ways,
//! and `Some(Value::Null)` is written as `None`, as Kafka's converters
//! turn a null into no bytes. Bytes, which JSON has no type for, are
//! base64 strings wherever a `Value` holds them (see [`ByteArrayConverter`]).

mod json;
mod json_schema;
mod simple;

use std::sync::Arc;

use bytes::Bytes;

pub use json::{infer_schema, JsonConverter};
pub use simple::{ByteArrayConverter, StringConverter};

use crate::api::{ConfigMap, Value};
use crate::{ConnectError, Result};

/// Kafka's JSON converter class.
pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
/// Kafka's string converter class.
pub const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
/// Kafka's pass-through converter class.
pub const BYTE_ARRAY_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";

pub use crate::api::keys::{KEY_CONVERTER, VALUE_CONVERTER};

/// Turns a key or value into the bytes of a topic and back. A converter
/// is shared by every task of a connector, so it keeps no per-record
/// state.
pub trait Converter: Send + Sync {
    /// The converter's short class name, for errors.
    fn name(&self) -> &'static str;

    /// The bytes to produce to `topic` for `value` (Kafka's
    /// `fromConnectData`); `None` for no bytes (an absent value, or JSON
    /// null).
    fn encode(&self, topic: &str, value: Option<&Value>) -> Result<Option<Bytes>>;

    /// The value of `bytes` read from `topic` (Kafka's `toConnectData`);
    /// `None` for no bytes.
    fn decode(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Option<Value>>;
}

/// The converters spool-connect has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConverterClass {
    Json,
    String,
    ByteArray,
}

impl ConverterClass {
    const ALL: [ConverterClass; 3] = [
        ConverterClass::Json,
        ConverterClass::String,
        ConverterClass::ByteArray,
    ];

    /// Kafka's class name.
    pub fn class_name(self) -> &'static str {
        match self {
            ConverterClass::Json => JSON_CONVERTER,
            ConverterClass::String => STRING_CONVERTER,
            ConverterClass::ByteArray => BYTE_ARRAY_CONVERTER,
        }
    }

    /// The short name spool also accepts.
    pub fn short_name(self) -> &'static str {
        match self {
            ConverterClass::Json => "json",
            ConverterClass::String => "string",
            ConverterClass::ByteArray => "bytes",
        }
    }

    /// The converter a class name or short name names.
    pub fn from_name(name: &str) -> Option<ConverterClass> {
        let name = name.trim();
        ConverterClass::ALL
            .into_iter()
            .find(|c| c.class_name() == name || c.short_name() == name)
    }

    /// Every accepted name: the recommended values of a converter key.
    pub fn names() -> Vec<String> {
        ConverterClass::ALL
            .into_iter()
            .flat_map(|c| [c.class_name().to_string(), c.short_name().to_string()])
            .collect()
    }
}

/// The converter `settings` configure under `prefix` (`key.converter` or
/// `value.converter`): the class at `prefix` (JSON when absent, Kafka's
/// default), with `<prefix>.schemas.enable` (true when absent, Kafka's
/// default) for the JSON converter.
pub fn converter_from_config(settings: &ConfigMap, prefix: &str) -> Result<Arc<dyn Converter>> {
    let class = match settings.get(prefix) {
        None => ConverterClass::Json,
        Some(name) => ConverterClass::from_name(name).ok_or_else(|| {
            ConnectError::config(
                prefix,
                format!(
                    "no converter `{name}`; use one of {}",
                    ConverterClass::names().join(", ")
                ),
            )
        })?,
    };
    let converter: Arc<dyn Converter> = match class {
        ConverterClass::Json => {
            let key = format!("{prefix}.schemas.enable");
            let schemas_enable = match settings.get(&key).map(|v| v.trim().to_ascii_lowercase()) {
                None => true,
                Some(v) if v == "true" => true,
                Some(v) if v == "false" => false,
                Some(v) => {
                    return Err(ConnectError::config(
                        key,
                        format!("invalid value `{v}`: expected true or false"),
                    ))
                }
            };
            Arc::new(JsonConverter::new(schemas_enable))
        }
        ConverterClass::String => Arc::new(StringConverter),
        ConverterClass::ByteArray => Arc::new(ByteArrayConverter),
    };
    Ok(converter)
}

/// A conversion error of converter `converter` for `topic`.
fn conversion_error(
    converter: &'static str,
    topic: &str,
    reason: impl Into<String>,
) -> ConnectError {
    ConnectError::Conversion {
        converter,
        topic: topic.to_string(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn converters_are_chosen_by_kafka_class_or_short_name() {
        let json = converter_from_config(&settings(&[]), VALUE_CONVERTER).unwrap();
        assert_eq!(json.name(), "JsonConverter");
        let string = converter_from_config(
            &settings(&[("value.converter", STRING_CONVERTER)]),
            VALUE_CONVERTER,
        )
        .unwrap();
        assert_eq!(string.name(), "StringConverter");
        let bytes =
            converter_from_config(&settings(&[("key.converter", "bytes")]), KEY_CONVERTER).unwrap();
        assert_eq!(bytes.name(), "ByteArrayConverter");
    }

    #[test]
    fn schemas_enable_is_read_under_the_converter_prefix() {
        let plain = settings(&[("value.converter.schemas.enable", "false")]);
        let converter = converter_from_config(&plain, VALUE_CONVERTER).unwrap();
        let bytes = converter
            .encode("t", Some(&Value::from("x")))
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[..], b"\"x\"");
        let bad = settings(&[("key.converter.schemas.enable", "maybe")]);
        let error = converter_from_config(&bad, KEY_CONVERTER).err().unwrap();
        assert!(
            matches!(&error, ConnectError::InvalidConfig { key, .. }
                if key == "key.converter.schemas.enable"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_converter_names_its_key_and_the_known_ones() {
        let error =
            converter_from_config(&settings(&[("value.converter", "avro")]), VALUE_CONVERTER)
                .err()
                .unwrap();
        let text = error.to_string();
        assert!(
            text.contains("value.converter") && text.contains("avro"),
            "{text}"
        );
        assert!(text.contains(JSON_CONVERTER), "{text}");
    }
}
