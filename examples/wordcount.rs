//! spool's main job: a word count topology, exactly-once. Lines go in,
//! the topology splits them into words, repartitions by word, counts each
//! word in a RocksDB store backed by a changelog topic, prints each
//! count as it changes, and writes it out.
//!
//! By default it runs on a broker embedded in the process, feeds it three
//! lines, reads the committed counts back and exits:
//!
//!     cargo run --release --example wordcount
//!
//! With `--bootstrap` it runs against a broker or cluster until stopped
//! (Ctrl-C or SIGTERM: it commits, leaves its group and exits), reading
//! `lines` and writing `word-counts` (created with two partitions if
//! missing):
//!
//!     cargo run --release --example wordcount -- --bootstrap 127.0.0.1:9292 --state-dir ./wc-state
//!     printf 'to be or not to be\n' | spool produce lines

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use spool::broker::Node;
use spool::client::proto::IsolationLevel;
use spool::client::{Client, ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};
use spool::streams::{
    BigEndian, Consumed, Grouped, KafkaStreams, Materialized, Nullable, ProcessingGuarantee,
    Produced, StreamsBuilder, StreamsConfig, Topology, Unit, Utf8,
};

const TEXT: &str = "the quick brown fox jumps over the lazy dog
the dog barks and the fox runs
a quick brown dog jumps over a lazy fox";

#[derive(Parser)]
struct Args {
    /// A broker to run against, until stopped; without it, an embedded
    /// broker and three lines of input.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Where the stores live (default: a temporary directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    #[arg(long, default_value = "wordcount")]
    application_id: String,
    /// Processing threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Do not print each count as it changes.
    #[arg(long)]
    quiet: bool,
    /// A stable id for this instance (static group membership): restarted
    /// with the same id, it takes its tasks back without waiting for the
    /// group to notice it was gone.
    #[arg(long)]
    instance_id: Option<String>,
    /// How long the group waits for a silent instance before moving its
    /// tasks to the others.
    #[arg(long, default_value_t = 45)]
    session_timeout_secs: u64,
    /// Serve metrics (Prometheus text, per task too) here, e.g.
    /// 127.0.0.1:9464.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

fn topology(print: bool) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", Consumed::with(Unit, Utf8))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .select_key(|_, word: &String| word.clone())
        .group_by_key(Grouped::with(Utf8, Utf8))
        .count(Materialized::with(Utf8, BigEndian).named("counts"))
        .to_stream()
        .peek(move |word, count| {
            if print {
                println!("  {word:>8} -> {}", count.unwrap_or_default());
            }
        })
        .to("word-counts", Produced::with(Utf8, Nullable(BigEndian)));
    Ok(builder.build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,spool_streams=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match &args.bootstrap {
        Some(address) => run_against(address, &args).await,
        None => embedded_demo(&args).await,
    }
}

fn config(args: &Args, default_dir: &std::path::Path) -> StreamsConfig {
    let mut config = StreamsConfig::new(&args.application_id);
    config.state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| default_dir.to_path_buf());
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    config.num_threads = args.threads;
    config.instance_id = args.instance_id.clone();
    config.session_timeout = Duration::from_secs(args.session_timeout_secs);
    config.metrics_listen = args.metrics_listen;
    config
}

/// Runs against a broker until Ctrl-C or SIGTERM.
async fn run_against(address: &str, args: &Args) -> anyhow::Result<()> {
    let client = Client::connect(address).await?;
    for topic in ["lines", "word-counts"] {
        if client.topic_metadata(topic).await.is_err() {
            client.admin().create_topic(topic, 2, &[]).await?;
        }
    }
    let temporary = tempfile::tempdir()?;
    let app = KafkaStreams::start(
        topology(!args.quiet)?,
        client,
        config(args, temporary.path()),
    )
    .await?;
    eprintln!("wordcount running against {address}; Ctrl-C or SIGTERM stops it");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    let metrics = app.metrics();
    app.close().await?;
    eprintln!("wordcount stopped: {metrics:?}");
    Ok(())
}

async fn embedded_demo(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::embedded(dir.path().join("broker")).await?;
    let client = node.client();
    client.admin().create_topic("lines", 2, &[]).await?;
    client.admin().create_topic("word-counts", 2, &[]).await?;
    let topology = topology(!args.quiet)?;
    println!("{}", topology.describe());
    let app = KafkaStreams::start(
        topology,
        client.clone(),
        config(args, &dir.path().join("state")),
    )
    .await?;

    let producer = client.producer(Default::default());
    let records = TEXT
        .lines()
        .map(|line| ProducerRecord::new("lines", line.to_string()));
    producer.send_batch(records.collect()).await?.await?;
    let words = TEXT.split_whitespace().count();
    println!(
        "produced {} lines ({words} words) to `lines`; the table changes:",
        TEXT.lines().count()
    );

    let (latest, updates) = read_committed_counts(&client, words).await?;
    println!("read {updates} committed count updates from `word-counts`; final counts:");
    for (word, count) in &latest {
        println!("  {word:>8} {count}");
    }
    let metrics = app.metrics();
    println!(
        "processed {} records in {} commits",
        metrics.records_processed, metrics.commits
    );
    app.close().await?;
    node.shutdown().await?;
    anyhow::ensure!(
        updates == words,
        "expected {words} count updates, read {updates}"
    );
    Ok(())
}

/// Reads `word-counts` (read_committed) until `expected` updates arrived
/// or 30 s passed: each word's latest count, and the updates read.
async fn read_committed_counts(
    client: &Client,
    expected: usize,
) -> anyhow::Result<(BTreeMap<String, i64>, usize)> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..Default::default()
    });
    consumer.assign((0..2).map(|p| TopicPartition::new("word-counts", p)));
    let (mut latest, mut updates) = (BTreeMap::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while updates < expected && Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(200)).await? {
            let word =
                String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
            let count: [u8; 8] = record.value.as_deref().unwrap_or_default().try_into()?;
            latest.insert(word, i64::from_be_bytes(count));
            updates += 1;
        }
    }
    Ok((latest, updates))
}
