//! spool-log: the log core of spool.
//!
//! This crate owns everything between a producer's encoded record batch and
//! the bytes on disk:
//!
//! - [`record`]: the record batch format (Kafka's v2 layout, with the Raft
//!   term in the partition-leader-epoch slot). Producers encode a batch once;
//!   the log validates it with one CRC pass and stores it as-is.
//! - [`storage`]: the segment log of one partition (append, read, truncate,
//!   time lookup, recovery, retention, compaction) and a [`storage::LogManager`]
//!   that runs background flushing, retention and cleaning for many logs.
//! - [`config`]: topic and partition configuration, validated with clear
//!   errors.
//! - [`proto`]: the gRPC protocol types, generated from `proto/spool.proto`.
//! - [`consumer_protocol`]: Kafka's consumer-group subscription and
//!   assignment encoding, shared by the coordinator and the client.
//! - [`producers`]: what a partition remembers of each idempotent producer
//!   (sequence numbers, epochs, the last batches' offsets) and the rules
//!   that admit, deduplicate or refuse a batch.
//! - [`replication`]: openraft's log storage and state machine over the
//!   segment log: a partition's Raft log is its segment log.
//! - [`cluster`]: cluster metadata (brokers, topics, replica placement) as
//!   a replicated log of commands, and the controller that proposes them.
//! - [`broker`]: topics and partitions over storage, serving produce, fetch,
//!   offsets and administration requests in protocol types.
//! - [`server`]: the tonic gRPC service in front of a broker.
//! - [`client`]: `Client` with two transports (embedded broker, gRPC), and
//!   the producer, consumer and admin built on it.
//!
//! Data flows one way: `client` → (`server` →) `broker` → `storage` →
//! `record`; `config` and `proto` are shared vocabulary.

/// Calls `$callback!` with every RPC of the protocol, each marked `async`
/// when the broker answers it with an async method. The client's transport
/// dispatch and the gRPC server's handlers are both generated from this one
/// list, so they cannot drift apart.
macro_rules! with_rpcs {
    ($callback:ident) => {
        $callback! {
            async produce(ProduceRequest) -> ProduceResponse;
            async fetch(FetchRequest) -> FetchResponse;
            sync list_offsets(ListOffsetsRequest) -> ListOffsetsResponse;
            sync metadata(MetadataRequest) -> MetadataResponse;
            async create_topics(CreateTopicsRequest) -> CreateTopicsResponse;
            async delete_topics(DeleteTopicsRequest) -> DeleteTopicsResponse;
            sync describe_configs(DescribeConfigsRequest) -> DescribeConfigsResponse;
            async alter_configs(AlterConfigsRequest) -> AlterConfigsResponse;
            async create_partitions(CreatePartitionsRequest) -> CreatePartitionsResponse;
            async join_group(JoinGroupRequest) -> JoinGroupResponse;
            async sync_group(SyncGroupRequest) -> SyncGroupResponse;
            async heartbeat(HeartbeatRequest) -> HeartbeatResponse;
            async leave_group(LeaveGroupRequest) -> LeaveGroupResponse;
            async offset_commit(OffsetCommitRequest) -> OffsetCommitResponse;
            async offset_fetch(OffsetFetchRequest) -> OffsetFetchResponse;
            sync list_groups(ListGroupsRequest) -> ListGroupsResponse;
            async describe_groups(DescribeGroupsRequest) -> DescribeGroupsResponse;
            sync find_coordinator(FindCoordinatorRequest) -> FindCoordinatorResponse;
            sync cluster_status(ClusterStatusRequest) -> ClusterStatusResponse;
            async join_cluster(JoinClusterRequest) -> ClusterChangeResponse;
            async move_partition(MovePartitionRequest) -> ClusterChangeResponse;
            async advertise_listener(AdvertiseListenerRequest) -> ClusterChangeResponse;
            async init_producer_id(InitProducerIdRequest) -> InitProducerIdResponse;
            async add_partitions_to_txn(AddPartitionsToTxnRequest) -> TxnResponse;
            async add_offsets_to_txn(AddOffsetsToTxnRequest) -> TxnResponse;
            async end_txn(EndTxnRequest) -> EndTxnResponse;
            async verify_txn_partition(VerifyTxnPartitionRequest) -> TxnResponse;
            async describe_transactions(DescribeTransactionsRequest) -> DescribeTransactionsResponse;
            async list_transactions(ListTransactionsRequest) -> ListTransactionsResponse;
            async abort_transaction(AbortTransactionRequest) -> TxnResponse;
            async txn_offset_commit(TxnOffsetCommitRequest) -> TxnResponse;
            async write_txn_markers(WriteTxnMarkersRequest) -> WriteTxnMarkersResponse;
        }
    };
}

pub mod broker;
pub mod client;
pub mod cluster;
pub mod config;
pub mod consumer_protocol;
pub mod error;
pub mod kafka;
pub mod producers;
pub mod record;
pub mod replication;
pub mod server;
pub mod storage;

/// The gRPC protocol (package `spool.v1`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("spool.v1");
}

pub use error::{LogError, Result};
