//! Apache Kafka's own Kafka Streams and Kafka Connect (the 4.4.0 Java
//! runtimes, connect-file 4.3.1) against a broker process's Kafka
//! listener. The same programs pass against Apache Kafka itself
//! (docs/kafka-compatibility.md says how to run them there):
//!
//! - tests/java/StreamsWordCount.java: a word count under exactly_once_v2
//!   halted in the middle of its input (no close, a transaction left
//!   open) and restarted; every word's committed counts read back are
//!   exactly 1, 2, ..., N, so nothing was counted twice or lost;
//! - tests/java/ConnectFilePipe.java: a distributed Connect worker whose
//!   group and config, offset and status topics live on the broker; a
//!   FileStreamSource and a FileStreamSink connector, created through its
//!   REST API, copy a file through a topic into another file, line for
//!   line.
//!
//! Kafka's jars come from scripts/kafka-reference.sh (fetched once into
//! ~/.cache/spool, which scripts/test.sh does before the tests).

mod common;

use common::java::{compile, java, kafka_classpath};
use common::BrokerProcess;

/// Compiles `sources` (under tests/java/) and runs `class` against a
/// fresh broker's Kafka listener; it must print `ok {what}` and exit 0.
fn run_against_spool(sources: &[&str], class: &str, what: &str) {
    let classpath = kafka_classpath();
    let classes = tempfile::tempdir().unwrap();
    compile(&classpath, sources, classes.path());
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let bootstrap = broker.kafka_address.as_deref().expect("a Kafka listener");
    let output = java(&classpath, classes.path(), class)
        .arg(bootstrap)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(&format!("ok {what}")),
        "{class} failed ({}):\n{stdout}\n{}\nbroker log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        broker.log()
    );
    broker.stop();
}

#[test]
fn kafka_streams_counts_exactly_once_across_a_crash() {
    run_against_spool(&["StreamsWordCount.java"], "StreamsWordCount", "streams");
}

#[test]
fn kafka_connect_copies_a_file_through_a_topic() {
    run_against_spool(
        &["ConnectFilePipe.java", "compat/AppInfoParser.java"],
        "ConnectFilePipe",
        "connect",
    );
}
