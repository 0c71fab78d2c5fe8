//! Codecs: how keys and values become bytes where they cross a topic or a
//! store, and back.
//!
//! A [`Codec<T>`] encodes into a buffer the caller reuses from record to
//! record (no allocation per record once the buffer has grown) and
//! decodes from a byte slice borrowed from the fetched batch. Codecs are
//! values, chosen per topic and per store (`Consumed::with(keys,
//! values)`, as Kafka Streams' serdes are); a program's own type needs
//! only an `impl Codec<MyType> for MyCodec`.
//!
//! The built-in codecs write what Kafka's own serializers write, so a
//! spool program and a Java one can share topics: [`Utf8`] is Kafka's
//! `StringSerializer`, [`BigEndian`] its `LongSerializer` and
//! `IntegerSerializer` (and the unsigned and smaller widths alike),
//! [`RawBytes`] its `ByteArraySerializer`, [`Json`] what a JSON serializer
//! without a schema writes. [`Bincode`] is compact and Rust-only.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Result, StreamsError};

/// Encodes `T` into bytes and decodes it back.
///
/// Contract:
/// - `encode` appends `value`'s encoding to `out`; it must not read or
///   change what `out` already holds (the caller clears it between
///   records, or appends several encodings on purpose).
/// - `decode` takes exactly one encoding, as `encode` wrote it, and fails
///   with [`StreamsError::Decode`] on bytes that are not one; it must not
///   panic on any input: bytes come from topics that anyone may write.
/// - `decode(encode(v)) == v` for every value `v`.
/// - Both are pure and cheap to call from many threads (`Send + Sync`):
///   one codec instance serves every task of an application.
pub trait Codec<T>: Send + Sync + 'static {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<()>;
    fn decode(&self, bytes: &[u8]) -> Result<T>;
    /// A short name for errors and `Topology::describe`.
    fn name(&self) -> &'static str;

    /// Decodes a key or value that may be null (Kafka tells a null from
    /// an empty byte string). A null is a decode error unless the codec's
    /// type has a null ([`Unit`], [`Nullable`]).
    fn decode_nullable(&self, bytes: Option<&[u8]>) -> Result<T> {
        match bytes {
            Some(bytes) => self.decode(bytes),
            None => Err(decode_error(
                self.name(),
                "a null, which this codec has no value for",
            )),
        }
    }

    /// Encodes a key or value that may be null: `false` (and nothing
    /// appended) for a null, `true` after appending the encoding.
    fn encode_nullable(&self, value: &T, out: &mut Vec<u8>) -> Result<bool> {
        self.encode(value, out).map(|()| true)
    }

    /// Whether this codec writes windowed keys: a sink then partitions
    /// each record by the key alone ([`Codec::unwindowed`]), so a key's
    /// windows share a partition (Kafka Streams' `WindowedStreamPartitioner`).
    fn is_windowed(&self) -> bool {
        false
    }

    /// The key's own bytes within an encoded windowed key (the window
    /// left out); the whole encoding for other codecs.
    fn unwindowed<'a>(&self, encoded: &'a [u8]) -> &'a [u8] {
        encoded
    }
}

/// A shared codec is a codec (the DSL keeps its codecs behind `Arc`s).
impl<T: 'static> Codec<T> for std::sync::Arc<dyn Codec<T>> {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        (**self).encode(value, out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<T> {
        (**self).decode(bytes)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn decode_nullable(&self, bytes: Option<&[u8]>) -> Result<T> {
        (**self).decode_nullable(bytes)
    }

    fn encode_nullable(&self, value: &T, out: &mut Vec<u8>) -> Result<bool> {
        (**self).encode_nullable(value, out)
    }

    fn is_windowed(&self) -> bool {
        (**self).is_windowed()
    }

    fn unwindowed<'a>(&self, encoded: &'a [u8]) -> &'a [u8] {
        (**self).unwindowed(encoded)
    }
}

/// `Option<T>` over `C`'s `T`: `None` is Kafka's null (a record without a
/// key, a table's tombstone), `Some` is `C`'s encoding.
#[derive(Clone, Copy, Debug, Default)]
pub struct Nullable<C>(pub C);

impl<T, C: Codec<T>> Codec<Option<T>> for Nullable<C> {
    fn encode(&self, value: &Option<T>, out: &mut Vec<u8>) -> Result<()> {
        match value {
            Some(value) => self.0.encode(value, out),
            None => Err(StreamsError::Encode {
                codec: self.0.name(),
                reason: "a null has no bytes; it is written as a null".into(),
            }),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Option<T>> {
        self.0.decode(bytes).map(Some)
    }

    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn decode_nullable(&self, bytes: Option<&[u8]>) -> Result<Option<T>> {
        bytes.map(|bytes| self.0.decode(bytes)).transpose()
    }

    fn encode_nullable(&self, value: &Option<T>, out: &mut Vec<u8>) -> Result<bool> {
        match value {
            Some(value) => self.0.encode(value, out).map(|()| true),
            None => Ok(false),
        }
    }
}

/// UTF-8 text (`String`), as Kafka's `StringSerializer` writes it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8;

impl Codec<String> for Utf8 {
    fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<String> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| decode_error("utf8", e))
    }

    fn name(&self) -> &'static str {
        "utf8"
    }
}

/// Bytes as they are, as Kafka's `ByteArraySerializer` writes them.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawBytes;

impl Codec<Vec<u8>> for RawBytes {
    fn encode(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(bytes.to_vec())
    }

    fn name(&self) -> &'static str {
        "bytes"
    }
}

impl Codec<bytes::Bytes> for RawBytes {
    fn encode(&self, value: &bytes::Bytes, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<bytes::Bytes> {
        Ok(bytes::Bytes::copy_from_slice(bytes))
    }

    fn name(&self) -> &'static str {
        "bytes"
    }
}

/// Nothing: for keys a topology ignores (lines read from a topic written
/// without keys). Decodes any bytes and a null; encodes as a null.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unit;

impl Codec<()> for Unit {
    fn encode(&self, _value: &(), _out: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }

    fn decode(&self, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "unit"
    }

    fn decode_nullable(&self, _bytes: Option<&[u8]>) -> Result<()> {
        Ok(())
    }

    fn encode_nullable(&self, _value: &(), _out: &mut Vec<u8>) -> Result<bool> {
        Ok(false)
    }
}

/// A fixed-width integer in network byte order: Kafka's `LongSerializer`
/// for `i64`, `IntegerSerializer` for `i32`, `ShortSerializer` for `i16`;
/// the unsigned widths alike. Any other length fails to decode.
#[derive(Clone, Copy, Debug, Default)]
pub struct BigEndian;

macro_rules! big_endian {
    ($($int:ty => $name:literal),* $(,)?) => {
        $(
            impl Codec<$int> for BigEndian {
                fn encode(&self, value: &$int, out: &mut Vec<u8>) -> Result<()> {
                    out.extend_from_slice(&value.to_be_bytes());
                    Ok(())
                }

                fn decode(&self, bytes: &[u8]) -> Result<$int> {
                    let array = bytes.try_into().map_err(|_| {
                        decode_error(
                            $name,
                            format!(
                                "{} bytes, not {}",
                                bytes.len(),
                                std::mem::size_of::<$int>()
                            ),
                        )
                    })?;
                    Ok(<$int>::from_be_bytes(array))
                }

                fn name(&self) -> &'static str {
                    $name
                }
            }
        )*
    };
}

/// Codecs of any serde type: a zero-sized value per type, so that one
/// codec can be named where a `Codec<T>` is asked for (`Json::new()`).
macro_rules! serde_codecs {
    ($($(#[$doc:meta])* $codec:ident,)*) => {
        $(
            $(#[$doc])*
            pub struct $codec<T>(PhantomData<fn() -> T>);

            impl<T> $codec<T> {
                pub fn new() -> $codec<T> {
                    $codec(PhantomData)
                }
            }

            impl<T> Default for $codec<T> {
                fn default() -> Self {
                    $codec::new()
                }
            }

            impl<T> Clone for $codec<T> {
                fn clone(&self) -> Self {
                    $codec::new()
                }
            }
        )*
    };
}

big_endian!(
    i16 => "i16", i32 => "i32", i64 => "i64",
    u16 => "u16", u32 => "u32", u64 => "u64",
    f32 => "f32", f64 => "f64",
);

serde_codecs! {
    /// JSON through serde, without a schema envelope.
    Json,
    /// bincode (1.x, its default fixed-width little-endian layout) through
    /// serde: compact and fast, for topics and stores only Rust programs read.
    Bincode,
}

impl<T: Serialize + DeserializeOwned + 'static> Codec<T> for Json<T> {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        serde_json::to_writer(out, value).map_err(|e| StreamsError::Encode {
            codec: "json",
            reason: e.to_string(),
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| decode_error("json", e))
    }

    fn name(&self) -> &'static str {
        "json"
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Codec<T> for Bincode<T> {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        bincode::serialize_into(out, value).map_err(|e| StreamsError::Encode {
            codec: "bincode",
            reason: e.to_string(),
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<T> {
        // A length prefix in hostile bytes must not allocate gigabytes: the
        // encoding of a value is never longer than its bytes.
        use bincode::Options;
        bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_limit(bytes.len() as u64)
            .reject_trailing_bytes()
            .deserialize(bytes)
            .map_err(|e| decode_error("bincode", e))
    }

    fn name(&self) -> &'static str {
        "bincode"
    }
}

pub(crate) fn decode_error(codec: &'static str, reason: impl std::fmt::Display) -> StreamsError {
    StreamsError::Decode {
        codec,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    fn round_trip<T: PartialEq + std::fmt::Debug>(codec: &impl Codec<T>, value: T) {
        let mut buffer = b"kept".to_vec();
        codec.encode(&value, &mut buffer).unwrap();
        assert_eq!(&buffer[..4], b"kept", "encode only appends");
        assert_eq!(codec.decode(&buffer[4..]).unwrap(), value);
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
    struct Order {
        id: u64,
        customer: String,
        lines: Vec<(String, i32)>,
        note: Option<String>,
    }

    fn order() -> impl Strategy<Value = Order> {
        (
            any::<u64>(),
            ".*",
            proptest::collection::vec((".*", any::<i32>()), 0..5),
            proptest::option::of(".*"),
        )
            .prop_map(|(id, customer, lines, note)| Order {
                id,
                customer,
                lines,
                note,
            })
    }

    proptest! {
        #[test]
        fn every_codec_round_trips(
            text in ".*",
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            long in any::<i64>(),
            int in any::<u32>(),
            order in order(),
        ) {
            round_trip(&Utf8, text);
            round_trip(&RawBytes, bytes.clone());
            round_trip(&RawBytes, bytes::Bytes::from(bytes));
            round_trip(&BigEndian, long);
            round_trip(&BigEndian, int);
            round_trip(&Json::new(), order.clone());
            round_trip(&Bincode::new(), order);
        }

        #[test]
        fn no_codec_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Codec::<String>::decode(&Utf8, &bytes);
            let _ = Codec::<i64>::decode(&BigEndian, &bytes);
            let _ = Codec::<Order>::decode(&Json::new(), &bytes);
            let _ = Codec::<Order>::decode(&Bincode::new(), &bytes);
        }
    }

    #[test]
    fn nulls_decode_only_where_the_type_has_one() {
        assert!(Codec::<String>::decode_nullable(&Utf8, None).is_err());
        assert_eq!(Nullable(Utf8).decode_nullable(None).unwrap(), None);
        assert_eq!(
            Nullable(Utf8).decode_nullable(Some(b"a")).unwrap(),
            Some("a".to_string())
        );
        let mut out = Vec::new();
        assert!(!Nullable(Utf8).encode_nullable(&None, &mut out).unwrap());
        assert!(!Unit.encode_nullable(&(), &mut out).unwrap());
        assert!(out.is_empty());
        Unit.decode_nullable(None).unwrap();
    }

    #[test]
    fn integers_are_what_kafkas_serializers_write() {
        let mut out = Vec::new();
        BigEndian.encode(&1i64, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 1]);
        let short = Codec::<i64>::decode(&BigEndian, &[0, 1]).unwrap_err();
        assert!(short.to_string().contains("2 bytes, not 8"), "{short}");
    }

    #[test]
    fn bad_bytes_are_decode_errors_naming_the_codec() {
        let err = Codec::<String>::decode(&Utf8, &[0xff, 0xfe]).unwrap_err();
        assert!(matches!(err, StreamsError::Decode { codec: "utf8", .. }));
        // A length prefix claiming far more than the bytes hold.
        let hostile = [0xff; 8];
        let err = Codec::<Vec<u8>>::decode(&Bincode::new(), &hostile).unwrap_err();
        assert!(matches!(
            err,
            StreamsError::Decode {
                codec: "bincode",
                ..
            }
        ));
    }
}
