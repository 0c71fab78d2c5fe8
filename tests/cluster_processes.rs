//! A cluster of real `spool broker` processes on loopback sockets: a topic
//! replicated on three brokers, records acknowledged with acks=all, the
//! partition leader killed with SIGKILL mid-stream, writes going on at the
//! new leader, and the killed broker restarted and caught up. Every
//! acknowledged record must be on every broker at its offset.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::BrokerProcess;
use spool_log::client::{
    Client, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use spool_log::proto::spool_client::SpoolClient;
use spool_log::proto::{
    Acks, ErrorCode, FetchPartition, FetchRequest, FetchTopic, ProducePartition, ProduceRequest,
    ProduceTopic,
};
use spool_log::record::{BatchBuilder, BatchIter, Compression};
use tempfile::TempDir;

const TOPIC: &str = "events";
const PATIENCE: Duration = Duration::from_secs(60);

struct Cluster {
    peers: String,
    addresses: BTreeMap<u64, String>,
    dirs: BTreeMap<u64, TempDir>,
    running: BTreeMap<u64, BrokerProcess>,
    /// Brokers stopped with SIGSTOP: running, but answering nothing.
    paused: std::collections::BTreeSet<u64>,
}

impl Cluster {
    fn start(nodes: &[u64]) -> Cluster {
        let addresses: BTreeMap<u64, String> = nodes.iter().map(|&n| (n, free_address())).collect();
        let peers = addresses
            .iter()
            .map(|(n, a)| format!("{n}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            peers,
            addresses,
            dirs: nodes
                .iter()
                .map(|&n| (n, tempfile::tempdir().unwrap()))
                .collect(),
            running: BTreeMap::new(),
            paused: Default::default(),
        };
        for &node in nodes {
            cluster.start_broker(node);
        }
        cluster
    }

    fn start_broker(&mut self, node: u64) {
        let node_arg = node.to_string();
        let dir = self.dirs[&node].path().to_str().unwrap().to_string();
        let broker = BrokerProcess::start(&[
            "--node-id",
            &node_arg,
            "--data-dir",
            &dir,
            "--listen",
            &self.addresses[&node],
            "--peers",
            &self.peers,
            "--metrics-listen",
            "off",
        ]);
        self.running.insert(node, broker);
    }

    /// SIGSTOP: the process stays, but answers nothing until resumed.
    fn pause(&mut self, node: u64) {
        self.running[&node].signal(libc::SIGSTOP);
        self.paused.insert(node);
    }

    fn resume(&mut self, node: u64) {
        self.running[&node].signal(libc::SIGCONT);
        self.paused.remove(&node);
    }

    /// Brokers that answer: running and not paused.
    fn answering(&self) -> Vec<u64> {
        self.running
            .keys()
            .copied()
            .filter(|n| !self.paused.contains(n))
            .collect()
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self, node: u64) {
        drop(self.running.remove(&node));
    }

    async fn client(&self, node: u64) -> Client {
        Client::connect(&self.addresses[&node]).await.unwrap()
    }
}

/// `spool cluster status` through broker `node`.
fn cluster_status(cluster: &Cluster, node: u64) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_spool"))
        .args([
            "cluster",
            "status",
            "--bootstrap",
            &cluster.addresses[&node],
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A loopback address no one listens on right now.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Tries every running broker until one (the controller's leader, once
/// every broker is registered) creates the topic.
async fn create_topic(cluster: &Cluster) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for &node in cluster.running.keys() {
            let admin = cluster.client(node).await.admin();
            match admin.create_replicated_topic(TOPIC, 1, 3, &[]).await {
                Ok(()) => return,
                Err(e) => assert!(Instant::now() < deadline, "topic never created: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The partition's leader as a running broker reports it.
async fn leader(cluster: &Cluster) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for node in cluster.answering() {
            let asked = async { cluster.client(node).await.topic_metadata(TOPIC).await };
            if let Ok(Ok(meta)) = tokio::time::timeout(Duration::from_secs(2), asked).await {
                let leader = u64::from(meta.partitions[0].leader);
                if cluster.answering().contains(&leader) {
                    return leader;
                }
            }
        }
        assert!(Instant::now() < deadline, "no running leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn batch(value: &str) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(1_000, None, Some(value.as_bytes()), &[]);
    builder.build()
}

/// Produces `value` with acks=all at the leader, following not-leader
/// answers; returns its offset.
async fn produce(cluster: &Cluster, value: &str) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let node = leader(cluster).await;
        let request = ProduceRequest {
            acks: Acks::All as i32,
            timeout_ms: 5_000,
            topics: vec![ProduceTopic {
                name: TOPIC.into(),
                partitions: vec![ProducePartition {
                    partition: 0,
                    records: batch(value).into(),
                }],
            }],
        };
        let sent = async { cluster.client(node).await.produce(request).await };
        let outcome = tokio::time::timeout(Duration::from_secs(8), sent)
            .await
            .unwrap_or_else(|_| Err(spool_log::LogError::Timeout("no answer".into())));
        if let Ok(response) = &outcome {
            let result = &response.topics[0].partitions[0];
            if result.error == ErrorCode::None as i32 {
                return result.base_offset;
            }
        }
        assert!(
            Instant::now() < deadline,
            "`{value}` never acknowledged: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces `count` values `<prefix>-<i>` one after another, recording
/// where each was acknowledged.
async fn produce_values(
    cluster: &Cluster,
    prefix: &str,
    count: usize,
    acknowledged: &mut Vec<(u64, String)>,
) {
    for i in 0..count {
        let value = format!("{prefix}-{i}");
        acknowledged.push((produce(cluster, &value).await, value));
    }
}

/// Every committed record `node` serves, as (offset, value), or the error
/// of a broker not serving the partition yet (a restarted one catching up).
async fn read_all(cluster: &Cluster, node: u64) -> Result<Vec<(u64, String)>, String> {
    // A raw gRPC client: the spool client would send the fetch to the
    // partition's leader, and each broker's own replica must be read.
    let address = format!("http://{}", cluster.addresses[&node]);
    let mut client = SpoolClient::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let request = FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            topics: vec![FetchTopic {
                name: TOPIC.into(),
                partitions: vec![FetchPartition {
                    partition: 0,
                    offset,
                    max_bytes: 1 << 20,
                }],
            }],
        };
        let response = client
            .fetch(request)
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let result = &response.topics[0].partitions[0];
        if result.error != ErrorCode::None as i32 {
            return Err(result.message.clone());
        }
        if result.records.is_empty() {
            return Ok(records);
        }
        for batch in BatchIter::new(&result.records) {
            for record in batch.unwrap().records().unwrap().iter() {
                let record = record.unwrap();
                let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
                records.push((record.offset, value));
                offset = record.offset + 1;
            }
        }
    }
}

/// Waits until `node` serves at least `count` committed records.
async fn wait_for_records(cluster: &Cluster, node: u64, count: usize) -> Vec<(u64, String)> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let read = read_all(cluster, node).await;
        match read {
            Ok(records) if records.len() >= count => return records,
            _ => assert!(
                Instant::now() < deadline,
                "node {node} never served {count} records: {read:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_loses_no_acknowledged_record_and_rejoins() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "before", 40, &mut acknowledged).await;
    let killed = leader(&cluster).await;
    let status = cluster_status(&cluster, killed);
    assert_eq!(status.matches(" up").count(), 3, "{status}");
    let row = status
        .lines()
        .find(|l| l.starts_with(TOPIC))
        .expect("a row for the topic");
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns[2],
        killed.to_string(),
        "the leader column: {status}"
    );
    assert_eq!(
        columns[4], "40",
        "the high watermark after 40 records: {status}"
    );
    assert_eq!(columns.len(), 7, "two followers with their lag: {status}");
    cluster.kill(killed);
    produce_values(&cluster, "after", 20, &mut acknowledged).await;
    let new_leader = leader(&cluster).await;
    assert_ne!(new_leader, killed, "a surviving broker leads");
    let status = cluster_status(&cluster, new_leader);
    assert!(
        status.contains(&format!(
            "{:>4}  {:<24} unreachable",
            killed, cluster.addresses[&killed]
        )),
        "{status}"
    );
    cluster.start_broker(killed);
    for node in [1, 2, 3] {
        let records = wait_for_records(&cluster, node, acknowledged.len()).await;
        assert_eq!(
            records, acknowledged,
            "node {node} holds every acknowledged record, in order"
        );
    }
    let metadata = cluster
        .client(1)
        .await
        .metadata(Default::default())
        .await
        .unwrap();
    assert_eq!(metadata.brokers.len(), 3, "{metadata:?}");
}

/// Creates `topic` through one bootstrap broker, retrying while the
/// cluster is still registering its brokers.
async fn create_through(client: &Client, topic: &str, partitions: u32, factor: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client
            .admin()
            .create_replicated_topic(topic, partitions, factor, &[])
            .await
        {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "topic never created: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `values` with acks=all and returns where each landed.
async fn send_all(producer: &Producer, values: &[String]) -> BTreeMap<(u32, u64), String> {
    let mut waiting = Vec::new();
    for value in values {
        let record = ProducerRecord::new("orders", value.clone().into_bytes())
            .key(value.clone().into_bytes());
        waiting.push((value.clone(), producer.send(record).await.unwrap()));
    }
    let mut landed = BTreeMap::new();
    for (value, ack) in waiting {
        let metadata = ack
            .await
            .unwrap_or_else(|e| panic!("`{value}` was not acknowledged: {e}"));
        landed.insert((metadata.partition, metadata.offset.unwrap()), value);
    }
    landed
}

/// Reads every partition of `orders` from the beginning until `count`
/// records arrived.
async fn consume_all(
    client: &Client,
    partitions: u32,
    count: usize,
) -> BTreeMap<(u32, u64), String> {
    let mut consumer = client.consumer(ConsumerConfig::default());
    consumer.assign((0..partitions).map(|p| TopicPartition::new("orders", p)));
    for p in 0..partitions {
        consumer
            .seek_to_beginning(&TopicPartition::new("orders", p))
            .unwrap();
    }
    let deadline = Instant::now() + PATIENCE;
    let mut seen = BTreeMap::new();
    while seen.len() < count {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {count}",
            seen.len()
        );
        for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            seen.insert((record.partition, record.offset), value);
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_and_consumers_follow_partition_leaders_through_one_broker() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    let client = cluster.client(3).await;
    create_through(&client, "orders", 3, 3).await;
    let config = ProducerConfig {
        acks: Acks::All,
        retries: 50,
        retry_backoff: Duration::from_millis(200),
        ..ProducerConfig::default()
    };
    let producer = client.producer(config);
    let first: Vec<String> = (0..150).map(|i| format!("first-{i}")).collect();
    let mut acknowledged = send_all(&producer, &first).await;
    let partitions: BTreeMap<u32, usize> =
        acknowledged.keys().fold(BTreeMap::new(), |mut m, (p, _)| {
            *m.entry(*p).or_default() += 1;
            m
        });
    assert_eq!(
        partitions.len(),
        3,
        "keys spread over every partition: {partitions:?}"
    );

    // Kill a broker other than the bootstrap one that leads a partition.
    let meta = client.topic_metadata("orders").await.unwrap();
    let victim = meta
        .partitions
        .iter()
        .map(|p| u64::from(p.leader))
        .find(|&leader| leader != 3)
        .expect("brokers 1 and 2 lead a partition between them");
    cluster.kill(victim);
    let second: Vec<String> = (0..150).map(|i| format!("second-{i}")).collect();
    acknowledged.extend(send_all(&producer, &second).await);

    let consumed = consume_all(&client, 3, acknowledged.len()).await;
    assert_eq!(
        consumed, acknowledged,
        "every acknowledged record, at its partition and offset"
    );
}

/// Every broker serves every acknowledged record at its offset, and they
/// all hold the same committed log. (Writes whose answer was lost may be
/// there too: no idempotence yet.)
async fn check_every_broker(cluster: &Cluster, acknowledged: &[(u64, String)]) {
    let last = acknowledged.iter().map(|(o, _)| *o).max().unwrap();
    let mut logs = Vec::new();
    for &node in cluster.running.keys() {
        let records = wait_for_records(cluster, node, last as usize + 1).await;
        assert_holds(node, &records, acknowledged);
        logs.push(records);
    }
    let shortest = logs.iter().map(Vec::len).min().unwrap();
    for log in &logs[1..] {
        assert_eq!(
            log[..shortest],
            logs[0][..shortest],
            "brokers disagree on committed records"
        );
    }
}

/// Every acknowledged record is at its offset in `records`.
fn assert_holds(node: u64, records: &[(u64, String)], acknowledged: &[(u64, String)]) {
    let held: BTreeMap<u64, &String> = records.iter().map(|(o, v)| (*o, v)).collect();
    for (offset, value) in acknowledged {
        assert_eq!(
            held.get(offset),
            Some(&value),
            "node {node} lacks `{value}` at {offset}"
        );
    }
    let offsets: Vec<u64> = records.iter().map(|(o, _)| *o).collect();
    let expected: Vec<u64> = (0..records.len() as u64).collect();
    assert_eq!(
        offsets, expected,
        "node {node}: offsets without gaps or repeats"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_past_the_election_timeout_is_replaced_and_rejoins() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "before", 20, &mut acknowledged).await;
    let stopped = leader(&cluster).await;
    cluster.pause(stopped);
    produce_values(&cluster, "during", 20, &mut acknowledged).await;
    let new_leader = leader(&cluster).await;
    assert_ne!(new_leader, stopped, "a broker that answers leads");
    cluster.resume(stopped);
    produce_values(&cluster, "after", 20, &mut acknowledged).await;
    check_every_broker(&cluster, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_recreated_while_a_broker_was_down_is_a_new_log_there_too() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    for i in 0..5 {
        produce(&cluster, &format!("old-{i}")).await;
    }
    wait_for_records(&cluster, 3, 5).await;
    cluster.kill(3);
    // The controller's leader may be the broker just killed: retry while
    // the others elect a new one, as a client retries retriable errors.
    let deadline = Instant::now() + PATIENCE;
    loop {
        match cluster.client(1).await.admin().delete_topic(TOPIC).await {
            Ok(()) => break,
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("deleting the topic failed: {e}"),
        }
    }
    create_topic(&cluster).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "new", 3, &mut acknowledged).await;
    cluster.start_broker(3);
    // The restarted broker must drop its replica of the old topic and
    // join the new one's group, not revive the old log.
    let records = wait_for_records(&cluster, 3, 3).await;
    assert_eq!(
        records, acknowledged,
        "broker 3 serves the new topic's records only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_killed_at_once_restarts_with_every_acknowledged_record() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "before", 30, &mut acknowledged).await;
    for node in [1, 2, 3] {
        cluster.kill(node);
    }
    for node in [2, 3, 1] {
        cluster.start_broker(node);
    }
    produce_values(&cluster, "after", 10, &mut acknowledged).await;
    check_every_broker(&cluster, &acknowledged).await;
}
