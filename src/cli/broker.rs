//! `spool broker`: run a broker until SIGINT or SIGTERM, then shut down
//! cleanly (every partition flushed and checkpointed).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;

use spool_log::broker::{Broker, BrokerConfig, ClusterConfig};
use spool_log::client::DEFAULT_BOOTSTRAP;
use spool_log::kafka::KafkaConfig;
use spool_log::server::{serve_metrics, Metrics};

#[derive(clap::Args)]
pub struct Args {
    /// A TOML configuration file (see docs/operations.md); flags override it.
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

/// The broker configuration file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// Where partitions are stored (default `./spool-data`: a relative
    /// directory keeps a first run self-contained).
    data_dir: Option<PathBuf>,
    /// gRPC listen address (default 127.0.0.1:9292: loopback only until the
    /// operator decides to expose it).
    listen: Option<String>,
    /// Broker id (default 1).
    node_id: Option<u32>,
    /// Prometheus endpoint (default 127.0.0.1:9293, next to the client port;
    /// `off` disables it).
    metrics_listen: Option<String>,
    /// Kafka protocol listener (default 127.0.0.1:9092, Kafka's port, so
    /// Kafka clients and tools find it where they look; `off` disables it).
    kafka_listen: Option<String>,
    /// Host given to Kafka clients in Metadata and FindCoordinator
    /// (default: the listener's host). Clients connect to this host, so it
    /// must be one they can reach.
    kafka_advertised_host: Option<String>,
    /// Create topics that Kafka clients ask metadata for (default true, as
    /// Kafka's `auto.create.topics.enable`).
    kafka_auto_create_topics: Option<bool>,
    /// Partitions of an auto-created topic (default 1, Kafka's
    /// `num.partitions`).
    kafka_auto_create_partitions: Option<u32>,
    /// How long the first rebalance of a new consumer group waits for more
    /// members, in ms (default 0; Kafka's group.initial.rebalance.delay.ms
    /// is 3000).
    group_initial_rebalance_delay_ms: Option<u64>,
    /// Shortest consumer-group session timeout a member may ask for
    /// (default 6000 ms, Kafka's: shorter ones turn pauses into rebalances).
    group_min_session_timeout_ms: Option<u64>,
    /// Partitions of `__consumer_offsets`, fixed when a cluster first
    /// starts (default 8; see docs/operations.md).
    offsets_topic_partitions: Option<u32>,
    /// Replicas of each offsets partition (default 3, or the cluster's
    /// broker count if smaller).
    offsets_topic_replication_factor: Option<u32>,
    /// How often retention runs, in ms (default 300000, Kafka's
    /// `log.retention.check.interval.ms`: retention frees whole segments,
    /// so running it more often buys little).
    retention_check_interval_ms: Option<u64>,
    /// Cluster members as `id=host:port` (default none: a single node).
    #[serde(default)]
    peers: Vec<String>,
    /// Defaults for new topics, as topic settings (`retention.ms = "3600000"`).
    #[serde(default)]
    topic_defaults: std::collections::BTreeMap<String, String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("invalid broker config {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("spool-data"));
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string());
    let mut config = BrokerConfig::new(&data_dir);
    config.node_id = args.node_id.or(file.node_id).unwrap_or(1);
    config.advertised_address = listen.clone();
    if let Some(ms) = file.group_min_session_timeout_ms {
        config.groups.min_session_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = file.group_initial_rebalance_delay_ms {
        config.groups.initial_rebalance_delay = std::time::Duration::from_millis(ms);
    }
    if let Some(partitions) = file.offsets_topic_partitions {
        spool_log::config::validate_partition_count(partitions)
            .context("invalid offsets_topic_partitions")?;
        config.groups.offsets_partitions = partitions;
    }
    if let Some(factor) = file.offsets_topic_replication_factor {
        anyhow::ensure!(
            factor >= 1,
            "offsets_topic_replication_factor must be at least 1"
        );
        config.groups.offsets_replication_factor = factor;
    }
    if let Some(ms) = file.retention_check_interval_ms {
        config.manager.retention_check_interval = std::time::Duration::from_millis(ms.max(1));
    }
    for (key, value) in &file.topic_defaults {
        config
            .topic_defaults
            .set(key, value)
            .context("invalid [topic_defaults] entry")?;
    }
    let peers = if args.peers.is_empty() {
        file.peers
    } else {
        args.peers
    };
    let broker = if peers.is_empty() {
        Broker::open(config)
            .await
            .with_context(|| format!("opening {}", data_dir.display()))?
    } else {
        let peers = parse_peers(&peers)?;
        let node = u64::from(config.node_id);
        if let Some(address) = peers.get(&node) {
            config.advertised_address = address.clone();
        }
        let mut cluster =
            ClusterConfig::new(node, peers).context("invalid cluster configuration")?;
        cluster.join = args.join;
        Broker::open_cluster(config, cluster)
            .await
            .with_context(|| format!("opening {} as cluster node {node}", data_dir.display()))?
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let metrics_listen = args
        .metrics_listen
        .or(file.metrics_listen)
        .unwrap_or_else(|| "127.0.0.1:9293".into());
    if metrics_listen != "off" {
        let metrics_listener = tokio::net::TcpListener::bind(&metrics_listen)
            .await
            .with_context(|| format!("binding the metrics endpoint {metrics_listen} (use --metrics-listen off to disable)"))?;
        eprintln!("spool broker metrics on {}", metrics_listener.local_addr()?);
        let mut stopped = stopped.clone();
        tokio::spawn(serve_metrics(
            metrics_listener,
            Arc::clone(&broker),
            Arc::clone(&metrics),
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ));
    }
    let kafka_listen = args
        .kafka_listen
        .or(file.kafka_listen)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    if kafka_listen != "off" {
        let kafka_listener = tokio::net::TcpListener::bind(&kafka_listen)
            .await
            .with_context(|| {
                format!(
                    "binding the Kafka listener {kafka_listen} (use --kafka-listen off to disable)"
                )
            })?;
        let local = kafka_listener.local_addr()?;
        let host = args
            .kafka_advertised_host
            .or(file.kafka_advertised_host)
            .unwrap_or_else(|| local.ip().to_string());
        let mut kafka = KafkaConfig::new(host, local.port());
        if let Some(on) = file.kafka_auto_create_topics {
            kafka.auto_create_topics = on;
        }
        if let Some(partitions) = file.kafka_auto_create_partitions {
            spool_log::config::validate_partition_count(partitions)
                .context("invalid kafka_auto_create_partitions")?;
            kafka.auto_create_partitions = partitions;
        }
        eprintln!("spool broker Kafka protocol on {local}");
        let mut stopped = stopped.clone();
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            let served = spool_log::kafka::serve(broker, kafka, kafka_listener, async move {
                let _ = stopped.wait_for(|s| *s).await;
            });
            if let Err(e) = served.await {
                eprintln!("the Kafka listener stopped: {e}");
            }
        });
    }
    eprintln!(
        "spool broker {} listening on {} with data in {}",
        config_id(&broker),
        listener.local_addr()?,
        data_dir.display()
    );
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let mut stopped = stopped;
    spool_log::server::serve(Arc::clone(&broker), metrics, listener, async move {
        let _ = stopped.wait_for(|s| *s).await;
    })
    .await?;
    broker.shutdown().await?;
    eprintln!("spool broker stopped cleanly");
    Ok(())
}

/// Parses `id=host:port` entries.
fn parse_peers(entries: &[String]) -> anyhow::Result<BTreeMap<u64, String>> {
    entries
        .iter()
        .map(|entry| {
            let (id, address) = entry
                .split_once('=')
                .with_context(|| format!("peer `{entry}` is not `id=host:port`"))?;
            let id: u64 = id
                .trim()
                .parse()
                .with_context(|| format!("peer `{entry}`: `{id}` is not a node id"))?;
            Ok((id, address.trim().to_string()))
        })
        .collect()
}

fn config_id(broker: &Broker) -> u32 {
    broker.config().node_id
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}
