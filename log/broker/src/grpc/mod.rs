//! The gRPC service: a thin tonic layer that hands each request to the
//! [`Broker`] and returns its response. Per-partition failures travel inside
//! the responses; this layer adds none of its own semantics.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status, Streaming};

mod metrics;
mod produce_stream;

use metrics::Payload;
pub use metrics::{serve_metrics, Metrics};

use crate::broker::Broker;
use crate::{BrokerError, Result};
use spool_protocol::proto::spool_server::{Spool, SpoolServer};
use spool_protocol::proto::*;
use spool_protocol::transport::{
    nodelay_incoming, CONNECTION_WINDOW_BYTES, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES,
    STREAM_WINDOW_BYTES,
};
use spool_raft::grpc::RaftPeerService;

/// The service implementation over a shared broker.
#[derive(Clone)]
pub struct SpoolService {
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
    /// Set when the server shuts down: produce streams stop reading and
    /// end once they answered what they proposed, since the server waits
    /// for every open stream to end before it stops.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
}

impl SpoolService {
    pub fn new(broker: Arc<Broker>, metrics: Arc<Metrics>) -> Self {
        let (stopping, _) = tokio::sync::watch::channel(false);
        SpoolService {
            broker,
            metrics,
            stopping: Arc::new(stopping),
        }
    }

    /// Ends the service's produce streams (see `stopping`).
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
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
    let local: SocketAddr = listener.local_addr().map_err(|source| BrokerError::Serve {
        what: "reading the gRPC listener's address".into(),
        source,
    })?;
    tracing::info!(address = %local, "serving gRPC");
    let incoming = nodelay_incoming(listener);
    // Peers' Raft messages arrive on the same port.
    let raft_peer = RaftPeerService::new(broker.cluster_node(), broker.raft_router()).into_server();
    let service = SpoolService::new(broker, metrics);
    let streams = service.clone();
    let shutdown = async move {
        shutdown.await;
        streams.stop_streams();
    };
    tonic::transport::Server::builder()
        // A client whose host vanished (no FIN, no RST) would otherwise
        // hold its produce stream, and the task serving it, for good.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .add_service(service.into_server())
        .add_service(raft_peer)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| BrokerError::Serve {
            what: "the gRPC server".into(),
            source: std::io::Error::other(e),
        })
}

type Reply<T> = std::result::Result<Response<T>, Status>;

/// One handler per RPC: hand the request to the broker (awaiting it for the
/// `async` ones) and record the call in the metrics; and the produce
/// stream (`produce_stream`).
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

            type ProduceStreamStream = produce_stream::ProduceAnswers;

            async fn produce_stream(
                &self,
                requests: Request<Streaming<ProduceRequest>>,
            ) -> Reply<Self::ProduceStreamStream> {
                let (broker, metrics) = (Arc::clone(&self.broker), Arc::clone(&self.metrics));
                let stopping = self.stopping.subscribe();
                let answers = produce_stream::answer_in_order(broker, metrics, stopping, requests.into_inner());
                Ok(Response::new(answers))
            }
        }
    };
}

spool_protocol::with_rpcs!(handlers);
