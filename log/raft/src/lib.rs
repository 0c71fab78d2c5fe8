//! spool-raft: replication. Every partition is an openraft group whose
//! Raft log *is* the partition's segment log (see `docs/replication.md`).
//!
//! This crate owns the bridge between openraft and [`spool_storage`]:
//!
//! - [`entry`]: how a Raft entry is stored as a record batch and read back
//!   (data entries are the producer's batch; blank and membership entries
//!   are Raft meta batches that take no offset).
//! - [`raft_state`]: the small `raft-state` file beside the segments that
//!   holds what the segment log cannot: the vote and the purge point.
//! - [`log_store`]: openraft's `RaftLogStorage` over a [`PartitionLog`],
//!   reporting an append persisted only after the log is synced.
//! - [`state_machine`]: openraft's `RaftStateMachine` for a partition. The
//!   data already is in the log, so applying an entry only moves the high
//!   watermark; a snapshot is the log itself from its start.
//!
//! - [`network`]: Raft messages between nodes, many groups over one
//!   transport per node pair, and the router that receives them.
//!
//! - `idempotence`: the leader's check of idempotent producers' batches
//!   before it proposes them (the state machine records applied ones).
//! - [`snapshot_data`]: a snapshot's bytes, read from the log only when
//!   openraft reads them.
//! - [`replica`]: a partition replica, the log with its Raft group: writes
//!   answered once committed, reads below the high watermark; its
//!   retention purges the Raft log through openraft before it deletes
//!   segments, and its start repairs an install a crash interrupted.
//! - `write`: the replica's write path, proposing batches in order and
//!   answering once they are committed (or, for `acks=leader`, in the
//!   leader's log).
//!
//! - [`grpc`]: the `RaftPeer` gRPC service between brokers and the
//!   transport that sends over it.
//! - `in_process` (feature `test-util`): a network of in-process nodes
//!   whose links tests can cut, slow down and make lossy.
//!
//! - [`producers`]: what a partition remembers of each idempotent
//!   producer, and the rules that admit, deduplicate or refuse a batch.
//! - [`metadata`]: cluster metadata (brokers, topics, replica placement)
//!   as the replicated log of the controller group, and the controller
//!   that proposes its commands.
//!
//! It knows nothing of brokers' requests or of clients: the broker wires
//! a `Raft` per partition over these parts, as openraft separates
//! storage, network and runtime. It depends on spool-storage,
//! spool-record and, for the envelope its gRPC transport carries,
//! spool-protocol.
//!
//! [`PartitionLog`]: spool_storage::PartitionLog

pub mod entry;
mod error;
pub mod grpc;
mod idempotence;
#[cfg(feature = "test-util")]
pub mod in_process;
mod leadership;
pub mod liveness;
pub mod log_store;
pub mod metadata;
pub mod network;
pub mod producers;
pub mod raft_state;
mod repair;
pub mod replica;
mod retention;
pub mod snapshot_data;
pub mod state_machine;
mod write;

pub use entry::{AppliedEntry, BatchPayload};
pub use error::{ReplicationError, Result};
pub use log_store::{PartitionLogReader, PartitionLogStore};
pub use raft_state::RaftStateFile;
pub use replica::{partition_raft_config, quiescent_raft_config, PartitionReplica};
pub use state_machine::{AppliedState, PartitionStateMachine};
pub use write::{AnswerWhen, CommittedBatch, ProposedBatches};

/// A partition's producer table as its state machine applied it, shared
/// with the replica whose leader checks new batches against it.
pub type SharedProducers = std::sync::Arc<parking_lot::Mutex<producers::ProducerStates>>;

/// Raft node ids: a broker's `--node-id`.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// openraft's type configuration for a partition group: an entry's data
    /// is one record batch, and applying it answers with its offsets.
    pub PartitionRaftConfig:
        D = BatchPayload,
        R = AppliedEntry,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<PartitionRaftConfig>,
        SnapshotData = snapshot_data::SnapshotData,
);

/// A Raft entry of a partition group.
pub type PartitionEntry = openraft::Entry<PartitionRaftConfig>;
/// A log id of a partition group: (term, index).
pub type LogId = openraft::LogId<NodeId>;
/// openraft's storage error, as the storage traits return it.
pub type OpenraftStorageError = openraft::StorageError<NodeId>;
