//! The `spool` binary as a user runs it: `spool bench log` prints one JSON
//! line with the figures docs/benchmarks.md records, `spool bench produce
//! --kafka` writes its records through the Kafka listener, and bad
//! arguments get a clear error.

use std::process::Command;

mod common;

fn spool(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(args)
        .output()
        .expect("run spool")
}

#[test]
fn bench_log_prints_one_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = spool(&[
        "bench",
        "log",
        "--records",
        "5000",
        "--record-size",
        "100",
        "--fsync-every",
        "65536",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["records"], 5000);
    for field in [
        "records_per_sec",
        "mb_per_sec",
        "p50_ms",
        "p99_ms",
        "read_mb_per_sec",
        "baseline_mb_per_sec",
    ] {
        assert!(
            summary[field].as_f64().unwrap() > 0.0,
            "{field} in {summary}"
        );
    }
    assert!(summary["fsyncs"].as_u64().unwrap() >= summary["bytes"].as_u64().unwrap() / 65536);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the benchmark cleans up after itself"
    );
}

#[test]
fn bench_log_rejects_bad_arguments() {
    let out = spool(&["bench", "log", "--records", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    let out = spool(&["bench", "log", "--record-size", "lots"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value"));
}

#[test]
fn bench_produce_over_the_kafka_listener_writes_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let kafka = broker.kafka_address.clone().expect("a Kafka listener");
    let out = spool(&[
        "bench",
        "produce",
        "--bootstrap",
        &broker.address,
        "--topic",
        "kafka-bench",
        "--records",
        "5000",
        "--record-size",
        "20",
        "--send-batch",
        "300",
        "--acks",
        "all",
        "--kafka",
        &kafka,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["records"], 5000);
    assert!(summary["records_per_sec"].as_f64().unwrap() > 0.0);

    let read = spool(&[
        "consume",
        "kafka-bench",
        "--bootstrap",
        &broker.address,
        "--from-beginning",
        "--max",
        "6000",
        "--idle-timeout-ms",
        "2000",
        "--format",
        "json",
    ]);
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let records = common::json_lines(&String::from_utf8(read.stdout).unwrap());
    let offsets: Vec<u64> = records
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, (0..5000).collect::<Vec<u64>>());
    broker.stop();
}
