//! A real broker process, and real client processes talking to it over
//! sockets: one produces, another consumes, and both see the same data in
//! the same order per partition; garbage on the port does not hurt it; a
//! clean stop and restart keeps everything.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

mod common;

use common::{json_lines, run, BrokerProcess};

fn spool(address: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spool"));
    command.args(args).env("SPOOL_BOOTSTRAP", address);
    run(&mut command, stdin.unwrap_or(""))
}

fn consumed(address: &str, topic: &str, max: usize) -> Vec<serde_json::Value> {
    let out = spool(
        address,
        &[
            "consume",
            topic,
            "--from-beginning",
            "--max",
            &max.to_string(),
            "--format",
            "json",
        ],
        None,
    );
    json_lines(&String::from_utf8(out.stdout).unwrap())
}

#[test]
fn one_process_produces_another_consumes_the_same_data_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let address = broker.address.clone();
    spool(
        &address,
        &["topics", "create", "events", "--partitions", "3"],
        None,
    );

    let input: String = (0..3000)
        .map(|i| format!("user{}:event-{i}\n", i % 10))
        .collect();
    spool(
        &address,
        &["produce", "events", "--key-separator", ":", "--acks", "all"],
        Some(&input),
    );
    let records = consumed(&address, "events", 3000);
    assert_eq!(records.len(), 3000);

    // Per partition, offsets are dense and increasing and each user's events
    // keep the order they were produced in.
    for partition in 0..3 {
        let offsets: Vec<u64> = records
            .iter()
            .filter(|r| r["partition"] == partition)
            .map(|r| r["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
    }
    for user in 0..10 {
        let key = format!("user{user}");
        let events: Vec<u64> = records
            .iter()
            .filter(|r| r["key"] == key.as_str())
            .map(|r| r["value"].as_str().unwrap()[6..].parse().unwrap())
            .collect();
        let expected: Vec<u64> = (0..3000).filter(|i| i % 10 == user).collect();
        assert_eq!(events, expected, "{key}");
    }

    // A clean stop and a restart on the same directory keep every record.
    let stderr = broker.stop();
    assert!(stderr.contains("stopped cleanly"), "{stderr}");
    let broker = BrokerProcess::start(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        &address,
    ]);
    assert_eq!(consumed(&address, "events", 3000), records);
    drop(broker);
}

#[test]
fn garbage_on_the_port_does_not_hurt_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    spool(&broker.address, &["topics", "create", "t"], None);
    spool(&broker.address, &["produce", "t"], Some("before\n"));
    for garbage in [
        &b"\x00\x01\x02garbage\xff\xfe"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0x16, 0x03, 0x01, 0x02, 0x00],
    ] {
        let mut stream = TcpStream::connect(&broker.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let _ = stream.write_all(garbage);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
    spool(&broker.address, &["produce", "t"], Some("after\n"));
    let values: Vec<String> = consumed(&broker.address, "t", 2)
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(values, vec!["before", "after"]);
}

#[test]
fn client_commands_report_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_spool"))
            .args(args)
            .env("SPOOL_BOOTSTRAP", &broker.address)
            .output()
            .unwrap()
    };
    for (args, expected) in [
        (&["topics", "create", "bad name"][..], "invalid topic name"),
        (
            &["topics", "create", "t", "--config", "retention.ms=soon"],
            "invalid value `soon` for config `retention.ms`",
        ),
        (
            &["topics", "create", "t", "--config", "nonsense"],
            "expected key=value",
        ),
        (
            &["topics", "describe", "missing"],
            "unknown topic `missing`",
        ),
        (
            &["consume", "missing", "--max", "1"],
            "unknown topic `missing`",
        ),
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(["topics", "list", "--bootstrap", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("transport error"));
}

fn scrape(address: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    response
}

fn metric(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line[series.len()..].trim().parse().unwrap()
}

#[test]
fn metrics_endpoint_reports_traffic_partitions_and_lag() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let metrics = broker
        .metrics_address
        .clone()
        .expect("the broker reports its metrics address");
    spool(&broker.address, &["topics", "create", "t"], None);
    let input: String = (0..10).map(|i| format!("record {i}\n")).collect();
    spool(&broker.address, &["produce", "t"], Some(&input));
    spool(
        &broker.address,
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--from-beginning",
            "--max",
            "4",
        ],
        None,
    );

    let text = scrape(&metrics);
    assert!(metric(&text, "spool_requests_total{rpc=\"produce\"}") >= 1.0);
    assert!(metric(&text, "spool_request_seconds_count{rpc=\"fetch\"}") >= 1.0);
    assert!(metric(&text, "spool_bytes_in_total") > 0.0);
    assert!(metric(&text, "spool_bytes_out_total") > 0.0);
    assert_eq!(
        metric(
            &text,
            "spool_partition_log_end_offset{topic=\"t\",partition=\"0\"}"
        ),
        10.0
    );
    assert_eq!(
        metric(
            &text,
            "spool_consumer_group_lag{group=\"g\",topic=\"t\",partition=\"0\"}"
        ),
        6.0
    );
}

#[test]
fn transactions_from_the_command_line_commit_abort_and_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let address = broker.address.clone();
    spool(&address, &["topics", "create", "payments"], None);
    let produce = |lines: &str, extra: &[&str]| {
        let mut args = vec!["produce", "payments", "--transactional-id", "cli-tx"];
        args.extend_from_slice(extra);
        spool(&address, &args, Some(lines));
    };
    produce("kept-1\nkept-2\n", &[]);
    produce("dropped\n", &["--abort"]);
    produce("kept-3\n", &[]);
    let read = |isolation: &str| -> Vec<String> {
        let out = spool(
            &address,
            &[
                "consume",
                "payments",
                "--from-beginning",
                "--isolation",
                isolation,
                "--idle-timeout-ms",
                "1500",
            ],
            None,
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(read("read_committed"), ["kept-1", "kept-2", "kept-3"]);
    assert_eq!(
        read("read_uncommitted"),
        ["kept-1", "kept-2", "dropped", "kept-3"]
    );
    let listed =
        String::from_utf8(spool(&address, &["transactions", "list"], None).stdout).unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("cli-tx") && l.ends_with("CompleteCommit")),
        "{listed}"
    );
    let described =
        String::from_utf8(spool(&address, &["transactions", "describe", "cli-tx"], None).stdout)
            .unwrap();
    // Three inits and three ends, each bumping the epoch once.
    assert!(described.contains("(epoch 5)"), "{described}");
    // Nothing is open, so there is nothing to abort: a clear refusal.
    let refused = Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(["transactions", "abort", "cli-tx"])
        .env("SPOOL_BOOTSTRAP", &address)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no open transaction"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    drop(broker);
}

/// A second broker on a data directory a running broker serves exits at
/// once with an error naming the holder, before touching a file; the
/// first goes on serving, and once it stopped the directory is free.
#[test]
fn a_second_broker_on_a_served_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let first = BrokerProcess::start(&["--data-dir", data]);
    spool(&first.address, &["topics", "create", "kept"], None);
    let started = std::time::Instant::now();
    let second = Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(["broker", "--data-dir", data, "--listen", "127.0.0.1:0"])
        .args(["--kafka-listen", "off", "--metrics-listen", "off"])
        .output()
        .unwrap();
    assert!(!second.status.success(), "the second broker started");
    assert!(started.elapsed() < Duration::from_secs(10));
    let error = String::from_utf8_lossy(&second.stderr);
    assert!(error.contains("is in use by process"), "{error}");
    assert!(error.contains(".lock"), "{error}");
    // The first is unharmed: it still serves what it had.
    spool(&first.address, &["produce", "kept"], Some("one\n"));
    let values: Vec<_> = consumed(&first.address, "kept", 1)
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(values, vec![serde_json::json!("one")]);
    first.stop();
    let again = BrokerProcess::start(&["--data-dir", data]);
    assert_eq!(consumed(&again.address, "kept", 1).len(), 1);
    again.stop();
}

/// A bootstrap list (`SPOOL_BOOTSTRAP` or `--bootstrap`, as Kafka's
/// bootstrap.servers) starts a client while any one of its brokers
/// answers; when none does, the error names every one tried.
#[test]
fn a_bootstrap_list_reaches_the_broker_that_answers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let down = "127.0.0.1:1";
    let list = format!("{down}, {}", broker.address);
    spool(&list, &["topics", "create", "listed"], None);
    spool(&list, &["produce", "listed"], Some("one\n"));
    assert_eq!(consumed(&list, "listed", 1).len(), 1);
    let out = Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(["topics", "list", "--bootstrap", "127.0.0.1:1,127.0.0.1:2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("127.0.0.1:1") && error.contains("127.0.0.1:2"),
        "{error}"
    );
}
