//! `ProduceStream`: one producer connection's produce requests, proposed
//! to their partitions in the order they arrive and answered in that
//! order.
//!
//! Unary `Produce` calls on one HTTP/2 connection are served by tasks of
//! their own, so two calls in flight may reach a partition's log in
//! either order; a producer then keeps one request per partition in
//! flight and waits a whole round trip between them. On a stream the
//! broker proposes each request before it reads the next one (the first
//! phase of [`Broker::produce`]), so an idempotent producer's batches
//! reach each log in sequence order with several requests in flight,
//! while each answer waits only for its own commit (the second phase).
//! The Kafka listener pipelines a connection's Produce requests the
//! same way (`crate::kafka::connection`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesOrdered, Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::metrics::{Metrics, Payload};
use crate::broker::Broker;
use spool_protocol::proto::{ProduceRequest, ProduceResponse};

/// Requests of one stream proposed and not yet answered, at most; past
/// this many the stream is not read until the oldest is answered. A
/// producer keeps at most five per partition in flight, and a request
/// holds every partition the producer has batches ready for, so this is
/// rarely reached.
const MAX_PIPELINED: usize = 16;

/// The answers of a produce stream, in request order.
pub type ProduceAnswers = Pin<Box<dyn Stream<Item = Result<ProduceResponse, Status>> + Send>>;

/// Serves one produce stream: a task reads `requests`, proposes each in
/// turn, and sends the answers in order into the returned stream. It
/// stops when the client ends its requests or goes away, or when
/// `stopping` is set (the server shuts down), then ends the stream once
/// it answered every request it proposed.
pub fn answer_in_order(
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
    stopping: watch::Receiver<bool>,
    requests: Streaming<ProduceRequest>,
) -> ProduceAnswers {
    let (answers, mut receiver) = mpsc::channel(MAX_PIPELINED);
    tokio::spawn(serve(broker, metrics, stopping, requests, answers));
    Box::pin(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}

/// The task of [`answer_in_order`]: proposing each request before it
/// reads the next is what keeps the stream's order in the logs.
async fn serve(
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
    mut stopping: watch::Receiver<bool>,
    mut requests: Streaming<ProduceRequest>,
    answers: mpsc::Sender<Result<ProduceResponse, Status>>,
) {
    let mut pending = FuturesOrdered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            // A server gone (the sender dropped) stops the stream too.
            () = stopped(&mut stopping), if reading => reading = false,
            next = requests.message(), if reading && pending.len() < MAX_PIPELINED => {
                match next {
                    Ok(Some(request)) => {
                        let started = Instant::now();
                        let bytes_in = request.payload_bytes();
                        let proposed = broker.propose(request).await;
                        pending.push_back(async move {
                            (proposed.answered().await, started, bytes_in)
                        });
                    }
                    // The client sent its last request: answer the rest.
                    Ok(None) => reading = false,
                    // A request that cannot be read ends the reading; what
                    // was proposed is still answered, if anyone listens.
                    Err(status) => {
                        tracing::debug!(%status, "a produce stream broke");
                        reading = false;
                    }
                }
            }
            Some((response, started, bytes_in)) = pending.next(), if !pending.is_empty() => {
                metrics.record("produce", started.elapsed(), bytes_in, response.payload_bytes());
                if answers.send(Ok(response)).await.is_err() {
                    return;
                }
            }
            else => return,
        }
    }
}

/// Waits until `stopping` is set, or its sender is gone.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}
