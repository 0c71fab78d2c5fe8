//! The error type of the client.

use spool_protocol::proto::ErrorCode;
use spool_protocol::ProtocolError;
use spool_record::RecordError;

/// Result alias of spool-client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Every failure a client reports. A broker's refusal arrives as
/// [`ClientError::Broker`] with the stable wire code it answered; the
/// other variants are the client's own.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker could not be reached or the RPC failed in transport.
    #[error("transport error talking to {address}: {reason}")]
    Transport { address: String, reason: String },
    /// The broker answered a request with an error code.
    #[error("{code:?}: {message}")]
    Broker { code: ErrorCode, message: String },
    /// A client operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The producer or consumer was closed.
    #[error("closed: {0}")]
    Closed(String),
    /// A call the client's state does not allow (seeking a partition that
    /// is not assigned, committing without a group, a transaction call out
    /// of order).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The cluster has no topic of that name.
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    /// The topic has no partition of that number.
    #[error("unknown topic or partition: {topic}/{partition}")]
    UnknownTopicOrPartition { topic: String, partition: u32 },
    /// A record batch that could not be built or read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// Group-protocol data (a subscription or an assignment) that does not
    /// decode.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl ClientError {
    /// The error a broker's response (or per-partition result) carries,
    /// if any: `None` for [`ErrorCode::None`].
    pub fn from_code(code: i32, message: &str) -> Option<ClientError> {
        let code = ErrorCode::from_raw(code);
        (code != ErrorCode::None).then(|| ClientError::Broker {
            code,
            message: message.to_string(),
        })
    }

    /// The wire code this error stands for: a broker's own, or the code a
    /// broker would have answered for the same fault.
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Broker { code, .. } => *code,
            ClientError::Timeout(_) => ErrorCode::RequestTimedOut,
            ClientError::InvalidRequest(_) | ClientError::Protocol(_) => ErrorCode::InvalidRequest,
            ClientError::UnknownTopic(_) | ClientError::UnknownTopicOrPartition { .. } => {
                ErrorCode::UnknownTopicOrPartition
            }
            ClientError::Record(RecordError::UnsupportedCompression(_)) => {
                ErrorCode::UnsupportedCompression
            }
            ClientError::Record(RecordError::InvalidBatch(_)) => ErrorCode::InvalidRecord,
            ClientError::Transport { .. } | ClientError::Closed(_) => ErrorCode::Unknown,
        }
    }

    /// Whether retrying the same request may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Transport { .. } | ClientError::Timeout(_) => true,
            ClientError::Broker { code, .. } => code.is_retriable(),
            _ => false,
        }
    }
}
