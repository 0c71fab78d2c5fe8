//! The check of a JsonConverter envelope's payload against its schema, as
//! Kafka checks it when it reads an envelope.
//!
//! A topic's records all carry the same schema, so the schema is compiled
//! once per distinct text ([`CompiledSchema::compile`], cached by the
//! converter): each record's check then walks the payload alone, without
//! looking up `type`, `fields` and `field` in the schema's JSON objects for
//! every record. A schema that is malformed (not an object, without a
//! type, with an unknown type or a nameless field) compiles too, and fails
//! the check of each payload it is met on with the error the walk of the
//! raw schema gives, in the same order.

use std::fmt;

use crate::api::Value;

/// A payload check's outcome: what does not fit, and where.
pub(super) type Check = std::result::Result<(), String>;

/// Where in a payload a check is: written out only when something does
/// not fit, so a payload that fits costs no text.
enum Path<'a> {
    Payload,
    Field(&'a Path<'a>, &'a str),
    Element(&'a Path<'a>, usize),
    MapKey(&'a Path<'a>, usize),
    MapValue(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Payload => f.write_str("payload"),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Element(parent, i) => write!(f, "{parent}[{i}]"),
            Path::MapKey(parent, i) => write!(f, "{parent}[{i}] key"),
            Path::MapValue(parent, i) => write!(f, "{parent}[{i}] value"),
        }
    }
}

/// A schema as the check uses it.
#[derive(Debug)]
pub(super) struct CompiledSchema {
    /// `optional`, or a `default` given: a null payload fits.
    nullable: bool,
    shape: Shape,
}

#[derive(Debug)]
enum Shape {
    /// A null schema: anything fits.
    Any,
    /// A schema that is not a JSON object.
    NotAnObject,
    NoType,
    UnknownType(String),
    Boolean,
    /// `int8`, `int16`, `int32`, `int64` (the name kept for errors).
    Integer {
        kind: &'static str,
        min: i64,
        max: i64,
    },
    /// `float` or `double`.
    Number(&'static str),
    /// `string`, or `bytes` (base64 strings in JSON, Kafka's encoding).
    Text(&'static str),
    Array(Box<CompiledSchema>),
    /// Kafka writes a map with string keys as an object, and any other
    /// map as an array of `[key, value]` pairs.
    Map {
        keys: Box<CompiledSchema>,
        values: Box<CompiledSchema>,
    },
    Struct(Vec<Field>),
}

/// A struct field: its name and schema, or the lack of a name.
#[derive(Debug)]
enum Field {
    Named(String, CompiledSchema),
    Nameless,
}

impl CompiledSchema {
    pub(super) fn compile(schema: &Value) -> CompiledSchema {
        let any = |shape| CompiledSchema {
            nullable: false,
            shape,
        };
        let object = match schema {
            Value::Null => return any(Shape::Any),
            Value::Object(object) => object,
            _ => return any(Shape::NotAnObject),
        };
        let nullable = object.get("optional").and_then(Value::as_bool) == Some(true)
            || object.contains_key("default");
        let child = |key: &str| {
            Box::new(CompiledSchema::compile(
                object.get(key).unwrap_or(&Value::Null),
            ))
        };
        let shape = match object.get("type").and_then(Value::as_str) {
            None => Shape::NoType,
            Some("boolean") => Shape::Boolean,
            Some("int8") => integer("int8", i64::from(i8::MIN), i64::from(i8::MAX)),
            Some("int16") => integer("int16", i64::from(i16::MIN), i64::from(i16::MAX)),
            Some("int32") => integer("int32", i64::from(i32::MIN), i64::from(i32::MAX)),
            Some("int64") => integer("int64", i64::MIN, i64::MAX),
            Some("float") => Shape::Number("float"),
            Some("double") => Shape::Number("double"),
            Some("string") => Shape::Text("string"),
            Some("bytes") => Shape::Text("bytes"),
            Some("array") => Shape::Array(child("items")),
            Some("map") => Shape::Map {
                keys: child("keys"),
                values: child("values"),
            },
            Some("struct") => Shape::Struct(fields(object.get("fields"))),
            Some(other) => Shape::UnknownType(other.to_string()),
        };
        CompiledSchema { nullable, shape }
    }

    /// Whether `payload` is what the schema says; the error names where
    /// it is not.
    pub(super) fn check(&self, payload: &Value) -> Check {
        self.check_at(payload, &Path::Payload)
    }

    fn check_at(&self, payload: &Value, path: &Path) -> Check {
        let (fits, kind) = match &self.shape {
            Shape::Any => return Ok(()),
            Shape::NotAnObject => return Err(format!("the schema of {path} is not an object")),
            // A null fits or not before the type is looked at.
            _ if payload.is_null() => {
                return match self.nullable {
                    true => Ok(()),
                    false => Err(format!("{path} is null but its schema is not optional")),
                }
            }
            Shape::NoType => return Err(format!("the schema of {path} has no type")),
            Shape::UnknownType(other) => {
                return Err(format!(
                    "the schema of {path} has an unknown type `{other}`"
                ))
            }
            Shape::Array(element) => return check_array(element, payload, path),
            Shape::Map { keys, values } => return check_map(keys, values, payload, path),
            Shape::Struct(fields) => return check_struct(fields, payload, path),
            Shape::Boolean => (payload.is_boolean(), "boolean"),
            Shape::Integer { kind, min, max } => (
                payload.as_i64().is_some_and(|n| (*min..=*max).contains(&n)),
                *kind,
            ),
            Shape::Number(kind) => (payload.is_number(), *kind),
            Shape::Text(kind) => (payload.is_string(), *kind),
        };
        match fits {
            true => Ok(()),
            false => Err(format!(
                "{path} is not of its schema's type {kind}: {payload}"
            )),
        }
    }
}

fn integer(kind: &'static str, min: i64, max: i64) -> Shape {
    Shape::Integer { kind, min, max }
}

fn fields(fields: Option<&Value>) -> Vec<Field> {
    let fields = fields.and_then(Value::as_array).map(Vec::as_slice);
    fields
        .unwrap_or_default()
        .iter()
        .map(|field| match field.get("field").and_then(Value::as_str) {
            Some(name) => Field::Named(name.to_string(), CompiledSchema::compile(field)),
            None => Field::Nameless,
        })
        .collect()
}

fn check_array(element: &CompiledSchema, payload: &Value, path: &Path) -> Check {
    let Some(items) = payload.as_array() else {
        return Err(format!("{path} is not an array"));
    };
    for (i, item) in items.iter().enumerate() {
        element.check_at(item, &Path::Element(path, i))?;
    }
    Ok(())
}

fn check_map(
    keys: &CompiledSchema,
    values: &CompiledSchema,
    payload: &Value,
    path: &Path,
) -> Check {
    match payload {
        Value::Object(entries) => entries
            .iter()
            .try_for_each(|(k, v)| values.check_at(v, &Path::Field(path, k))),
        Value::Array(pairs) => pairs.iter().enumerate().try_for_each(|(i, pair)| {
            match pair.as_array().map(Vec::as_slice) {
                Some([k, v]) => {
                    keys.check_at(k, &Path::MapKey(path, i))?;
                    values.check_at(v, &Path::MapValue(path, i))
                }
                _ => Err(format!("{path}[{i}] is not a [key, value] pair")),
            }
        }),
        _ => Err(format!("{path} is not a map")),
    }
}

fn check_struct(fields: &[Field], payload: &Value, path: &Path) -> Check {
    let Some(object) = payload.as_object() else {
        return Err(format!("{path} is not a struct"));
    };
    for field in fields {
        let Field::Named(name, schema) = field else {
            return Err(format!("a field of the schema of {path} has no name"));
        };
        let value = object.get(name).unwrap_or(&Value::Null);
        schema.check_at(value, &Path::Field(path, name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(schema: Value, payload: Value) -> Check {
        CompiledSchema::compile(&schema).check(&payload)
    }

    #[test]
    fn a_payload_fits_its_schema_or_the_error_says_where_it_does_not() {
        let schema = json!({"type": "struct", "optional": false, "fields": [
            {"field": "id", "type": "int32", "optional": false},
            {"field": "tags", "type": "array", "optional": true, "items": {"type": "string", "optional": false}},
            {"field": "scores", "type": "map", "optional": false,
             "keys": {"type": "int8", "optional": false}, "values": {"type": "double", "optional": false}},
            {"field": "note", "type": "string", "optional": false, "default": ""},
        ]});
        let fits = json!({"id": 7, "tags": ["a"], "scores": [[1, 2.5]], "note": null});
        assert_eq!(check(schema.clone(), fits), Ok(()));
        let cases = [
            (
                json!({"id": 1_i64 << 40, "scores": {}}),
                "payload.id is not of its schema's type int32: 1099511627776",
            ),
            (
                json!({"id": 1, "tags": ["a", 2], "scores": {}}),
                "payload.tags[1] is not of its schema's type string: 2",
            ),
            (
                json!({"id": 1, "scores": [[300, 1.0]]}),
                "payload.scores[0] key is not of its schema's type int8: 300",
            ),
            (
                json!({"id": 1, "scores": [[1]]}),
                "payload.scores[0] is not a [key, value] pair",
            ),
            (
                json!({"id": 1, "scores": {"a": "b"}}),
                "payload.scores.a is not of its schema's type double: \"b\"",
            ),
            (
                json!({"id": 1}),
                "payload.scores is null but its schema is not optional",
            ),
            (json!([1]), "payload is not a struct"),
        ];
        for (payload, error) in cases {
            assert_eq!(check(schema.clone(), payload), Err(error.to_string()));
        }
    }

    #[test]
    fn a_malformed_schema_fails_each_check_as_its_raw_walk_would() {
        assert_eq!(check(Value::Null, json!([1, "x"])), Ok(()));
        assert_eq!(
            check(json!("int32"), Value::Null),
            Err("the schema of payload is not an object".into())
        );
        // A null payload of an optional schema fits before its type is read.
        assert_eq!(check(json!({"optional": true}), Value::Null), Ok(()));
        assert_eq!(
            check(json!({"optional": true}), json!(1)),
            Err("the schema of payload has no type".into())
        );
        assert_eq!(
            check(json!({"type": "decimal"}), json!(1)),
            Err("the schema of payload has an unknown type `decimal`".into())
        );
        // Fields are checked in order: one before the nameless field fails
        // first, a nameless field before any after it.
        let schema = json!({"type": "struct", "fields": [
            {"field": "a", "type": "int64"}, {"type": "int64"}, {"field": "b", "type": "int64"}]});
        assert_eq!(
            check(schema.clone(), json!({"a": "x", "b": "y"})),
            Err("payload.a is not of its schema's type int64: \"x\"".into())
        );
        assert_eq!(
            check(schema, json!({"a": 1, "b": "y"})),
            Err("a field of the schema of payload has no name".into())
        );
    }
}
