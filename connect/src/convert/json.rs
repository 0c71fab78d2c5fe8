//! Kafka's JsonConverter: JSON text, with `schemas.enable` wrapped in
//! Kafka's envelope `{"schema": ..., "payload": ...}`.
//!
//! Values here have no schema of their own, so on write the envelope's
//! schema is inferred from the value ([`infer_schema`]): what a Kafka
//! consumer or a schema-aware sink (a JDBC sink creating columns) reads
//! from it is the value's shape. A value no one schema describes (an array
//! mixing numbers and strings) gets `"schema": null`, which is how Kafka
//! itself writes a schema-less value. On read the envelope is required, as
//! Kafka requires it, and the payload is checked against its schema.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use serde_json::json;
use serde_json::value::RawValue;

use super::json_schema::CompiledSchema;
use super::{conversion_error, Converter};
use crate::api::Value;
use crate::{ConnectError, Result};

const NAME: &str = "JsonConverter";

/// See the module's comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonConverter {
    schemas_enable: bool,
}

/// The envelope as written: a struct, so `schema` comes first as in
/// Kafka's output, and the payload is not copied into a new value.
#[derive(Serialize)]
struct Envelope<'a> {
    schema: Value,
    payload: &'a Value,
}

impl JsonConverter {
    /// `schemas_enable`: Kafka's `schemas.enable` (its default is true).
    pub fn new(schemas_enable: bool) -> JsonConverter {
        JsonConverter { schemas_enable }
    }

    fn error(topic: &str, reason: impl Into<String>) -> ConnectError {
        conversion_error(NAME, topic, reason)
    }

    /// The payload of an envelope, checked against its schema. The schema
    /// is parsed once per distinct text ([`cached_schema`]): a topic's
    /// records all carry the same one, and it is most of each record's
    /// bytes.
    fn open_envelope(topic: &str, bytes: &[u8]) -> Result<Option<Value>> {
        if let Some((schema, payload)) = known_envelope(bytes) {
            // A payload that does not parse is read in full, for the
            // error that says what is wrong with the envelope.
            if let Ok(payload) = serde_json::from_slice::<Value>(payload) {
                return JsonConverter::checked(topic, &schema, payload);
            }
        }
        let envelope: Option<RawEnvelope> = serde_json::from_slice(bytes).map_err(|e| {
            let reason = match e.classify() {
                Category::Data => {
                    "with schemas.enable, JSON must be an object with exactly the fields \
                     \"schema\" and \"payload\"; for plain JSON set schemas.enable=false"
                        .to_string()
                }
                _ => format!("not JSON: {e}"),
            };
            JsonConverter::error(topic, reason)
        })?;
        let Some(envelope) = envelope else {
            return Ok(None);
        };
        let schema = cached_schema(envelope.schema.get())
            .map_err(|e| JsonConverter::error(topic, format!("not JSON: {e}")))?;
        let payload: Value = serde_json::from_str(envelope.payload.get())
            .map_err(|e| JsonConverter::error(topic, format!("not JSON: {e}")))?;
        JsonConverter::checked(topic, &schema, payload)
    }

    fn checked(topic: &str, schema: &CompiledSchema, payload: Value) -> Result<Option<Value>> {
        schema
            .check(&payload)
            .map_err(|reason| JsonConverter::error(topic, reason))?;
        Ok((!payload.is_null()).then_some(payload))
    }
}

/// An envelope as Kafka's JsonConverter (and this one) writes it, compact
/// with the schema first, whose schema is one of the cached texts: its
/// parsed schema and the payload's text, found by comparing bytes rather
/// than scanning the schema as JSON. Anything else is `None` and read in
/// full. The payload's text is one whole JSON value only if it parses as
/// one (it is parsed before it is used), so an envelope found here is
/// exactly one the full read accepts.
fn known_envelope(bytes: &[u8]) -> Option<(Rc<CompiledSchema>, &[u8])> {
    const HEAD: &[u8] = br#"{"schema":"#;
    const MIDDLE: &[u8] = br#","payload":"#;
    let rest = bytes.strip_prefix(HEAD)?;
    let inner = rest.trim_ascii_end().strip_suffix(b"}")?;
    SCHEMAS.with(|cache| {
        let cache = cache.borrow();
        cache.iter().find_map(|(text, schema)| {
            let payload = inner.strip_prefix(text.as_bytes())?.strip_prefix(MIDDLE)?;
            Some((Rc::clone(schema), payload))
        })
    })
}

/// An envelope as read: both parts left as text, so the schema is parsed
/// only when it differs from the ones cached.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    schema: &'a RawValue,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// How many distinct schema texts each thread keeps parsed: a worker
/// thread reads a few topics' keys and values at a time, and comparing a
/// record's schema text with eight others costs far less than parsing it.
const CACHED_SCHEMAS: usize = 8;

thread_local! {
    /// The most recently used schemas first, with the text each came from.
    static SCHEMAS: RefCell<Vec<(Box<str>, Rc<CompiledSchema>)>> = const { RefCell::new(Vec::new()) };
}

/// `text` parsed and compiled, from this thread's cache when it was seen
/// lately.
fn cached_schema(text: &str) -> serde_json::Result<Rc<CompiledSchema>> {
    SCHEMAS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(found) = cache.iter().position(|(seen, _)| **seen == *text) {
            let entry = cache.remove(found);
            let schema = Rc::clone(&entry.1);
            cache.insert(0, entry);
            return Ok(schema);
        }
        let schema = Rc::new(CompiledSchema::compile(&serde_json::from_str::<Value>(
            text,
        )?));
        cache.insert(0, (text.into(), Rc::clone(&schema)));
        cache.truncate(CACHED_SCHEMAS);
        Ok(schema)
    })
}

impl Converter for JsonConverter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn encode(&self, topic: &str, value: Option<&Value>) -> Result<Option<Bytes>> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let written = match self.schemas_enable {
            true => serde_json::to_vec(&Envelope {
                schema: infer_schema(value).unwrap_or(Value::Null),
                payload: value,
            }),
            false => serde_json::to_vec(value),
        };
        let bytes = written.map_err(|e| JsonConverter::error(topic, e.to_string()))?;
        Ok(Some(Bytes::from(bytes)))
    }

    fn decode(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Option<Value>> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        if self.schemas_enable {
            return JsonConverter::open_envelope(topic, bytes);
        }
        let json: Value = serde_json::from_slice(bytes)
            .map_err(|e| JsonConverter::error(topic, format!("not JSON: {e}")))?;
        Ok((!json.is_null()).then_some(json))
    }
}

/// A Kafka Connect schema of a primitive type.
fn primitive(kind: &str, optional: bool) -> Value {
    json!({ "type": kind, "optional": optional })
}

/// The schema of a null whose type nothing tells: an optional string,
/// the type every schema-aware sink can store.
fn unknown() -> Value {
    primitive("string", true)
}

fn made_optional(mut schema: Value) -> Value {
    if let Some(fields) = schema.as_object_mut() {
        fields.insert("optional".into(), Value::Bool(true));
    }
    schema
}

/// The Kafka Connect schema (in JsonConverter's JSON form) that describes
/// `value`: booleans, `int64` for integers, `double` for other numbers,
/// strings, arrays of one element schema, and objects as structs (a
/// null field is an optional string). `None` when no schema describes it:
/// a null, an integer beyond `int64`, or an array whose elements differ.
pub fn infer_schema(value: &Value) -> Option<Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => primitive("boolean", false),
        Value::Number(n) if n.is_i64() => primitive("int64", false),
        Value::Number(n) if n.is_u64() => return None,
        Value::Number(_) => primitive("double", false),
        Value::String(_) => primitive("string", false),
        Value::Array(items) => {
            let mut element: Option<Value> = None;
            let mut nulls = false;
            for item in items {
                if item.is_null() {
                    nulls = true;
                    continue;
                }
                let schema = infer_schema(item)?;
                if element.as_ref().is_some_and(|seen| *seen != schema) {
                    return None;
                }
                element = Some(schema);
            }
            let element = match (element, nulls) {
                (None, _) => unknown(),
                (Some(schema), true) => made_optional(schema),
                (Some(schema), false) => schema,
            };
            json!({ "type": "array", "items": element, "optional": false })
        }
        Value::Object(fields) => {
            let mut described = Vec::with_capacity(fields.len());
            for (name, field) in fields {
                let mut schema = match field {
                    Value::Null => unknown(),
                    field => infer_schema(field)?,
                };
                if let Some(object) = schema.as_object_mut() {
                    object.insert("field".into(), Value::String(name.clone()));
                }
                described.push(schema);
            }
            json!({ "type": "struct", "fields": described, "optional": false })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(converter: JsonConverter, value: &Value) -> (Value, Option<Value>) {
        let bytes = converter.encode("t", Some(value)).unwrap().unwrap();
        let written: Value = serde_json::from_slice(&bytes).unwrap();
        (written, converter.decode("t", Some(&bytes[..])).unwrap())
    }

    #[test]
    fn with_schemas_a_value_travels_in_kafkas_envelope_and_back() {
        let value = json!({"id": 7, "name": "ada", "score": 1.5, "tags": ["a", "b"], "note": null});
        let (written, read) = round_trip(JsonConverter::new(true), &value);
        assert_eq!(read, Some(value.clone()));
        assert_eq!(written["payload"], value);
        let schema = &written["schema"];
        assert_eq!(schema["type"], "struct");
        let fields: Vec<(&str, &str)> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["field"].as_str().unwrap(), f["type"].as_str().unwrap()))
            .collect();
        assert_eq!(
            fields,
            [
                ("id", "int64"),
                ("name", "string"),
                ("note", "string"),
                ("score", "double"),
                ("tags", "array")
            ]
        );
        assert_eq!(schema["fields"][2]["optional"], true);
        assert_eq!(schema["fields"][4]["items"]["type"], "string");
        // Kafka's own writing of a string, the schema first.
        let bytes = JsonConverter::new(true)
            .encode("t", Some(&json!("foo")))
            .unwrap()
            .unwrap();
        assert!(bytes.starts_with(br#"{"schema":"#));
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            json!({"schema": {"type": "string", "optional": false}, "payload": "foo"})
        );
    }

    #[test]
    fn without_schemas_a_value_is_plain_json() {
        let value = json!([1, "two", {"three": 3}]);
        let (written, read) = round_trip(JsonConverter::new(false), &value);
        assert_eq!(written, value);
        assert_eq!(read, Some(value));
    }

    #[test]
    fn a_value_no_schema_describes_is_written_with_a_null_schema() {
        let value = json!([1, "two"]);
        let (written, read) = round_trip(JsonConverter::new(true), &value);
        assert_eq!(written["schema"], Value::Null);
        assert_eq!(read, Some(value));
    }

    fn read(converter: JsonConverter, text: &[u8]) -> Result<Option<Value>> {
        converter.decode("t", Some(text))
    }

    #[test]
    fn nulls_are_no_bytes_both_ways() {
        let converter = JsonConverter::new(true);
        assert_eq!(converter.encode("t", None).unwrap(), None);
        assert_eq!(converter.encode("t", Some(&Value::Null)).unwrap(), None);
        assert_eq!(converter.decode("t", None).unwrap(), None);
        assert_eq!(read(converter, b"null").unwrap(), None);
    }

    #[test]
    fn reading_with_schemas_requires_a_matching_envelope() {
        let converter = JsonConverter::new(true);
        let plain = read(converter, br#"{"a":1}"#).unwrap_err();
        assert!(
            plain.to_string().contains("schemas.enable=false"),
            "{plain}"
        );
        let mismatch = br#"{"schema":{"type":"int32","optional":false},"payload":"x"}"#;
        let error = read(converter, mismatch).unwrap_err();
        assert!(error.to_string().contains("int32"), "{error}");
        let missing_field = br#"{"schema":{"type":"struct","optional":false,
            "fields":[{"field":"id","type":"int64","optional":false}]},"payload":{}}"#;
        let error = read(converter, missing_field).unwrap_err();
        assert!(error.to_string().contains("payload.id"), "{error}");
        let kafka_written = br#"{"schema":{"type":"int32","optional":false},"payload":42}"#;
        assert_eq!(read(converter, kafka_written).unwrap(), Some(json!(42)));
        let garbage = converter
            .decode("orders", Some(&b"{not json"[..]))
            .unwrap_err();
        assert!(garbage.to_string().contains("orders"), "{garbage}");
    }

    #[test]
    fn an_envelope_read_by_its_cached_schema_reads_as_in_full() {
        let converter = JsonConverter::new(true);
        let text = br#"{"schema":{"type":"struct","optional":false,"fields":[{"field":"n","type":"int32","optional":false}]},"payload":{"n":1}}"#;
        // The first read parses the schema; the second finds it cached.
        for _ in 0..2 {
            assert_eq!(read(converter, text).unwrap(), Some(json!({"n": 1})));
        }
        let extra = br#"{"schema":{"type":"struct","optional":false,"fields":[{"field":"n","type":"int32","optional":false}]},"payload":{"n":1},"x":2}"#;
        let error = read(converter, extra).unwrap_err();
        assert!(
            error.to_string().contains("schemas.enable=false"),
            "{error}"
        );
        let misfit = br#"{"schema":{"type":"struct","optional":false,"fields":[{"field":"n","type":"int32","optional":false}]},"payload":{"n":"one"}}"#;
        let error = read(converter, misfit).unwrap_err();
        assert!(error.to_string().contains("payload.n"), "{error}");
    }
}
