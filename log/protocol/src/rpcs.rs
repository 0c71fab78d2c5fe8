//! The list of RPCs, written once.

/// Calls `$callback!` with every RPC of the protocol, each marked `async`
/// when the broker answers it with an async method. The client's transport
/// trait, its gRPC and embedded transports, and the gRPC server's handlers
/// are all generated from this one list, so they cannot drift apart. The
/// message types are named bare: the callback's module imports
/// [`crate::proto`].
#[macro_export]
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
            async delete_records(DeleteRecordsRequest) -> DeleteRecordsResponse;
            async join_group(JoinGroupRequest) -> JoinGroupResponse;
            async sync_group(SyncGroupRequest) -> SyncGroupResponse;
            async heartbeat(HeartbeatRequest) -> HeartbeatResponse;
            async leave_group(LeaveGroupRequest) -> LeaveGroupResponse;
            async offset_commit(OffsetCommitRequest) -> OffsetCommitResponse;
            async offset_fetch(OffsetFetchRequest) -> OffsetFetchResponse;
            sync list_groups(ListGroupsRequest) -> ListGroupsResponse;
            async describe_groups(DescribeGroupsRequest) -> DescribeGroupsResponse;
            async delete_group(DeleteGroupRequest) -> DeleteGroupResponse;
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
