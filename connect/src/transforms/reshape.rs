//! Transforms that change a key's or value's shape: Kafka's
//! `ExtractField`, `HoistField`, `ValueToKey` and `Flatten`, on their
//! schema-less path.

use serde_json::Map;

use super::settings::{Read, Settings};
use super::{not_object, require_object, Outcome, Part, Transform, TransformRecord};
use crate::api::Value;

/// A field path of Kafka's KIP-821: with `field.syntax.version=V1` (the
/// default, Kafka's, so a name with dots keeps naming one field as it did
/// before nested paths existed) the whole text names one top-level field;
/// with `V2` dots step into nested objects, and a name holding dots is
/// wrapped in backticks (`` `a.b`.c ``; a backtick inside one is escaped
/// with a backslash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldPath {
    steps: Vec<String>,
}

impl FieldPath {
    /// The path `settings` configure under `key`, in the syntax version
    /// `field.syntax.version` chooses.
    pub(crate) fn configure(settings: &Settings<'_>, key: &str) -> Read<FieldPath> {
        let text = settings.required(key)?;
        let version = settings.string("field.syntax.version").unwrap_or("V1");
        match version.to_ascii_uppercase().as_str() {
            "V1" => Ok(FieldPath {
                steps: vec![text.to_string()],
            }),
            "V2" => parse_v2(text).map_err(|reason| settings.invalid(key, reason)),
            _ => Err(settings.invalid(
                "field.syntax.version",
                format!("Unrecognized field syntax version `{version}`: use V1 or V2"),
            )),
        }
    }

    /// The value at this path in `object`; `None` where a step is missing
    /// or null. A step into something that is not an object fails, as
    /// Kafka's `requireMapOrNull` does.
    fn value_in<'v>(
        &self,
        object: &'v Map<String, Value>,
    ) -> std::result::Result<Option<&'v Value>, String> {
        let Some((last, parents)) = self.steps.split_last() else {
            return Ok(None);
        };
        let mut current = object;
        for step in parents {
            match current.get(step) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::Object(inner)) => current = inner,
                Some(other) => {
                    return Err(format!(
                        "Only Map objects supported in absence of schema for [nested field \
                         access], found: {}",
                        super::kind(Some(other))
                    ))
                }
            }
        }
        Ok(current.get(last))
    }
}

/// Kafka's `SingleFieldPath.buildFieldPathV2`, step for step.
fn parse_v2(path: &str) -> std::result::Result<FieldPath, String> {
    let chars: Vec<char> = path.chars().collect();
    let incomplete = |at: usize| {
        format!(
            "Incomplete backtick pair in path: [{path}], consider adding a backslash before \
             backtick at position {at} to escape it"
        )
    };
    let find = |from: usize, wanted: char| (from..chars.len()).find(|&i| chars[i] == wanted);
    let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
    let mut steps = Vec::new();
    let mut idx = 0;
    while idx < chars.len() {
        if chars[idx] != '`' {
            match find(idx, '.') {
                Some(dot) => {
                    steps.push(text(idx, dot));
                    idx = dot + 1;
                }
                None => {
                    steps.push(text(idx, chars.len()));
                    idx = chars.len();
                }
            }
            continue;
        }
        let backtick_at = idx;
        idx += 1;
        let mut field = String::new();
        let mut start = idx;
        loop {
            let Some(close) = find(idx, '`') else {
                return Err(incomplete(backtick_at));
            };
            let escaped = chars[close - 1] == '\\';
            if close >= chars.len() - 1 {
                if escaped {
                    return Err(incomplete(backtick_at));
                }
                field.push_str(&text(start, close));
                steps.push(field);
                idx = close + 1;
                break;
            }
            if chars[close + 1] != '.' {
                idx = close + 1;
                continue;
            }
            if escaped {
                field.push_str(&text(start, close - 1));
                field.push('`');
                idx = close + 1;
                start = idx;
                continue;
            }
            field.push_str(&text(start, close));
            steps.push(field);
            idx = close + 2;
            break;
        }
    }
    if path.ends_with('.') {
        steps.push(String::new());
    }
    Ok(FieldPath { steps })
}

/// Kafka's `ExtractField`: replaces an object key or value by one of its
/// fields (`field`, a [`FieldPath`]). A missing field, or a null key or
/// value, gives no key or value (a null value is a tombstone).
pub(crate) struct ExtractField {
    part: Part,
    path: FieldPath,
}

impl ExtractField {
    pub(crate) fn configure(settings: &Settings<'_>, part: Part) -> Read<ExtractField> {
        Ok(ExtractField {
            part,
            path: FieldPath::configure(settings, "field")?,
        })
    }
}

impl Transform for ExtractField {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let Some(value) = record.part_mut(self.part).take() else {
            return Ok(Some(record));
        };
        let object = require_object(Some(value), "field extraction")?;
        let extracted = self.path.value_in(&object)?.filter(|v| !v.is_null());
        *record.part_mut(self.part) = extracted.cloned();
        Ok(Some(record))
    }
}

/// Kafka's `HoistField`: wraps a key or value into an object with one
/// field, `field`. A null key or value is wrapped too (`{"field": null}`),
/// as Kafka wraps it.
pub(crate) struct HoistField {
    part: Part,
    field: String,
}

impl HoistField {
    pub(crate) fn configure(settings: &Settings<'_>, part: Part) -> Read<HoistField> {
        Ok(HoistField {
            part,
            field: settings.required("field")?.to_string(),
        })
    }
}

impl Transform for HoistField {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let slot = record.part_mut(self.part);
        let inner = slot.take().unwrap_or(Value::Null);
        let mut object = Map::new();
        object.insert(self.field.clone(), inner);
        *slot = Some(Value::Object(object));
        Ok(Some(record))
    }
}

/// Kafka's `ValueToKey`: the key becomes an object of the value's
/// `fields` (a field the value lacks is `null`). The value must be an
/// object: a tombstone fails, as in Kafka.
pub(crate) struct ValueToKey {
    fields: Vec<String>,
}

impl ValueToKey {
    pub(crate) fn configure(settings: &Settings<'_>) -> Read<ValueToKey> {
        Ok(ValueToKey {
            fields: settings.required_list("fields")?,
        })
    }
}

impl Transform for ValueToKey {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let key: Map<String, Value> = match &record.value {
            Some(Value::Object(value)) => self
                .fields
                .iter()
                .map(|field| {
                    (
                        field.clone(),
                        value.get(field).cloned().unwrap_or(Value::Null),
                    )
                })
                .collect(),
            other => {
                return Err(not_object(
                    other.as_ref(),
                    "copying fields from value to key",
                ))
            }
        };
        record.key = Some(Value::Object(key));
        Ok(Some(record))
    }
}

/// Kafka's `Flatten`: nested objects become top-level fields named by
/// their path joined with `delimiter` (default `.`, Kafka's). Arrays and
/// everything in them stay as they are; an empty nested object leaves no
/// field. A tombstone passes untouched.
pub(crate) struct Flatten {
    part: Part,
    delimiter: String,
}

impl Flatten {
    pub(crate) fn configure(settings: &Settings<'_>, part: Part) -> Read<Flatten> {
        Ok(Flatten {
            part,
            delimiter: settings.string("delimiter").unwrap_or(".").to_string(),
        })
    }

    fn flatten_into(&self, object: Map<String, Value>, prefix: &str, out: &mut Map<String, Value>) {
        for (field, value) in object {
            let name = match prefix {
                "" => field,
                _ => format!("{prefix}{}{field}", self.delimiter),
            };
            match value {
                Value::Object(inner) => self.flatten_into(inner, &name, out),
                other => {
                    out.insert(name, other);
                }
            }
        }
    }
}

impl Transform for Flatten {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let Some(value) = record.part_mut(self.part).take() else {
            return Ok(Some(record));
        };
        let object = require_object(Some(value), "flattening")?;
        let mut flat = Map::new();
        self.flatten_into(object, "", &mut flat);
        *record.part_mut(self.part) = Some(Value::Object(flat));
        Ok(Some(record))
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
            .map(|(k, v)| (format!("transforms.t.{k}"), v.to_string()))
            .collect()
    }

    fn record(key: Option<Value>, value: Option<Value>) -> TransformRecord {
        TransformRecord {
            key,
            value,
            ..TransformRecord::new("t", None)
        }
    }

    fn path(text: &str) -> Vec<String> {
        parse_v2(text).unwrap().steps
    }

    #[test]
    fn v2_paths_step_into_objects_and_backticks_keep_dots() {
        assert_eq!(path("a.b.c"), ["a", "b", "c"]);
        assert_eq!(path("`a.b`.c"), ["a.b", "c"]);
        assert_eq!(path("a.`b.c`"), ["a", "b.c"]);
        assert_eq!(path("`a\\`.b`.c"), ["a`.b", "c"]);
        assert_eq!(path("a."), ["a", ""]);
        let error = parse_v2("`a.b").unwrap_err();
        assert!(error.contains("position 0"), "{error}");
    }

    #[test]
    fn extract_field_takes_a_top_level_or_nested_field() {
        let value = json!({"id": 7, "user": {"name": "ada", "tags": ["x"]}, "a.b": 1});
        let v1 = config(&[("field", "a.b")]);
        let extract =
            ExtractField::configure(&Settings::new("transforms.t.".into(), &v1), Part::Value)
                .unwrap();
        let out = extract
            .apply(record(None, Some(value.clone())))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, Some(json!(1)));

        let v2 = config(&[("field", "user.name"), ("field.syntax.version", "v2")]);
        let nested =
            ExtractField::configure(&Settings::new("transforms.t.".into(), &v2), Part::Key)
                .unwrap();
        let out = nested
            .apply(record(Some(value.clone()), None))
            .unwrap()
            .unwrap();
        assert_eq!(out.key, Some(json!("ada")));
        let missing = nested.apply(record(Some(json!({"user": null})), None));
        assert_eq!(missing.unwrap().unwrap().key, None);
        let error = nested
            .apply(record(Some(json!({"user": 5})), None))
            .unwrap_err();
        assert!(error.contains("nested field access"), "{error}");

        let bad = config(&[("field", "x"), ("field.syntax.version", "V3")]);
        let error =
            ExtractField::configure(&Settings::new("transforms.t.".into(), &bad), Part::Key)
                .err()
                .unwrap();
        assert!(
            error
                .to_string()
                .contains("transforms.t.field.syntax.version"),
            "{error}"
        );
    }

    #[test]
    fn hoist_field_wraps_even_a_null() {
        let settings = config(&[("field", "line")]);
        let hoist = HoistField::configure(
            &Settings::new("transforms.t.".into(), &settings),
            Part::Value,
        )
        .unwrap();
        let out = hoist
            .apply(record(None, Some(json!("hi"))))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, Some(json!({"line": "hi"})));
        let out = hoist.apply(record(None, None)).unwrap().unwrap();
        assert_eq!(out.value, Some(json!({"line": null})));
    }

    #[test]
    fn value_to_key_builds_the_key_from_value_fields() {
        let settings = config(&[("fields", "id,region")]);
        let to_key =
            ValueToKey::configure(&Settings::new("transforms.t.".into(), &settings)).unwrap();
        let out = to_key
            .apply(record(
                Some(json!("old")),
                Some(json!({"id": 1, "amount": 5})),
            ))
            .unwrap()
            .unwrap();
        assert_eq!(out.key, Some(json!({"id": 1, "region": null})));
        assert_eq!(out.value, Some(json!({"id": 1, "amount": 5})));
        let error = to_key.apply(record(None, None)).unwrap_err();
        assert_eq!(
            error,
            "Only Map objects supported in absence of schema for [copying fields from value to \
             key], found: null"
        );
    }

    #[test]
    fn flatten_joins_nested_names_and_keeps_arrays() {
        let value =
            json!({"a": {"b": {"c": 1}, "d": [ {"e": 2} ], "n": null}, "empty": {}, "f": "x"});
        let default = config(&[]);
        let flatten = Flatten::configure(
            &Settings::new("transforms.t.".into(), &default),
            Part::Value,
        )
        .unwrap();
        let out = flatten
            .apply(record(None, Some(value.clone())))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value,
            Some(json!({"a.b.c": 1, "a.d": [{"e": 2}], "a.n": null, "f": "x"}))
        );
        let underscore = config(&[("delimiter", "_")]);
        let flatten = Flatten::configure(
            &Settings::new("transforms.t.".into(), &underscore),
            Part::Key,
        )
        .unwrap();
        let out = flatten.apply(record(Some(value), None)).unwrap().unwrap();
        assert_eq!(
            out.key,
            Some(json!({"a_b_c": 1, "a_d": [{"e": 2}], "a_n": null, "f": "x"}))
        );
        let error = flatten.apply(record(Some(json!([1])), None)).unwrap_err();
        assert!(error.contains("found: array"), "{error}");
    }
}
