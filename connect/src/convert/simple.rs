//! Kafka's StringConverter and ByteArrayConverter.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;

use super::{conversion_error, Converter};
use crate::api::Value;
use crate::Result;

/// Values as UTF-8 text (Kafka's `StringConverter`). A string is written
/// as it is; any other value as its compact JSON text, as Kafka writes a
/// non-string value's `toString()`. Read back, text is always a string.
/// Bytes that are not UTF-8 are refused rather than patched with
/// replacement characters, which would lose data without a word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn name(&self) -> &'static str {
        "StringConverter"
    }

    fn encode(&self, _topic: &str, value: Option<&Value>) -> Result<Option<Bytes>> {
        Ok(match value {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(Bytes::copy_from_slice(text.as_bytes())),
            Some(other) => Some(Bytes::from(other.to_string())),
        })
    }

    fn decode(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Option<Value>> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| conversion_error(self.name(), topic, format!("not UTF-8 text: {e}")))?;
        Ok(Some(Value::String(text.to_string())))
    }
}

/// Bytes passed through untouched (Kafka's `ByteArrayConverter`).
///
/// A `Value` has no bytes type, so the bytes are a base64 string (the
/// standard alphabet, padded) inside it: the encoding Kafka's
/// JsonConverter gives BYTES values, so bytes read with this converter
/// and written with the JSON one come out as Kafka would write them, and
/// the round trip is exact for any bytes. Writing, a value must be such a
/// string; anything else is refused, as Kafka's converter refuses
/// anything but a byte array.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn name(&self) -> &'static str {
        "ByteArrayConverter"
    }

    fn encode(&self, topic: &str, value: Option<&Value>) -> Result<Option<Bytes>> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(encoded)) => STANDARD
                .decode(encoded)
                .map(|bytes| Some(Bytes::from(bytes)))
                .map_err(|e| {
                    conversion_error(self.name(), topic, format!("not a base64 string: {e}"))
                }),
            Some(other) => Err(conversion_error(
                self.name(),
                topic,
                format!("takes bytes as a base64 string, not {other}"),
            )),
        }
    }

    fn decode(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<Option<Value>> {
        Ok(bytes.map(|bytes| Value::String(STANDARD.encode(bytes))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_their_utf8_bytes() {
        let converter = StringConverter;
        let bytes = converter
            .encode("t", Some(&Value::from("héllo")))
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[..], "héllo".as_bytes());
        assert_eq!(
            converter.decode("t", Some(&bytes[..])).unwrap(),
            Some(Value::from("héllo"))
        );
        let number = converter.encode("t", Some(&Value::from(42))).unwrap();
        assert_eq!(number.as_deref(), Some(&b"42"[..]));
        let error = converter.decode("t", Some(&[0xff, 0xfe][..])).unwrap_err();
        assert!(error.to_string().contains("UTF-8"), "{error}");
    }

    #[test]
    fn any_bytes_round_trip_through_base64() {
        let converter = ByteArrayConverter;
        let raw: Vec<u8> = (0..=255).collect();
        let value = converter.decode("t", Some(&raw[..])).unwrap().unwrap();
        assert!(value.is_string());
        let back = converter.encode("t", Some(&value)).unwrap().unwrap();
        assert_eq!(&back[..], &raw[..]);
        assert_eq!(converter.encode("t", None).unwrap(), None);
        let refused = converter
            .encode("t", Some(&serde_json::json!({"a": 1})))
            .unwrap_err();
        assert!(refused.to_string().contains("base64"), "{refused}");
    }
}
