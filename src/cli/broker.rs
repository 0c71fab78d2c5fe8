//! `spool broker`: run a broker until SIGINT or SIGTERM, then shut down
//! cleanly (every partition flushed and checkpointed).

use std::path::PathBuf;

use anyhow::Context;
use spool_broker::{Node, NodeConfig};

#[derive(clap::Args)]
pub struct Args {
    /// A TOML configuration file (every key, with its default, in
    /// examples/broker.toml; see docs/operations.md); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where partitions are stored.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the gRPC listener.
    #[arg(long)]
    listen: Option<String>,
    /// This broker's id.
    #[arg(long)]
    node_id: Option<u32>,
    /// Address of the Prometheus metrics endpoint (`off` to disable).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Address of the Kafka protocol listener (`off` to disable).
    #[arg(long)]
    kafka_listen: Option<String>,
    /// Host Kafka clients are told to connect to (default: the Kafka
    /// listener's host; give it when listening on 0.0.0.0).
    #[arg(long)]
    kafka_advertised_host: Option<String>,
    /// Run as part of a cluster: every broker's `id=host:port` (this one
    /// included), comma-separated, e.g. `1=127.0.0.1:9292,2=127.0.0.1:9392`.
    /// Every broker gets the same list and its own `--node-id`.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// Join a running cluster as a new broker (its `--peers` lists the
    /// running brokers and itself): it asks them to admit it instead of
    /// founding the cluster. Give it on the first start; later starts
    /// need it not.
    #[arg(long)]
    join: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => NodeConfig::from_file(path)?,
        None => NodeConfig::default(),
    };
    args.override_file(&mut config);
    // A node without gRPC serves only its own process; as a command it
    // would be a broker nobody can reach.
    anyhow::ensure!(
        config.grpc_listen().is_some(),
        "spool broker needs its gRPC listener: `listen` cannot be `off`"
    );
    let mut node = Node::start(config.clone())
        .await
        .with_context(|| format!("starting the broker on {}", config.data_dir.display()))?;
    if let Some(address) = node.metrics_address() {
        eprintln!("spool broker metrics on {address}");
    }
    if let Some(address) = node.kafka_address() {
        eprintln!("spool broker Kafka protocol on {address}");
    }
    let listening = node.grpc_address().context("no gRPC address")?;
    eprintln!(
        "spool broker {} listening on {listening} with data in {}",
        config.node_id,
        config.data_dir.display()
    );
    let served = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        failed = node.serving() => failed,
    };
    let closed = node.shutdown().await;
    served.context("the broker failed")?;
    closed?;
    eprintln!("spool broker stopped cleanly");
    Ok(())
}

impl Args {
    /// Command-line flags win over the configuration file.
    fn override_file(self, config: &mut NodeConfig) {
        let set = |field: &mut String, flag: Option<String>| {
            if let Some(value) = flag {
                *field = value;
            }
        };
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(id) = self.node_id {
            config.node_id = id;
        }
        set(&mut config.listen, self.listen);
        set(&mut config.metrics_listen, self.metrics_listen);
        set(&mut config.kafka_listen, self.kafka_listen);
        if self.kafka_advertised_host.is_some() {
            config.kafka_advertised_host = self.kafka_advertised_host;
        }
        if !self.peers.is_empty() {
            config.peers = self.peers;
        }
        config.join |= self.join;
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM: how a long-running command
/// is asked to stop cleanly.
pub(super) async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}
