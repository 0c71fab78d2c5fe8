//! The error type of the record format.

/// Result alias of spool-record.
pub type Result<T, E = RecordError> = std::result::Result<T, E>;

/// Why bytes are not a valid record batch. Decoding never panics on any
/// input; every malformation ends here with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The batch is malformed: bad framing, CRC, lengths, varints, or
    /// records that do not decompress.
    #[error("invalid record batch: {0}")]
    InvalidBatch(String),
    /// The batch uses a compression codec spool cannot decode.
    #[error("unsupported compression codec id {0} (supported: none, gzip, snappy, lz4, zstd)")]
    UnsupportedCompression(u8),
}
