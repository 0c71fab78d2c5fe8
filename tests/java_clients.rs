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

mod common;

use common::java::{compile, java, kafka_classpath};
use common::BrokerProcess;

#[test]
fn kafka_java_clients_read_and_write_spool_as_they_do_kafka() {
    let classpath = kafka_classpath();
    let classes = tempfile::tempdir().unwrap();
    compile(&classpath, &["JavaClients.java"], classes.path());
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let bootstrap = broker.kafka_address.clone().expect("a Kafka listener");
    for scenario in ["records", "transactions", "groups", "admin"] {
        let output = java(&classpath, classes.path(), "JavaClients")
            .args([scenario, &bootstrap])
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
