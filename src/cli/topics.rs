//! `spool topics create|list|describe|alter|delete|delete-records`.

use clap::Subcommand;

use super::{key_value, Connection};

#[derive(Subcommand)]
pub enum Command {
    /// Create a topic.
    ///
    /// Example: spool topics create orders --partitions 6 --config retention.ms=86400000
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Replicas per partition in a cluster (default: 3, or fewer when
        /// the cluster has fewer brokers). A single node ignores it.
        #[arg(long, default_value_t = 0)]
        replication_factor: u32,
        /// A topic setting (repeatable); see docs/storage.md for the keys.
        #[arg(long = "config", value_parser = key_value)]
        configs: Vec<(String, String)>,
        #[command(flatten)]
        connection: Connection,
    },
    /// List topics.
    ///
    /// Example: spool topics list
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Show a topic's partitions (offsets, sizes, leaders) and settings.
    ///
    /// Example: spool topics describe orders
    Describe {
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Change settings or raise the partition count.
    ///
    /// Example: spool topics alter orders --config retention.ms=3600000 --partitions 12
    Alter {
        name: String,
        #[arg(long = "config", value_parser = key_value)]
        configs: Vec<(String, String)>,
        #[arg(long)]
        partitions: Option<u32>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a topic and its data.
    ///
    /// Example: spool topics delete orders
    Delete {
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a partition's records before an offset (Kafka's
    /// DeleteRecords): readers can no longer read them, and their segments
    /// go with the next retention pass. Refused on compacted topics.
    ///
    /// Example: spool topics delete-records orders --partition 0 --before 1000
    DeleteRecords {
        name: String,
        #[arg(long)]
        partition: u32,
        /// The new log start (default: the high watermark, every record).
        #[arg(long)]
        before: Option<u64>,
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create {
            name,
            partitions,
            replication_factor,
            configs,
            connection,
        } => {
            let pairs: Vec<(&str, &str)> = configs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            connection
                .client()
                .await?
                .admin()
                .create_replicated_topic(&name, partitions, replication_factor, &pairs)
                .await?;
            println!("created topic {name} with {partitions} partition(s)");
        }
        Command::DeleteRecords {
            name,
            partition,
            before,
            connection,
        } => {
            let admin = connection.client().await?.admin();
            let start = admin.delete_records(&name, partition, before).await?;
            println!("{name}-{partition} now starts at offset {start}");
        }
        Command::List { connection } => {
            for name in connection.client().await?.admin().list_topics().await? {
                println!("{name}");
            }
        }
        Command::Describe { name, connection } => {
            let info = connection
                .client()
                .await?
                .admin()
                .describe_topic(&name)
                .await?;
            println!("topic {}  partitions {}", info.name, info.partitions.len());
            println!(
                "{:>9} {:>6} {:>16} {:>16} {:>14}",
                "partition", "leader", "log-start", "high-watermark", "bytes"
            );
            for p in &info.partitions {
                println!(
                    "{:>9} {:>6} {:>16} {:>16} {:>14}",
                    p.partition, p.leader, p.log_start_offset, p.high_watermark, p.size_bytes
                );
            }
            let producers: Vec<_> = info
                .partitions
                .iter()
                .flat_map(|p| p.producers.iter().map(move |s| (p.partition, s)))
                .collect();
            if !producers.is_empty() {
                println!("active producers:");
                println!(
                    "{:>9} {:>20} {:>6} {:>14} {:>16}",
                    "partition", "producer-id", "epoch", "last-sequence", "last-offset"
                );
                for (partition, s) in producers {
                    println!(
                        "{:>9} {:>20} {:>6} {:>14} {:>16}",
                        partition, s.producer_id, s.epoch, s.last_sequence, s.last_offset
                    );
                }
            }
            println!("configs:");
            for (key, value) in &info.configs {
                println!("  {key}={value}");
            }
        }
        Command::Alter {
            name,
            configs,
            partitions,
            connection,
        } => {
            anyhow::ensure!(
                !configs.is_empty() || partitions.is_some(),
                "nothing to alter: give --config or --partitions"
            );
            let admin = connection.client().await?.admin();
            if !configs.is_empty() {
                let pairs: Vec<(&str, &str)> = configs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                admin.alter_configs(&name, &pairs).await?;
            }
            if let Some(count) = partitions {
                admin.create_partitions(&name, count).await?;
            }
            println!("altered topic {name}");
        }
        Command::Delete { name, connection } => {
            connection
                .client()
                .await?
                .admin()
                .delete_topic(&name)
                .await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
