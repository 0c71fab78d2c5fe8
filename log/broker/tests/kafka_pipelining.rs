//! The Kafka listener's pipelined Produce requests: a client that sends
//! several requests on one connection before reading any answer gets
//! every answer, in request order, with an idempotent producer's batches
//! in the log in sequence order; a request of another kind waits for the
//! Produce requests before it.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use spool_broker::broker::{Broker, BrokerConfig};
use spool_broker::kafka::{serve, KafkaConfig};
use spool_broker::EmbeddedTransport;
use spool_protocol::proto::InitProducerIdRequest;
use spool_record::{BatchBuilder, Compression};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOPIC: &str = "payments";
const PRODUCE_VERSION: i16 = 7;
const LIST_OFFSETS_VERSION: i16 = 1;
const RECORDS_PER_BATCH: i32 = 10;

/// A length-prefixed request frame.
fn frame<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, request: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("pipelining-test")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api.request_header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.put_i32(body.len() as i32);
    framed.extend_from_slice(&body);
    framed
}

fn produce(producer_id: i64, sequence: i32) -> ProduceRequest {
    let mut builder = BatchBuilder::new(Compression::None).producer(producer_id, 0, sequence);
    for i in 0..RECORDS_PER_BATCH {
        let value = format!("record {}", sequence + i);
        builder.push(1_000, None, Some(value.as_bytes()), &[]);
    }
    let partition = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(Bytes::from(builder.build())));
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_partition_data(vec![partition]);
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![topic])
}

fn latest_offset() -> ListOffsetsRequest {
    let partition = ListOffsetsPartition::default()
        .with_partition_index(0)
        .with_timestamp(-1);
    let topic = ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_partitions(vec![partition]);
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![topic])
}

/// The next response: its correlation id and its body.
async fn read_response(stream: &mut TcpStream, api: ApiKey, version: i16) -> (i32, Bytes) {
    let length = stream.read_i32().await.unwrap();
    let mut body = vec![0u8; length as usize];
    stream.read_exact(&mut body).await.unwrap();
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
    (header.correlation_id, body)
}

/// A Produce frame of one batch of the producer's, numbered from
/// `sequence`.
fn produce_frame(producer_id: i64, sequence: i32, correlation_id: i32) -> Vec<u8> {
    let request = produce(producer_id, sequence);
    frame(ApiKey::Produce, PRODUCE_VERSION, correlation_id, &request)
}

/// The next answer, read as a Produce's: its correlation id and its one
/// partition's result.
async fn read_produce_answer(
    stream: &mut TcpStream,
) -> (i32, produce_response::PartitionProduceResponse) {
    let (id, mut body) = read_response(stream, ApiKey::Produce, PRODUCE_VERSION).await;
    let mut response = ProduceResponse::decode(&mut body, PRODUCE_VERSION).unwrap();
    (
        id,
        response.responses.remove(0).partition_responses.remove(0),
    )
}

/// A broker with the topic, an idempotent producer id, and its Kafka
/// listener's port.
async fn start(dir: &std::path::Path) -> (Arc<Broker>, i64, u16) {
    let broker: Arc<Broker> = Broker::open(BrokerConfig::new(dir)).await.unwrap();
    EmbeddedTransport::client(Arc::clone(&broker))
        .admin()
        .create_topic(TOPIC, 1, &[])
        .await
        .unwrap();
    let producer_id = broker
        .init_producer_id(InitProducerIdRequest::default())
        .await
        .producer_id;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = KafkaConfig::new("127.0.0.1", port);
    tokio::spawn(serve(
        Arc::clone(&broker),
        config,
        listener,
        std::future::pending(),
    ));
    (broker, producer_id, port)
}

#[tokio::test]
async fn pipelined_produce_requests_are_answered_in_order_and_a_list_offsets_waits_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, producer_id, port) = start(dir.path()).await;

    // Five Produce requests (Kafka's clients keep up to five in flight),
    // a ListOffsets, then one more Produce: all sent before any answer is
    // read.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut requests = Vec::new();
    for correlation_id in 1..=5 {
        let sequence = (correlation_id - 1) * RECORDS_PER_BATCH;
        requests.extend(produce_frame(producer_id, sequence, correlation_id));
    }
    let list = latest_offset();
    requests.extend(frame(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, 6, &list));
    requests.extend(produce_frame(producer_id, 5 * RECORDS_PER_BATCH, 7));
    stream.write_all(&requests).await.unwrap();

    for correlation_id in 1..=7 {
        if correlation_id == 6 {
            let (id, mut body) =
                read_response(&mut stream, ApiKey::ListOffsets, LIST_OFFSETS_VERSION).await;
            assert_eq!(id, 6);
            let response = ListOffsetsResponse::decode(&mut body, LIST_OFFSETS_VERSION).unwrap();
            let partition = &response.topics[0].partitions[0];
            assert_eq!(partition.error_code, 0);
            assert_eq!(
                partition.offset,
                i64::from(5 * RECORDS_PER_BATCH),
                "the ListOffsets sees every Produce sent before it, committed"
            );
            continue;
        }
        let (id, partition) = read_produce_answer(&mut stream).await;
        assert_eq!(id, correlation_id, "answers come in request order");
        assert_eq!(partition.error_code, 0, "request {correlation_id}");
        let batch = if correlation_id < 6 {
            correlation_id - 1
        } else {
            5
        };
        assert_eq!(
            partition.base_offset,
            i64::from(batch * RECORDS_PER_BATCH),
            "batches land in sequence order"
        );
    }
    assert!(!body_left(&mut stream).await, "no answer beyond the seven");
}

/// Whether the connection has anything more to read within a moment.
async fn body_left(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        stream.read(&mut byte),
    )
    .await;
    matches!(read, Ok(Ok(n)) if n > 0)
}

#[tokio::test]
async fn a_malformed_produce_closes_the_connection_after_the_ones_before_it_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, producer_id, port) = start(dir.path()).await;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut requests = Vec::new();
    for correlation_id in 1..=3 {
        let sequence = (correlation_id - 1) * RECORDS_PER_BATCH;
        requests.extend(produce_frame(producer_id, sequence, correlation_id));
    }
    // A Produce header followed by a body cut short.
    let mut malformed = produce_frame(producer_id, 3 * RECORDS_PER_BATCH, 4);
    malformed.truncate(40);
    malformed[..4].copy_from_slice(&36i32.to_be_bytes());
    requests.extend(malformed);
    stream.write_all(&requests).await.unwrap();

    for correlation_id in 1..=3 {
        let (id, partition) = read_produce_answer(&mut stream).await;
        assert_eq!(id, correlation_id);
        assert_eq!(partition.error_code, 0, "request {correlation_id}");
    }
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut rest),
    )
    .await
    .expect("the connection is closed");
    assert!(
        read.is_ok() && rest.is_empty(),
        "nothing answers the malformed request: {rest:?}"
    );
}
