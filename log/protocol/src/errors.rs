//! Responses that fail: every response and per-partition result carries an
//! error code and a message, and a layer that fails a request fills just
//! those two fields. [`ErrorResponse`] lets it do so for any of them in
//! one place instead of building each response by hand.

use crate::proto::*;

/// A response (or per-item result) whose failure is an error code and a
/// message, everything else left at its default.
pub trait ErrorResponse: Default {
    /// The response failed with `code`, explained by `message`.
    fn failed(code: ErrorCode, message: String) -> Self;

    /// The response failed with `code`, which explains itself: the
    /// message is the code's name.
    fn refused(code: ErrorCode) -> Self {
        Self::failed(code, format!("{code:?}"))
    }
}

macro_rules! error_responses {
    ($($response:ident),* $(,)?) => {
        $(
            #[allow(clippy::needless_update)]
            impl ErrorResponse for $response {
                fn failed(code: ErrorCode, message: String) -> Self {
                    $response {
                        error: code as i32,
                        message,
                        ..Default::default()
                    }
                }
            }
        )*
    };
}

error_responses!(
    ClusterChangeResponse,
    ProducePartitionResult,
    InitProducerIdResponse,
    TxnResponse,
    EndTxnResponse,
    WriteTxnMarkersPartitionResult,
    FetchPartitionResult,
    ListOffsetsPartitionResult,
    DeleteRecordsPartitionResult,
    TopicMetadata,
    TopicResult,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    LeaveGroupResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    DeleteGroupResponse,
    FindCoordinatorResponse,
    GroupDescription,
    TransactionDescription,
    TopicConfigs,
);

impl ErrorCode {
    /// The code a response carries as its raw `error` field; an unknown
    /// number (from a newer peer) reads as [`ErrorCode::Unknown`].
    pub fn from_raw(raw: i32) -> ErrorCode {
        ErrorCode::try_from(raw).unwrap_or(ErrorCode::Unknown)
    }

    /// Whether a request answered with this code may succeed if sent
    /// again (to the same broker, or to the one the client finds next).
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::RequestTimedOut
                | ErrorCode::StorageError
                | ErrorCode::NotLeader
                | ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::UnstableOffsetCommit
                | ErrorCode::ConcurrentTransactions
        )
    }
}
