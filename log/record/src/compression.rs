//! Batch compression codecs. The records section of a batch is compressed as
//! one block; ids follow Kafka's: gzip 1, snappy 2, lz4 3, zstd 4.

use std::borrow::Cow;
use std::io::{Read, Write};

use crate::{RecordError, Result};

/// Largest decompressed records section accepted. Guards against batches
/// that decompress to far more memory than any real batch needs.
const MAX_DECOMPRESSED: u64 = 256 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    /// Raw snappy when written (as librdkafka writes it); read either raw
    /// or in the xerial framing Kafka's Java client writes.
    Snappy,
    /// LZ4 frame format, as Kafka clients write it.
    Lz4,
    Zstd,
}

/// The xerial snappy-java stream header: magic, then version and
/// compatible version (two big-endian i32s).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

impl Compression {
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(RecordError::UnsupportedCompression(other)),
        }
    }

    /// Parses a `compression.type` style name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" | "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 2),
                    flate2::Compression::default(),
                );
                encoder
                    .write_all(data)
                    .expect("writing to a Vec cannot fail");
                encoder.finish().expect("finishing into a Vec cannot fail")
            }
            Compression::Snappy => snap::raw::Encoder::new()
                .compress_vec(data)
                .expect("snappy compresses any buffer below 4 GiB"),
            Compression::Lz4 => {
                let mut encoder =
                    lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
                encoder
                    .write_all(data)
                    .expect("writing to a Vec cannot fail");
                encoder.finish().expect("finishing into a Vec cannot fail")
            }
            Compression::Zstd => {
                zstd::bulk::compress(data, 3).expect("zstd compression of a buffer cannot fail")
            }
        }
    }

    pub fn decompress(self, data: &[u8]) -> Result<Cow<'_, [u8]>> {
        let mut out = Vec::new();
        let outcome = match self {
            Compression::None => return Ok(Cow::Borrowed(data)),
            Compression::Gzip => flate2::read::GzDecoder::new(data)
                .take(MAX_DECOMPRESSED + 1)
                .read_to_end(&mut out),
            Compression::Snappy => snappy_decompress(data, &mut out),
            Compression::Lz4 => lz4_flex::frame::FrameDecoder::new(data)
                .take(MAX_DECOMPRESSED + 1)
                .read_to_end(&mut out),
            Compression::Zstd => zstd::stream::read::Decoder::new(data)
                .and_then(|d| d.take(MAX_DECOMPRESSED + 1).read_to_end(&mut out)),
        };
        outcome.map_err(|e| {
            RecordError::InvalidBatch(format!("{} records do not decompress: {e}", self.name()))
        })?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(RecordError::InvalidBatch(format!(
                "records decompress to more than {MAX_DECOMPRESSED} bytes"
            )));
        }
        Ok(Cow::Owned(out))
    }
}

/// Snappy records: xerial-framed blocks (each a big-endian length and a
/// raw block) when the header says so, one raw block otherwise.
fn snappy_decompress(data: &[u8], out: &mut Vec<u8>) -> std::io::Result<usize> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let mut decoder = snap::raw::Decoder::new();
    let mut block = |raw: &[u8], out: &mut Vec<u8>| -> std::io::Result<()> {
        let length = snap::raw::decompress_len(raw).map_err(|e| invalid(e.to_string()))?;
        if (out.len() + length) as u64 > MAX_DECOMPRESSED {
            return Err(invalid(format!("more than {MAX_DECOMPRESSED} bytes")));
        }
        let start = out.len();
        out.resize(start + length, 0);
        decoder
            .decompress(raw, &mut out[start..])
            .map_err(|e| invalid(e.to_string()))?;
        Ok(())
    };
    if !data.starts_with(XERIAL_MAGIC) {
        block(data, out)?;
        return Ok(out.len());
    }
    let mut rest = data.get(XERIAL_HEADER_LEN..).unwrap_or_default();
    while !rest.is_empty() {
        let (length, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| invalid("a truncated xerial block length".into()))?;
        let length = u32::from_be_bytes(*length) as usize;
        let raw = tail
            .get(..length)
            .ok_or_else(|| invalid("a truncated xerial block".into()))?;
        block(raw, out)?;
        rest = &tail[length..];
    }
    Ok(out.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snappy_reads_the_xerial_framing_of_kafkas_java_client() {
        let (first, second) = (b"hello ".repeat(100), b"world".repeat(50));
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        for part in [&first, &second] {
            let block = snap::raw::Encoder::new().compress_vec(part).unwrap();
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        let read = Compression::Snappy.decompress(&framed).unwrap();
        assert_eq!(read.as_ref(), [first, second].concat().as_slice());
        // A truncated frame is an error, not a short read.
        let cut = &framed[..framed.len() - 3];
        assert!(Compression::Snappy.decompress(cut).is_err());
    }

    #[test]
    fn unknown_codec_ids_are_refused() {
        assert!(matches!(
            Compression::from_id(5),
            Err(RecordError::UnsupportedCompression(5))
        ));
    }
}
