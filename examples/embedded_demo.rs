//! spool's main job at this stage: a broker embedded in the process, a
//! producer and a consumer group on it, and the same code would run against
//! a cluster by replacing `node.client()` with
//! `Client::connect("127.0.0.1:9292").await?`.
//!
//! Run: cargo run --release --example embedded_demo

use std::time::Duration;

use spool::broker::Node;
use spool::client::{ConsumerConfig, GroupSettings, OffsetReset, ProducerConfig, ProducerRecord};
use spool::protocol::proto::Acks;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::embedded(dir.path()).await?;
    let client = node.client();
    client
        .admin()
        .create_topic("orders", 3, &[("retention.ms", "86400000")])
        .await?;
    println!(
        "created topic orders with 3 partitions in {}",
        dir.path().display()
    );

    // Keyed records: one customer's orders share a partition, in order.
    let producer = client.producer(ProducerConfig {
        acks: Acks::All,
        ..Default::default()
    });
    let mut acks = Vec::new();
    for i in 0..12 {
        let customer = ["alice", "bob", "carol"][i % 3];
        let record =
            ProducerRecord::new("orders", format!("order #{i} of {customer}")).key(customer);
        acks.push(producer.send(record).await?);
    }
    for ack in acks {
        let m = ack.await?;
        println!(
            "acknowledged on disk: partition {} offset {}",
            m.partition,
            m.offset.unwrap_or_default()
        );
    }

    // A consumer group member reads everything and commits its progress.
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..Default::default()
    });
    consumer.subscribe(
        ["orders"],
        GroupSettings {
            auto_commit: false,
            ..GroupSettings::new("billing")
        },
    );
    let mut seen = 0;
    while seen < 12 {
        for record in consumer.poll(Duration::from_secs(1)).await? {
            let key =
                String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
            let value =
                String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
            println!(
                "consumed partition {} offset {}: {key} -> {value}",
                record.partition, record.offset
            );
            seen += 1;
        }
    }
    consumer.commit_sync().await?;
    let (generation, member) = consumer.group_generation().unwrap_or_default();
    println!("group billing: generation {generation}, member {member}, offsets committed");
    consumer.close().await?;
    node.shutdown().await?;
    Ok(())
}
