//! Raft messages over gRPC: the `RaftPeer` service a broker serves beside
//! its client service, and the [`GrpcTransport`] its groups send with.
//!
//! One lazily connected channel per peer carries the messages of every
//! group (HTTP/2 multiplexes them); a message's group travels in the
//! envelope and its body is the bincode encoding of
//! [`RaftRequest`]/[`RaftReply`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::RwLock;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::network::{
    decode, encode, RaftReply, RaftRequest, RaftRouter, RaftTransport, TransportError,
};
use super::NodeId;
use crate::{ReplicationError, Result};
use spool_protocol::proto::raft_peer_client::RaftPeerClient;
use spool_protocol::proto::raft_peer_server::{RaftPeer, RaftPeerServer};
use spool_protocol::proto::RaftEnvelope;
use spool_protocol::transport::{nodelay_incoming, MAX_MESSAGE_BYTES};

/// The `RaftPeer` service of one node: hands each message to its group.
pub struct RaftPeerService {
    node: NodeId,
    router: Arc<RaftRouter>,
}

impl RaftPeerService {
    pub fn new(node: NodeId, router: Arc<RaftRouter>) -> RaftPeerService {
        RaftPeerService { node, router }
    }

    /// The tonic server for this service, with spool's message limits.
    pub fn into_server(self) -> RaftPeerServer<RaftPeerService> {
        RaftPeerServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl RaftPeer for RaftPeerService {
    async fn raft(
        &self,
        request: Request<RaftEnvelope>,
    ) -> std::result::Result<Response<RaftEnvelope>, Status> {
        let envelope = request.into_inner();
        let message: RaftRequest =
            decode(&envelope.payload).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut answer = RaftEnvelope {
            group: envelope.group.clone(),
            from: self.node,
            ..RaftEnvelope::default()
        };
        match self
            .router
            .handle(self.node, &envelope.group, message)
            .await
        {
            Ok(reply) => {
                answer.payload = encode(&reply)
                    .map_err(|e| Status::internal(e.to_string()))?
                    .into();
            }
            Err(e) => answer.error = e.to_string(),
        }
        Ok(Response::new(answer))
    }
}

/// Sends a node's Raft messages to its peers over gRPC.
pub struct GrpcTransport {
    node: NodeId,
    peers: RwLock<HashMap<NodeId, RaftPeerClient<Channel>>>,
}

impl GrpcTransport {
    /// A transport for `node` reaching each peer at its `host:port`.
    /// Connections open on first use and reconnect after failures.
    pub fn new(node: NodeId, peers: &HashMap<NodeId, String>) -> Result<GrpcTransport> {
        let mut clients = HashMap::new();
        for (&peer, address) in peers {
            clients.insert(peer, peer_client(address)?);
        }
        Ok(GrpcTransport {
            node,
            peers: RwLock::new(clients),
        })
    }

    /// Learns where a peer that was not configured lives (a broker that
    /// joined later, as the cluster's metadata registered it). A peer
    /// already known keeps its configured address.
    pub fn learn_peer(&self, peer: NodeId, address: &str) -> Result<()> {
        if peer == self.node || self.peers.read().contains_key(&peer) {
            return Ok(());
        }
        let client = peer_client(address)?;
        self.peers.write().entry(peer).or_insert(client);
        Ok(())
    }
}

/// A lazily connecting client of the peer at `address`.
fn peer_client(address: &str) -> Result<RaftPeerClient<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{address}")).map_err(|e| {
        ReplicationError::InvalidConfig {
            key: "peers".into(),
            value: address.to_string(),
            reason: e.to_string(),
        }
    })?;
    let channel = endpoint
        .http2_adaptive_window(true)
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(RaftPeerClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

impl RaftTransport for GrpcTransport {
    fn send(
        &self,
        target: NodeId,
        group: Arc<str>,
        request: RaftRequest,
    ) -> BoxFuture<'static, std::result::Result<RaftReply, TransportError>> {
        let client = self.peers.read().get(&target).cloned();
        let from = self.node;
        Box::pin(async move {
            let mut client = client.ok_or_else(|| {
                TransportError::Failed(format!("node {target} is not among the configured peers"))
            })?;
            let payload = encode(&request).map_err(|e| TransportError::Failed(e.to_string()))?;
            let envelope = RaftEnvelope {
                group: group.to_string(),
                from,
                payload: payload.into(),
                error: String::new(),
            };
            let answer = client
                .raft(envelope)
                .await
                .map_err(|status| {
                    TransportError::Unreachable(target, status.message().to_string())
                })?
                .into_inner();
            if !answer.error.is_empty() {
                return Err(TransportError::Unreachable(target, answer.error));
            }
            decode(&answer.payload).map_err(|e| TransportError::Failed(e.to_string()))
        })
    }
}

/// Serves node `node`'s Raft groups (`router`) on `listener` until
/// `shutdown` completes: the peer service alone, for nodes and tests that
/// run no client service beside it.
pub async fn serve_raft_peer(
    node: NodeId,
    router: Arc<RaftRouter>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    tonic::transport::Server::builder()
        .add_service(RaftPeerService::new(node, router).into_server())
        .serve_with_incoming_shutdown(nodelay_incoming(listener), shutdown)
        .await
        .map_err(|e| ReplicationError::PeerServer(e.to_string()))
}
