//! `spool transactions`: the transactional ids of a cluster, one id's
//! open transaction, and aborting a transaction an operator judges hung.

use spool_client::ClientError;
use spool_protocol::proto::{
    AbortTransactionRequest, DescribeTransactionsRequest, ErrorCode, ListTransactionsRequest,
};

use super::Connection;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every transactional id with its producer id and state.
    ///
    /// Example: spool transactions list
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// One transactional id: producer id and epoch, state, timeout, when
    /// its open transaction began, and its partitions and groups.
    ///
    /// Example: spool transactions describe orders-loop
    Describe {
        transactional_id: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Abort the open (or prepared) transaction of an id: its records are
    /// never shown to read_committed consumers, and its producer is fenced.
    ///
    /// Example: spool transactions abort orders-loop
    Abort {
        transactional_id: String,
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { connection } => {
            let client = connection.client().await?;
            let listed = client.list_transactions(ListTransactionsRequest {}).await?;
            println!("{:<32} {:>18}  state", "transactional-id", "producer-id");
            for t in listed.transactions {
                println!(
                    "{:<32} {:>18}  {}",
                    t.transactional_id, t.producer_id, t.state
                );
            }
            Ok(())
        }
        Command::Describe {
            transactional_id,
            connection,
        } => {
            let client = connection.client().await?;
            let described = client
                .describe_transactions(DescribeTransactionsRequest {
                    transactional_ids: vec![transactional_id],
                })
                .await?;
            for t in described.transactions {
                if let Some(e) = ClientError::from_code(t.error, &t.message) {
                    return Err(e.into());
                }
                println!("transactional-id: {}", t.transactional_id);
                println!(
                    "producer-id:      {} (epoch {})",
                    t.producer_id, t.producer_epoch
                );
                println!("state:            {}", t.state);
                println!("timeout-ms:       {}", t.timeout_ms);
                if t.start_ms > 0 {
                    let age = spool_record::now_ms().saturating_sub(t.start_ms);
                    println!("open for:         {age} ms");
                }
                for topic in t.topics {
                    let partitions: Vec<String> =
                        topic.partitions.iter().map(u32::to_string).collect();
                    println!(
                        "partitions:       {} [{}]",
                        topic.name,
                        partitions.join(",")
                    );
                }
                for group in t.groups {
                    println!("group offsets:    {group}");
                }
            }
            Ok(())
        }
        Command::Abort {
            transactional_id,
            connection,
        } => {
            let client = connection.client().await?;
            let answer = client
                .abort_transaction(AbortTransactionRequest {
                    transactional_id: transactional_id.clone(),
                })
                .await?;
            match ClientError::from_code(answer.error, &answer.message) {
                Some(e) if e.code() == ErrorCode::InvalidTxnState => {
                    anyhow::bail!("{transactional_id}: {}", answer.message)
                }
                Some(e) => Err(e.into()),
                None => {
                    println!("aborted the transaction of {transactional_id}");
                    Ok(())
                }
            }
        }
    }
}
