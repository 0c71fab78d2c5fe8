//! An idempotent producer keeps several requests per partition in flight
//! on the broker's produce stream, and its records still land in the
//! order they were sent, each once, when requests in the middle of the
//! pipeline are not sent at all or their answers are lost (the request
//! was appended; the producer cannot tell). Without idempotence a
//! partition keeps one request in flight, sent as a unary `Produce`.
//!
//! The client reaches a broker over gRPC through a transport that counts
//! the produce requests in flight, holds each answer a little (so that
//! requests pile up as they do behind a replicated write) and injects
//! the faults.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::spool_client::{
    Client, ClientError, ConsumerConfig, OffsetReset, PendingProduce, ProducerConfig,
    ProducerRecord, Result, TopicPartition, Transport,
};
use futures::future::BoxFuture;
use spool_broker::broker::{Broker, BrokerConfig};
use spool_broker::grpc::{serve, Metrics};
use spool_protocol::proto::*;
use tokio::net::TcpListener;

const TOPIC: &str = "pipelined";
const RECORDS: usize = 3_000;

/// Which produce requests fail, by their number (from 0).
#[derive(Clone, Copy)]
struct Faults {
    /// Every this many, a request is not sent (`produce_in_order` fails).
    unsent_every: Option<usize>,
    /// Every this many, a request is sent and its answer lost.
    lost_every: Option<usize>,
}

impl Faults {
    const NONE: Faults = Faults {
        unsent_every: None,
        lost_every: None,
    };
}

struct Pipeline {
    inner: Client,
    faults: Faults,
    sent: AtomicUsize,
    injected: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

fn injected(what: &str) -> ClientError {
    ClientError::Transport {
        address: "127.0.0.1:1".into(),
        reason: format!("{what} (injected)"),
    }
}

/// Whether request `n` meets a fault that comes every `every` requests,
/// from the first one on: the first request, sent before the broker
/// knows the producer, is the one whose order nothing on the broker
/// checks.
fn hits(every: Option<usize>, n: usize) -> bool {
    every.is_some_and(|every| n % every == 0)
}

impl Pipeline {
    /// A unary produce (a producer without idempotence sends those),
    /// counted and held as the ordered ones are.
    async fn counted_produce(&self, request: ProduceRequest) -> Result<ProduceResponse> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let answer = self.inner.produce(request).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }
}

macro_rules! pipeline_transport {
    (@call produce $self:ident $request:ident) => { $self.counted_produce($request).await };
    (@call $name:ident $self:ident $request:ident) => { $self.inner.$name($request).await };
    ($($kind:ident $name:ident($request:ty) -> $response:ty;)*) => {
        impl Transport for Pipeline {
            $(
                fn $name(&self, request: $request) -> BoxFuture<'_, Result<$response>> {
                    Box::pin(async move { pipeline_transport!(@call $name self request) })
                }
            )*

            fn produce_in_order(&self, request: ProduceRequest) -> BoxFuture<'_, Result<PendingProduce>> {
                Box::pin(async move {
                    let n = self.sent.fetch_add(1, Ordering::SeqCst);
                    if hits(self.faults.unsent_every, n) {
                        self.injected.fetch_add(1, Ordering::SeqCst);
                        return Err(injected("the request was not sent"));
                    }
                    let answer = self.inner.produce_in_order(request).await?;
                    let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    self.most_in_flight.fetch_max(now, Ordering::SeqCst);
                    let in_flight = Arc::clone(&self.in_flight);
                    let lost = hits(self.faults.lost_every, n);
                    if lost {
                        self.injected.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Box::pin(async move {
                        let answer = answer.await;
                        tokio::time::sleep(Duration::from_millis(3)).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        match lost {
                            true => Err(injected("the answer was lost")),
                            false => answer,
                        }
                    }) as PendingProduce)
                })
            }
        }
    };
}

spool_protocol::with_rpcs!(pipeline_transport);

/// What one run saw: the values in log order, the most produce requests
/// in flight at once, and the faults injected.
struct Run {
    values: Vec<String>,
    most_in_flight: usize,
    injected: usize,
}

async fn produce(idempotence: bool, faults: Faults) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut config = BrokerConfig::new(dir.path());
    config.advertised_address = address.clone();
    let broker = Broker::open(config).await.unwrap();
    tokio::spawn(serve(
        broker,
        Arc::new(Metrics::default()),
        listener,
        std::future::pending(),
    ));
    let grpc = Client::connect(&address).await.unwrap();
    grpc.admin().create_topic(TOPIC, 1, &[]).await.unwrap();
    let pipeline = Pipeline {
        inner: grpc.clone(),
        faults,
        sent: AtomicUsize::new(0),
        injected: Arc::default(),
        in_flight: Arc::default(),
        most_in_flight: Arc::default(),
    };
    let (injected, most) = (
        Arc::clone(&pipeline.injected),
        Arc::clone(&pipeline.most_in_flight),
    );
    let producer = Client::new(Arc::new(pipeline)).producer(ProducerConfig {
        idempotence,
        // Small batches, sent at once: many requests, each of one batch.
        batch_size: 512,
        linger: Duration::ZERO,
        request_timeout: Duration::from_secs(5),
        retry_backoff: Duration::from_millis(10),
        ..Default::default()
    });
    let mut acks = Vec::new();
    for i in 0..RECORDS {
        let record = ProducerRecord::new(TOPIC, format!("value-{i}").into_bytes());
        acks.push(producer.send(record).await.unwrap());
    }
    for (i, ack) in acks.into_iter().enumerate() {
        let placed = ack.await.expect("every record is acknowledged");
        assert_eq!(
            placed.offset,
            Some(i as u64),
            "record {i} acknowledged at its place"
        );
    }

    let mut consumer = grpc.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..Default::default()
    });
    consumer.assign([TopicPartition::new(TOPIC, 0)]);
    let mut values = Vec::new();
    while values.len() < RECORDS {
        for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    let end = grpc.admin().describe_topic(TOPIC).await.unwrap().partitions[0].high_watermark;
    assert_eq!(end, RECORDS as u64, "nothing was appended twice");
    Run {
        values,
        most_in_flight: most.load(Ordering::SeqCst),
        injected: injected.load(Ordering::SeqCst),
    }
}

fn in_order() -> Vec<String> {
    (0..RECORDS).map(|i| format!("value-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_pipelines_a_partition_and_keeps_its_order() {
    let run = produce(true, Faults::NONE).await;
    assert!(
        run.values == in_order(),
        "the log holds the records in order"
    );
    assert!(
        run.most_in_flight >= 2,
        "requests of one partition were pipelined: at most {} in flight",
        run.most_in_flight
    );
    assert!(
        run.most_in_flight <= 5,
        "at most five in flight: {}",
        run.most_in_flight
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsent_requests_and_lost_answers_in_a_pipeline_keep_order_and_append_once() {
    let run = produce(
        true,
        Faults {
            unsent_every: Some(7),
            lost_every: Some(11),
        },
    )
    .await;
    assert!(run.injected >= 10, "faults were injected: {}", run.injected);
    assert!(
        run.values == in_order(),
        "the log holds the records in order, once each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_idempotence_a_partition_keeps_one_request_in_flight() {
    let run = produce(false, Faults::NONE).await;
    assert!(
        run.values == in_order(),
        "the log holds the records in order"
    );
    assert_eq!(run.most_in_flight, 1);
}
