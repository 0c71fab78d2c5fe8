//! The gRPC service: a thin tonic layer that hands each request to the
//! [`Broker`] and returns its response. Per-partition failures travel inside
//! the responses; this layer adds none of its own semantics.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tonic::{Request, Response, Status};

mod metrics;

use metrics::Payload;
pub use metrics::{serve_metrics, Metrics};

use crate::broker::Broker;
use crate::proto::spool_server::{Spool, SpoolServer};
use crate::proto::*;
use crate::replication::grpc::RaftPeerService;
use crate::{LogError, Result};

/// Largest gRPC message either way. Produce requests carry whole batches and
/// fetch responses up to the client's `max_bytes` (50 MiB by default, as in
/// Kafka), so tonic's 4 MiB default is far too small.
pub const MAX_MESSAGE_BYTES: usize = 128 << 20;

/// HTTP/2 flow-control windows of both ends. hyper's defaults (1 MiB per
/// connection on the server) hold fewer bytes than a producer's in-flight
/// requests (5 of 256 KiB in the benchmarks), so a sender would stop and
/// wait for window updates mid-request; these hold several full requests
/// and fetch responses. They bound buffered bytes per connection, not
/// allocations.
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
pub const CONNECTION_WINDOW_BYTES: u32 = 32 << 20;

/// Largest HTTP/2 frame the server accepts (the default is 16 KiB): a
/// produce request of 256 KiB then travels in a few frames, not sixteen.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// The service implementation over a shared broker.
#[derive(Clone)]
pub struct SpoolService {
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
}

impl SpoolService {
    pub fn new(broker: Arc<Broker>, metrics: Arc<Metrics>) -> Self {
        SpoolService { broker, metrics }
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
    metrics: Arc<Metrics>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let local: SocketAddr = listener
        .local_addr()
        .map_err(|e| LogError::io("listener", e))?;
    tracing::info!(address = %local, "serving gRPC");
    let incoming = tokio_stream_listener(listener);
    // Peers' Raft messages arrive on the same port.
    let raft_peer = RaftPeerService::new(broker.cluster_node(), broker.raft_router()).into_server();
    tonic::transport::Server::builder()
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .add_service(SpoolService::new(broker, metrics).into_server())
        .add_service(raft_peer)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| LogError::io("grpc server", std::io::Error::other(e)))
}

/// Accepted connections as the stream tonic wants, with Nagle off: produce
/// and fetch responses are latency-bound.
pub(crate) fn tokio_stream_listener(
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

/// One handler per RPC: hand the request to the broker (awaiting it for the
/// `async` ones) and record the call in the metrics.
macro_rules! handlers {
    (@call async $broker:expr, $method:ident, $request:expr) => { $broker.$method($request).await };
    (@call sync $broker:expr, $method:ident, $request:expr) => { $broker.$method($request) };
    ($($kind:ident $method:ident($request:ty) -> $response:ty;)*) => {
        /// Every RPC's name, for the metrics.
        pub const RPC_NAMES: &[&str] = &[$(stringify!($method)),*];

        #[tonic::async_trait]
        impl Spool for SpoolService {
            $(
                async fn $method(&self, request: Request<$request>) -> Reply<$response> {
                    let started = std::time::Instant::now();
                    let request = request.into_inner();
                    let bytes_in = request.payload_bytes();
                    let response = handlers!(@call $kind self.broker, $method, request);
                    self.metrics.record(stringify!($method), started.elapsed(), bytes_in, response.payload_bytes());
                    Ok(Response::new(response))
                }
            )*
        }
    };
}

with_rpcs!(handlers);
