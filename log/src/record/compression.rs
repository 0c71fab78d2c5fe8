//! Batch compression codecs. The records section of a batch is compressed as
//! one block; ids follow Kafka's (gzip = 1 and snappy = 2 are not supported).

use std::borrow::Cow;
use std::io::{Read, Write};

use crate::{LogError, Result};

/// Largest decompressed records section accepted. Guards against batches
/// that decompress to far more memory than any real batch needs.
const MAX_DECOMPRESSED: u64 = 256 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    /// LZ4 frame format, as Kafka clients write it.
    Lz4,
    Zstd,
}

impl Compression {
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            0 => Ok(Compression::None),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(LogError::UnsupportedCompression(other)),
        }
    }

    /// Parses a `compression.type` style name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" | "uncompressed" => Some(Compression::None),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
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
            Compression::Lz4 => lz4_flex::frame::FrameDecoder::new(data)
                .take(MAX_DECOMPRESSED + 1)
                .read_to_end(&mut out),
            Compression::Zstd => zstd::stream::read::Decoder::new(data)
                .and_then(|d| d.take(MAX_DECOMPRESSED + 1).read_to_end(&mut out)),
        };
        outcome.map_err(|e| {
            LogError::InvalidBatch(format!("{} records do not decompress: {e}", self.name()))
        })?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(LogError::InvalidBatch(format!(
                "records decompress to more than {MAX_DECOMPRESSED} bytes"
            )));
        }
        Ok(Cow::Owned(out))
    }
}
