//! `spool consume TOPIC`: print records, one per line.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::bail;
use spool_log::client::{ConsumerConfig, ConsumerRecord, OffsetReset, TopicPartition};

use super::Connection;

#[derive(clap::Args)]
pub struct Args {
    topic: String,
    /// Start at the earliest offset (default: only new records).
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    from_beginning: bool,
    /// Start at this offset (with --partition, or in every partition).
    #[arg(long)]
    offset: Option<u64>,
    /// Start at the first record at or after this time (ms since the epoch).
    #[arg(long, value_name = "MS")]
    from_time: Option<i64>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<u32>,
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
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.connection.client().await?;
    let info = client.admin().describe_topic(&args.topic).await?;
    let partitions: Vec<TopicPartition> = match args.partition {
        Some(p) if p as usize >= info.partitions.len() => {
            bail!("topic {} has no partition {p}", args.topic)
        }
        Some(p) => vec![TopicPartition::new(&args.topic, p)],
        None => (0..info.partitions.len() as u32)
            .map(|p| TopicPartition::new(&args.topic, p))
            .collect(),
    };
    let reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: reset,
        ..Default::default()
    });
    consumer.assign(partitions.clone());
    for tp in &partitions {
        if let Some(offset) = args.offset {
            consumer.seek(tp, offset)?;
        }
        if let Some(ts) = args.from_time {
            consumer.seek_to_time(tp, ts)?;
        }
    }
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if !records.is_empty() {
            last_record = Instant::now();
        }
        for record in records {
            print_record(&mut out, &record, &args)?;
            printed += 1;
            if args.max.is_some_and(|max| printed >= max) {
                out.flush()?;
                return Ok(());
            }
        }
        out.flush()?;
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
