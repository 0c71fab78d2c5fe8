//! Apache Kafka's own Java clients (kafka-clients 4.4.0, the strictest
//! client there is) against a broker process's Kafka listener:
//! tests/java/JavaClients.java checks every record's offset, key, value,
//! headers and timestamp; idempotent and transactional producers,
//! read_committed, offsets committed in a transaction and zombie fencing;
//! cooperative-sticky groups and static membership; the admin client on
//! topics, configs, partitions and groups. The same program passes
//! against Apache Kafka itself (docs/kafka-compatibility.md says how to
//! run it there).
//!
//! Kafka's jars come from scripts/kafka-reference.sh (fetched once into
//! ~/.cache/spool, which scripts/test.sh does before the tests).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::BrokerProcess;

/// Kafka's classpath, from the reference harness.
fn kafka_classpath() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka-reference.sh");
    let output = Command::new("bash")
        .args([script, "classpath"])
        .output()
        .expect("running scripts/kafka-reference.sh");
    assert!(
        output.status.success(),
        "scripts/kafka-reference.sh classpath failed (scripts/test.sh fetches Kafka): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Compiles tests/java/JavaClients.java into `out`.
fn compile(classpath: &str, out: &Path) {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/JavaClients.java");
    let output = Command::new("javac")
        .args(["-d", out.to_str().unwrap(), "-cp", classpath, source])
        .output()
        .expect("running javac (scripts/kafka-reference.sh installs a JDK)");
    assert!(
        output.status.success(),
        "javac failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn log4j_config() -> PathBuf {
    let home = std::env::var("SPOOL_KAFKA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/spool/kafka-4.4.0")
        });
    home.join("log4j2.properties")
}

#[test]
fn kafka_java_clients_read_and_write_spool_as_they_do_kafka() {
    let classpath = kafka_classpath();
    let classes = tempfile::tempdir().unwrap();
    compile(&classpath, classes.path());
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let bootstrap = broker.kafka_address.clone().expect("a Kafka listener");
    let full_classpath = format!("{classpath}:{}", classes.path().display());
    for scenario in ["records", "transactions", "groups", "admin"] {
        let output = Command::new("java")
            .arg("-Xmx512m")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                log4j_config().display()
            ))
            .args(["-cp", &full_classpath, "JavaClients", scenario, &bootstrap])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(&format!("ok {scenario}")),
            "scenario {scenario} failed:\n{stdout}\n{}\nbroker log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            broker.log()
        );
    }
    broker.stop();
}
