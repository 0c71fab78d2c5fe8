//! The gRPC service: a thin tonic layer that hands each request to the
//! [`Broker`] and returns its response. Per-partition failures travel inside
//! the responses; this layer adds none of its own semantics.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::broker::Broker;
use crate::proto::spool_server::{Spool, SpoolServer};
use crate::proto::*;
use crate::{LogError, Result};

/// Largest gRPC message either way. Produce requests carry whole batches and
/// fetch responses up to the client's `max_bytes` (50 MiB by default, as in
/// Kafka), so tonic's 4 MiB default is far too small.
pub const MAX_MESSAGE_BYTES: usize = 128 << 20;

/// The service implementation over a shared broker.
#[derive(Clone)]
pub struct SpoolService {
    broker: Arc<Broker>,
}

impl SpoolService {
    pub fn new(broker: Arc<Broker>) -> Self {
        SpoolService { broker }
    }

    /// The tonic server for this service, with spool's message limits.
    pub fn into_server(self) -> SpoolServer<SpoolService> {
        SpoolServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// Serves `broker` on `listener` until `shutdown` completes.
pub async fn serve(
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let local: SocketAddr = listener
        .local_addr()
        .map_err(|e| LogError::io("listener", e))?;
    tracing::info!(address = %local, "serving gRPC");
    let incoming = tokio_stream_listener(listener);
    tonic::transport::Server::builder()
        .add_service(SpoolService::new(broker).into_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| LogError::io("grpc server", std::io::Error::other(e)))
}

/// Accepted connections as the stream tonic wants, with Nagle off: produce
/// and fetch responses are latency-bound.
fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}

type Reply<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl Spool for SpoolService {
    async fn produce(&self, request: Request<ProduceRequest>) -> Reply<ProduceResponse> {
        Ok(Response::new(
            self.broker.produce(request.into_inner()).await,
        ))
    }
    async fn fetch(&self, request: Request<FetchRequest>) -> Reply<FetchResponse> {
        Ok(Response::new(self.broker.fetch(request.into_inner()).await))
    }
    async fn list_offsets(
        &self,
        request: Request<ListOffsetsRequest>,
    ) -> Reply<ListOffsetsResponse> {
        Ok(Response::new(
            self.broker.list_offsets(request.into_inner()),
        ))
    }
    async fn metadata(&self, request: Request<MetadataRequest>) -> Reply<MetadataResponse> {
        Ok(Response::new(self.broker.metadata(request.into_inner())))
    }
    async fn create_topics(
        &self,
        request: Request<CreateTopicsRequest>,
    ) -> Reply<CreateTopicsResponse> {
        Ok(Response::new(
            self.broker.create_topics(request.into_inner()),
        ))
    }
    async fn delete_topics(
        &self,
        request: Request<DeleteTopicsRequest>,
    ) -> Reply<DeleteTopicsResponse> {
        Ok(Response::new(
            self.broker.delete_topics(request.into_inner()),
        ))
    }
    async fn describe_configs(
        &self,
        request: Request<DescribeConfigsRequest>,
    ) -> Reply<DescribeConfigsResponse> {
        Ok(Response::new(
            self.broker.describe_configs(request.into_inner()),
        ))
    }
    async fn alter_configs(
        &self,
        request: Request<AlterConfigsRequest>,
    ) -> Reply<AlterConfigsResponse> {
        Ok(Response::new(
            self.broker.alter_configs(request.into_inner()),
        ))
    }
    async fn create_partitions(
        &self,
        request: Request<CreatePartitionsRequest>,
    ) -> Reply<CreatePartitionsResponse> {
        Ok(Response::new(
            self.broker.create_partitions(request.into_inner()),
        ))
    }
    async fn join_group(&self, request: Request<JoinGroupRequest>) -> Reply<JoinGroupResponse> {
        Ok(Response::new(
            self.broker.join_group(request.into_inner()).await,
        ))
    }
    async fn sync_group(&self, request: Request<SyncGroupRequest>) -> Reply<SyncGroupResponse> {
        Ok(Response::new(
            self.broker.sync_group(request.into_inner()).await,
        ))
    }
    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Reply<HeartbeatResponse> {
        Ok(Response::new(self.broker.heartbeat(request.into_inner())))
    }
    async fn leave_group(&self, request: Request<LeaveGroupRequest>) -> Reply<LeaveGroupResponse> {
        Ok(Response::new(self.broker.leave_group(request.into_inner())))
    }
    async fn offset_commit(
        &self,
        request: Request<OffsetCommitRequest>,
    ) -> Reply<OffsetCommitResponse> {
        Ok(Response::new(
            self.broker.offset_commit(request.into_inner()).await,
        ))
    }
    async fn offset_fetch(
        &self,
        request: Request<OffsetFetchRequest>,
    ) -> Reply<OffsetFetchResponse> {
        Ok(Response::new(
            self.broker.offset_fetch(request.into_inner()),
        ))
    }
    async fn list_groups(&self, request: Request<ListGroupsRequest>) -> Reply<ListGroupsResponse> {
        Ok(Response::new(self.broker.list_groups(request.into_inner())))
    }
    async fn describe_groups(
        &self,
        request: Request<DescribeGroupsRequest>,
    ) -> Reply<DescribeGroupsResponse> {
        Ok(Response::new(
            self.broker.describe_groups(request.into_inner()),
        ))
    }
}
