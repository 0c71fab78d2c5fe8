//! `spool bench connect`: the Connect pipeline issue 20 measures, datagen
//! → topic → PostgreSQL sink, exactly-once, timed on the sink side.
//!
//! First the topic is filled: the datagen connector (`orders` records,
//! keys and values as JSON with the schema envelope, so a JDBC sink of
//! Kafka Connect can read the same topic) runs until the topic holds
//! `--records` records. That part is not timed: it is the topic, not the
//! sink, being made. A topic that already holds exactly `--records`
//! records is used as it is, so several runs (and Kafka Connect, in
//! scripts/bench-connect.sh) read the same data.
//!
//! Then the PostgresSink runs from the start of the topic into a fresh
//! table (`auto.create`; dropped first), its offsets kept in the same
//! PostgreSQL transactions as its rows. The clock runs from the sink's
//! start until its offsets in `spool_connect_offsets` reach the topic's
//! end: every row is then committed, and exactly once, which the
//! benchmark checks (`count(*)` equals `--records`) before it prints a
//! JSON line with `rows_per_sec`. `--mode upsert` keys rows by the
//! record's `id` field (`pk.mode=record_value`), so both modes write one
//! row per record and can be compared.
//!
//! `--embedded` runs the broker inside the benchmark's process;
//! otherwise `--bootstrap` names a broker process.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use spool_client::Client;
use spool_connect::api::config_map;
use spool_connect::{ConfigMap, Worker, WorkerConfig};
use tokio_postgres::NoTls;

use super::Connection;

/// How long the benchmark waits for the topic to fill or the sink to
/// finish before it gives up: far beyond any run that is still moving.
const PATIENCE: Duration = Duration::from_secs(1800);
/// How often the sink's stored offsets are read: often enough that the
/// clock stops within a fraction of a percent of a run of seconds, rarely
/// enough that the reads cost PostgreSQL nothing measurable.
const OFFSETS_POLL: Duration = Duration::from_millis(50);

#[derive(clap::Args)]
pub struct ConnectArgs {
    /// Run a broker inside this process instead of connecting to one.
    #[arg(long)]
    embedded: bool,
    /// The PostgreSQL database the sink writes to, as libpq's URL or
    /// key=value form (e.g. postgresql://postgres@127.0.0.1:5432/postgres).
    #[arg(long)]
    connection_url: String,
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// insert (binary COPY) or upsert (INSERT ... ON CONFLICT by `id`).
    #[arg(long, default_value = "insert")]
    mode: String,
    /// The topic datagen fills and the sink reads.
    #[arg(long, default_value = "bench-connect")]
    topic: String,
    /// The table written (default `bench_connect_<mode>`); dropped first.
    #[arg(long)]
    table: Option<String>,
    /// Partitions of the topic, when the benchmark creates it.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// The sink's `tasks.max`.
    #[arg(long, default_value_t = 1)]
    tasks: u32,
    /// The sink's `batch.size`: the most records one COPY or upsert
    /// statement writes.
    #[arg(long, default_value_t = 10_000)]
    batch_size: u32,
    /// Leave the topic and its records (otherwise deleted after the run).
    #[arg(long)]
    keep_topic: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    if !matches!(args.mode.as_str(), "insert" | "upsert") {
        bail!("unknown --mode {}: insert or upsert", args.mode);
    }
    let table = args
        .table
        .clone()
        .unwrap_or_else(|| format!("bench_connect_{}", args.mode));
    let broker_dir = tempfile::tempdir()?;
    let (client, node) = match args.embedded {
        true => {
            let node = spool_broker::Node::embedded(broker_dir.path()).await?;
            (node.client(), Some(node))
        }
        false => (args.connection.client().await?, None),
    };
    let (db, connection) = tokio_postgres::connect(&args.connection_url, NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", args.connection_url))?;
    tokio::spawn(connection);

    let produce_seconds = fill_topic(&client, &args, broker_dir.path()).await?;
    let connector = format!("bench-connect-sink-{}", args.mode);
    forget_earlier_run(&db, &table, &connector).await?;
    // The sink's group keeps the offsets of an earlier run too; without
    // them it starts from the topic's beginning.
    let _ = client
        .admin()
        .delete_group(&format!("connect-{connector}"))
        .await;
    let end = topic_end(&client, &args.topic).await?;

    let work_dir = tempfile::tempdir()?;
    let worker = Worker::start(
        client.clone(),
        WorkerConfig::new(work_dir.path().join("connect.offsets")),
    )
    .await?;
    let started = Instant::now();
    worker
        .add_connector(&connector, sink_config(&args, &table))
        .await?;
    let finished = wait_for_offsets(&db, &connector, end).await;
    let seconds = started.elapsed().as_secs_f64();
    worker.shutdown().await?;
    finished?;

    let rows: i64 = db
        .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
        .await?
        .get(0);
    if rows as u64 != args.records {
        bail!(
            "{table} holds {rows} rows after the sink read {} records: not exactly once",
            args.records
        );
    }
    if !args.keep_topic {
        client.admin().delete_topic(&args.topic).await?;
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "connect", "mode": args.mode, "exactly_once": true,
            "records": args.records, "partitions": args.partitions, "tasks": args.tasks,
            "batch_size": args.batch_size, "produce_seconds": produce_seconds,
            "seconds": seconds, "rows_per_sec": (args.records as f64 / seconds) as u64,
        })
    );
    if let Some(node) = node {
        node.shutdown().await?;
    }
    Ok(())
}

/// Makes the topic hold `--records` datagen records, unless it already
/// does; how long that took (0 when it was already full).
async fn fill_topic(client: &Client, args: &ConnectArgs, dir: &Path) -> anyhow::Result<f64> {
    if client.topic_metadata(&args.topic).await.is_err() {
        client
            .admin()
            .create_topic(&args.topic, args.partitions, &[])
            .await?;
    }
    let held = topic_end(client, &args.topic).await?;
    if held == args.records {
        eprintln!("{} already holds {held} records", args.topic);
        return Ok(0.0);
    }
    if held != 0 {
        bail!(
            "{} holds {held} records, not 0 or --records {}: delete it or name another --topic",
            args.topic,
            args.records
        );
    }
    let started = Instant::now();
    let worker = Worker::start(
        client.clone(),
        WorkerConfig::new(dir.join("datagen.offsets")),
    )
    .await?;
    worker
        .add_connector("bench-connect-datagen", datagen_config(args))
        .await?;
    let deadline = Instant::now() + PATIENCE;
    while topic_end(client, &args.topic).await? < args.records {
        if Instant::now() > deadline {
            bail!("datagen did not fill {} within {PATIENCE:?}", args.topic);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.shutdown().await?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} datagen records to {} in {seconds:.1} s",
        args.records, args.topic
    );
    Ok(seconds)
}

fn datagen_config(args: &ConnectArgs) -> ConfigMap {
    let records = args.records.to_string();
    let tasks = args.partitions.to_string();
    let mut config = config_map(&[
        ("connector.class", "DatagenConnector"),
        ("kafka.topic", &args.topic),
        ("quickstart", "orders"),
        ("iterations", &records),
        ("tasks.max", &tasks),
        ("max.interval", "0"),
    ]);
    config.extend(json_with_schemas());
    config
}

fn sink_config(args: &ConnectArgs, table: &str) -> ConfigMap {
    let tasks = args.tasks.to_string();
    let batch = args.batch_size.to_string();
    let mut config = config_map(&[
        ("connector.class", "PostgresSink"),
        ("topics", &args.topic),
        ("connection.url", &args.connection_url),
        ("table.name.format", table),
        ("insert.mode", &args.mode),
        ("auto.create", "true"),
        ("tasks.max", &tasks),
        ("batch.size", &batch),
    ]);
    if args.mode == "upsert" {
        config.extend(config_map(&[
            ("pk.mode", "record_value"),
            ("pk.fields", "id"),
        ]));
    }
    config.extend(json_with_schemas());
    config
}

/// Keys and values as JSON with the schema envelope, as Kafka Connect's
/// JDBC sinks need them.
fn json_with_schemas() -> ConfigMap {
    config_map(&[
        (
            "key.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("key.converter.schemas.enable", "true"),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", "true"),
    ])
}

/// The records `topic` holds: the sum of its partitions' high watermarks.
async fn topic_end(client: &Client, topic: &str) -> anyhow::Result<u64> {
    let info = client.admin().describe_topic(topic).await?;
    Ok(info.partitions.iter().map(|p| p.high_watermark).sum())
}

/// Drops the table of an earlier run and that run's stored offsets, so
/// the sink starts from the topic's beginning into an empty table.
async fn forget_earlier_run(
    db: &tokio_postgres::Client,
    table: &str,
    connector: &str,
) -> anyhow::Result<()> {
    db.batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
        .await?;
    let offsets = spool_connect::connectors::postgres::OFFSETS_TABLE;
    let exists: Option<String> = db
        .query_one("SELECT to_regclass($1)::text", &[&offsets])
        .await?
        .get(0);
    if exists.is_some() {
        db.execute(
            &format!("DELETE FROM {offsets} WHERE connector = $1"),
            &[&connector],
        )
        .await?;
    }
    Ok(())
}

/// Waits until the sink's offsets, committed with its rows, reach `end`
/// over all partitions.
async fn wait_for_offsets(
    db: &tokio_postgres::Client,
    connector: &str,
    end: u64,
) -> anyhow::Result<()> {
    let offsets = spool_connect::connectors::postgres::OFFSETS_TABLE;
    let sql =
        format!("SELECT coalesce(sum(next_offset), 0)::int8 FROM {offsets} WHERE connector = $1");
    let deadline = Instant::now() + PATIENCE;
    loop {
        // The table appears with the sink's first transaction.
        let done = match db.query_one(&sql, &[&connector]).await {
            Ok(row) => row.get::<_, i64>(0) as u64 >= end,
            Err(_) => false,
        };
        if done {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the sink did not reach the topic's end ({end}) within {PATIENCE:?}");
        }
        tokio::time::sleep(OFFSETS_POLL).await;
    }
}
