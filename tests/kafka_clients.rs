//! Kafka's own clients against a real broker process's Kafka listener:
//! kcat (librdkafka's command-line tool), confluent-kafka (librdkafka in
//! Python) and kafka-python (a client written from scratch), beside
//! spool's own command line over gRPC. What one writes, every other reads
//! with the same offsets, keys, values, headers and timestamps; groups and
//! committed offsets are shared; aborted transactions stay hidden from
//! read_committed readers of both protocols; and a client probing with a
//! newer ApiVersions gets error 35 instead of a closed connection.
//!
//! The clients are installed by scripts/test.sh (Debian's kcat, PyPI's
//! confluent-kafka and kafka-python); tests/kafka/clients.py drives the
//! Python ones.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

mod common;

use common::{json_lines, kafka_clients, run, BrokerProcess};

/// A broker with its Kafka listener on a free port.
struct Broker {
    process: BrokerProcess,
    kafka: String,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let process = BrokerProcess::start(&["--data-dir", dir.path().to_str().unwrap()]);
        let kafka = process.kafka_address.clone().expect("a Kafka listener");
        Broker {
            process,
            kafka,
            _dir: dir,
        }
    }

    fn spool(&self, args: &[&str], stdin: &str) -> String {
        let output = run(
            Command::new(env!("CARGO_BIN_EXE_spool"))
                .args(args)
                .env("SPOOL_BOOTSTRAP", &self.process.address),
            stdin,
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// What `spool consume --format json` prints, one record per line.
    fn spool_consume(&self, topic: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec![
            "consume",
            topic,
            "--format",
            "json",
            "--idle-timeout-ms",
            "3000",
        ];
        args.extend(extra);
        json_lines(&self.spool(&args, ""))
    }

    fn python(&self, args: &[&str]) -> String {
        kafka_clients(args)
    }

    fn python_produce(&self, lib: &str, topic: &str, prefix: &str, count: usize) {
        self.python(&[
            "produce",
            lib,
            &self.kafka,
            topic,
            prefix,
            &count.to_string(),
        ]);
    }

    fn python_consume(
        &self,
        lib: &str,
        topic: &str,
        count: usize,
        group: &str,
        isolation: &str,
    ) -> Vec<Value> {
        let count = count.to_string();
        let args = ["consume", lib, &self.kafka, topic, &count, group, isolation];
        json_lines(&self.python(&args))
    }

    fn kcat(&self, args: &[&str], stdin: &str) -> String {
        let output = run(
            Command::new("kcat").args(["-b", &self.kafka]).args(args),
            stdin,
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// kcat's JSON envelopes (`-J`), in the shape spool prints.
    fn kcat_consume(&self, topic: &str) -> Vec<Value> {
        json_lines(&self.kcat(&["-C", "-t", topic, "-o", "beginning", "-e", "-J"], ""))
            .into_iter()
            .map(|envelope| {
                let pairs = envelope["headers"].as_array().cloned().unwrap_or_default();
                let headers: serde_json::Map<String, Value> = pairs
                    .chunks(2)
                    .map(|pair| (pair[0].as_str().unwrap().to_string(), pair[1].clone()))
                    .collect();
                json!({
                    "headers": headers,
                    "key": envelope["key"],
                    "offset": envelope["offset"],
                    "partition": envelope["partition"],
                    "timestamp": envelope["ts"],
                    "value": envelope["payload"],
                })
            })
            .collect()
    }
}

fn field<'a>(records: &'a [Value], name: &str) -> Vec<&'a Value> {
    records.iter().map(|r| &r[name]).collect()
}

#[test]
fn every_client_reads_what_every_other_wrote_with_the_same_offsets_keys_values_headers_and_times() {
    let broker = Broker::start();
    broker.spool(&["topics", "create", "mixed", "--partitions", "1"], "");
    broker.spool(
        &["produce", "mixed", "--key-separator", ":"],
        "s-k0:s-v0\ns-k1:s-v1\n",
    );
    broker.kcat(
        &["-P", "-t", "mixed", "-K:", "-H", "via=kcat"],
        "kc-k0:kc-v0\nkc-k1:kc-v1\n",
    );
    broker.python_produce("confluent", "mixed", "c", 3);
    broker.python_produce("kafka-python", "mixed", "kp", 3);

    let written = broker.spool_consume("mixed", &["--from-beginning", "--max", "10"]);
    let keys: Vec<&str> = written.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["s-k0", "s-k1", "kc-k0", "kc-k1", "c-k0", "c-k1", "c-k2", "kp-k0", "kp-k1", "kp-k2"]
    );
    let offsets: Vec<u64> = written
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    // The Python clients set the create time; it travels unchanged.
    assert_eq!(written[4]["timestamp"], json!(1_700_000_000_000u64));
    assert_eq!(written[9]["timestamp"], json!(1_700_000_000_002u64));
    assert_eq!(written[2]["headers"], json!({"via": "kcat"}));
    assert_eq!(written[7]["headers"], json!({"via": "kafka-python"}));

    let readers = [
        ("kcat", broker.kcat_consume("mixed")),
        (
            "confluent-kafka",
            broker.python_consume("confluent", "mixed", 10, "-", "read_uncommitted"),
        ),
        (
            "kafka-python",
            broker.python_consume("kafka-python", "mixed", 10, "-", "read_uncommitted"),
        ),
    ];
    for (reader, records) in &readers {
        for name in [
            "offset",
            "key",
            "value",
            "timestamp",
            "headers",
            "partition",
        ] {
            assert_eq!(
                field(records, name),
                field(&written, name),
                "{reader} read other {name}s than spool's consumer"
            );
        }
    }
}

#[test]
fn batches_in_every_kafka_codec_are_stored_and_read_by_both_protocols() {
    let broker = Broker::start();
    let codecs = [
        ("confluent", "gzip"),
        ("confluent", "snappy"),
        ("confluent", "lz4"),
        ("confluent", "zstd"),
        // kafka-python's other codecs need Python libraries not installed.
        ("kafka-python", "gzip"),
    ];
    for (lib, codec) in codecs {
        let count = "20";
        let prefix = format!("{lib}-{codec}");
        broker.python(&[
            "produce",
            lib,
            &broker.kafka,
            "packed",
            &prefix,
            count,
            codec,
        ]);
    }
    // spool decompresses every batch (it validates each record before
    // appending), and its consumer and the Kafka clients read them all.
    let spool = broker.spool_consume("packed", &["--from-beginning", "--max", "100"]);
    assert_eq!(spool.len(), 100);
    assert_eq!(spool[20]["key"], json!("confluent-snappy-k0"));
    assert_eq!(spool[80]["key"], json!("kafka-python-gzip-k0"));
    let kafka = broker.python_consume("confluent", "packed", 100, "-", "read_uncommitted");
    assert_eq!(field(&kafka, "value"), field(&spool, "value"));
}

#[test]
fn groups_and_committed_offsets_are_shared_between_the_protocols() {
    let broker = Broker::start();
    broker.python_produce("kafka-python", "shared", "a", 6);
    let read = broker.python_consume("confluent", "shared", 6, "billing", "read_uncommitted");
    assert_eq!(read.len(), 6);
    let committed = |lib: &str| {
        let out = broker.python(&["committed", lib, &broker.kafka, "billing", "shared"]);
        out.trim().parse::<i64>().unwrap()
    };
    assert_eq!(committed("kafka-python"), 6, "the Kafka consumer's commit");

    // spool's own consumer, over gRPC, resumes the group where the Kafka
    // consumer committed, and its commit is what Kafka clients see next.
    broker.spool(
        &["produce", "shared", "--key-separator", ":"],
        "b-k0:b-v0\nb-k1:b-v1\n",
    );
    let resumed = broker.spool_consume("shared", &["--group", "billing", "--max", "2"]);
    assert_eq!(field(&resumed, "offset"), [&json!(6), &json!(7)]);
    assert_eq!(
        committed("confluent"),
        8,
        "spool's commit, seen by librdkafka"
    );
    let described = broker.spool(&["groups", "describe", "billing"], "");
    assert!(described.contains("shared"), "{described}");
}

#[test]
fn kafka_transactions_hide_aborted_records_from_read_committed_readers_of_both_protocols() {
    let broker = Broker::start();
    broker.python(&[
        "transactions",
        &broker.kafka,
        "ledger",
        "ledger-writer",
        "4",
    ]);
    let committed = ["t0-0", "t0-1", "t2-0", "t2-1"];
    let values = |records: &[Value]| -> Vec<String> {
        records
            .iter()
            .map(|r| r["value"].as_str().unwrap().to_string())
            .collect()
    };
    let kafka_python = broker.python_consume("kafka-python", "ledger", 4, "-", "read_committed");
    assert_eq!(values(&kafka_python), committed);
    let confluent = broker.python_consume("confluent", "ledger", 4, "-", "read_committed");
    assert_eq!(values(&confluent), committed);
    let spool = broker.spool_consume(
        "ledger",
        &["--from-beginning", "--isolation", "read_committed"],
    );
    assert_eq!(values(&spool), committed);
    // The aborted records are in the log: read_uncommitted sees all eight.
    let everything = broker.spool_consume("ledger", &["--from-beginning"]);
    assert_eq!(everything.len(), 8, "{everything:?}");
}

/// A request frame: api key, version, correlation id, client id, body.
fn frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut request = Vec::new();
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&version.to_be_bytes());
    request.extend_from_slice(&correlation_id.to_be_bytes());
    request.extend_from_slice(&4i16.to_be_bytes());
    request.extend_from_slice(b"test");
    request.extend_from_slice(body);
    let mut framed = (request.len() as i32).to_be_bytes().to_vec();
    framed.extend(request);
    framed
}

fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).unwrap();
    body
}

/// ApiVersions v0's answer: correlation id, error code, (key, min, max)s.
fn parse_api_versions_v0(response: &[u8]) -> (i32, i16, Vec<(i16, i16, i16)>) {
    let i16_at = |at: usize| i16::from_be_bytes([response[at], response[at + 1]]);
    let correlation = i32::from_be_bytes(response[0..4].try_into().unwrap());
    let count = i32::from_be_bytes(response[6..10].try_into().unwrap()) as usize;
    let apis = (0..count)
        .map(|i| {
            let at = 10 + i * 6;
            (i16_at(at), i16_at(at + 2), i16_at(at + 4))
        })
        .collect();
    (correlation, i16_at(4), apis)
}

#[test]
fn a_newer_api_versions_gets_error_35_and_bad_frames_close_only_their_connection() {
    let broker = Broker::start();
    let connect = || {
        let stream = TcpStream::connect(&broker.kafka).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    };
    let mut stream = connect();
    stream.write_all(&frame(18, 99, 7, b"anything")).unwrap();
    let (correlation, error, apis) = parse_api_versions_v0(&read_response(&mut stream));
    assert_eq!((correlation, error), (7, 35));
    assert!(
        apis.contains(&(18, 0, 3)),
        "ApiVersions 0-3 advertised: {apis:?}"
    );
    // The same connection then negotiates down and is answered.
    stream.write_all(&frame(18, 0, 8, b"")).unwrap();
    let (correlation, error, apis) = parse_api_versions_v0(&read_response(&mut stream));
    assert_eq!((correlation, error), (8, 0));
    assert!(
        apis.iter().any(|&(key, _, _)| key == 0),
        "Produce advertised"
    );

    // A frame claiming 2 GiB, an unknown API and a truncated body each
    // close their connection; the broker keeps serving others.
    for bad in [
        i32::MAX.to_be_bytes().to_vec(),
        frame(999, 0, 1, b""),
        frame(3, 1, 1, &[0, 0, 0, 9]),
    ] {
        let mut stream = connect();
        stream.write_all(&bad).unwrap();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "a bad frame was answered: {rest:?}"
        );
    }
    let mut stream = connect();
    stream.write_all(&frame(18, 0, 9, b"")).unwrap();
    assert_eq!(parse_api_versions_v0(&read_response(&mut stream)).1, 0);
}
