//! Column values as JSON: how each PostgreSQL type is selected and how
//! its binary value becomes a record's field.
//!
//! The choices, made once and kept in `docs/connect.md`:
//! - integers (`smallint`, `integer`, `bigint`, `oid`) and floats are
//!   numbers; a float's NaN and infinities, which JSON has no number for,
//!   are the strings `NaN`, `Infinity` and `-Infinity`;
//! - `numeric` is a string holding its exact decimal text (`"12.50"`):
//!   a JSON number would pass through a double and lose digits;
//! - `timestamp` and `timestamptz` are milliseconds since the epoch (Kafka
//!   Connect's `Timestamp`, what Confluent's source writes; a `timestamp`
//!   read as UTC), which the sink stores as a `BIGINT`; their infinities
//!   are the strings `infinity` and `-infinity`;
//! - `bytea` is base64 (Kafka's JsonConverter's bytes, which the sink
//!   decodes back into `BYTEA`); `json` and `jsonb` are nested JSON;
//!   `uuid` and text types are strings; arrays are JSON arrays (PostgreSQL's
//!   own `to_jsonb`);
//! - any other type (`date`, `time`, `interval`, `inet`, enums, ...) is
//!   its PostgreSQL text, selected with `::text`, the session's DateStyle
//!   set to ISO so a `date` reads `2024-05-06`; NULL is null.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tokio_postgres::types::{FromSql, Kind, Type};

use super::offset::PgTimestamp;
use crate::api::Value;

/// How a column's binary value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    Text,
    /// PostgreSQL's one-byte `"char"`.
    Char,
    Bytea,
    Json,
    Jsonb,
    Timestamp,
    Uuid,
}

/// How a column is selected so that it can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// As it is.
    Native(Read),
    /// `to_jsonb(column)`, read as `jsonb`.
    Json,
    /// `column::text`, read as text.
    Text,
}

/// How a column of type `ty` is selected and read.
pub fn select_for(ty: &Type) -> Select {
    let read = match *ty {
        Type::BOOL => Read::Bool,
        Type::INT2 => Read::Int2,
        Type::INT4 => Read::Int4,
        Type::INT8 => Read::Int8,
        Type::OID => Read::Oid,
        Type::FLOAT4 => Read::Float4,
        Type::FLOAT8 => Read::Float8,
        Type::NUMERIC => Read::Numeric,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => Read::Text,
        Type::CHAR => Read::Char,
        Type::BYTEA => Read::Bytea,
        Type::JSON => Read::Json,
        Type::JSONB => Read::Jsonb,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => Read::Timestamp,
        Type::UUID => Read::Uuid,
        _ if matches!(ty.kind(), Kind::Array(_)) => return Select::Json,
        _ => return Select::Text,
    };
    Select::Native(read)
}

/// A column's value as the row holds it: its binary bytes, `None` for
/// NULL. Taken from any column, whatever its type; [`decode`] reads it.
#[derive(Clone, Copy, Debug)]
pub struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Raw<'a>, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(
        _ty: &Type,
    ) -> std::result::Result<Raw<'a>, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// The JSON value of `raw` read as `read` (see the module's comment), or
/// why it cannot be.
pub fn decode(read: Read, raw: Raw<'_>) -> std::result::Result<Value, String> {
    let Some(bytes) = raw.0 else {
        return Ok(Value::Null);
    };
    Ok(match read {
        Read::Bool => Value::Bool(exact::<1>(bytes)?[0] != 0),
        Read::Int2 => Value::from(i16::from_be_bytes(*exact::<2>(bytes)?)),
        Read::Int4 => Value::from(i32::from_be_bytes(*exact::<4>(bytes)?)),
        Read::Int8 => Value::from(i64::from_be_bytes(*exact::<8>(bytes)?)),
        Read::Oid => Value::from(u32::from_be_bytes(*exact::<4>(bytes)?)),
        // Through the float's shortest text, so 0.1 (a real) reads 0.1 and
        // not the 0.10000000149011612 its widening to a double would show.
        Read::Float4 => {
            let float = f32::from_be_bytes(*exact::<4>(bytes)?);
            float_value(float.to_string().parse::<f64>().unwrap_or(f64::from(float)))
        }
        Read::Float8 => float_value(f64::from_be_bytes(*exact::<8>(bytes)?)),
        Read::Numeric => Value::String(numeric_text(bytes)?),
        Read::Text => Value::String(text(bytes)?.to_string()),
        Read::Char => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        Read::Bytea => Value::String(STANDARD.encode(bytes)),
        Read::Json => json(bytes)?,
        Read::Jsonb => match bytes.split_first() {
            Some((1, json_text)) => json(json_text)?,
            _ => return Err("a jsonb value of an unknown binary version".into()),
        },
        Read::Timestamp => match timestamp(bytes)?.epoch_millis() {
            Some(millis) => Value::from(millis),
            None if timestamp(bytes)?.0 > 0 => Value::from("infinity"),
            None => Value::from("-infinity"),
        },
        Read::Uuid => Value::String(uuid_text(exact::<16>(bytes)?)),
    })
}

/// An integer column's value (the incrementing column's); `None` for
/// NULL.
pub fn integer(read: Read, raw: Raw<'_>) -> std::result::Result<Option<i64>, String> {
    let Some(bytes) = raw.0 else {
        return Ok(None);
    };
    Ok(Some(match read {
        Read::Int2 => i64::from(i16::from_be_bytes(*exact::<2>(bytes)?)),
        Read::Int4 => i64::from(i32::from_be_bytes(*exact::<4>(bytes)?)),
        Read::Int8 => i64::from_be_bytes(*exact::<8>(bytes)?),
        other => return Err(format!("a {other:?} column is not an integer column")),
    }))
}

/// A timestamp column's value as PostgreSQL sent it.
pub fn timestamp(bytes: &[u8]) -> std::result::Result<PgTimestamp, String> {
    Ok(PgTimestamp(i64::from_be_bytes(*exact::<8>(bytes)?)))
}

/// `bytes` as an array of `N`, or an error saying the length is wrong.
fn exact<const N: usize>(bytes: &[u8]) -> std::result::Result<&[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("{} bytes where {N} were expected", bytes.len()))
}

fn text(bytes: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("text that is not UTF-8: {e}"))
}

fn json(bytes: &[u8]) -> std::result::Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("JSON that does not parse: {e}"))
}

/// A float as a JSON number, or the name of a value JSON has no number
/// for (the names PostgreSQL prints).
fn float_value(float: f64) -> Value {
    match serde_json::Number::from_f64(float) {
        Some(number) => Value::Number(number),
        None if float.is_nan() => Value::from("NaN"),
        None if float > 0.0 => Value::from("Infinity"),
        None => Value::from("-Infinity"),
    }
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The binary `numeric` as its exact decimal text, as PostgreSQL prints
/// it. The format: a digit count, a weight (the power of 10000 of the
/// first digit), a sign and a display scale (decimal places), each 16
/// bits, then the base-10000 digits, 16 bits each, trailing zero digits
/// left out.
pub fn numeric_text(bytes: &[u8]) -> std::result::Result<String, String> {
    let word = |index: usize| -> std::result::Result<i16, String> {
        let at = index * 2;
        bytes
            .get(at..at + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a numeric value cut short".to_string())
    };
    let count = usize::try_from(word(0)?).map_err(|_| "a negative numeric digit count")?;
    let weight = i64::from(word(1)?);
    let sign = word(2)? as u16;
    let scale = usize::try_from(word(3)?).map_err(|_| "a negative numeric scale")?;
    let digits = (0..count)
        .map(|i| word(4 + i))
        .collect::<std::result::Result<Vec<i16>, String>>()?;
    let digit = |index: i64| -> i16 {
        usize::try_from(index)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut out = match sign {
        0x0000 => String::new(),
        0x4000 => String::from("-"),
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        other => return Err(format!("a numeric sign {other:#06x} that is none")),
    };
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for index in 1..=weight {
            out.push_str(&format!("{:04}", digit(index)));
        }
    }
    if scale > 0 {
        let mut fraction = String::with_capacity(scale + 4);
        let mut index = weight + 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", digit(index)));
            index += 1;
        }
        fraction.truncate(scale);
        out.push('.');
        out.push_str(&fraction);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A binary numeric of `digits` with `weight`, `sign` and `scale`.
    fn numeric(digits: &[i16], weight: i16, sign: u16, scale: i16) -> Vec<u8> {
        let count = i16::try_from(digits.len()).unwrap();
        let mut bytes = Vec::new();
        for word in [count, weight, sign as i16, scale].iter().chain(digits) {
            bytes.extend_from_slice(&word.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn numerics_read_as_their_exact_text() {
        let text = |digits: &[i16], weight, sign, scale| {
            numeric_text(&numeric(digits, weight, sign, scale)).unwrap()
        };
        assert_eq!(text(&[], 0, 0, 0), "0");
        assert_eq!(text(&[], 0, 0, 2), "0.00");
        assert_eq!(text(&[1, 2345, 6780], 1, 0, 3), "12345.678");
        assert_eq!(text(&[1, 2345, 6780], 1, 0x4000, 3), "-12345.678");
        assert_eq!(text(&[1], -1, 0, 4), "0.0001");
        assert_eq!(text(&[1000], -2, 0, 5), "0.00001");
        assert_eq!(text(&[1], 2, 0, 0), "100000000");
        assert_eq!(text(&[12, 5000], 0, 0, 2), "12.50");
        assert_eq!(text(&[], 0, 0xC000, 0), "NaN");
        assert_eq!(text(&[], 0, 0xD000, 0), "Infinity");
        assert!(numeric_text(&[0, 1]).is_err());
    }

    #[test]
    fn values_read_as_the_module_says() {
        let read = |read: Read, bytes: &[u8]| decode(read, Raw(Some(bytes))).unwrap();
        assert_eq!(read(Read::Bool, &[1]), json!(true));
        assert_eq!(read(Read::Int2, &(-3i16).to_be_bytes()), json!(-3));
        assert_eq!(
            read(Read::Int8, &(1i64 << 40).to_be_bytes()),
            json!(1i64 << 40)
        );
        assert_eq!(read(Read::Float4, &0.1f32.to_be_bytes()), json!(0.1));
        assert_eq!(read(Read::Float8, &f64::NAN.to_be_bytes()), json!("NaN"));
        assert_eq!(
            read(Read::Float8, &f64::NEG_INFINITY.to_be_bytes()),
            json!("-Infinity")
        );
        assert_eq!(read(Read::Text, "héllo".as_bytes()), json!("héllo"));
        assert_eq!(read(Read::Bytea, &[1, 2, 3]), json!("AQID"));
        assert_eq!(read(Read::Json, br#"{"a":[1]}"#), json!({"a": [1]}));
        assert_eq!(read(Read::Jsonb, b"\x01{\"a\":1}"), json!({"a": 1}));
        // 2000-01-01T00:00:01.5Z, PostgreSQL's epoch plus 1.5 s.
        assert_eq!(
            read(Read::Timestamp, &1_500_000i64.to_be_bytes()),
            json!(946_684_801_500i64)
        );
        assert_eq!(
            read(Read::Timestamp, &i64::MAX.to_be_bytes()),
            json!("infinity")
        );
        let uuid = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(
            read(Read::Uuid, &uuid),
            json!("12345678-9abc-def0-0123-456789abcdef")
        );
        assert_eq!(decode(Read::Int4, Raw(None)).unwrap(), Value::Null);
        assert!(decode(Read::Int4, Raw(Some(&[1, 2]))).is_err());
        assert_eq!(
            integer(Read::Int4, Raw(Some(&7i32.to_be_bytes()))),
            Ok(Some(7))
        );
        assert!(integer(Read::Text, Raw(Some(b"7"))).is_err());
    }

    #[test]
    fn types_without_a_reader_are_selected_as_text_or_json() {
        assert_eq!(select_for(&Type::INT4), Select::Native(Read::Int4));
        assert_eq!(
            select_for(&Type::TIMESTAMPTZ),
            Select::Native(Read::Timestamp)
        );
        assert_eq!(select_for(&Type::DATE), Select::Text);
        assert_eq!(select_for(&Type::INTERVAL), Select::Text);
        assert_eq!(select_for(&Type::INT4_ARRAY), Select::Json);
    }
}
