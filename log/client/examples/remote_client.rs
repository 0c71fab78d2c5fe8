//! A program that depends on the client crate alone: it connects to a
//! running broker or cluster over gRPC, produces a few keyed records and
//! reads them back. Building it compiles no storage, no Raft and no
//! broker (scripts/check-structure.sh checks the crate's dependencies).
//!
//! Run against a broker (`spool broker` listens on 127.0.0.1:9292):
//! cargo run -p spool-client --example remote_client -- 127.0.0.1:9292

use std::time::Duration;

use spool_client::{
    Client, ClientError, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord,
};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| spool_client::DEFAULT_BOOTSTRAP.to_string());
    let client = Client::connect(&address).await?;
    let admin = client.admin();
    if !admin
        .list_topics()
        .await?
        .contains(&"greetings".to_string())
    {
        admin.create_topic("greetings", 1, &[]).await?;
    }
    let producer = client.producer(ProducerConfig::default());
    for who in ["alice", "bob"] {
        let sent = producer
            .send_and_wait(ProducerRecord::new("greetings", format!("hello {who}")).key(who))
            .await?;
        println!(
            "sent to partition {} offset {:?}",
            sent.partition, sent.offset
        );
    }
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..Default::default()
    });
    consumer.assign(vec![spool_client::TopicPartition::new("greetings", 0)]);
    for record in consumer.poll(Duration::from_secs(2)).await? {
        let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
        println!("read offset {}: {value}", record.offset);
    }
    Ok(())
}
