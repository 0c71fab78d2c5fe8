//! `spool consume TOPIC`: print records, one per line.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::bail;
use spool_client::{
    Assignor, Consumer, ConsumerConfig, ConsumerRecord, GroupSettings, OffsetReset, TopicPartition,
};

use spool_protocol::proto::IsolationLevel;

use super::Connection;

#[derive(clap::Args)]
pub struct Args {
    topic: String,
    /// Start at the earliest offset (default: only new records). In a group,
    /// applies to partitions the group has not committed yet.
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    from_beginning: bool,
    /// Start at this offset (with --partition, or in every partition).
    #[arg(long)]
    offset: Option<u64>,
    /// Start at the first record at or after this time (ms since the epoch).
    #[arg(long, value_name = "MS")]
    from_time: Option<i64>,
    /// Read only this partition.
    #[arg(long, conflicts_with = "group")]
    partition: Option<u32>,
    /// Consume as a member of this group: the group shares out the
    /// partitions, and progress is committed after each printed batch.
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    group: Option<String>,
    /// Static group membership: a restart with the same id within the
    /// session timeout gets the same partitions back without a rebalance.
    #[arg(long, requires = "group")]
    instance_id: Option<String>,
    /// range, roundrobin or cooperative-sticky.
    #[arg(long, requires = "group", default_value = "cooperative-sticky")]
    assignor: String,
    /// The group session timeout.
    #[arg(long, requires = "group", default_value_t = 10_000, value_name = "MS")]
    session_timeout_ms: u64,
    /// Stop after this many records.
    #[arg(long)]
    max: Option<u64>,
    /// Stop once no record has arrived for this long.
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// text (value, or key<TAB>value with --print-key) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
    #[arg(long)]
    print_key: bool,
    /// read_uncommitted (every record) or read_committed (only committed
    /// transactions' records, and none of aborted ones).
    #[arg(long, default_value = "read_uncommitted", value_parser = ["read_uncommitted", "read_committed"])]
    isolation: String,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.connection.client().await?;
    let info = client.admin().describe_topic(&args.topic).await?;
    let reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: reset,
        isolation: match args.isolation.as_str() {
            "read_committed" => IsolationLevel::ReadCommitted,
            _ => IsolationLevel::ReadUncommitted,
        },
        ..Default::default()
    });
    if let Some(group) = &args.group {
        let assignor = Assignor::from_name(&args.assignor).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown assignor `{}`: use range, roundrobin or cooperative-sticky",
                args.assignor
            )
        })?;
        let session_timeout = Duration::from_millis(args.session_timeout_ms);
        let settings = GroupSettings {
            instance_id: args.instance_id.clone(),
            assignors: vec![assignor],
            session_timeout,
            heartbeat_interval: (session_timeout / 10).max(Duration::from_millis(50)),
            auto_commit: false,
            ..GroupSettings::new(group.clone())
        };
        consumer.subscribe([args.topic.clone()], settings);
        let outcome = print_records(&mut consumer, &args, true).await;
        consumer.close().await?;
        return outcome;
    }
    let partitions: Vec<TopicPartition> = match args.partition {
        Some(p) if p as usize >= info.partitions.len() => {
            bail!("topic {} has no partition {p}", args.topic)
        }
        Some(p) => vec![TopicPartition::new(&args.topic, p)],
        None => (0..info.partitions.len() as u32)
            .map(|p| TopicPartition::new(&args.topic, p))
            .collect(),
    };
    consumer.assign(partitions.clone());
    for tp in &partitions {
        if let Some(offset) = args.offset {
            consumer.seek(tp, offset)?;
        }
        if let Some(ts) = args.from_time {
            consumer.seek_to_time(tp, ts)?;
        }
    }
    print_records(&mut consumer, &args, false).await
}

/// Polls and prints until `--max` records or `--idle-timeout-ms` of silence;
/// in a group, commits after each printed batch (at least once: a record is
/// printed before its offset is committed).
async fn print_records(consumer: &mut Consumer, args: &Args, commit: bool) -> anyhow::Result<()> {
    match print_until_done(consumer, args, commit).await {
        // The reader closed the pipe (`| head`): it has all it wanted.
        Err(e) if is_closed_stdout(&e) => Ok(()),
        outcome => outcome,
    }
}

fn is_closed_stdout(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn print_until_done(
    consumer: &mut Consumer,
    args: &Args,
    commit: bool,
) -> anyhow::Result<()> {
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if !records.is_empty() {
            last_record = Instant::now();
        }
        for record in records {
            print_record(&mut out, &record, args)?;
            printed += 1;
            if args.max.is_some_and(|max| printed >= max) {
                out.flush()?;
                if commit {
                    let tp = TopicPartition::new(&*record.topic, record.partition);
                    consumer.commit_offsets(&[(tp, record.offset + 1)]).await?;
                }
                return Ok(());
            }
        }
        out.flush()?;
        if commit {
            // A refused commit means a rebalance moved on; the records come again.
            let _ = consumer.commit_sync().await;
        }
        if args
            .idle_timeout_ms
            .is_some_and(|ms| last_record.elapsed() >= Duration::from_millis(ms))
        {
            return Ok(());
        }
    }
}

fn print_record(out: &mut impl Write, record: &ConsumerRecord, args: &Args) -> std::io::Result<()> {
    let text =
        |b: &Option<bytes::Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    if args.format == "json" {
        let json = serde_json::json!({
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": text(&record.key),
            "value": text(&record.value),
            "headers": record.headers.iter().map(|(k, v)| (k.clone(), text(v))).collect::<std::collections::BTreeMap<_, _>>(),
        });
        writeln!(out, "{json}")
    } else if args.print_key {
        writeln!(
            out,
            "{}\t{}",
            text(&record.key).unwrap_or_default(),
            text(&record.value).unwrap_or_default()
        )
    } else {
        writeln!(out, "{}", text(&record.value).unwrap_or_default())
    }
}
