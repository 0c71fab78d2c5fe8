//! The distributed connect worker as real processes: a `spool broker`
//! process, two `spool connect distributed` worker processes of one group,
//! and a PostgreSQL server started by the test. A FileStreamSource
//! (exactly-once: its lines and offsets in transactions) feeds a topic that
//! a PostgresSink (its offsets in PostgreSQL's transactions, reading
//! read_committed) copies into a table. While lines flow, the worker that
//! runs the source task is killed with SIGKILL; then it is restarted, or
//! the other worker takes its work over alone. Either way every line of
//! the file is in the table exactly once.

mod common;
#[path = "../connect/tests/pg/mod.rs"]
mod pg;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spool_client::proto::{
    IsolationLevel, ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic, OffsetSpec,
};
use spool_client::{Client, ConsumerConfig, OffsetReset, TopicPartition};

use common::BrokerProcess;
use pg::PgServer;

/// How long a step may take: a worker's work moves after its session
/// (6 s here), and a sink task's consumer after the consumer's.
const PATIENCE: Duration = Duration::from_secs(120);

const TOPIC: &str = "lines";
const SOURCE: &str = "lines-source";
const SINK: &str = "lines-sink";
/// The lines the file gets, in all.
const LINES: usize = 4000;

/// A `spool connect distributed` process and what it logs.
struct WorkerProcess {
    child: Child,
    url: String,
    /// Its id in statuses: the address of its REST API.
    id: String,
    log: Arc<Mutex<String>>,
}

impl WorkerProcess {
    fn start(config: &Path, port: u16) -> WorkerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spool"))
            .args(["connect", "distributed"])
            .arg(config)
            .env("SPOOL_LOG", "warn,spool_connect=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a connect worker");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let id = format!("127.0.0.1:{port}");
        WorkerProcess {
            child,
            url: format!("http://{id}"),
            id,
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn kill(mut self) -> String {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        self.child.wait().unwrap();
        self.log()
    }

    fn stop(mut self) -> String {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log();
        assert!(status.success(), "the worker exited with {status}: {log}");
        log
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker, PostgreSQL, the input file and two workers' configs.
struct Setup {
    dir: tempfile::TempDir,
    broker: BrokerProcess,
    client: Client,
    pg: PgServer,
    db: tokio_postgres::Client,
    input: PathBuf,
    /// Each worker's config file and REST port.
    workers: [(PathBuf, u16); 2],
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pg = PgServer::start().await;
    let db = pg.connect().await;
    let data = dir.path().join("broker");
    let broker = BrokerProcess::start(&["--data-dir", data.to_str().unwrap()]);
    let client = Client::connect(&broker.address).await.unwrap();
    client.admin().create_topic(TOPIC, 1, &[]).await.unwrap();
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, "").unwrap();
    let ports = free_ports();
    let workers = [0, 1].map(|index| {
        let port = ports[index];
        let path = dir.path().join(format!("worker-{index}.toml"));
        std::fs::write(&path, worker_toml(&broker.address, port)).unwrap();
        (path, port)
    });
    Setup {
        dir,
        broker,
        client,
        pg,
        db,
        input,
        workers,
    }
}

/// A worker's config: exactly-once sources, short timeouts so the group
/// notices a dead worker within seconds, and frequent flushes.
fn worker_toml(broker: &str, port: u16) -> String {
    format!(
        r#""bootstrap.servers" = "{broker}"
"group.id" = "connect-processes"
"listeners" = "http://127.0.0.1:{port}"
"exactly.once.source.support" = "enabled"
"offset.flush.interval.ms" = 200
"offset.storage.partitions" = 5
"status.storage.partitions" = 2
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 1000
"rebalance.timeout.ms" = 20000
"#
    )
}

/// Two ports free now (both held while the second is found, so they
/// differ).
fn free_ports() -> [u16; 2] {
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    [first, second].map(|listener| listener.local_addr().unwrap().port())
}

/// What every worker logged so far.
fn logs(workers: &[WorkerProcess]) -> String {
    workers.iter().map(WorkerProcess::log).collect()
}

impl Setup {
    /// Starts worker `index` and waits until its REST API answers.
    fn start_worker(&self, index: usize) -> WorkerProcess {
        let (config, port) = &self.workers[index];
        let worker = WorkerProcess::start(config, *port);
        retry_cli(&worker, &["connect", "list", "--url", worker.url.as_str()]);
        worker
    }

    /// Both workers, the second started once the first has made the
    /// group's topics, so they do not race to create them.
    fn start_workers(&self) -> Vec<WorkerProcess> {
        vec![self.start_worker(0), self.start_worker(1)]
    }

    /// Creates the source and the sink through `worker`'s REST API with
    /// `spool connect create`, trying again while the group rebalances.
    fn create_connectors(&self, worker: &WorkerProcess) {
        let source = json!({"name": SOURCE, "config": {
            "connector.class": "FileStreamSource",
            "file": self.input.to_str().unwrap(),
            "topic": TOPIC,
            "batch.size": "100",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        }});
        let sink = json!({"name": SINK, "config": {
            "connector.class": "PostgresSink",
            "topics": TOPIC,
            "connection.url": self.pg.url(),
            "value.converter": "json",
            "value.converter.schemas.enable": "false",
            "consumer.override.isolation.level": "read_committed",
        }});
        for (name, body) in [(SOURCE, source), (SINK, sink)] {
            let file = self.dir.path().join(format!("{name}.json"));
            std::fs::write(&file, body.to_string()).unwrap();
            let file = file.to_str().unwrap();
            retry_cli(
                worker,
                &["connect", "create", file, "--url", worker.url.as_str()],
            );
        }
    }

    /// The number `sql` answers; 0 while the table does not exist.
    async fn number(&self, sql: &str) -> i64 {
        match self.db.query_one(sql, &[]).await {
            Ok(row) => row.get::<_, Option<i64>>(0).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Waits until the table holds at least `rows` distinct lines.
    async fn wait_for_rows(&self, rows: i64, logs: &dyn Fn() -> String) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.number("SELECT count(DISTINCT id) FROM lines").await;
            if now >= rows {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the table has {now} lines, not {rows}:\n{}",
                logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks that every line is in the table exactly once, once the sink
    /// has written everything committed to the topic.
    async fn assert_exactly_once(&self, logs: &dyn Fn() -> String) {
        self.wait_for_rows(LINES as i64, logs).await;
        let last = last_committed_record(&self.client).await;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stored = self
                .number(
                    "SELECT max(next_offset) FROM spool_connect_offsets \
                     WHERE connector = 'lines-sink' AND topic = 'lines'",
                )
                .await;
            if u64::try_from(stored).unwrap_or(0) > last {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the sink is at {stored}, the last committed record at {last}:\n{}",
                logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rows = self.number("SELECT count(*) FROM lines").await;
        let distinct = self.number("SELECT count(DISTINCT id) FROM lines").await;
        let highest = self.number("SELECT max(id) FROM lines").await;
        assert_eq!(
            (rows, distinct, highest),
            (LINES as i64, LINES as i64, LINES as i64 - 1),
            "every line exactly once:\n{}",
            logs()
        );
    }
}

/// Runs `spool` with `args` until it succeeds (a 409 while the group
/// rebalances, a worker not listening yet); answers what it printed.
fn retry_cli(worker: &WorkerProcess, args: &[&str]) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let output = Command::new(env!("CARGO_BIN_EXE_spool"))
            .args(args)
            .output()
            .unwrap();
        if output.status.success() {
            return String::from_utf8(output.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "spool {args:?}: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            worker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The worker id the source task runs on, as `worker` tells it, once it
/// runs.
fn source_runner(worker: &WorkerProcess) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = retry_cli(
            worker,
            &["connect", "status", SOURCE, "--url", worker.url.as_str()],
        );
        let status: Value = serde_json::from_str(&text).unwrap();
        let task = &status["tasks"][0];
        if task["state"] == "RUNNING" {
            return task["worker_id"].as_str().unwrap_or_default().to_string();
        }
        assert!(Instant::now() < deadline, "{status}\n{}", worker.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `worker` says the source task runs on `id`.
fn wait_for_source_on(worker: &WorkerProcess, id: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if source_runner(worker) == id {
            return;
        }
        assert!(Instant::now() < deadline, "{}", worker.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The offset of the topic's last committed record: read read_committed
/// up to the last stable offset.
async fn last_committed_record(client: &Client) -> u64 {
    let stable = last_stable_offset(client).await;
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    let tp = TopicPartition::new(TOPIC, 0);
    consumer.assign([tp.clone()]);
    let mut last = 0;
    while consumer.position(&tp).await.unwrap() < stable {
        for record in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            last = last.max(record.offset);
        }
    }
    last
}

/// The last stable offset of the topic's partition: the end of what is
/// committed.
async fn last_stable_offset(client: &Client) -> u64 {
    let request = ListOffsetsRequest {
        topics: vec![ListOffsetsTopic {
            name: TOPIC.to_string(),
            partitions: vec![ListOffsetsPartition {
                partition: 0,
                spec: OffsetSpec::Latest as i32,
                timestamp: 0,
            }],
        }],
        isolation_level: IsolationLevel::ReadCommitted as i32,
    };
    let response = client.list_offsets(request).await.unwrap();
    response.topics[0].partitions[0].offset
}

/// Appends the file's lines in small batches, as a log grows, so that
/// a kill lands while lines flow.
fn feed(path: PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        for first in (0..LINES).step_by(40) {
            let text: String = (first..(first + 40).min(LINES))
                .map(|id| format!("{{\"id\": {id}, \"line\": \"line {id}\"}}\n"))
                .collect();
            file.write_all(text.as_bytes()).unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_lines_flow_and_restarted_loses_and_repeats_nothing() {
    let s = setup().await;
    let mut workers = s.start_workers();
    s.create_connectors(&workers[0]);
    let feeder = feed(s.input.clone());
    s.wait_for_rows(200, &|| logs(&workers)).await;

    let runner = source_runner(&workers[0]);
    let victim = workers
        .iter()
        .position(|w| w.id == runner)
        .unwrap_or_else(|| panic!("the source runs on {runner}, no worker of the test"));
    let killed = workers.remove(victim).kill();
    assert!(killed.contains("rebalanced"), "{killed}");
    // The killed worker comes back, on the same config and port.
    workers.insert(victim, s.start_worker(victim));
    feeder.join().unwrap();
    s.assert_exactly_once(&|| format!("{killed}{}", logs(&workers)))
        .await;
    for worker in workers {
        worker.stop();
    }
    s.broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_lines_flow_has_its_work_taken_over() {
    let s = setup().await;
    let mut workers = s.start_workers();
    s.create_connectors(&workers[1]);
    let feeder = feed(s.input.clone());
    s.wait_for_rows(200, &|| logs(&workers)).await;

    let runner = source_runner(&workers[1]);
    let victim = workers
        .iter()
        .position(|w| w.id == runner)
        .unwrap_or_else(|| panic!("the source runs on {runner}, no worker of the test"));
    let killed = workers.remove(victim).kill();
    // The survivor takes the source over once the group drops the dead
    // worker (its session: 6 s), and says so in the status topic.
    let survivor = &workers[0];
    wait_for_source_on(survivor, &survivor.id);
    feeder.join().unwrap();
    s.assert_exactly_once(&|| format!("{killed}{}", logs(&workers)))
        .await;

    let log = workers.remove(0).stop();
    assert!(log.contains("rebalanced"), "{log}");
    s.broker.stop();
}
