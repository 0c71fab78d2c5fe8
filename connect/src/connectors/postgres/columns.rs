//! Column types: what a new column is created as (from Kafka's schema
//! envelope where a record carries one, else from the values), and how a
//! JSON value is written into a column of whatever type the table has.
//!
//! Writing goes by the table's own column types, read from the catalog,
//! not by what the sink would have created: a table made by hand with an
//! `INTEGER` or `VARCHAR` column takes the same records. A value that does
//! not fit its column (a string in a `BIGINT`) fails the write, naming the
//! column; nothing is coerced in a way that could lose data silently.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type};

use crate::api::Value;

/// The types the sink creates columns as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    SmallInt,
    Integer,
    BigInt,
    Real,
    DoublePrecision,
    Boolean,
    Text,
    Bytea,
    Jsonb,
}

impl ColumnType {
    /// The type in SQL.
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::SmallInt => "SMALLINT",
            ColumnType::Integer => "INTEGER",
            ColumnType::BigInt => "BIGINT",
            ColumnType::Real => "REAL",
            ColumnType::DoublePrecision => "DOUBLE PRECISION",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Text => "TEXT",
            ColumnType::Bytea => "BYTEA",
            ColumnType::Jsonb => "JSONB",
        }
    }

    /// The column for a field of Kafka Connect's schema type `kind`, as
    /// JsonConverter's envelope names it; `None` for a type it has not.
    /// PostgreSQL has no one-byte integer, so `int8` is a `SMALLINT`;
    /// structured values are kept whole as `JSONB`.
    pub fn of_schema_type(kind: &str) -> Option<ColumnType> {
        Some(match kind {
            "int8" | "int16" => ColumnType::SmallInt,
            "int32" => ColumnType::Integer,
            "int64" => ColumnType::BigInt,
            "float" => ColumnType::Real,
            "double" => ColumnType::DoublePrecision,
            "boolean" => ColumnType::Boolean,
            "string" => ColumnType::Text,
            "bytes" => ColumnType::Bytea,
            "array" | "map" | "struct" => ColumnType::Jsonb,
            _ => return None,
        })
    }

    /// The column for a field whose values are `values` (nulls aside):
    /// integers that fit 64 bits `BIGINT`, other numbers (or integers and
    /// fractions mixed) `DOUBLE PRECISION`, booleans `BOOLEAN`, strings
    /// `TEXT`, objects, arrays and any mix of kinds `JSONB`, which holds
    /// each as it is. Only nulls: `TEXT`, the type any later value can
    /// still be written to as text.
    pub fn infer<'a>(values: impl IntoIterator<Item = &'a Value>) -> ColumnType {
        let mut seen: Option<ColumnType> = None;
        for value in values {
            let kind = match value {
                Value::Null => continue,
                Value::Bool(_) => ColumnType::Boolean,
                Value::Number(n) if n.is_i64() => ColumnType::BigInt,
                Value::Number(_) => ColumnType::DoublePrecision,
                Value::String(_) => ColumnType::Text,
                Value::Array(_) | Value::Object(_) => ColumnType::Jsonb,
            };
            seen = Some(match seen {
                None => kind,
                Some(earlier) if earlier == kind => kind,
                Some(ColumnType::BigInt | ColumnType::DoublePrecision)
                    if matches!(kind, ColumnType::BigInt | ColumnType::DoublePrecision) =>
                {
                    ColumnType::DoublePrecision
                }
                Some(_) => ColumnType::Jsonb,
            });
        }
        seen.unwrap_or(ColumnType::Text)
    }
}

/// One value of a row being copied, written in the binary format of its
/// column's type (see the module's comment).
#[derive(Debug)]
pub enum Cell<'a> {
    /// A field's value; `None` when the row has no such field (NULL).
    Value {
        column: &'a str,
        value: Option<&'a Value>,
    },
    /// The row's place in its batch, for an upsert to keep each key's
    /// last row.
    Ordinal(i64),
}

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Ordinal(ordinal) => {
                out.put_i64(*ordinal);
                Ok(IsNull::No)
            }
            Cell::Value { value: None, .. }
            | Cell::Value {
                value: Some(Value::Null),
                ..
            } => Ok(IsNull::Yes),
            Cell::Value {
                column,
                value: Some(value),
            } => {
                encode(ty, value, out).map_err(|reason| format!("column `{column}`: {reason}"))?;
                Ok(IsNull::No)
            }
        }
    }

    /// Every type: `encode` checks each value against its column's.
    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.to_sql(ty, out)
    }
}

/// Writes `value` (not null) into `out` in the binary format of `ty`, or
/// says why it does not fit.
pub fn encode(ty: &Type, value: &Value, out: &mut BytesMut) -> std::result::Result<(), String> {
    match *ty {
        Type::BOOL => out.put_u8(u8::from(value.as_bool().ok_or_else(|| unfit(value, ty))?)),
        Type::INT2 => {
            out.put_i16(i16::try_from(integer(value, ty)?).map_err(|_| unfit(value, ty))?)
        }
        Type::INT4 => {
            out.put_i32(i32::try_from(integer(value, ty)?).map_err(|_| unfit(value, ty))?)
        }
        Type::INT8 => out.put_i64(integer(value, ty)?),
        // A double narrowed to a float4 column rounds, as PostgreSQL's own
        // cast does: the column's type says that precision is enough.
        Type::FLOAT4 => out.put_f32(value.as_f64().ok_or_else(|| unfit(value, ty))? as f32),
        Type::FLOAT8 => out.put_f64(value.as_f64().ok_or_else(|| unfit(value, ty))?),
        // A text column takes any value: a string as it is, another value
        // as its JSON text, which reads back as the same value.
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => match value {
            Value::String(text) => out.extend_from_slice(text.as_bytes()),
            other => write_json(other, out)?,
        },
        // JSONB's binary format is a version byte, then the JSON text.
        Type::JSONB => {
            out.put_u8(1);
            write_json(value, out)?;
        }
        Type::JSON => write_json(value, out)?,
        // Bytes travel as base64 strings (Kafka's JsonConverter's BYTES).
        Type::BYTEA => {
            let text = value.as_str().ok_or_else(|| unfit(value, ty))?;
            let bytes = STANDARD
                .decode(text)
                .map_err(|e| format!("{} is not base64 bytes: {e}", shown(value)))?;
            out.extend_from_slice(&bytes);
        }
        _ => {
            return Err(format!(
                "its type {} is not one the sink writes (boolean, smallint, integer, bigint, \
                 real, double precision, text, varchar, char, json, jsonb, bytea)",
                ty.name()
            ))
        }
    }
    Ok(())
}

fn integer(value: &Value, ty: &Type) -> std::result::Result<i64, String> {
    value.as_i64().ok_or_else(|| unfit(value, ty))
}

fn write_json(value: &Value, out: &mut BytesMut) -> std::result::Result<(), String> {
    serde_json::to_writer(out.writer(), value).map_err(|e| e.to_string())
}

fn unfit(value: &Value, ty: &Type) -> String {
    format!("{} does not fit its type {}", shown(value), ty.name())
}

/// A value for an error message, cut short: a record may be large.
fn shown(value: &Value) -> String {
    const MAX: usize = 80;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inferred_types_widen_numbers_and_keep_mixes_as_jsonb() {
        let infer = |values: &[Value]| ColumnType::infer(values.iter());
        assert_eq!(
            infer(&[json!(1), json!(null), json!(-5)]),
            ColumnType::BigInt
        );
        assert_eq!(infer(&[json!(1), json!(1.5)]), ColumnType::DoublePrecision);
        assert_eq!(infer(&[json!(true)]), ColumnType::Boolean);
        assert_eq!(infer(&[json!("a")]), ColumnType::Text);
        assert_eq!(infer(&[json!({"a": 1})]), ColumnType::Jsonb);
        assert_eq!(infer(&[json!("a"), json!(1)]), ColumnType::Jsonb);
        assert_eq!(infer(&[json!(null)]), ColumnType::Text);
        assert_eq!(infer(&[json!(u64::MAX)]), ColumnType::DoublePrecision);
        assert_eq!(
            ColumnType::of_schema_type("int32"),
            Some(ColumnType::Integer)
        );
        assert_eq!(
            ColumnType::of_schema_type("struct"),
            Some(ColumnType::Jsonb)
        );
        assert_eq!(ColumnType::of_schema_type("decimal"), None);
    }

    fn encoded(ty: &Type, value: Value) -> std::result::Result<Vec<u8>, String> {
        let mut out = BytesMut::new();
        encode(ty, &value, &mut out).map(|()| out.to_vec())
    }

    #[test]
    fn values_are_written_in_their_columns_binary_format() {
        assert_eq!(
            encoded(&Type::INT8, json!(258)).unwrap(),
            258i64.to_be_bytes()
        );
        assert_eq!(
            encoded(&Type::INT4, json!(-2)).unwrap(),
            (-2i32).to_be_bytes()
        );
        assert_eq!(encoded(&Type::INT2, json!(7)).unwrap(), 7i16.to_be_bytes());
        assert_eq!(
            encoded(&Type::FLOAT8, json!(1.5)).unwrap(),
            1.5f64.to_be_bytes()
        );
        assert_eq!(
            encoded(&Type::FLOAT8, json!(2)).unwrap(),
            2f64.to_be_bytes()
        );
        assert_eq!(encoded(&Type::BOOL, json!(true)).unwrap(), [1]);
        assert_eq!(
            encoded(&Type::TEXT, json!("héllo")).unwrap(),
            "héllo".as_bytes()
        );
        assert_eq!(encoded(&Type::TEXT, json!([1, 2])).unwrap(), b"[1,2]");
        assert_eq!(
            encoded(&Type::JSONB, json!({"a": 1})).unwrap(),
            b"\x01{\"a\":1}"
        );
        assert_eq!(encoded(&Type::BYTEA, json!("AQID")).unwrap(), [1, 2, 3]);
    }

    #[test]
    fn a_value_that_does_not_fit_says_so() {
        let error = encoded(&Type::INT8, json!("12")).unwrap_err();
        assert!(
            error.contains("\"12\"") && error.contains("int8"),
            "{error}"
        );
        assert!(encoded(&Type::INT2, json!(70_000)).is_err());
        assert!(encoded(&Type::INT8, json!(1.5)).is_err());
        assert!(encoded(&Type::BOOL, json!(1)).is_err());
        assert!(encoded(&Type::BYTEA, json!("not base64!")).is_err());
        let error = encoded(&Type::TIMESTAMPTZ, json!(1)).unwrap_err();
        assert!(error.contains("timestamptz"), "{error}");
        let mut out = BytesMut::new();
        let text = json!("x");
        let cell = Cell::Value {
            column: "n",
            value: Some(&text),
        };
        let Err(error) = cell.to_sql(&Type::INT4, &mut out) else {
            panic!("a string encoded as an int4");
        };
        assert!(error.to_string().starts_with("column `n`:"), "{error}");
        let null = Cell::Value {
            column: "n",
            value: None,
        };
        assert!(matches!(
            null.to_sql(&Type::INT4, &mut out),
            Ok(IsNull::Yes)
        ));
    }
}
