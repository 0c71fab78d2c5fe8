//! Transforms of headers, and `Filter`: Kafka's `HeaderFrom`,
//! `InsertHeader`, `DropHeaders` and `Filter`.
//!
//! Records carry headers as bytes. A header made from a field is written
//! as Kafka's default `SimpleHeaderConverter` writes it: a string as its
//! UTF-8 text, a null as no bytes, anything else as its compact JSON
//! text (`42`, `true`, `{"a":1}`). Headers are appended, never replacing
//! one of the same name, as Kafka's `Headers.add` appends.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::settings::{Read, Settings};
use super::{not_object, Outcome, Part, Transform, TransformRecord};
use crate::api::Value;

/// A header's bytes for `value` (see the module's comment).
fn header_bytes(value: Option<&Value>) -> Option<Bytes> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(Bytes::copy_from_slice(text.as_bytes())),
        Some(other) => Some(Bytes::from(other.to_string())),
    }
}

/// Whether `HeaderFrom` moves its fields or copies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Move,
    Copy,
}

/// Kafka's `HeaderFrom`: the value of each of `fields` becomes a header
/// named by the same position in `headers`; `operation=move` removes the
/// fields, `copy` keeps them. The key or value must be an object (a
/// tombstone fails, as in Kafka); a field it lacks gives a null header.
pub(crate) struct HeaderFrom {
    part: Part,
    fields: Vec<String>,
    headers: Vec<String>,
    operation: Operation,
}

impl HeaderFrom {
    pub(crate) fn configure(settings: &Settings<'_>, part: Part) -> Read<HeaderFrom> {
        let fields = settings.required_list("fields")?;
        let headers = settings.required_list("headers")?;
        if fields.len() != headers.len() {
            return Err(settings.invalid(
                "headers",
                "'fields' config must have the same number of elements as 'headers' config.",
            ));
        }
        let operation = match settings.required("operation")? {
            "move" => Operation::Move,
            "copy" => Operation::Copy,
            other => {
                return Err(settings.invalid(
                    "operation",
                    format!("invalid value `{other}`: must be one of move, copy"),
                ))
            }
        };
        Ok(HeaderFrom {
            part,
            fields,
            headers,
            operation,
        })
    }
}

impl Transform for HeaderFrom {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let purpose = match self.operation {
            Operation::Move => "header move",
            Operation::Copy => "header copy",
        };
        let Some(Value::Object(object)) = record.part_mut(self.part).as_mut() else {
            return Err(not_object(record.part(self.part), purpose));
        };
        let mut added = Vec::with_capacity(self.fields.len());
        for (field, header) in self.fields.iter().zip(&self.headers) {
            let value = match self.operation {
                Operation::Move => object.remove(field),
                Operation::Copy => object.get(field).cloned(),
            };
            added.push((header.clone(), header_bytes(value.as_ref())));
        }
        record.headers.extend(added);
        Ok(Some(record))
    }
}

/// Kafka's `InsertHeader`: appends header `header` with the bytes of
/// `value.literal` to every record.
pub(crate) struct InsertHeader {
    header: String,
    value: Bytes,
}

impl InsertHeader {
    pub(crate) fn configure(settings: &Settings<'_>) -> Read<InsertHeader> {
        Ok(InsertHeader {
            header: settings.required("header")?.to_string(),
            value: Bytes::copy_from_slice(settings.required("value.literal")?.as_bytes()),
        })
    }
}

impl Transform for InsertHeader {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        record
            .headers
            .push((self.header.clone(), Some(self.value.clone())));
        Ok(Some(record))
    }
}

/// Kafka's `DropHeaders`: removes every header named in `headers`.
pub(crate) struct DropHeaders {
    headers: BTreeSet<String>,
}

impl DropHeaders {
    pub(crate) fn configure(settings: &Settings<'_>) -> Read<DropHeaders> {
        Ok(DropHeaders {
            headers: settings.required_list("headers")?.into_iter().collect(),
        })
    }
}

impl Transform for DropHeaders {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        record
            .headers
            .retain(|(name, _)| !self.headers.contains(name));
        Ok(Some(record))
    }
}

/// Kafka's `Filter`: drops every record it sees. It is meant to run under
/// a predicate (`transforms.<alias>.predicate`), which chooses the
/// records to drop.
pub(crate) struct Filter;

impl Transform for Filter {
    fn apply(&self, _record: TransformRecord) -> Outcome {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConfigMap;
    use serde_json::json;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (format!("transforms.h.{k}"), v.to_string()))
            .collect()
    }

    fn settings(config: &ConfigMap) -> Settings<'_> {
        Settings::new("transforms.h.".into(), config)
    }

    fn header(name: &str, value: &str) -> (String, Option<Bytes>) {
        (
            name.to_string(),
            Some(Bytes::copy_from_slice(value.as_bytes())),
        )
    }

    fn record(value: Option<Value>) -> TransformRecord {
        let mut record = TransformRecord::new("t", value);
        record.headers.push(header("trace", "abc"));
        record
    }

    #[test]
    fn header_from_moves_or_copies_fields_into_headers() {
        let moving = config(&[
            ("fields", "id,meta,gone"),
            ("headers", "x-id,x-meta,x-gone"),
            ("operation", "move"),
        ]);
        let from = HeaderFrom::configure(&settings(&moving), Part::Value).unwrap();
        let value = json!({"id": 7, "meta": {"a": "b"}, "keep": "yes"});
        let out = from.apply(record(Some(value.clone()))).unwrap().unwrap();
        assert_eq!(out.value, Some(json!({"keep": "yes"})));
        assert_eq!(
            out.headers,
            [
                header("trace", "abc"),
                header("x-id", "7"),
                header("x-meta", "{\"a\":\"b\"}"),
                ("x-gone".to_string(), None),
            ]
        );
        let copying = config(&[("fields", "keep"), ("headers", "k"), ("operation", "copy")]);
        let copy = HeaderFrom::configure(&settings(&copying), Part::Value).unwrap();
        let out = copy.apply(record(Some(value.clone()))).unwrap().unwrap();
        assert_eq!(out.value, Some(value));
        assert_eq!(out.headers.last(), Some(&header("k", "yes")));
        let error = copy.apply(record(None)).unwrap_err();
        assert_eq!(
            error,
            "Only Map objects supported in absence of schema for [header copy], found: null"
        );
    }

    #[test]
    fn header_from_config_errors_name_the_key() {
        let uneven = config(&[("fields", "a,b"), ("headers", "x"), ("operation", "copy")]);
        let error = HeaderFrom::configure(&settings(&uneven), Part::Key)
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("transforms.h.headers"),
            "{error}"
        );
        let op = config(&[("fields", "a"), ("headers", "x"), ("operation", "swap")]);
        let error = HeaderFrom::configure(&settings(&op), Part::Key)
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("transforms.h.operation"),
            "{error}"
        );
    }

    #[test]
    fn insert_and_drop_headers() {
        let insert = config(&[("header", "source"), ("value.literal", "spool")]);
        let insert = InsertHeader::configure(&settings(&insert)).unwrap();
        let out = insert.apply(record(None)).unwrap().unwrap();
        assert_eq!(
            out.headers,
            [header("trace", "abc"), header("source", "spool")]
        );

        let drop = config(&[("headers", "trace,other")]);
        let drop = DropHeaders::configure(&settings(&drop)).unwrap();
        let out = drop.apply(out).unwrap().unwrap();
        assert_eq!(out.headers, [header("source", "spool")]);
        assert!(Filter.apply(out).unwrap().is_none());
    }
}
