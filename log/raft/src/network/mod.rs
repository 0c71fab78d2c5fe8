//! How Raft messages travel between nodes, for many groups at once.
//!
//! openraft asks for a network per group ([`GroupNetwork`], a
//! `RaftNetworkFactory`); every group of a node shares one
//! [`RaftTransport`] that carries `(group, message)` pairs to a node, so
//! a thousand partitions share a connection per broker pair instead of
//! opening one each. On the receiving node a [`RaftRouter`] hands each
//! message to its group's `Raft`.
//!
//! Messages cross the transport as [`RaftRequest`] and [`RaftReply`],
//! which encode with bincode ([`encode`], [`decode`]): the gRPC transport
//! sends those bytes, and the in-process test network round-trips them
//! too, so tests exercise the same encoding.

mod heard;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{NodeId, PartitionRaftConfig};
use crate::{ReplicationError, Result};
pub use heard::{Heard, NodeHeartbeat};

type C = PartitionRaftConfig;

/// One Raft message for one group.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<C>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<C>),
    /// Not for a group: the sending node's heartbeat (see [`crate::liveness`]).
    NodeHeartbeat(NodeHeartbeat),
}

/// The answer of the target group's `Raft` to a [`RaftRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    AppendEntries(std::result::Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(std::result::Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        std::result::Result<
            InstallSnapshotResponse<NodeId>,
            RaftError<NodeId, InstallSnapshotError>,
        >,
    ),
    /// The answer to a [`RaftRequest::NodeHeartbeat`]: which incarnation
    /// of the node heard it.
    NodeHeartbeat {
        incarnation: u64,
    },
}

/// Why a message got no reply.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The target could not be reached (link down, node stopped, message
    /// lost); openraft backs off before trying that node again.
    #[error("node {0} is unreachable: {1}")]
    Unreachable(NodeId, String),
    /// The target answered, but not for this group or not decodably.
    #[error("{0}")]
    Failed(String),
}

/// Carries Raft messages from this node to others. Implemented by the
/// gRPC client and by the in-process test network.
pub trait RaftTransport: Send + Sync + 'static {
    /// Delivers `request` to group `group` on node `target` and returns
    /// its reply. Must not retry by itself: openraft decides about
    /// retries. A message that may or may not have been delivered is
    /// reported `Unreachable`; Raft tolerates duplicates and loss.
    fn send(
        &self,
        target: NodeId,
        group: Arc<str>,
        request: RaftRequest,
    ) -> BoxFuture<'static, std::result::Result<RaftReply, TransportError>>;
}

/// Encodes a request or reply for the wire.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>> {
    bincode::serialize(message)
        .map_err(|e| ReplicationError::InvalidRequest(format!("unencodable Raft message: {e}")))
}

/// Decodes a request or reply from the wire.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    bincode::deserialize(bytes)
        .map_err(|e| ReplicationError::InvalidRequest(format!("malformed Raft message: {e}")))
}

/// openraft's network factory for one group over a shared transport.
#[derive(Clone)]
pub struct GroupNetwork {
    group: Arc<str>,
    transport: Arc<dyn RaftTransport>,
}

impl GroupNetwork {
    pub fn new(group: impl Into<Arc<str>>, transport: Arc<dyn RaftTransport>) -> GroupNetwork {
        GroupNetwork {
            group: group.into(),
            transport,
        }
    }
}

/// openraft's connection from one group member to another.
pub struct GroupConnection {
    target: NodeId,
    network: GroupNetwork,
}

impl RaftNetworkFactory<C> for GroupNetwork {
    type Network = GroupConnection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> GroupConnection {
        GroupConnection {
            target,
            network: self.clone(),
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    std::result::Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl GroupConnection {
    /// Sends `request` and waits at most openraft's hard time limit.
    async fn call<E>(&self, request: RaftRequest, option: &RPCOption) -> RpcResult<RaftReply, E>
    where
        E: std::error::Error,
    {
        let send =
            self.network
                .transport
                .send(self.target, Arc::clone(&self.network.group), request);
        match tokio::time::timeout(option.hard_ttl(), send).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e @ TransportError::Unreachable(..))) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Ok(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            Err(_) => Err(RPCError::Unreachable(Unreachable::new(
                &TransportError::Unreachable(
                    self.target,
                    format!("no reply within {:?}", option.hard_ttl()),
                ),
            ))),
        }
    }
}

// The error type is openraft's, fixed by the `RaftNetwork` trait.
#[allow(clippy::result_large_err)]
fn mismatched<T, E: std::error::Error>(reply: RaftReply) -> RpcResult<T, E> {
    let e = TransportError::Failed(format!("a reply of the wrong kind: {reply:?}"));
    Err(RPCError::Network(NetworkError::new(&e)))
}

impl RaftNetwork<C> for GroupConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.call(RaftRequest::AppendEntries(rpc), &option).await? {
            RaftReply::AppendEntries(reply) => {
                reply.map_err(|e| RPCError::RemoteError(remote(self.target, e)))
            }
            other => mismatched(other),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self
            .call(RaftRequest::InstallSnapshot(rpc), &option)
            .await?
        {
            RaftReply::InstallSnapshot(reply) => {
                reply.map_err(|e| RPCError::RemoteError(remote(self.target, e)))
            }
            other => mismatched(other),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(RaftRequest::Vote(rpc), &option).await? {
            RaftReply::Vote(reply) => {
                reply.map_err(|e| RPCError::RemoteError(remote(self.target, e)))
            }
            other => mismatched(other),
        }
    }
}

fn remote<E: std::error::Error>(
    target: NodeId,
    error: RaftError<NodeId, E>,
) -> openraft::error::RemoteError<NodeId, BasicNode, RaftError<NodeId, E>> {
    openraft::error::RemoteError::new(target, error)
}

/// The groups of one node, by group id: where incoming messages go. It
/// also keeps what the node heard from its peers' node heartbeats, for
/// the node's [`crate::liveness::Liveness`].
pub struct RaftRouter {
    groups: RwLock<HashMap<Arc<str>, Routed>>,
    heard: Heard,
    incarnation: u64,
}

#[derive(Clone)]
struct Routed {
    raft: Raft<C>,
    quiescent: bool,
}

impl Default for RaftRouter {
    fn default() -> RaftRouter {
        use std::hash::{BuildHasher, Hasher};
        // Randomly keyed per instance: a restarted node is told apart.
        let incarnation = std::hash::RandomState::new().build_hasher().finish();
        RaftRouter {
            groups: RwLock::default(),
            heard: Heard::default(),
            incarnation,
        }
    }
}

impl RaftRouter {
    /// Routes `group`'s messages to `raft`, which keeps openraft's own
    /// heartbeats and election timer.
    pub fn register(&self, group: impl Into<Arc<str>>, raft: Raft<C>) {
        self.route(group.into(), raft, false);
    }

    /// Routes `group`'s messages to `raft` and makes it quiescent: its
    /// openraft heartbeats and election timer are switched off, and the
    /// node's [`crate::liveness::Liveness`] (which must run) heartbeats
    /// and elects for it only when needed.
    pub fn register_quiescent(&self, group: impl Into<Arc<str>>, raft: Raft<C>) {
        raft.runtime_config().heartbeat(false);
        raft.runtime_config().elect(false);
        self.route(group.into(), raft, true);
    }

    fn route(&self, group: Arc<str>, raft: Raft<C>, quiescent: bool) {
        self.groups
            .write()
            .insert(group, Routed { raft, quiescent });
    }

    pub fn unregister(&self, group: &str) {
        self.groups.write().remove(group);
    }

    /// The quiescent groups routed here now.
    pub fn quiescent_groups(&self) -> Vec<(Arc<str>, Raft<C>)> {
        self.groups
            .read()
            .iter()
            .filter(|(_, routed)| routed.quiescent)
            .map(|(group, routed)| (Arc::clone(group), routed.raft.clone()))
            .collect()
    }

    /// What this node heard from its peers' node heartbeats.
    pub fn heard(&self) -> &Heard {
        &self.heard
    }

    /// Drawn when this router was made: peers tell a restarted node by it.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Hands `request` to `group`'s `Raft` and returns its answer. A group
    /// this node does not run is `Unreachable` to the sender, like a
    /// stopped node: it may be starting, or the replica may have moved.
    /// A node heartbeat is kept, whatever its group.
    pub async fn handle(
        &self,
        node: NodeId,
        group: &str,
        request: RaftRequest,
    ) -> std::result::Result<RaftReply, TransportError> {
        Ok(match request {
            RaftRequest::AppendEntries(rpc) => {
                RaftReply::AppendEntries(self.routed(node, group)?.raft.append_entries(rpc).await)
            }
            RaftRequest::Vote(rpc) => {
                let routed = self.routed(node, group)?;
                let refused = match routed.quiescent {
                    true => self.lease_refusal(node, group, &routed.raft, &rpc),
                    false => None,
                };
                match refused {
                    Some(refused) => RaftReply::Vote(Ok(refused)),
                    None => RaftReply::Vote(routed.raft.vote(rpc).await),
                }
            }
            RaftRequest::InstallSnapshot(rpc) => {
                let raft = self.routed(node, group)?.raft;
                RaftReply::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            RaftRequest::NodeHeartbeat(heartbeat) => {
                self.heard.record(heartbeat, std::time::Instant::now());
                RaftReply::NodeHeartbeat {
                    incarnation: self.incarnation,
                }
            }
        })
    }

    /// For a quiescent group: its follower refuses a vote while the leader it
    /// follows was heard (within the longest election timeout, as the
    /// liveness keeps what it heard) and claims the group: openraft's leader lease
    /// does this from group heartbeats, which an idle quiescent group no
    /// longer sends. Without it a member cut off from the leader alone
    /// would win with the third member's vote, lose to the leader's next
    /// write, which cannot reach it, and the two would take turns.
    fn lease_refusal(
        &self,
        node: NodeId,
        group: &str,
        raft: &Raft<C>,
        request: &VoteRequest<NodeId>,
    ) -> Option<VoteResponse<NodeId>> {
        let metrics = raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let candidate = request.vote.leader_id().voted_for();
        let led_well = metrics.state == openraft::ServerState::Follower
            && leader != node
            && candidate != Some(leader)
            && self.heard.claims(leader, group);
        led_well.then(|| VoteResponse {
            vote: metrics.vote,
            vote_granted: false,
            last_log_id: raft.data_metrics().borrow().last_log,
        })
    }

    fn routed(&self, node: NodeId, group: &str) -> std::result::Result<Routed, TransportError> {
        let groups = self.groups.read();
        let routed = groups.get(group).ok_or_else(|| {
            TransportError::Unreachable(node, format!("no Raft group `{group}` on node {node}"))
        })?;
        Ok(routed.clone())
    }
}
