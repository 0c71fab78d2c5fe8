//! A node: a whole broker started from one [`NodeConfig`], with its
//! listeners (gRPC for clients and Raft peers, Kafka's wire protocol,
//! Prometheus metrics), or none when it runs embedded in a program.
//!
//! The `spool broker` command, the process tests (through that command),
//! embedded programs and, later, streams and connect applications all
//! start brokers here, so the wiring and its defaults exist once.

mod config;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use spool_client::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{
    parse_peers, NodeConfig, DEFAULT_DATA_DIR, DEFAULT_KAFKA_LISTEN, DEFAULT_LISTEN,
    DEFAULT_METRICS_LISTEN, OFF,
};

use crate::grpc::{serve_metrics, Metrics};
use crate::{Broker, BrokerError, EmbeddedTransport, Result};

/// A running broker and its listeners. [`Node::shutdown`] stops the
/// listeners and closes every log cleanly. Dropping a node stops its
/// listeners but leaves the broker to whoever still holds it (a client
/// from [`Node::client`]), without the clean close.
pub struct Node {
    broker: Arc<Broker>,
    grpc_address: Option<SocketAddr>,
    kafka_address: Option<SocketAddr>,
    metrics_address: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    /// The gRPC server: when it stops by itself, the node is unreachable.
    grpc: Option<JoinHandle<Result<()>>>,
    /// The metrics endpoint and the Kafka listener, which log their own
    /// failures and leave the node serving gRPC.
    servers: Vec<JoinHandle<()>>,
}

impl Node {
    /// Starts a broker as `config` says: a single node (a cluster of one)
    /// or a cluster member, then its listeners. A single node answers once
    /// it serves; a cluster member once its listeners are up (its peers
    /// reach it through them to elect a controller).
    pub async fn start(config: NodeConfig) -> Result<Node> {
        let (broker_config, cluster) = config.broker_config()?;
        let broker = match cluster {
            None => Broker::open(broker_config).await?,
            Some(cluster) => Broker::open_cluster(broker_config, cluster).await?,
        };
        let (stop, _) = watch::channel(false);
        let mut node = Node {
            broker,
            grpc_address: None,
            kafka_address: None,
            metrics_address: None,
            stop,
            grpc: None,
            servers: Vec::new(),
        };
        if let Err(e) = node.listen(&config).await {
            node.shutdown().await?;
            return Err(e);
        }
        Ok(node)
    }

    /// Starts a broker on `data_dir` inside this process, with no
    /// listeners: its programs reach it through [`Node::client`].
    pub async fn embedded(data_dir: impl AsRef<Path>) -> Result<Node> {
        Node::start(NodeConfig::embedded(data_dir.as_ref())).await
    }

    /// Binds every listener `config` enables, then serves them: a port
    /// in use fails the start before anything is served or announced
    /// (the Kafka listener announces its address to the cluster).
    async fn listen(&mut self, config: &NodeConfig) -> Result<()> {
        let metrics_listener = bind_enabled("metrics_listen", config.metrics_listen()).await?;
        let kafka_listener = bind_enabled("kafka_listen", config.kafka_listen()).await?;
        let grpc_listener = bind_enabled("listen", config.grpc_listen()).await?;
        let metrics = Arc::new(Metrics::default());
        if let Some(listener) = metrics_listener {
            self.metrics_address = Some(local_address(&listener)?);
            let (broker, metrics, stopped) = (
                Arc::clone(&self.broker),
                Arc::clone(&metrics),
                self.stopped(),
            );
            self.servers.push(tokio::spawn(serve_metrics(
                listener, broker, metrics, stopped,
            )));
        }
        if let Some(listener) = kafka_listener {
            let local = local_address(&listener)?;
            let kafka = config.kafka_config(local)?;
            self.kafka_address = Some(local);
            let served =
                crate::kafka::serve(Arc::clone(&self.broker), kafka, listener, self.stopped());
            self.servers.push(tokio::spawn(async move {
                if let Err(e) = served.await {
                    tracing::error!(error = %e, "the Kafka listener stopped");
                }
            }));
        }
        if let Some(listener) = grpc_listener {
            self.grpc_address = Some(local_address(&listener)?);
            let served =
                crate::grpc::serve(Arc::clone(&self.broker), metrics, listener, self.stopped());
            self.grpc = Some(tokio::spawn(served));
        }
        Ok(())
    }

    /// A future that completes once [`Node::shutdown`] begins.
    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopped = self.stop.subscribe();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    }

    /// A client of this node that calls the broker in-process, whatever
    /// listeners it has. It reaches this broker only: on a cluster member,
    /// requests for partitions or coordinators held elsewhere are answered
    /// `NOT_LEADER` or `NOT_COORDINATOR`, so a program that uses the
    /// whole cluster connects with `Client::connect` instead.
    pub fn client(&self) -> Client {
        EmbeddedTransport::client(Arc::clone(&self.broker))
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Where the gRPC listener is bound, if it runs.
    pub fn grpc_address(&self) -> Option<SocketAddr> {
        self.grpc_address
    }

    /// Where the Kafka listener is bound, if it runs.
    pub fn kafka_address(&self) -> Option<SocketAddr> {
        self.kafka_address
    }

    /// Where the metrics endpoint is bound, if it runs.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// Completes when the node can no longer serve, with why: its gRPC
    /// listener stopped by itself (it failed), or the broker failed (see
    /// [`Broker::failed`]). The process should then stop.
    pub async fn serving(&mut self) -> Result<()> {
        let broker = Arc::clone(&self.broker);
        let failed = async move { Err(BrokerError::Failed(broker.failed().await)) };
        let Some(server) = self.grpc.as_mut() else {
            return failed.await;
        };
        tokio::select! {
            outcome = server => {
                self.grpc = None;
                outcome.map_err(|e| serve_error("the gRPC server task", e))?
            }
            failure = failed => failure,
        }
    }

    /// Stops the listeners, then the broker: every Raft group, background
    /// work, and every log closed cleanly (flushed, indexed,
    /// checkpointed), so the next start recovers nothing.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        if let Some(grpc) = self.grpc {
            match grpc.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "the gRPC server stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "the gRPC server task failed"),
            }
        }
        for server in self.servers {
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "a listener task failed");
            }
        }
        self.broker.shutdown().await
    }
}

/// Binds the listener of setting `key` at `address`, unless it is off.
async fn bind_enabled(key: &str, address: Option<&str>) -> Result<Option<TcpListener>> {
    let Some(address) = address else {
        return Ok(None);
    };
    let bound = TcpListener::bind(address).await;
    bound.map(Some).map_err(|source| BrokerError::Serve {
        what: format!("binding {key} = {address}"),
        source,
    })
}

fn local_address(listener: &TcpListener) -> Result<SocketAddr> {
    listener.local_addr().map_err(|source| BrokerError::Serve {
        what: "reading a listener's address".into(),
        source,
    })
}

fn serve_error(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Serve {
        what: what.to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}
