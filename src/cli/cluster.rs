//! `spool cluster`: the state of a cluster as its brokers report it, and
//! partition moves.

use std::collections::BTreeMap;
use std::time::Duration;

use spool_client::Client;
use spool_client::ClientError;
use spool_protocol::proto::{
    ClusterStatusRequest, ClusterStatusResponse, LeaderStatus, MetadataRequest,
    MovePartitionRequest,
};

use super::Connection;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Brokers (up or unreachable), the controller's leader, and for every
    /// partition its leader, high watermark and each follower's lag.
    ///
    /// Example: spool cluster status --bootstrap 127.0.0.1:9292
    Status {
        #[command(flatten)]
        connection: Connection,
    },
    /// Move a partition onto other brokers: its replicas become the given
    /// list (the first is the preferred leader). Returns once the cluster
    /// has recorded the move; the partition's leader then adds the new
    /// replicas, lets them catch up and removes the old ones (watch it
    /// with `spool cluster status`).
    ///
    /// Example: spool cluster move orders --partition 0 --replicas 1,2,4
    Move {
        topic: String,
        #[arg(long)]
        partition: u32,
        /// Broker ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        replicas: Vec<u32>,
        #[command(flatten)]
        connection: Connection,
    },
}

/// How long a broker may take to answer before it is shown unreachable.
const BROKER_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Status { connection } => status(connection).await,
        Command::Move {
            topic,
            partition,
            replicas,
            connection,
        } => {
            let client = connection.client().await?;
            let request = MovePartitionRequest {
                topic: topic.clone(),
                partition,
                replicas: replicas.clone(),
            };
            let response = client.move_partition(request).await?;
            if let Some(e) = ClientError::from_code(response.error, &response.message) {
                return Err(e.into());
            }
            println!("moving {topic}/{partition} onto brokers {replicas:?}");
            Ok(())
        }
    }
}

async fn status(connection: Connection) -> anyhow::Result<()> {
    let client = connection.client().await?;
    let first = client.cluster_status(ClusterStatusRequest {}).await?;
    if first.node_id == 0 {
        println!("a single node, not part of a cluster");
        return Ok(());
    }
    let mut answers: BTreeMap<u32, Option<ClusterStatusResponse>> = BTreeMap::new();
    for broker in &first.brokers {
        let answer = match broker.node_id == first.node_id {
            true => Some(first.clone()),
            false => ask(&broker.address).await,
        };
        answers.insert(broker.node_id, answer);
    }
    println!(
        "brokers (controller leader: {})",
        shown(first.controller_leader)
    );
    println!("{:>4}  {:<24} state", "id", "address");
    for broker in &first.brokers {
        let state = match answers.get(&broker.node_id) {
            Some(Some(_)) => "up",
            _ => "unreachable",
        };
        println!("{:>4}  {:<24} {state}", broker.node_id, broker.address);
    }
    let leading: BTreeMap<(String, u32), (u32, &LeaderStatus)> = answers
        .iter()
        .filter_map(|(node, answer)| answer.as_ref().map(|a| (*node, a)))
        .flat_map(|(node, answer)| {
            answer
                .partitions
                .iter()
                .map(move |p| ((p.topic.clone(), p.partition), (node, p)))
        })
        .collect();
    let metadata = client.metadata(MetadataRequest { topics: vec![] }).await?;
    println!();
    println!(
        "{:<24} {:>9} {:>6} {:>10} {:>14}  followers (id:lag in entries)",
        "topic", "partition", "leader", "last-index", "high-watermark"
    );
    let mut partitions: Vec<(String, u32)> = vec![("__cluster_metadata".into(), 0)];
    for topic in &metadata.topics {
        partitions.extend(
            topic
                .partitions
                .iter()
                .map(|p| (topic.name.clone(), p.partition)),
        );
    }
    for (topic, partition) in partitions {
        match leading.get(&(topic.clone(), partition)) {
            Some((leader, status)) => {
                let followers: Vec<String> = status
                    .followers
                    .iter()
                    .map(|f| match f.matched {
                        true => format!("{}:{}", f.node_id, f.lag),
                        false => format!("{}:none-yet", f.node_id),
                    })
                    .collect();
                println!(
                    "{topic:<24} {partition:>9} {leader:>6} {:>10} {:>14}  {}",
                    status.last_index,
                    status.high_watermark,
                    followers.join(" ")
                );
            }
            None => println!(
                "{topic:<24} {partition:>9} {:>6}  (no reachable broker leads it)",
                "-"
            ),
        }
    }
    Ok(())
}

async fn ask(address: &str) -> Option<ClusterStatusResponse> {
    let status = async {
        let client = Client::connect(address).await.ok()?;
        client.cluster_status(ClusterStatusRequest {}).await.ok()
    };
    tokio::time::timeout(BROKER_TIMEOUT, status)
        .await
        .ok()
        .flatten()
}

fn shown(node: u32) -> String {
    match node {
        0 => "unknown".into(),
        node => node.to_string(),
    }
}
