//! The producer against a gRPC broker whose responses are lost for a
//! while: requests reach the broker and are appended, their answers never
//! come back, the producer times out and sends the same batches again.
//! With idempotence every record is in the log once; without it the same
//! fault writes duplicates (which shows the fault is real).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use spool_broker::broker::{Broker, BrokerConfig};
use spool_broker::grpc::{serve, Metrics};
use spool_broker::EmbeddedTransport;
use spool_client::{
    Client, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicPartition,
};
use spool_protocol::proto::Acks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const TOPIC: &str = "lost";
const RECORDS: usize = 200;

/// A TCP forwarder in front of the broker. While `deaf`, what the broker
/// sends is dropped (requests still arrive); `reset` closes every open
/// connection, so that the client reconnects.
struct Proxy {
    address: String,
    deaf: watch::Sender<bool>,
    resets: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let deaf = watch::Sender::new(false);
        let resets = watch::Sender::new(0u64);
        let (deaf_seen, resets_seen) = (deaf.subscribe(), resets.subscribe());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let outbound = TcpStream::connect(&target).await.unwrap();
                let mut reset = resets_seen.clone();
                reset.mark_unchanged();
                let deaf = deaf_seen.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = pipe(inbound, outbound, deaf) => {}
                        _ = reset.changed() => {}
                    }
                });
            }
        });
        Proxy {
            address,
            deaf,
            resets,
        }
    }

    fn set_deaf(&self, deaf: bool) {
        self.deaf.send_replace(deaf);
    }

    fn reset(&self) {
        self.resets.send_modify(|n| *n += 1);
    }
}

/// Copies both ways until either side closes, dropping the broker's bytes
/// while `deaf` is set.
async fn pipe(inbound: TcpStream, outbound: TcpStream, deaf: watch::Receiver<bool>) {
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut broker_read, mut broker_write) = outbound.into_split();
    let requests = tokio::io::copy(&mut client_read, &mut broker_write);
    let responses = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = broker_read.read(&mut buffer).await?;
            if read == 0 {
                return Ok::<(), std::io::Error>(());
            }
            if !*deaf.borrow() {
                client_write.write_all(&buffer[..read]).await?;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = responses => {}
    }
}

/// A broker served over gRPC behind a proxy it advertises, so that every
/// request of a client (metadata, produce) goes through the proxy.
async fn broker_behind_proxy(dir: &std::path::Path) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = Proxy::start(listener.local_addr().unwrap().to_string()).await;
    let mut config = BrokerConfig::new(dir);
    config.advertised_address = proxy.address.clone();
    let broker = Broker::open(config).await.unwrap();
    EmbeddedTransport::client(Arc::clone(&broker))
        .admin()
        .create_topic(TOPIC, 1, &[])
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    tokio::spawn(serve(broker, metrics, listener, std::future::pending()));
    proxy
}

/// Produces [`RECORDS`] values while the broker's responses are lost for
/// a while, and returns how often each value is in the log.
async fn produce_through_lost_responses(idempotence: bool) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let proxy = broker_behind_proxy(dir.path()).await;
    let client = Client::connect(&proxy.address).await.unwrap();
    let producer = client.producer(ProducerConfig {
        acks: Acks::All,
        idempotence,
        request_timeout: Duration::from_millis(700),
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    });
    let warm_up = ProducerRecord::new(TOPIC, b"warm-up".to_vec());
    producer.send_and_wait(warm_up).await.unwrap();

    proxy.set_deaf(true);
    let mut acks = Vec::new();
    for i in 0..RECORDS {
        let record = ProducerRecord::new(TOPIC, format!("value-{i}").into_bytes());
        acks.push(producer.send(record).await.unwrap());
    }
    // Long enough for a few timeouts and retries, each appended again.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    proxy.set_deaf(false);
    proxy.reset();
    for ack in acks {
        ack.await.expect("every record is acknowledged in the end");
    }

    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..Default::default()
    });
    consumer.assign([TopicPartition::new(TOPIC, 0)]);
    let end = client
        .admin()
        .describe_topic(TOPIC)
        .await
        .unwrap()
        .partitions[0]
        .high_watermark;
    let mut counts = BTreeMap::new();
    let mut next = 0;
    while next < end {
        for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            *counts.entry(value).or_default() += 1;
            next = record.offset + 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_with_retries_append_every_record_once() {
    let counts = produce_through_lost_responses(true).await;
    assert_eq!(counts.len(), RECORDS + 1, "every value is in the log");
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "duplicates: {twice:?}");

    // The same fault without idempotence writes duplicates.
    let counts = produce_through_lost_responses(false).await;
    assert_eq!(counts.len(), RECORDS + 1, "every value is in the log");
    assert!(
        counts.values().any(|&n| n > 1),
        "without idempotence the retries were expected to append again"
    );
}

/// A transaction whose produce responses and then whose `EndTxn` response
/// are lost: the retried batches are appended once, the retried `EndTxn`
/// is answered as the first was, and a read_committed consumer sees every
/// record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_survives_lost_produce_and_commit_responses() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = broker_behind_proxy(dir.path()).await;
    let client = Client::connect(&proxy.address).await.unwrap();
    let producer = client.producer(ProducerConfig {
        transactional_id: Some("lost-tx".into()),
        request_timeout: Duration::from_millis(700),
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    });
    producer.init_transactions().await.unwrap();
    producer.begin_transaction().unwrap();
    // The first record learns the topic and adds the partition.
    let first = ProducerRecord::new(TOPIC, b"value-0".to_vec());
    producer.send_and_wait(first).await.unwrap();
    proxy.set_deaf(true);
    let mut acks = Vec::new();
    for i in 1..RECORDS {
        let record = ProducerRecord::new(TOPIC, format!("value-{i}").into_bytes());
        acks.push(producer.send(record).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    proxy.set_deaf(false);
    proxy.reset();
    producer.flush().await.unwrap();
    for ack in acks {
        ack.await.expect("every record is acknowledged in the end");
    }
    // The commit reaches the coordinator, its answer does not.
    proxy.set_deaf(true);
    let commit = tokio::spawn({
        let producer = producer.clone();
        async move { producer.commit_transaction().await }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    proxy.set_deaf(false);
    proxy.reset();
    commit.await.unwrap().expect("the retried commit succeeds");

    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(100),
        isolation: spool_protocol::proto::IsolationLevel::ReadCommitted,
        ..Default::default()
    });
    consumer.assign([TopicPartition::new(TOPIC, 0)]);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while counts.len() < RECORDS && tokio::time::Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            *counts.entry(value).or_default() += 1;
        }
    }
    // Anything left behind would show up now.
    for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
        let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
        *counts.entry(value).or_default() += 1;
    }
    assert_eq!(counts.len(), RECORDS, "every value is visible");
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "duplicates: {twice:?}");
    // One transaction, whatever the retries: its producer is at the epoch
    // after one end.
    let described = client
        .describe_transactions(spool_protocol::proto::DescribeTransactionsRequest {
            transactional_ids: vec!["lost-tx".into()],
        })
        .await
        .unwrap();
    assert_eq!(described.transactions[0].state, "CompleteCommit");
    assert_eq!(described.transactions[0].producer_epoch, 1);
}
