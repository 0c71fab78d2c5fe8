//! The error type of the protocol's own encodings.

/// Result alias of spool-protocol.
pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;

/// Bytes that do not follow one of the protocol's encodings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Kafka consumer-protocol data (a subscription or an assignment) that
    /// does not decode.
    #[error("malformed {0}")]
    Malformed(String),
}
