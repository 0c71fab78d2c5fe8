//! The process-cluster harness: brokers started as `spool broker`
//! processes, faults (SIGKILL, SIGSTOP, cut links), and the helpers that
//! produce, read back and check every acknowledged record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use spool_client::Client;
use spool_protocol::proto::spool_client::SpoolClient;
use spool_protocol::proto::{
    Acks, DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic, ErrorCode,
    FetchPartition, FetchRequest, FetchTopic, ListOffsetsPartition, ListOffsetsRequest,
    ListOffsetsTopic, OffsetSpec, ProducePartition, ProduceRequest, ProduceTopic,
};
use spool_record::{BatchBuilder, BatchIter, Compression};
use tempfile::TempDir;
use tonic::transport::Channel;

use crate::common::BrokerProcess;
use crate::links::Link;

pub const TOPIC: &str = "events";
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Cluster {
    /// Where each broker listens: what the test's clients connect to.
    pub addresses: BTreeMap<u64, String>,
    /// With cuttable links, the forwarder of each directed link (from,
    /// to): broker `from` reaches broker `to` through it.
    links: BTreeMap<(u64, u64), Link>,
    dirs: BTreeMap<u64, TempDir>,
    pub running: BTreeMap<u64, BrokerProcess>,
    /// Brokers stopped with SIGSTOP: running, but answering nothing.
    paused: BTreeSet<u64>,
    /// Brokers whose links to every other broker are cut.
    isolated: BTreeSet<u64>,
    /// A broker configuration file every broker is started with.
    config: Option<(TempDir, String)>,
    /// The sequence number of the next record [`produce`] sends: the test
    /// writes as one idempotent producer, so a retry after a lost answer
    /// is appended once.
    next_sequence: std::sync::atomic::AtomicI32,
    /// Dropped last, after the brokers.
    _slot: Slot,
}

/// How many clusters of this test binary run at once. Each is three or
/// four debug-build brokers; on a 2-core machine more at once stretch
/// elections and fsyncs past what the tests wait for.
const CLUSTERS_AT_ONCE: usize = 3;

static CLUSTERS_RUNNING: Mutex<usize> = Mutex::new(0);
static CLUSTER_ENDED: Condvar = Condvar::new();

/// A permit to run a cluster, waited for when [`CLUSTERS_AT_ONCE`] run.
struct Slot;

impl Slot {
    fn take() -> Slot {
        let mut running = CLUSTERS_RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= CLUSTERS_AT_ONCE {
            running = CLUSTER_ENDED
                .wait(running)
                .unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *CLUSTERS_RUNNING.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        CLUSTER_ENDED.notify_one();
    }
}

impl Cluster {
    /// Brokers that reach each other directly.
    pub fn start(nodes: &[u64]) -> Cluster {
        let mut cluster = Cluster::new(nodes);
        cluster.start_all(nodes);
        cluster
    }

    /// Brokers that reach each other through links the test can cut.
    pub fn start_with_links(nodes: &[u64]) -> Cluster {
        let pairs: Vec<(u64, u64)> = nodes
            .iter()
            .flat_map(|&from| nodes.iter().map(move |&to| (from, to)))
            .filter(|(from, to)| from != to)
            .collect();
        let ports: Vec<_> = pairs.iter().map(|_| Link::bind()).collect();
        let mut cluster = Cluster::new(nodes);
        for ((from, to), port) in pairs.into_iter().zip(ports) {
            let link = Link::open(port, cluster.addresses[&to].clone());
            cluster.links.insert((from, to), link);
        }
        cluster.start_all(nodes);
        cluster
    }

    fn new(nodes: &[u64]) -> Cluster {
        // Before choosing ports: another cluster may take a port chosen
        // while this one waits.
        let slot = Slot::take();
        Cluster {
            addresses: nodes.iter().map(|&n| (n, free_address())).collect(),
            links: BTreeMap::new(),
            dirs: nodes
                .iter()
                .map(|&n| (n, tempfile::tempdir().unwrap()))
                .collect(),
            running: BTreeMap::new(),
            paused: BTreeSet::new(),
            isolated: BTreeSet::new(),
            config: None,
            next_sequence: Default::default(),
            _slot: slot,
        }
    }

    /// Brokers that reach each other directly, each started with the
    /// broker configuration file `toml`.
    pub fn start_configured(nodes: &[u64], toml: &str) -> Cluster {
        let mut cluster = Cluster::new(nodes);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.toml");
        std::fs::write(&path, toml).unwrap();
        cluster.config = Some((dir, path.to_str().unwrap().to_string()));
        cluster.start_all(nodes);
        cluster
    }

    fn start_all(&mut self, nodes: &[u64]) {
        for &node in nodes {
            self.start_broker(node);
        }
    }

    /// The `--peers` value broker `node` is started with: its own address,
    /// and the others' as it reaches them.
    fn peers_seen_by(&self, node: u64) -> String {
        self.addresses
            .iter()
            .map(|(&other, address)| match self.links.get(&(node, other)) {
                Some(link) => format!("{other}={}", link.address),
                None => format!("{other}={address}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn start_broker(&mut self, node: u64) {
        self.start_broker_with(node, &[]);
    }

    /// Starts a new broker `node` that joins the running cluster
    /// (`--join`); it knows every broker, the others only learn of it.
    pub fn join_broker(&mut self, node: u64) {
        self.addresses.insert(node, free_address());
        self.dirs.insert(node, tempfile::tempdir().unwrap());
        self.start_broker_with(node, &["--join"]);
    }

    fn start_broker_with(&mut self, node: u64, extra: &[&str]) {
        let node_arg = node.to_string();
        let dir = self.dirs[&node].path().to_str().unwrap().to_string();
        let peers = self.peers_seen_by(node);
        let mut args = vec![
            "--node-id",
            &node_arg,
            "--data-dir",
            &dir,
            "--listen",
            &self.addresses[&node],
            "--peers",
            &peers,
            "--metrics-listen",
            "off",
        ];
        if let Some((_, config)) = &self.config {
            args.extend(["--config", config.as_str()]);
        }
        args.extend(extra);
        let broker = BrokerProcess::start(&args);
        self.running.insert(node, broker);
    }

    /// SIGSTOP: the process stays, but answers nothing until resumed.
    pub fn pause(&mut self, node: u64) {
        self.running[&node].signal(libc::SIGSTOP);
        self.paused.insert(node);
    }

    pub fn resume(&mut self, node: u64) {
        self.running[&node].signal(libc::SIGCONT);
        self.paused.remove(&node);
    }

    /// Cuts every link between `node` and the other brokers, both ways;
    /// the test's own clients still reach it.
    pub fn isolate(&mut self, node: u64) {
        for ((from, to), link) in &self.links {
            if *from == node || *to == node {
                link.cut();
            }
        }
        self.isolated.insert(node);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        for link in self.links.values() {
            link.heal();
        }
        self.isolated.clear();
    }

    /// Brokers that answer and are part of the majority's network:
    /// running, not paused and not isolated.
    pub fn answering(&self) -> Vec<u64> {
        self.running
            .keys()
            .copied()
            .filter(|n| !self.paused.contains(n) && !self.isolated.contains(n))
            .collect()
    }

    /// SIGTERM, as an operator stops a broker: waits for its clean exit
    /// (a failure otherwise) and answers its log.
    pub fn stop(&mut self, node: u64) -> String {
        let broker = self.running.remove(&node);
        broker.map(|b| b.stop()).unwrap_or_default()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self, node: u64) {
        drop(self.running.remove(&node));
    }

    pub async fn client(&self, node: u64) -> Client {
        Client::connect(&self.addresses[&node]).await.unwrap()
    }
}

impl Drop for Cluster {
    /// A failing test shows the end of each broker's log: the broker side
    /// of the failure is there.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (node, broker) in &mut self.running {
            let exited = broker.exit_status();
            let log = broker.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- broker {node} (exited: {exited:?}), last lines of its log:");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// `spool cluster status` through broker `node`.
pub fn cluster_status(cluster: &Cluster, node: u64) -> String {
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
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Tries every running broker until one (the controller's leader, once
/// every broker is registered) creates the topic.
pub async fn create_topic(cluster: &Cluster) {
    create_topic_with(cluster, &[]).await
}

/// [`create_topic`] with topic settings.
pub async fn create_topic_with(cluster: &Cluster, configs: &[(&str, &str)]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for &node in cluster.running.keys() {
            let admin = cluster.client(node).await.admin();
            match admin.create_replicated_topic(TOPIC, 1, 3, configs).await {
                Ok(()) => return,
                Err(e) => assert!(Instant::now() < deadline, "topic never created: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The partition's leader as a running broker reports it.
pub async fn leader(cluster: &Cluster) -> u64 {
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

pub fn batch(value: &str) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(1_000, None, Some(value.as_bytes()), &[]);
    builder.build()
}

/// The producer id the test's idempotent writes use.
const PRODUCER_ID: i64 = 1;

/// [`batch`] of the test's idempotent producer at `sequence`.
fn idempotent_batch(value: &str, sequence: i32) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None).producer(PRODUCER_ID, 0, sequence);
    builder.push(1_000, None, Some(value.as_bytes()), &[]);
    builder.build()
}

/// The leader a not-leader answer names (`...; node N leads`).
fn named_leader(answer: &str) -> Option<u64> {
    let (_, rest) = answer.split_once("; node ")?;
    rest.split_once(" leads")?.0.parse().ok()
}

/// Produces `value` with acks=all at the leader, following not-leader
/// answers and resending the same batch after a failure (idempotently:
/// see [`Cluster::next_sequence`]); returns its offset.
pub async fn produce(cluster: &Cluster, value: &str) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    let sequence = cluster
        .next_sequence
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let batch = idempotent_batch(value, sequence);
    let mut failures = Vec::new();
    let mut hint = None;
    loop {
        // A not-leader answer names the leader its broker knows: a broker
        // holding no replica can only guess the preferred one in metadata.
        let node = match hint.filter(|n| cluster.answering().contains(n)) {
            Some(node) => node,
            None => leader(cluster).await,
        };
        let outcome = send_at(cluster, node, batch.clone(), Duration::from_secs(5)).await;
        match outcome {
            Ok(offset) => return offset,
            Err(e) => {
                hint = named_leader(&e);
                failures.push(format!("at {node}: {e}"));
            }
        }
        assert!(
            Instant::now() < deadline,
            "`{value}` never acknowledged: {failures:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One acks=all produce of `value` sent to broker `node`, which waits at
/// most `timeout` for the commit: the offset, or the error it answered.
pub async fn produce_at(
    cluster: &Cluster,
    node: u64,
    value: &str,
    timeout: Duration,
) -> Result<u64, String> {
    send_at(cluster, node, batch(value), timeout).await
}

/// One acks=all produce of `batch` to broker `node` (see [`produce_at`]).
async fn send_at(
    cluster: &Cluster,
    node: u64,
    batch: Vec<u8>,
    timeout: Duration,
) -> Result<u64, String> {
    let request = ProduceRequest {
        transactional_id: String::new(),
        acks: Acks::All as i32,
        timeout_ms: timeout.as_millis() as u32,
        topics: vec![ProduceTopic {
            name: TOPIC.into(),
            partitions: vec![ProducePartition {
                partition: 0,
                records: batch.into(),
            }],
        }],
    };
    let sent = async {
        let mut client = raw_client(cluster, node).await?;
        let response = client.produce(request).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(response.into_inner())
    };
    let response = tokio::time::timeout(timeout + Duration::from_secs(3), sent)
        .await
        .map_err(|_| "no answer".to_string())??;
    let result = &response.topics[0].partitions[0];
    match ErrorCode::try_from(result.error) {
        Ok(ErrorCode::None) => Ok(result.base_offset),
        code => Err(format!("{code:?}: {}", result.message)),
    }
}

/// Produces `count` values `<prefix>-<i>` one after another, recording
/// where each was acknowledged.
pub async fn produce_values(
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
pub async fn read_all(cluster: &Cluster, node: u64) -> Result<Vec<(u64, String)>, String> {
    let mut client = raw_client(cluster, node).await?;
    let mut records = Vec::new();
    let mut offset = log_start(cluster, node).await?;
    loop {
        let response = client
            .fetch(fetch_request(TOPIC, 0, offset))
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

/// A read_uncommitted fetch of up to a MiB of `topic`'s `partition` from
/// `offset`, answered at once: what a test reads a log through.
pub fn fetch_request(topic: &str, partition: u32, offset: u64) -> FetchRequest {
    FetchRequest {
        isolation_level: 0,
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 1 << 20,
        topics: vec![FetchTopic {
            name: topic.into(),
            partitions: vec![FetchPartition {
                partition,
                offset,
                max_bytes: 1 << 20,
            }],
        }],
    }
}

/// A gRPC client of broker `node` itself. The spool client would route
/// requests by the metadata (to each partition's leader); these tests ask
/// each broker about its own replica.
async fn raw_client(cluster: &Cluster, node: u64) -> Result<SpoolClient<Channel>, String> {
    let address = format!("http://{}", cluster.addresses[&node]);
    SpoolClient::connect(address)
        .await
        .map_err(|e| e.to_string())
}

/// The first offset `node`'s replica holds (retention moves it on).
pub async fn log_start(cluster: &Cluster, node: u64) -> Result<u64, String> {
    let mut client = raw_client(cluster, node).await?;
    let request = ListOffsetsRequest {
        topics: vec![ListOffsetsTopic {
            name: TOPIC.into(),
            partitions: vec![ListOffsetsPartition {
                partition: 0,
                spec: OffsetSpec::Earliest as i32,
                timestamp: 0,
            }],
        }],
        ..Default::default()
    };
    let response = client
        .list_offsets(request)
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let result = &response.topics[0].partitions[0];
    if result.error != ErrorCode::None as i32 {
        return Err(result.message.clone());
    }
    Ok(result.offset)
}

/// Deletes the records before `offset` (-1: all committed) through
/// `node`; the log start the deletion left, or the error it was refused with.
pub async fn delete_records(cluster: &Cluster, node: u64, offset: i64) -> Result<u64, String> {
    let mut client = raw_client(cluster, node).await?;
    let request = DeleteRecordsRequest {
        topics: vec![DeleteRecordsTopic {
            name: TOPIC.into(),
            partitions: vec![DeleteRecordsPartition {
                partition: 0,
                offset,
            }],
        }],
    };
    let response = client
        .delete_records(request)
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let result = &response.topics[0].partitions[0];
    match ErrorCode::try_from(result.error) {
        Ok(ErrorCode::None) => Ok(result.low_watermark),
        code => Err(format!("{code:?}: {}", result.message)),
    }
}

/// Waits until `node` serves at least `count` committed records.
pub async fn wait_for_records(cluster: &Cluster, node: u64, count: usize) -> Vec<(u64, String)> {
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

/// Every broker serves every acknowledged record at its offset, holds no
/// value twice, and they all hold the same committed log.
pub async fn check_every_broker(cluster: &Cluster, acknowledged: &[(u64, String)]) {
    let logs = check_retained(cluster, acknowledged).await;
    for (node, records) in &logs {
        assert_eq!(
            records.first().map(|(o, _)| *o),
            Some(0),
            "node {node} lost the start of its log"
        );
    }
}

/// [`check_every_broker`] where retention may have deleted the start of
/// each broker's log: every acknowledged record from a broker's log start
/// on is there, and the brokers agree wherever their logs overlap.
/// Returns each broker's records.
pub async fn check_retained(
    cluster: &Cluster,
    acknowledged: &[(u64, String)],
) -> BTreeMap<u64, Vec<(u64, String)>> {
    let running: Vec<u64> = cluster.running.keys().copied().collect();
    check_replicas(cluster, &running, acknowledged).await
}

/// [`check_retained`] on the brokers `nodes` only (those that hold a
/// replica of the partition).
pub async fn check_replicas(
    cluster: &Cluster,
    nodes: &[u64],
    acknowledged: &[(u64, String)],
) -> BTreeMap<u64, Vec<(u64, String)>> {
    let last = acknowledged.iter().map(|(o, _)| *o).max().unwrap();
    let mut logs = BTreeMap::new();
    for &node in nodes {
        let records = wait_for_offset(cluster, node, last).await;
        assert_holds(node, &records, acknowledged);
        logs.insert(node, records);
    }
    let all: Vec<&Vec<(u64, String)>> = logs.values().collect();
    for pair in all.windows(2) {
        let (a, b): (BTreeMap<_, _>, BTreeMap<_, _>) = (
            pair[0].iter().cloned().collect(),
            pair[1].iter().cloned().collect(),
        );
        for (offset, value) in &a {
            if let Some(other) = b.get(offset) {
                assert_eq!(value, other, "brokers disagree at offset {offset}");
            }
        }
    }
    logs
}

/// Waits until `node` serves the record at `offset`; returns what it
/// serves.
pub async fn wait_for_offset(cluster: &Cluster, node: u64, offset: u64) -> Vec<(u64, String)> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let read = read_all(cluster, node).await;
        match read {
            Ok(records) if records.last().is_some_and(|(o, _)| *o >= offset) => return records,
            _ => assert!(
                Instant::now() < deadline,
                "node {node} never served offset {offset}: {read:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged record from the first offset of `records` on is at
/// its offset in `records`, which has no gaps or repeated offsets, and no
/// value twice (every test writes unique values, retried idempotently).
pub fn assert_holds(node: u64, records: &[(u64, String)], acknowledged: &[(u64, String)]) {
    let start = records.first().map_or(0, |(o, _)| *o);
    let held: BTreeMap<u64, &String> = records.iter().map(|(o, v)| (*o, v)).collect();
    for (offset, value) in acknowledged.iter().filter(|(o, _)| *o >= start) {
        assert_eq!(
            held.get(offset),
            Some(&value),
            "node {node} lacks `{value}` at {offset}"
        );
    }
    let offsets: Vec<u64> = records.iter().map(|(o, _)| *o).collect();
    let expected: Vec<u64> = (start..start + records.len() as u64).collect();
    assert_eq!(
        offsets, expected,
        "node {node}: offsets without gaps or repeats"
    );
    let mut offsets_of: BTreeMap<&String, Vec<u64>> = BTreeMap::new();
    for (offset, value) in records {
        offsets_of.entry(value).or_default().push(*offset);
    }
    let duplicated: Vec<_> = offsets_of.iter().filter(|(_, o)| o.len() > 1).collect();
    assert!(
        duplicated.is_empty(),
        "node {node} holds values twice: {duplicated:?}"
    );
}
