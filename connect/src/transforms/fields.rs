//! Transforms that add, drop, rename or blank fields of a key or value:
//! Kafka's `InsertField`, `ReplaceField` and `MaskField`, on their
//! schema-less path.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Number};

use super::settings::{Read, Settings};
use super::{kind, require_object, Outcome, Part, Transform, TransformRecord};
use crate::api::Value;

/// Kafka's `InsertField`: adds the record's topic, partition, offset or
/// timestamp, or a constant string, as fields of an object key or value.
///
/// Keys `topic.field`, `partition.field`, `offset.field` (sink records
/// only), `timestamp.field`, `static.field` with `static.value`; at least
/// one is required. A trailing `?` or `!` on a field name (Kafka's
/// optional/required marker for the schema it builds) is dropped: a
/// schema-less value has no schema to mark. A record without a partition
/// or timestamp gets no such field, and a tombstone passes untouched, as
/// in Kafka.
pub(crate) struct InsertField {
    part: Part,
    topic_field: Option<String>,
    partition_field: Option<String>,
    offset_field: Option<String>,
    timestamp_field: Option<String>,
    static_field: Option<(String, String)>,
}

/// A field name without Kafka's optionality marker.
fn insertion_name(spec: &str) -> String {
    spec.strip_suffix('?')
        .or_else(|| spec.strip_suffix('!'))
        .unwrap_or(spec)
        .to_string()
}

impl InsertField {
    pub(crate) fn configure(settings: &Settings<'_>, part: Part) -> Read<InsertField> {
        let field = |name: &str| settings.string(name).map(insertion_name);
        let static_field = match (field("static.field"), settings.string("static.value")) {
            (None, _) => None,
            (Some(name), Some(value)) => Some((name, value.to_string())),
            (Some(name), None) => {
                return Err(settings.invalid(
                    "static.value",
                    format!("No value specified for static field: {name}"),
                ))
            }
        };
        let insert = InsertField {
            part,
            topic_field: field("topic.field"),
            partition_field: field("partition.field"),
            offset_field: field("offset.field"),
            timestamp_field: field("timestamp.field"),
            static_field,
        };
        let nothing = insert.topic_field.is_none()
            && insert.partition_field.is_none()
            && insert.offset_field.is_none()
            && insert.timestamp_field.is_none()
            && insert.static_field.is_none();
        if nothing {
            return Err(settings.invalid(
                "type",
                "No field insertion configured: set topic.field, partition.field, offset.field, \
                 timestamp.field or static.field",
            ));
        }
        Ok(insert)
    }
}

impl Transform for InsertField {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let Some(value) = record.part_mut(self.part).take() else {
            return Ok(Some(record));
        };
        let mut object = require_object(Some(value), "field insertion")?;
        if let Some(field) = &self.topic_field {
            object.insert(field.clone(), Value::String(record.topic.clone()));
        }
        if let (Some(field), Some(partition)) = (&self.partition_field, record.partition) {
            object.insert(field.clone(), Value::from(partition));
        }
        if let Some(field) = &self.offset_field {
            let offset = record.offset.ok_or_else(|| {
                "Only SinkRecord supported for [field insertion]: offset.field needs the record's \
                 offset, which a source record does not have yet"
                    .to_string()
            })?;
            object.insert(field.clone(), Value::from(offset));
        }
        if let (Some(field), Some(timestamp)) = (&self.timestamp_field, record.timestamp) {
            object.insert(field.clone(), Value::from(timestamp));
        }
        if let Some((field, constant)) = &self.static_field {
            object.insert(field.clone(), Value::String(constant.clone()));
        }
        *record.part_mut(self.part) = Some(Value::Object(object));
        Ok(Some(record))
    }
}

/// Kafka's `ReplaceField`: keeps only `include`d fields (all when empty),
/// drops `exclude`d ones (which wins over `include`), and renames fields
/// by `renames` (`old:new,...`). A tombstone passes untouched.
pub(crate) struct ReplaceField {
    part: Part,
    exclude: BTreeSet<String>,
    include: BTreeSet<String>,
    renames: BTreeMap<String, String>,
}

/// `old:new` pairs split as Java's `String.split(":")` splits them, which
/// drops trailing empty parts (`a:b:` is the pair `a`, `b`), so a mapping
/// Kafka accepts is accepted here.
fn parse_renames(mappings: &[String]) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut renames = BTreeMap::new();
    for mapping in mappings {
        let mut parts: Vec<&str> = mapping.split(':').collect();
        while parts.len() > 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        match parts.as_slice() {
            [old, new] => renames.insert(old.to_string(), new.to_string()),
            _ => return Err(format!("Invalid rename mapping: {mapping}")),
        };
    }
    Ok(renames)
}

impl ReplaceField {
    pub(crate) fn configure(settings: &Settings<'_>, part: Part) -> Read<ReplaceField> {
        let renames = parse_renames(&settings.list("renames"))
            .map_err(|reason| settings.invalid("renames", reason))?;
        Ok(ReplaceField {
            part,
            exclude: settings.list("exclude").into_iter().collect(),
            include: settings.list("include").into_iter().collect(),
            renames,
        })
    }

    fn keeps(&self, field: &str) -> bool {
        !self.exclude.contains(field) && (self.include.is_empty() || self.include.contains(field))
    }
}

impl Transform for ReplaceField {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let Some(value) = record.part_mut(self.part).take() else {
            return Ok(Some(record));
        };
        let object = require_object(Some(value), "field replacement")?;
        let replaced: Map<String, Value> = object
            .into_iter()
            .filter(|(field, _)| self.keeps(field))
            .map(|(field, value)| match self.renames.get(&field) {
                Some(renamed) => (renamed.clone(), value),
                None => (field, value),
            })
            .collect();
        *record.part_mut(self.part) = Some(Value::Object(replaced));
        Ok(Some(record))
    }
}

/// Kafka's `MaskField`: replaces each of `fields` with its type's empty
/// value (`false`, `0`, `0.0`, `""`, `[]`, `{}`), or with `replacement`
/// (numbers and strings only) when given.
///
/// As in Kafka, a masked field the value lacks is written as `null`.
/// Unlike Kafka, which fails on one, a tombstone passes untouched: it has
/// no field to mask.
pub(crate) struct MaskField {
    part: Part,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    pub(crate) fn configure(settings: &Settings<'_>, part: Part) -> Read<MaskField> {
        let replacement = match settings.string("replacement") {
            None => None,
            Some("") => return Err(settings.invalid("replacement", "must not be empty")),
            Some(text) => Some(text.to_string()),
        };
        Ok(MaskField {
            part,
            fields: settings.required_list("fields")?,
            replacement,
        })
    }
}

/// The masked form of `value`.
fn masked(value: Option<&Value>, replacement: Option<&str>) -> std::result::Result<Value, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Value::Null);
    };
    let integer = matches!(value, Value::Number(n) if n.is_i64() || n.is_u64());
    match (value, replacement) {
        (Value::Bool(_), None) => Ok(Value::Bool(false)),
        (Value::Number(_), None) if integer => Ok(Value::from(0)),
        (Value::Number(_), None) => Ok(Value::from(0.0)),
        (Value::String(_), None) => Ok(Value::String(String::new())),
        (Value::Array(_), None) => Ok(Value::Array(Vec::new())),
        (Value::Object(_), None) => Ok(Value::Object(Map::new())),
        (Value::String(_), Some(text)) => Ok(Value::String(text.to_string())),
        (Value::Number(_), Some(text)) => replacement_number(text, integer),
        (other, Some(_)) => Err(format!(
            "Cannot mask value of type {} with custom replacement.",
            kind(Some(other))
        )),
        (Value::Null, None) => Ok(Value::Null),
    }
}

/// `text` as a number of the masked field's kind; an integer field takes
/// a decimal replacement truncated, as Kafka's `Values.convertToLong` does.
fn replacement_number(text: &str, integer: bool) -> std::result::Result<Value, String> {
    let invalid = || format!("Unable to convert {text} (String) to number");
    if integer {
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Value::from(n));
        }
    }
    let x: f64 = text.parse().map_err(|_| invalid())?;
    match integer {
        true if x.is_finite() => Ok(Value::from(x as i64)),
        true => Err(invalid()),
        false => Number::from_f64(x).map(Value::Number).ok_or_else(invalid),
    }
}

impl Transform for MaskField {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let Some(value) = record.part_mut(self.part).take() else {
            return Ok(Some(record));
        };
        let mut object = require_object(Some(value), "mask fields")?;
        for field in &self.fields {
            let masked = masked(object.get(field), self.replacement.as_deref())?;
            object.insert(field.clone(), masked);
        }
        *record.part_mut(self.part) = Some(Value::Object(object));
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConfigMap;
    use serde_json::json;

    fn settings_of(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (format!("transforms.t.{k}"), v.to_string()))
            .collect()
    }

    fn build<T>(
        pairs: &[(&str, &str)],
        configure: fn(&Settings<'_>, Part) -> Read<T>,
        part: Part,
    ) -> Read<T> {
        let config = settings_of(pairs);
        configure(&Settings::new("transforms.t.".into(), &config), part)
    }

    fn sink_record(value: Value) -> TransformRecord {
        TransformRecord {
            topic: "orders".into(),
            partition: Some(3),
            offset: Some(42),
            key: Some(json!({"id": 1})),
            value: Some(value),
            headers: Vec::new(),
            timestamp: Some(1_700_000_000_000),
        }
    }

    fn value_of(outcome: Outcome) -> Option<Value> {
        outcome.unwrap().unwrap().value
    }

    #[test]
    fn insert_field_adds_the_records_metadata_and_a_constant() {
        let insert = build(
            &[
                ("topic.field", "t"),
                ("partition.field", "p!"),
                ("offset.field", "o?"),
                ("timestamp.field", "ts"),
                ("static.field", "via"),
                ("static.value", "spool"),
            ],
            InsertField::configure,
            Part::Value,
        )
        .unwrap();
        let out = value_of(insert.apply(sink_record(json!({"a": 1}))));
        assert_eq!(
            out,
            Some(
                json!({"a": 1, "t": "orders", "p": 3, "o": 42, "ts": 1_700_000_000_000i64,
                        "via": "spool"})
            )
        );
        // A source record has no offset: offset.field fails on it.
        let mut source = sink_record(json!({}));
        source.offset = None;
        let error = insert.apply(source).unwrap_err();
        assert!(error.contains("SinkRecord"), "{error}");
        // A tombstone passes; a string value cannot take fields.
        let mut tombstone = sink_record(json!(null));
        tombstone.value = None;
        assert_eq!(value_of(insert.apply(tombstone)), None);
        let error = insert.apply(sink_record(json!("text"))).unwrap_err();
        assert_eq!(
            error,
            "Only Map objects supported in absence of schema for [field insertion], found: string"
        );
    }

    #[test]
    fn insert_field_on_the_key_and_its_config_errors() {
        let insert = build(
            &[("topic.field", "from")],
            InsertField::configure,
            Part::Key,
        )
        .unwrap();
        let out = insert.apply(sink_record(json!(1))).unwrap().unwrap();
        assert_eq!(out.key, Some(json!({"id": 1, "from": "orders"})));
        assert_eq!(out.value, Some(json!(1)));
        let none = build(&[], InsertField::configure, Part::Value)
            .err()
            .unwrap();
        assert!(none.to_string().contains("transforms.t.type"), "{none}");
        let no_value = build(
            &[("static.field", "x")],
            InsertField::configure,
            Part::Value,
        )
        .err()
        .unwrap();
        assert_eq!(
            no_value.to_string(),
            "invalid configuration `transforms.t.static.value`: No value specified for static \
             field: x"
        );
    }

    #[test]
    fn replace_field_includes_excludes_and_renames() {
        let replace = build(
            &[
                ("include", "a,b,c"),
                ("exclude", "c"),
                ("renames", "a:alpha,b:beta:"),
            ],
            ReplaceField::configure,
            Part::Value,
        )
        .unwrap();
        let out = value_of(replace.apply(sink_record(json!({"a": 1, "b": 2, "c": 3, "d": 4}))));
        assert_eq!(out, Some(json!({"alpha": 1, "beta": 2})));
        let all = build(
            &[("renames", "d:delta")],
            ReplaceField::configure,
            Part::Value,
        )
        .unwrap();
        let out = value_of(all.apply(sink_record(json!({"a": 1, "d": 4}))));
        assert_eq!(out, Some(json!({"a": 1, "delta": 4})));
        let bad = build(
            &[("renames", "a:b:c")],
            ReplaceField::configure,
            Part::Value,
        )
        .err()
        .unwrap();
        assert_eq!(
            bad.to_string(),
            "invalid configuration `transforms.t.renames`: Invalid rename mapping: a:b:c"
        );
    }

    #[test]
    fn mask_field_blanks_by_type_or_with_a_replacement() {
        let mask = build(
            &[("fields", "b,n,x,s,l,o,gone")],
            MaskField::configure,
            Part::Value,
        )
        .unwrap();
        let value = json!({"b": true, "n": 7, "x": 1.5, "s": "secret", "l": [1], "o": {"k": 1},
                           "keep": "me"});
        let out = value_of(mask.apply(sink_record(value)));
        assert_eq!(
            out,
            Some(
                json!({"b": false, "n": 0, "x": 0.0, "s": "", "l": [], "o": {}, "keep": "me",
                        "gone": null})
            )
        );
        let replace = build(
            &[("fields", "n,x,s"), ("replacement", "12")],
            MaskField::configure,
            Part::Value,
        )
        .unwrap();
        let out = value_of(replace.apply(sink_record(json!({"n": 7, "x": 1.5, "s": "pin"}))));
        assert_eq!(out, Some(json!({"n": 12, "x": 12.0, "s": "12"})));
        let words = build(
            &[("fields", "n"), ("replacement", "****")],
            MaskField::configure,
            Part::Value,
        )
        .unwrap();
        let error = words.apply(sink_record(json!({"n": 7}))).unwrap_err();
        assert_eq!(error, "Unable to convert **** (String) to number");
        let flag = build(
            &[("fields", "b"), ("replacement", "x")],
            MaskField::configure,
            Part::Value,
        )
        .unwrap();
        let error = flag.apply(sink_record(json!({"b": true}))).unwrap_err();
        assert_eq!(
            error,
            "Cannot mask value of type boolean with custom replacement."
        );
        let missing = build(&[], MaskField::configure, Part::Value).err().unwrap();
        assert!(
            missing.to_string().contains("transforms.t.fields"),
            "{missing}"
        );
    }
}
