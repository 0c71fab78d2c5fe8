//! spool's error codes as Kafka's. spool's codes are its own (proto
//! `ErrorCode`); each maps to the Kafka code a Kafka client acts on the
//! same way (retry, refresh metadata, rejoin, fence).

use spool_protocol::proto::ErrorCode;

pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const INVALID_REQUEST: i16 = 42;
pub const UNKNOWN: i16 = -1;

/// The Kafka code for spool's `code` (as carried in its responses).
pub fn kafka_code(code: i32) -> i16 {
    let Ok(code) = ErrorCode::try_from(code) else {
        return UNKNOWN;
    };
    match code {
        ErrorCode::None => NONE,
        ErrorCode::UnknownTopicOrPartition => UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode::InvalidTopic => 17,
        ErrorCode::InvalidConfig => 40,
        ErrorCode::TopicAlreadyExists => 36,
        ErrorCode::InvalidPartitions => 37,
        ErrorCode::OffsetOutOfRange => OFFSET_OUT_OF_RANGE,
        ErrorCode::CorruptRecord => 2,
        // MESSAGE_TOO_LARGE: the producer splits or fails the batch.
        ErrorCode::RecordTooLarge => 10,
        ErrorCode::InvalidRecord => 87,
        ErrorCode::UnsupportedCompression => 76,
        ErrorCode::InvalidRequest => INVALID_REQUEST,
        ErrorCode::StorageError => 56,
        ErrorCode::RequestTimedOut => 7,
        ErrorCode::UnknownMemberId => 25,
        ErrorCode::IllegalGeneration => 22,
        ErrorCode::RebalanceInProgress => 27,
        ErrorCode::InconsistentGroupProtocol => 23,
        ErrorCode::InvalidGroupId => 24,
        ErrorCode::FencedInstanceId => 82,
        ErrorCode::InvalidSessionTimeout => 26,
        ErrorCode::NotLeader => NOT_LEADER_OR_FOLLOWER,
        ErrorCode::OutOfOrderSequence => 45,
        ErrorCode::InvalidProducerEpoch => 47,
        ErrorCode::NotCoordinator => 16,
        ErrorCode::CoordinatorNotAvailable => COORDINATOR_NOT_AVAILABLE,
        ErrorCode::InvalidTxnState => 48,
        ErrorCode::UnstableOffsetCommit => 88,
        ErrorCode::ConcurrentTransactions => 51,
        ErrorCode::InvalidTransactionTimeout => 50,
        // TRANSACTIONAL_ID_NOT_FOUND (Kafka 3.x, KIP-664).
        ErrorCode::TransactionalIdNotFound => 105,
        ErrorCode::NonEmptyGroup => 68,
        ErrorCode::GroupIdNotFound => 69,
        ErrorCode::GroupSubscribedToTopic => 86,
        ErrorCode::PolicyViolation => 44,
        ErrorCode::InvalidReplicaAssignment => 39,
        ErrorCode::Unknown => UNKNOWN,
    }
}

/// The message to send beside a code: none when there is no error.
pub fn kafka_message(code: i32, message: String) -> Option<kafka_protocol::protocol::StrBytes> {
    (code != 0 && !message.is_empty()).then(|| message.into())
}
