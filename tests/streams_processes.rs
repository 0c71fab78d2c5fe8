//! spool-streams as separate processes against a broker process: the
//! word count example (examples/wordcount.rs, built by `cargo test` with
//! the other examples) killed with SIGKILL at random moments and
//! restarted, then two instances sharing the work while one is killed.
//! The read_committed output must hold every word's counts exactly
//! 1..N, and no restart may restore a store from its changelog's
//! beginning.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::BrokerProcess;
use spool_client::proto::IsolationLevel;
use spool_client::{Client, ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};

const WORDS: [&str; 7] = ["red", "green", "blue", "cyan", "magenta", "yellow", "black"];

/// The example binary, next to this test's own executable.
fn wordcount_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let binary = profile_dir.join("examples").join("wordcount");
    assert!(
        binary.exists(),
        "{} missing: `cargo test` builds the examples",
        binary.display()
    );
    binary
}

/// A running wordcount instance and what it logs.
struct Instance {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Instance {
    fn start(broker: &str, state_dir: &Path, instance_id: &str) -> Instance {
        let mut child = Command::new(wordcount_binary())
            .args([
                "--bootstrap",
                broker,
                "--quiet",
                "--session-timeout-secs",
                "6",
            ])
            .args(["--instance-id", instance_id, "--state-dir"])
            .arg(state_dir)
            .env("RUST_LOG", "warn,spool_streams=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the wordcount example");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Instance { child, log }
    }

    fn kill(mut self) -> String {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log.lock().unwrap().clone();
        log
    }

    fn stop(mut self) -> String {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log.lock().unwrap().clone();
        assert!(status.success(), "wordcount exited with {status}: {log}");
        log
    }
}

/// Produces `lines` lines of three words; returns each word's count.
async fn produce(client: &Client, first: usize, lines: usize) -> BTreeMap<String, i64> {
    let producer = client.producer(Default::default());
    let mut counts = BTreeMap::new();
    let mut records = Vec::new();
    for i in first..first + lines {
        let words: Vec<&str> = (0..3)
            .map(|j| WORDS[(i * 7 + j * 3) % WORDS.len()])
            .collect();
        for w in &words {
            *counts.entry(w.to_string()).or_insert(0) += 1;
        }
        records.push(ProducerRecord::new("lines", words.join(" ")));
    }
    producer.send_batch(records).await.unwrap().await.unwrap();
    counts
}

/// Reads `word-counts` read_committed from the start until each word
/// reached `expected`; then checks every word's counts are 1..N.
async fn assert_exact(client: &Client, expected: &BTreeMap<String, i64>) {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    consumer.assign((0..2).map(|p| TopicPartition::new("word-counts", p)));
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !expected
        .iter()
        .all(|(w, n)| seen.get(w).and_then(|c| c.last()) == Some(n))
    {
        assert!(
            Instant::now() < deadline,
            "counts so far: {:?}",
            last_counts(&seen)
        );
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let word = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let count: [u8; 8] = r.value.unwrap().as_ref().try_into().unwrap();
            seen.entry(word)
                .or_default()
                .push(i64::from_be_bytes(count));
        }
    }
    for (word, counts) in &seen {
        let one_to_n: Vec<i64> = (1..=expected[word]).collect();
        assert_eq!(
            counts, &one_to_n,
            "{word}: every count exactly once, in order"
        );
    }
}

fn last_counts(seen: &BTreeMap<String, Vec<i64>>) -> BTreeMap<&String, Option<&i64>> {
    seen.iter().map(|(w, c)| (w, c.last())).collect()
}

/// Every store restore an instance logged must resume from the offset
/// its store recorded: none found its store wiped and replayed the
/// changelog from its beginning. (A store records its changelog's end
/// when it is created, so even a crash before its first commit resumes.)
fn assert_no_restore_from_the_beginning(log: &str) {
    let restores: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("restoring a store"))
        .collect();
    assert!(
        restores.iter().all(|l| l.contains(" from=")),
        "{restores:?}"
    );
    for line in restores {
        assert!(
            line.contains(" resumed=true"),
            "a restore of a store that had recorded no offset: {line}"
        );
    }
}

async fn setup() -> (tempfile::TempDir, BrokerProcess, Client) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("broker");
    let broker = BrokerProcess::start(&["--data-dir", data.to_str().unwrap()]);
    let client = Client::connect(&broker.address).await.unwrap();
    for topic in ["lines", "word-counts"] {
        client.admin().create_topic(topic, 2, &[]).await.unwrap();
    }
    (dir, broker, client)
}

/// A pseudo-random pause in `range` (milliseconds), from the clock.
fn random_pause(range: std::ops::Range<u64>) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis(range.start + nanos % (range.end - range.start))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_count_killed_at_random_moments_ends_with_exact_counts() {
    let (dir, broker, client) = setup().await;
    let state = dir.path().join("state");
    let mut logs = String::new();
    // The first run commits something before it is killed, so every
    // restart has a store to resume. One instance id throughout: a
    // restart takes the killed instance's place in the group at once
    // (static membership) and fences its transactions.
    let instance = Instance::start(&broker.address, &state, "wc-1");
    let mut expected = produce(&client, 0, 200).await;
    assert_exact(&client, &expected).await;
    // Input keeps arriving while the instance is killed and restarted
    // five times, so the kills land mid-processing, mid-transaction.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (client, stop) = (client.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let (mut fed, mut next) = (BTreeMap::new(), 200);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                fed = merge(fed, produce(&client, next, 300).await);
                next += 300;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            fed
        })
    };
    logs.push_str(&instance.kill());
    for _ in 0..5 {
        let instance = Instance::start(&broker.address, &state, "wc-1");
        tokio::time::sleep(random_pause(300..1_500)).await;
        logs.push_str(&instance.kill());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    expected = merge(expected, feeder.await.unwrap());
    let instance = Instance::start(&broker.address, &state, "wc-1");
    assert_exact(&client, &expected).await;
    let last = instance.stop();
    assert!(last.contains("records_processed: "), "{last}");
    logs.push_str(&last);
    assert!(
        logs.contains("restoring a store"),
        "no restart restored anything:\n{logs}"
    );
    assert_no_restore_from_the_beginning(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_work_and_one_takes_over_when_the_other_is_killed() {
    let (dir, broker, client) = setup().await;
    let a = Instance::start(&broker.address, &dir.path().join("a"), "wc-a");
    let b = Instance::start(&broker.address, &dir.path().join("b"), "wc-b");
    wait_for_members(&broker.address, 2);
    let mut expected = produce(&client, 0, 2_000).await;
    assert_exact(&client, &expected).await;
    assert_stores_described(&broker.address, &dir.path().join("a"));
    let killed = b.kill();
    expected = merge(expected, produce(&client, 2_000, 2_000).await);
    assert_exact(&client, &expected).await;
    let survivor = a.stop();
    // The survivor took over the killed instance's count tasks, their
    // stores restored from the changelogs the other wrote.
    assert!(
        survivor.contains("restoring a store") && !survivor.contains("records_restored: 0"),
        "the survivor restored nothing:\n{killed}\n{survivor}"
    );
}

/// `spool streams describe --state-dir` shows the running instance's
/// count stores, read beside it: each with its size and the changelog
/// offset it recorded.
fn assert_stores_described(broker: &str, state: &std::path::Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(["streams", "describe", "--application-id", "wordcount"])
        .args([
            "--state-dir",
            state.to_str().unwrap(),
            "--bootstrap",
            broker,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}{errors}");
    let rows: Vec<&str> = text.lines().filter(|l| l.contains(" counts ")).collect();
    assert!(
        !rows.is_empty(),
        "no count store described:\n{text}{errors}"
    );
    for row in rows {
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert!(columns[0].contains('_'), "a task id: {row}");
        assert!(columns[2].parse::<u64>().unwrap() > 0, "a size: {row}");
        assert!(
            columns[3].parse::<u64>().is_ok(),
            "a recorded offset: {row}"
        );
    }
}

/// Waits until the application's group is stable with `count` members.
fn wait_for_members(broker: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = Command::new(env!("CARGO_BIN_EXE_spool"))
            .args(["groups", "describe", "wordcount", "--bootstrap", broker])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        if text.contains("state Stable") && text.contains(&format!("members {count}")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the group never had {count} members: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn merge(mut total: BTreeMap<String, i64>, more: BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    for (w, n) in more {
        *total.entry(w).or_insert(0) += n;
    }
    total
}
