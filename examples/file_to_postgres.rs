//! A whole pipeline in one process: a file's lines go into a topic, a
//! streams application counts their words, and the counts land in a
//! PostgreSQL table, one row per word, kept up to date.
//!
//! ```text
//! file --FileStreamSource--> file-lines --word count (spool-streams)--> word-counts --PostgresSink--> table
//! ```
//!
//! Everything runs inside this program: a broker embedded in the process
//! (no listeners), a connect `Worker` with two connectors, and a
//! `KafkaStreams` application between them, exactly-once from the topic to
//! the table:
//! - the FileStreamSource reads the file, one record per line
//!   (StringConverter: the record is the line's text);
//! - the topology splits lines into lowercase words, groups them by word
//!   (a repartition topic), counts them in a RocksDB store and writes each
//!   new count to `word-counts` as JSON, `{"word": "fox", "count": 3}`;
//! - the PostgresSink upserts those objects (`pk.mode=record_value`,
//!   `pk.fields=word`) into a table it creates from their fields, reading
//!   only committed transactions, with its offsets in PostgreSQL's.
//!
//! After `--seconds` it stops, upstream first, and prints the table's ten
//! most frequent words as PostgreSQL has them. Run it against any PostgreSQL (README.md,
//! "From a file to PostgreSQL", starts a throwaway one):
//!
//!     cargo run --example file_to_postgres -- --connection-url postgresql://postgres@127.0.0.1:5432/postgres
//!
//! `DATABASE_URL` may stand for `--connection-url`; `--file PATH` counts
//! your own file (it is tailed: lines appended while it runs are counted,
//! a last line without its newline is not, as in Kafka's file source).
//!
//! Each run starts a new broker whose offsets begin at 0, so the program
//! starts clean: it drops `--table` (default `word_counts`) and forgets
//! the sink's offsets stored in `spool_connect_offsets`. Point it at a
//! database where that table is yours to lose.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};
use spool::broker::Node;
use spool::connect::api::config_map;
use spool::connect::{ConnectorStatus, State, Worker, WorkerConfig};
use spool::streams::{
    BigEndian, Consumed, Grouped, Json, KafkaStreams, Materialized, ProcessingGuarantee, Produced,
    StreamsBuilder, StreamsConfig, Topology, Unit, Utf8,
};

const LINES_TOPIC: &str = "file-lines";
const COUNTS_TOPIC: &str = "word-counts";
const SOURCE: &str = "file-source";
const SINK: &str = "word-counts-sink";

const SAMPLE: &str = "The quick brown fox jumps over the lazy dog.
The dog barks; the fox runs.
A quick brown dog jumps over a lazy fox, and the fox laughs.
";

#[derive(Parser)]
struct Args {
    /// The database the counts go to, e.g.
    /// postgresql://postgres@127.0.0.1:5432/postgres.
    #[arg(long, env = "DATABASE_URL")]
    connection_url: String,
    /// The text file whose words are counted (default: a few sample lines
    /// written to a temporary directory).
    #[arg(long)]
    file: Option<PathBuf>,
    /// How long the pipeline runs before the table is printed.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// The table the counts go to; dropped at start, as each run starts a
    /// new broker whose counts begin again.
    #[arg(long, default_value = "word_counts")]
    table: String,
}

/// One row of the table: the sink makes a column of each field.
#[derive(Clone, Serialize, Deserialize)]
struct WordCount {
    word: String,
    count: i64,
}

/// A line's words: runs of letters and digits, lowercase, so that "The"
/// and "the" and "dog." and "dog" count as one word.
fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn topology() -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        // The file source writes lines without keys.
        .stream(LINES_TOPIC, Consumed::with(Unit, Utf8))
        .flat_map_values(|line: String| words(&line))
        .select_key(|_, word: &String| word.clone())
        .group_by_key(Grouped::with(Utf8, Utf8))
        .count(Materialized::with(Utf8, BigEndian).named("counts"))
        // The word goes into the value too: the sink takes its columns,
        // and its primary key, from the value alone.
        .map_values(|word: &String, count: &i64| WordCount {
            word: word.clone(),
            count: *count,
        })
        .to(COUNTS_TOPIC, Produced::with(Utf8, Json::<WordCount>::new()));
    Ok(builder.build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let dir = tempfile::tempdir()?;
    let file = match &args.file {
        Some(file) => file.clone(),
        None => {
            let file = dir.path().join("sample.txt");
            std::fs::write(&file, SAMPLE)?;
            file
        }
    };
    // The source would wait for a missing file to appear; a typo should
    // fail now instead of counting nothing.
    anyhow::ensure!(file.is_file(), "{} is not a file", file.display());
    let file_name = file.to_str().context("the file's path is not UTF-8")?;

    // PostgreSQL first: a wrong URL fails here, before anything starts.
    let db = prepare_table(&args).await?;

    let node = Node::embedded(dir.path().join("broker")).await?;
    let client = node.client();
    for topic in [LINES_TOPIC, COUNTS_TOPIC] {
        client.admin().create_topic(topic, 1, &[]).await?;
    }

    let mut streams_config = StreamsConfig::new("file-to-postgres");
    streams_config.state_dir = dir.path().join("state");
    // Counts reach `word-counts` in transactions, committed every 100 ms.
    streams_config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    let app = KafkaStreams::start(topology()?, client.clone(), streams_config).await?;

    let mut worker_config = WorkerConfig::new(dir.path().join("connect.offsets"));
    // The sink writes to PostgreSQL at each flush (or a full batch): every
    // second, rather than Kafka's 10 s, so the table keeps up visibly.
    worker_config.offset_flush_interval = Duration::from_secs(1);
    let worker = Worker::start(client, worker_config).await?;
    add_connectors(&worker, file_name, &args).await?;
    println!(
        "counting the words of {file_name} into table {} for {} s (Ctrl-C stops sooner)",
        args.table, args.seconds
    );

    let failed = run_for(&worker, Duration::from_secs(args.seconds)).await?;
    // Upstream first: no stage stops before the one feeding it, and the
    // sink, last, writes what it read to PostgreSQL as it stops.
    worker.stop_connector(SOURCE).await?;
    let metrics = app.metrics();
    app.close().await?;
    worker.shutdown().await?;
    node.shutdown().await?;
    if let Some(error) = failed {
        anyhow::bail!("a connector failed: {error}");
    }
    println!(
        "the streams application processed {} records in {} commits",
        metrics.records_processed, metrics.commits
    );

    print_top_words(&db, &args.table).await
}

/// Connects to PostgreSQL and clears what an earlier run left: the table,
/// and the sink's offsets stored beside it.
async fn prepare_table(args: &Args) -> anyhow::Result<tokio_postgres::Client> {
    // (The URL may hold a password, so the error does not repeat it.)
    let (db, connection) = tokio_postgres::connect(&args.connection_url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL (--connection-url)")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("the connection to PostgreSQL failed: {e}");
        }
    });
    let table = quoted(&args.table);
    db.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await?;
    // Offsets stored by an earlier run would make the sink skip this
    // run's first records: they are offsets of another broker's topic.
    let stored: bool = db
        .query_one(
            "SELECT to_regclass('spool_connect_offsets') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if stored {
        db.execute(
            "DELETE FROM spool_connect_offsets WHERE connector = $1",
            &[&SINK],
        )
        .await?;
    }

    Ok(db)
}

/// The file source into `file-lines`, and the sink from `word-counts`
/// into the table.
async fn add_connectors(worker: &Worker, file_name: &str, args: &Args) -> anyhow::Result<()> {
    let source = config_map(&[
        ("connector.class", "FileStreamSource"),
        ("file", file_name),
        ("topic", LINES_TOPIC),
        ("value.converter", "string"),
    ]);
    worker.add_connector(SOURCE, source).await?;
    let sink = config_map(&[
        ("connector.class", "PostgresSink"),
        ("topics", COUNTS_TOPIC),
        ("connection.url", args.connection_url.as_str()),
        ("table.name.format", args.table.as_str()),
        ("insert.mode", "upsert"),
        ("pk.mode", "record_value"),
        ("pk.fields", "word"),
        ("auto.create", "true"),
        // The keys are the words as plain text, which the worker's
        // default JsonConverter would refuse; the sink does not use them.
        ("key.converter", "string"),
        // Plain JSON objects: the sink infers the columns' types.
        ("value.converter", "json"),
        ("value.converter.schemas.enable", "false"),
        // Only counts of committed transactions, never an aborted one's.
        ("consumer.override.isolation.level", "read_committed"),
    ]);
    worker.add_connector(SINK, sink).await?;
    Ok(())
}

/// How many words the table holds, and the ten most frequent.
async fn print_top_words(db: &tokio_postgres::Client, table_name: &str) -> anyhow::Result<()> {
    let table = quoted(table_name);
    let total: i64 = db
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .with_context(|| format!("reading {table}: no count reached it; try more --seconds"))?
        .get(0);
    let top = format!("SELECT word, \"count\" FROM {table} ORDER BY \"count\" DESC, word LIMIT 10");
    let rows = db.query(&top, &[]).await?;
    println!(
        "{total} distinct words in table {}; the most frequent:",
        table_name
    );
    for row in &rows {
        let (word, count): (String, i64) = (row.get(0), row.get(1));
        println!("  {word:>12} {count}");
    }
    Ok(())
}

/// Waits `how_long` (or for Ctrl-C), checking the connectors twice a
/// second: a failed one (PostgreSQL refusing the sink, say) ends the
/// wait with its error rather than leaving an empty table to puzzle over.
async fn run_for(worker: &Worker, how_long: Duration) -> anyhow::Result<Option<String>> {
    let deadline = tokio::time::Instant::now() + how_long;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        for name in [SOURCE, SINK] {
            if let Some(trace) = failure(&worker.connector_status(name).await?) {
                return Ok(Some(format!("{name}: {trace}")));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut ctrl_c => return Ok(None),
        }
    }
}

/// The error of the connector or of a task of it, if one failed.
fn failure(status: &ConnectorStatus) -> Option<String> {
    std::iter::once(&status.connector)
        .chain(status.tasks.iter().map(|task| &task.info))
        .find(|info| info.state == State::Failed)
        .map(|info| info.trace.clone().unwrap_or_default())
}

/// `name` as a quoted SQL identifier, as the sink quotes table names.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
