//! Kafka's `Cast`: casts fields of an object key or value, or the whole
//! key or value, to `int8`, `int16`, `int32`, `int64`, `float32`,
//! `float64`, `boolean` or `string`.
//!
//! The spec is Kafka's: `spec=field:type,...`, or a single `type` for the
//! whole key or value. Conversions follow Java's, since that is what a
//! Kafka user's pipeline did: a number narrows as Java narrows it
//! (`300` as `int8` is `44`; a decimal truncates toward zero), a boolean
//! is 1 or 0, a string is parsed (`"12"` as `int32` is 12; `"abc"` fails),
//! a string is `true` as a boolean only if it reads `true` in any case,
//! and a number cast to a string is written as Java writes it (`1.0E10`).
//! JSON has no bytes, arrays and objects cannot be cast (as Kafka refuses
//! them), and a null stays null. A field the spec names but the value
//! lacks is written as null, as Kafka writes it.

use std::collections::BTreeMap;

use serde_json::Number;

use super::settings::{Read, Settings};
use super::{require_object, Outcome, Part, Transform, TransformRecord};
use crate::api::Value;

/// A type a value can be cast to (Kafka's supported output types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CastType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
}

const SUPPORTED: &str = "[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]";

impl CastType {
    /// A type by its Kafka schema type name, in any case.
    fn parse(name: &str) -> std::result::Result<CastType, String> {
        Ok(match name.trim().to_ascii_uppercase().as_str() {
            "INT8" => CastType::Int8,
            "INT16" => CastType::Int16,
            "INT32" => CastType::Int32,
            "INT64" => CastType::Int64,
            "FLOAT32" => CastType::Float32,
            "FLOAT64" => CastType::Float64,
            "BOOLEAN" => CastType::Boolean,
            "STRING" => CastType::String,
            other @ ("BYTES" | "ARRAY" | "MAP" | "STRUCT") => {
                return Err(format!(
                    "Cast transformation does not support casting to {other}; supported types \
                     are {SUPPORTED}"
                ))
            }
            _ => {
                return Err(format!(
                    "Invalid type found in casting spec: {}",
                    name.trim()
                ))
            }
        })
    }
}

/// What is cast: the whole key or value, or some of its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Spec {
    Whole(CastType),
    Fields(BTreeMap<String, CastType>),
}

fn parse_spec(mappings: &[String]) -> std::result::Result<Spec, String> {
    if mappings.is_empty() {
        return Err("Must specify at least one field to cast.".into());
    }
    let mut fields = BTreeMap::new();
    for mapping in mappings {
        // Split as Java's `String.split(":")`, which drops trailing empty
        // parts, so a spec Kafka accepts is accepted here.
        let mut parts: Vec<&str> = mapping.split(':').collect();
        while parts.len() > 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        match parts.as_slice() {
            [whole] if mappings.len() == 1 => return Ok(Spec::Whole(CastType::parse(whole)?)),
            [_] => {
                return Err(
                    "Cast transformations that specify a type to cast the entire value \
                            to may only specify a single cast in their spec"
                        .into(),
                )
            }
            [field, to] => {
                fields.insert(field.trim().to_string(), CastType::parse(to)?);
            }
            _ => return Err(format!("Invalid cast mapping: {mapping}")),
        }
    }
    Ok(Spec::Fields(fields))
}

/// See the module's comment.
pub(crate) struct Cast {
    part: Part,
    spec: Spec,
}

impl Cast {
    pub(crate) fn configure(settings: &Settings<'_>, part: Part) -> Read<Cast> {
        settings.required("spec")?;
        let spec = parse_spec(&settings.list("spec"))
            .map_err(|reason| settings.invalid("spec", reason))?;
        Ok(Cast { part, spec })
    }
}

impl Transform for Cast {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let Some(value) = record.part_mut(self.part).take() else {
            return Ok(Some(record));
        };
        let cast = match &self.spec {
            Spec::Whole(to) => cast(&value, *to)?,
            Spec::Fields(fields) => {
                let mut object = require_object(Some(value), "cast types")?;
                for (field, to) in fields {
                    let cast = cast(object.get(field).unwrap_or(&Value::Null), *to)
                        .map_err(|reason| format!("field `{field}`: {reason}"))?;
                    object.insert(field.clone(), cast);
                }
                Value::Object(object)
            }
        };
        *record.part_mut(self.part) = Some(cast);
        Ok(Some(record))
    }
}

/// A castable value, as Java's `Cast` sees it: JSON integers are longs,
/// other numbers doubles.
enum Input<'a> {
    Long(i64),
    Double(f64),
    Boolean(bool),
    Text(&'a str),
}

/// `value` cast to `to`.
fn cast(value: &Value, to: CastType) -> std::result::Result<Value, String> {
    let input = match value {
        Value::Null => return Ok(Value::Null),
        Value::Bool(b) => Input::Boolean(*b),
        // A u64 beyond i64 wraps, as Java's `Number.longValue` wraps a
        // `BigInteger`.
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(long), _, _) => Input::Long(long),
            (None, Some(unsigned), _) => Input::Long(unsigned as i64),
            (None, None, Some(double)) => Input::Double(double),
            (None, None, None) => return Err(format!("Cannot cast the number {n}")),
        },
        Value::String(text) => Input::Text(text),
        Value::Array(_) => return Err(unsupported_input("ARRAY")),
        Value::Object(_) => return Err(unsupported_input("MAP")),
    };
    let out_of_range =
        |text: &str| format!("Value ({text}) was out of range for requested data type");
    // Java's narrowing: a long wraps (`as` on integers), a double goes
    // through int first and saturates (`as` from a float).
    Ok(match (to, input) {
        (CastType::Int8, Input::Long(n)) => Value::from(n as i8),
        (CastType::Int8, Input::Double(x)) => Value::from((x as i32) as i8),
        (CastType::Int8, Input::Text(s)) => {
            Value::from(s.parse::<i8>().map_err(|_| out_of_range(s))?)
        }
        (CastType::Int16, Input::Long(n)) => Value::from(n as i16),
        (CastType::Int16, Input::Double(x)) => Value::from((x as i32) as i16),
        (CastType::Int16, Input::Text(s)) => {
            Value::from(s.parse::<i16>().map_err(|_| out_of_range(s))?)
        }
        (CastType::Int32, Input::Long(n)) => Value::from(n as i32),
        (CastType::Int32, Input::Double(x)) => Value::from(x as i32),
        (CastType::Int32, Input::Text(s)) => {
            Value::from(s.parse::<i32>().map_err(|_| out_of_range(s))?)
        }
        (CastType::Int64, Input::Long(n)) => Value::from(n),
        (CastType::Int64, Input::Double(x)) => Value::from(x as i64),
        (CastType::Int64, Input::Text(s)) => {
            Value::from(s.parse::<i64>().map_err(|_| out_of_range(s))?)
        }
        (
            CastType::Int8 | CastType::Int16 | CastType::Int32 | CastType::Int64,
            Input::Boolean(b),
        ) => Value::from(i32::from(b)),
        (CastType::Float32, input) => float32(as_double(input, 32).map_err(out_of_range_owned)?)?,
        (CastType::Float64, input) => float64(as_double(input, 64).map_err(out_of_range_owned)?)?,
        (CastType::Boolean, Input::Long(n)) => Value::Bool(n != 0),
        (CastType::Boolean, Input::Double(x)) => Value::Bool((x as i64) != 0),
        (CastType::Boolean, Input::Boolean(b)) => Value::Bool(b),
        (CastType::Boolean, Input::Text(s)) => Value::Bool(s.eq_ignore_ascii_case("true")),
        (CastType::String, Input::Long(n)) => Value::String(n.to_string()),
        (CastType::String, Input::Double(x)) => Value::String(java_double(x)),
        (CastType::String, Input::Boolean(b)) => Value::String(b.to_string()),
        (CastType::String, Input::Text(s)) => Value::String(s.to_string()),
    })
}

fn unsupported_input(kind: &str) -> String {
    format!(
        "Cast transformation does not support casting from {kind}; supported types are {SUPPORTED}"
    )
}

fn out_of_range_owned(text: String) -> String {
    format!("Value ({text}) was out of range for requested data type")
}

/// `input` as a double; a string is parsed as Java's `Float.parseFloat`
/// or `Double.parseDouble` parse it (surrounding spaces and a trailing
/// `f` or `d` allowed). The error is the text that did not parse.
fn as_double(input: Input<'_>, bits: u32) -> std::result::Result<f64, String> {
    match input {
        Input::Long(n) if bits == 32 => Ok(f64::from(n as f32)),
        Input::Long(n) => Ok(n as f64),
        Input::Double(x) => Ok(x),
        Input::Boolean(b) => Ok(if b { 1.0 } else { 0.0 }),
        Input::Text(s) => {
            let trimmed = s.trim();
            let number = trimmed
                .strip_suffix(&['f', 'F', 'd', 'D'][..])
                .filter(|rest| !rest.is_empty())
                .unwrap_or(trimmed);
            number.parse::<f64>().map_err(|_| s.to_string())
        }
    }
}

/// A float32 as JSON: the shortest decimal that reads back as the same
/// float32, as Java writes a `Float` (`1.1`, not `1.100000023841858`).
fn float32(x: f64) -> std::result::Result<Value, String> {
    let narrow = x as f32;
    let shortest: f64 = narrow
        .to_string()
        .parse()
        .map_err(|_| format!("Cannot represent {narrow} as a number"))?;
    float64(shortest)
}

fn float64(x: f64) -> std::result::Result<Value, String> {
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| format!("Value ({x}) cannot be written as a JSON number"))
}

/// `x` as Java's `Double.toString` writes it: plain between 10^-3 and
/// 10^7 (`12.5`, `1.0`), computerized scientific notation outside
/// (`1.0E10`, `1.5E-5`), with the shortest digits that read back.
pub(crate) fn java_double(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    if (1e-3..1e7).contains(&x.abs()) {
        let text = x.to_string();
        return match text.contains('.') {
            true => text,
            false => format!("{text}.0"),
        };
    }
    let text = format!("{x:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    match mantissa.contains('.') {
        true => format!("{mantissa}E{exponent}"),
        false => format!("{mantissa}.0E{exponent}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConfigMap;
    use serde_json::json;

    fn cast_with(spec: &str, part: Part) -> Read<Cast> {
        let config: ConfigMap = [("transforms.c.spec".to_string(), spec.to_string())].into();
        Cast::configure(&Settings::new("transforms.c.".into(), &config), part)
    }

    fn value_after(spec: &str, value: Value) -> std::result::Result<Option<Value>, String> {
        let cast = cast_with(spec, Part::Value).unwrap();
        Ok(cast
            .apply(TransformRecord::new("t", Some(value)))?
            .and_then(|r| r.value))
    }

    #[test]
    fn fields_are_cast_as_java_casts_them() {
        let value = json!({
            "small": 300, "big": 3_000_000_000i64, "ratio": -2.7, "flag": true, "count": "42",
            "price": 1.1, "word": "TRUE", "keep": [1], "text": 12.5
        });
        let out = value_after(
            "small:int8,big:int32,ratio:int16,flag:int64,count:int32,price:float32,\
             word:boolean,text:string,absent:float64",
            value,
        )
        .unwrap();
        assert_eq!(
            out,
            Some(json!({
                "small": 44, "big": -1_294_967_296i64, "ratio": -2, "flag": 1, "count": 42,
                "price": 1.1, "word": true, "keep": [1], "text": "12.5", "absent": null
            }))
        );
    }

    #[test]
    fn a_whole_value_is_cast_and_bad_input_fails() {
        assert_eq!(value_after("int64", json!("7")).unwrap(), Some(json!(7)));
        assert_eq!(
            value_after("STRING", json!(1e10)).unwrap(),
            Some(json!("1.0E10"))
        );
        assert_eq!(
            value_after("float64", json!(" 2.5f ")).unwrap(),
            Some(json!(2.5))
        );
        assert_eq!(
            value_after("boolean", json!(0.4)).unwrap(),
            Some(json!(false))
        );
        let error = value_after("int32", json!("abc")).unwrap_err();
        assert_eq!(
            error,
            "Value (abc) was out of range for requested data type"
        );
        let error = value_after("n:int8", json!({"n": "300"})).unwrap_err();
        assert_eq!(
            error,
            "field `n`: Value (300) was out of range for requested data type"
        );
        let error = value_after("string", json!({"a": 1})).unwrap_err();
        assert!(error.starts_with("Cast transformation does not support casting from MAP"));
        let error = value_after("n:int8", json!([1])).unwrap_err();
        assert!(error.contains("found: array"), "{error}");
        let tombstone = cast_with("int8", Part::Value).unwrap();
        let out = tombstone
            .apply(TransformRecord::new("t", None))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, None);
    }

    #[test]
    fn a_bad_spec_names_the_key() {
        for (spec, says) in [
            ("", "Must specify at least one field"),
            ("a:int8,int16", "may only specify a single cast"),
            ("a:bytes", "does not support casting to BYTES"),
            ("a:decimal", "Invalid type found in casting spec: decimal"),
            ("a:b:c", "Invalid cast mapping: a:b:c"),
        ] {
            let error = cast_with(spec, Part::Key).err().unwrap().to_string();
            assert!(
                error.contains("transforms.c.spec") && error.contains(says),
                "{spec}: {error}"
            );
        }
    }

    #[test]
    fn doubles_are_written_as_java_writes_them() {
        let cases = [
            (1.0, "1.0"),
            (12.5, "12.5"),
            (0.001, "0.001"),
            (1.0e-4, "1.0E-4"),
            (1.5e-5, "1.5E-5"),
            (1.0e7, "1.0E7"),
            (123_456_789.0, "1.23456789E8"),
            (-0.0, "-0.0"),
        ];
        for (x, text) in cases {
            assert_eq!(java_double(x), text, "{x}");
        }
    }
}
