//! A node started from its configuration: the checked-in example file is
//! the defaults, bad files are refused clearly, and a node with listeners
//! serves gRPC clients and shuts down cleanly.

use spool_broker::node::{Node, NodeConfig, OFF};
use spool_client::{Client, ProducerConfig, ProducerRecord};

const EXAMPLE: &str = include_str!("../../../examples/broker.toml");

#[test]
fn the_example_file_holds_every_key_at_its_default() {
    let parsed = NodeConfig::from_toml(EXAMPLE).unwrap();
    assert_eq!(parsed, NodeConfig::default());
    // Every field is written out (kafka_advertised_host, unset by default,
    // is there as a comment): a new setting must be documented there.
    let example: toml::Table = toml::from_str(EXAMPLE).unwrap();
    let defaults = toml::Table::try_from(NodeConfig::default()).unwrap();
    let missing: Vec<&String> = defaults
        .keys()
        .filter(|k| !example.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "not in examples/broker.toml: {missing:?}"
    );
    assert!(EXAMPLE.contains("# kafka_advertised_host = "));
}

#[test]
fn bad_configuration_is_refused_with_the_key_named() {
    let typo = NodeConfig::from_toml("listne = \"127.0.0.1:1\"").unwrap_err();
    assert!(typo.to_string().contains("listne"), "{typo}");
    let zero = NodeConfig {
        offsets_topic_partitions: 0,
        ..NodeConfig::default()
    };
    let refused = zero.broker_config().unwrap_err().to_string();
    assert!(refused.contains("offsets_topic_partitions"), "{refused}");
    let peers = NodeConfig {
        peers: vec!["one=127.0.0.1:1".into()],
        ..NodeConfig::default()
    };
    let refused = peers.broker_config().unwrap_err().to_string();
    assert!(refused.contains("not a node id"), "{refused}");
    let silent_member = NodeConfig {
        listen: OFF.into(),
        peers: vec!["1=127.0.0.1:1".into()],
        ..NodeConfig::default()
    };
    assert!(silent_member.broker_config().is_err());
}

#[tokio::test]
async fn a_node_serves_grpc_clients_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        metrics_listen: OFF.into(),
        kafka_listen: "127.0.0.1:0".into(),
        ..NodeConfig::default()
    };
    let node = Node::start(config.clone()).await.unwrap();
    assert!(node.metrics_address().is_none());
    assert!(node.kafka_address().is_some());
    let address = node.grpc_address().unwrap().to_string();
    let remote = Client::connect(&address).await.unwrap();
    remote.admin().create_topic("t", 2, &[]).await.unwrap();
    let producer = remote.producer(ProducerConfig::default());
    let sent = producer
        .send_and_wait(ProducerRecord::new("t", "over gRPC").partition(1))
        .await
        .unwrap();
    assert_eq!((sent.partition, sent.offset), (1, Some(0)));
    // The node's own client sees the same topic without a network.
    let info = node.client().admin().describe_topic("t").await.unwrap();
    assert_eq!(info.partitions.len(), 2);
    drop(producer);
    node.shutdown().await.unwrap();
    // The data outlives the node.
    let again = Node::embedded(dir.path()).await.unwrap();
    let info = again.client().admin().describe_topic("t").await.unwrap();
    assert_eq!(info.partitions.len(), 2);
    again.shutdown().await.unwrap();
}
