//! Apache Kafka's own command-line tools (4.4.0, from the reference
//! harness scripts/kafka-reference.sh) against a broker process's Kafka
//! listener: the commands an operator types, each checked by what the
//! tool prints. docs/kafka-compatibility.md lists them ("Kafka's tools
//! against spool").

use std::process::{Command, Output};

mod common;

use common::{run, BrokerProcess};

/// Runs Kafka's tool `name` with `args` (and `stdin`) against `bootstrap`;
/// answers what it printed on standard output.
fn tool(name: &str, bootstrap: &str, args: &[&str], stdin: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka-reference.sh");
    let mut command = Command::new("bash");
    command
        .args([script, "tool", name, "--bootstrap-server", bootstrap])
        .args(args);
    let Output { stdout, .. } = run(&mut command, stdin);
    String::from_utf8(stdout).unwrap()
}

fn assert_prints(printed: &str, expected: &str, what: &str) {
    assert!(
        printed.contains(expected),
        "{what}: expected `{expected}` in:\n{printed}"
    );
}

#[test]
fn kafkas_tools_administer_spool() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let b = broker.kafka_address.clone().expect("a Kafka listener");
    let b = b.as_str();

    // kafka-topics: created with a count, and placed by hand.
    let created = tool(
        "kafka-topics",
        b,
        &["--create", "--topic", "tools", "--partitions", "2"],
        "",
    );
    assert_prints(&created, "Created topic tools.", "kafka-topics --create");
    let placed = [
        "--create",
        "--topic",
        "placed",
        "--replica-assignment",
        "1,1",
    ];
    assert_prints(
        &tool("kafka-topics", b, &placed, ""),
        "Created topic placed.",
        "--replica-assignment",
    );
    let described = tool("kafka-topics", b, &["--describe", "--topic", "placed"], "");
    assert_prints(&described, "PartitionCount: 2", "kafka-topics --describe");
    assert_prints(&described, "Replicas: 1", "kafka-topics --describe");

    // kafka-configs: a setting changed, then listed.
    let config = ["--entity-type", "topics", "--entity-name", "tools"];
    let altered = tool(
        "kafka-configs",
        b,
        &[
            &config[..],
            &["--alter", "--add-config", "retention.ms=3600000"],
        ]
        .concat(),
        "",
    );
    assert_prints(
        &altered,
        "Completed updating config",
        "kafka-configs --alter",
    );
    let listed = tool(
        "kafka-configs",
        b,
        &[&config[..], &["--describe"]].concat(),
        "",
    );
    assert_prints(&listed, "retention.ms=3600000", "kafka-configs --describe");

    // Console producer and a consumer in a group; the group's lag.
    let lines: String = (0..20).map(|i| format!("line-{i}\n")).collect();
    tool("kafka-console-producer", b, &["--topic", "tools"], &lines);
    let read = tool(
        "kafka-console-consumer",
        b,
        &[
            "--topic",
            "tools",
            "--group",
            "readers",
            "--from-beginning",
            "--max-messages",
            "20",
        ],
        "",
    );
    let mut got: Vec<&str> = read.lines().collect();
    got.sort_unstable();
    let mut want: Vec<String> = (0..20).map(|i| format!("line-{i}")).collect();
    want.sort_unstable();
    assert_eq!(got, want, "the console consumer read every line once");
    let groups = tool(
        "kafka-consumer-groups",
        b,
        &["--describe", "--group", "readers"],
        "",
    );
    assert_prints(&groups, "tools", "kafka-consumer-groups --describe");

    // kafka-delete-records, seen by kafka-get-offsets.
    let file = dir.path().join("delete.json");
    let spec = r#"{"partitions":[{"topic":"tools","partition":0,"offset":-1},{"topic":"tools","partition":1,"offset":-1}],"version":1}"#;
    std::fs::write(&file, spec).unwrap();
    let deleted = tool(
        "kafka-delete-records",
        b,
        &["--offset-json-file", file.to_str().unwrap()],
        "",
    );
    assert_prints(&deleted, "low_watermark", "kafka-delete-records");
    let earliest = tool(
        "kafka-get-offsets",
        b,
        &["--topic", "tools", "--time", "-2"],
        "",
    );
    let latest = tool(
        "kafka-get-offsets",
        b,
        &["--topic", "tools", "--time", "-1"],
        "",
    );
    assert_eq!(
        earliest, latest,
        "after deleting everything, earliest is latest"
    );

    // kafka-consumer-groups --delete, once.
    let gone = tool(
        "kafka-consumer-groups",
        b,
        &["--delete", "--group", "readers"],
        "",
    );
    assert_prints(&gone, "was successful", "kafka-consumer-groups --delete");

    // A transaction, as kafka-transactions lists and describes it.
    let perf = [
        "--topic",
        "tools",
        "--num-records",
        "100",
        "--record-size",
        "10",
        "--throughput",
        "-1",
        "--transactional-id",
        "tools-txn",
        "--transaction-duration-ms",
        "100",
    ];
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka-reference.sh");
    let mut producer = Command::new("bash");
    producer
        .args([
            script,
            "tool",
            "kafka-producer-perf-test",
            "--command-property",
        ])
        .arg(format!("bootstrap.servers={b}"))
        .args(perf);
    run(&mut producer, "");
    assert_prints(
        &tool("kafka-transactions", b, &["list"], ""),
        "tools-txn",
        "kafka-transactions list",
    );
    let described = tool(
        "kafka-transactions",
        b,
        &["describe", "--transactional-id", "tools-txn"],
        "",
    );
    assert_prints(&described, "CompleteCommit", "kafka-transactions describe");
    broker.stop();
}
