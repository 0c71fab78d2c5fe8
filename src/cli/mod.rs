//! Command-line parsing and dispatch. Subcommands grow with the project; the
//! full shape is in shared/DESIGN.md.

mod bench_client;
mod bench_connect;
mod bench_kafka;
mod bench_log;
mod bench_streams;
mod bench_streams_clients;
mod bench_streams_restore;
mod broker;
mod cluster;
mod connect;
mod connect_client;
mod consume;
mod groups;
mod produce;
mod stats;
mod streams;
mod topics;
mod transactions;

use clap::{Args, Parser, Subcommand};
use spool_client::{Client, DEFAULT_BOOTSTRAP};

/// spool: stream processing on its own replicated log.
#[derive(Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker.
    ///
    /// Example: spool broker --data-dir /var/lib/spool --listen 127.0.0.1:9292
    Broker(broker::Args),
    /// The state of a cluster: brokers, partition leaders, replica lag.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topics(topics::Command),
    /// Produce lines from standard input, one record per line.
    ///
    /// Example: printf 'k1:hello\nk2:world\n' | spool produce orders --key-separator :
    Produce(produce::Args),
    /// Print records of a topic.
    ///
    /// Example: spool consume orders --from-beginning --max 10
    Consume(consume::Args),
    /// List and describe consumer groups (with lag) and reset their offsets.
    #[command(subcommand)]
    Groups(groups::Command),
    /// List and describe transactional ids, and abort a hung transaction.
    #[command(subcommand)]
    Transactions(transactions::Command),
    /// Describe a streams application, or reset it to reprocess its input.
    #[command(subcommand)]
    Streams(streams::Command),
    /// Run a standalone or distributed connect worker, or manage
    /// connectors through a worker's REST API (Kafka Connect's paths).
    ///
    /// Example: spool connect standalone worker.toml file-source.json
    #[command(subcommand)]
    Connect(connect::Command),
    /// Measure spool's components and print one JSON summary line.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// Append to and read from a partition log in this process.
    ///
    /// Example: spool bench log --records 1000000 --record-size 1024 --fsync-every 1048576
    Log(bench_log::Args),
    /// Produce through a broker.
    ///
    /// Example: spool bench produce --topic bench --records 1000000 --record-size 100 --acks leader
    Produce(bench_client::ProduceArgs),
    /// Consume a topic from the start.
    ///
    /// Example: spool bench consume --topic bench --records 1000000
    Consume(bench_client::ConsumeArgs),
    /// Produce at a fixed rate and measure the time until a consumer sees
    /// each record.
    ///
    /// Example: spool bench e2e --topic e2e --rate 10000 --seconds 10
    E2e(bench_client::E2eArgs),
    /// Run a spool-streams topology (passthrough or count) over a filled
    /// input topic and time it until its output shows every record.
    ///
    /// Example: spool bench streams --case count --records 1000000 --guarantee exactly_once_v2
    Streams(bench_streams::StreamsArgs),
    /// Fill a topic with datagen records, then time the PostgreSQL sink
    /// (exactly-once) from it into a fresh table.
    ///
    /// Example: spool bench connect --embedded --connection-url postgresql://postgres@127.0.0.1:5432/postgres --records 1000000 --mode insert
    Connect(bench_connect::ConnectArgs),
}

/// Where client commands find the broker.
#[derive(Args, Clone, Debug)]
pub struct Connection {
    /// Broker address (host:port), or a comma-separated list tried in
    /// order until one answers (as Kafka's bootstrap.servers).
    #[arg(long, env = "SPOOL_BOOTSTRAP", default_value = DEFAULT_BOOTSTRAP, global = true)]
    bootstrap: String,
}

impl Connection {
    async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.bootstrap).await?)
    }
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Broker(args) => broker::run(args).await,
            Command::Cluster(command) => cluster::run(command).await,
            Command::Topics(command) => topics::run(command).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Groups(command) => groups::run(command).await,
            Command::Transactions(command) => transactions::run(command).await,
            Command::Streams(command) => streams::run(command).await,
            Command::Connect(command) => connect::run(command).await,
            Command::Bench(Bench::Log(args)) => {
                tokio::task::spawn_blocking(move || bench_log::run(args)).await?
            }
            Command::Bench(Bench::Produce(args)) => bench_client::produce(args).await,
            Command::Bench(Bench::Consume(args)) => bench_client::consume(args).await,
            Command::Bench(Bench::E2e(args)) => bench_client::e2e(args).await,
            Command::Bench(Bench::Streams(args)) => bench_streams::run(args).await,
            Command::Bench(Bench::Connect(args)) => bench_connect::run(args).await,
        }
    }
}

/// Parses `key=value`.
fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got `{text}`"))
}
