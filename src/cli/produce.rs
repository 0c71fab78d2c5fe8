//! `spool produce TOPIC`: one record per line of standard input.

use spool_client::{ProducerConfig, ProducerRecord};
use spool_protocol::proto::Acks;
use tokio::io::AsyncBufReadExt;

use super::Connection;

#[derive(clap::Args)]
pub struct Args {
    topic: String,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// none, leader or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: Acks,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<u32>,
    /// Send all the lines in one transaction of this transactional id,
    /// committed at the end of the input (fencing an earlier producer with
    /// the same id).
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// With --transactional-id: abort the transaction instead of
    /// committing it (read_committed consumers never see its records).
    #[arg(long, requires = "transactional_id")]
    abort: bool,
    #[command(flatten)]
    connection: Connection,
}

pub(super) fn parse_acks(text: &str) -> Result<Acks, String> {
    match text {
        "none" | "0" => Ok(Acks::None),
        "leader" | "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        other => Err(format!("`{other}` is not one of none, leader, all")),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.connection.client().await?;
    let producer = client.producer(ProducerConfig {
        acks: args.acks,
        transactional_id: args.transactional_id.clone(),
        ..Default::default()
    });
    if args.transactional_id.is_some() {
        producer.init_transactions().await?;
        producer.begin_transaction()?;
    }
    let topic: std::sync::Arc<str> = args.topic.as_str().into();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut pending = Vec::new();
    let mut count = 0u64;
    while let Some(line) = lines.next_line().await? {
        let mut record = match args
            .key_separator
            .as_deref()
            .and_then(|sep| line.split_once(sep))
        {
            Some((key, value)) => {
                ProducerRecord::new(topic.clone(), value.to_string()).key(key.to_string())
            }
            None => ProducerRecord::new(topic.clone(), line),
        };
        record.partition = args.partition;
        pending.push(producer.send(record).await?);
        count += 1;
        if pending.len() >= 10_000 {
            for ack in pending.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in pending {
        ack.await?;
    }
    producer.flush().await?;
    match (&args.transactional_id, args.abort) {
        (None, _) => eprintln!("produced {count} record(s) to {}", args.topic),
        (Some(_), false) => {
            producer.commit_transaction().await?;
            eprintln!("produced {count} record(s) to {} and committed", args.topic);
        }
        (Some(_), true) => {
            producer.abort_transaction().await?;
            eprintln!("produced {count} record(s) to {} and aborted", args.topic);
        }
    }
    Ok(())
}
