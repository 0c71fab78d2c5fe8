//! Produce requests sent in order: one `ProduceStream` per broker, on
//! which the broker proposes requests in the order they arrive and
//! answers them in that order.
//!
//! A request is split by leader as [`Routes::call`] splits it, and each
//! part is queued on its leader's stream before [`Routes::send_in_order`]
//! returns, so a request sent after it is behind it on every stream. The
//! answers come back in the order of the requests; a stream that breaks
//! fails every request still waiting on it (a retriable transport error,
//! or `NOT_LEADER` for its partitions on a cluster, as an unreachable
//! leader answers in `call`), and the next request opens a new one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use super::{Partitioned, Routes};
use crate::{ClientError, PendingProduce, Result};
use spool_protocol::proto::spool_client::SpoolClient;
use spool_protocol::proto::*;

type Answer = oneshot::Sender<Result<ProduceResponse>>;

/// The open produce streams of a client, by broker (`None`: the
/// bootstrap broker, on a single node).
#[derive(Default)]
pub(super) struct ProduceStreams {
    streams: Mutex<HashMap<Option<u32>, Arc<ProduceStream>>>,
}

/// One open stream: requests go out through `requests`, and `waiting`
/// holds their answer slots in the same order.
struct ProduceStream {
    requests: mpsc::UnboundedSender<ProduceRequest>,
    /// Answer slots of the requests sent and not answered, oldest first;
    /// `None` once the stream ended (it takes no more requests).
    waiting: Mutex<Option<VecDeque<Answer>>>,
    address: String,
}

impl ProduceStreams {
    /// Queues `request` on the stream to `broker` (reached with `client`
    /// at `address`), opening one if none is open; resolves to its answer.
    fn send(
        &self,
        broker: Option<u32>,
        client: impl FnOnce() -> SpoolClient<Channel>,
        address: String,
        request: ProduceRequest,
    ) -> oneshot::Receiver<Result<ProduceResponse>> {
        let (answer, answered) = oneshot::channel();
        let mut streams = self.streams.lock();
        let stream = match streams.get(&broker) {
            Some(stream) if stream.is_open() => Arc::clone(stream),
            _ => {
                let stream = ProduceStream::open(client(), address);
                streams.insert(broker, Arc::clone(&stream));
                stream
            }
        };
        stream.send(request, answer);
        answered
    }
}

impl ProduceStream {
    fn open(mut client: SpoolClient<Channel>, address: String) -> Arc<ProduceStream> {
        let (requests, mut outgoing) = mpsc::unbounded_channel();
        let stream = Arc::new(ProduceStream {
            requests,
            waiting: Mutex::new(Some(VecDeque::new())),
            address,
        });
        let answering = Arc::clone(&stream);
        tokio::spawn(async move {
            let outgoing = futures::stream::poll_fn(move |cx| outgoing.poll_recv(cx));
            let reason = match client.produce_stream(outgoing).await {
                Ok(answers) => answering.answer(answers.into_inner()).await,
                Err(status) => status.to_string(),
            };
            answering.close(&reason);
        });
        stream
    }

    fn is_open(&self) -> bool {
        self.waiting.lock().is_some()
    }

    /// Sends `request`, or fails `answer` if the stream just ended.
    fn send(&self, request: ProduceRequest, answer: Answer) {
        let mut waiting = self.waiting.lock();
        match waiting.as_mut() {
            // Both under the lock: the slots stay in the requests' order.
            Some(slots) if self.requests.send(request).is_ok() => slots.push_back(answer),
            _ => {
                let _ = answer.send(Err(self.broke("the produce stream ended")));
            }
        }
    }

    /// Hands each answer to the oldest waiting request until the stream
    /// ends; returns why it ended.
    async fn answer(&self, mut answers: tonic::Streaming<ProduceResponse>) -> String {
        loop {
            match answers.message().await {
                Ok(Some(response)) => {
                    let slot = self.waiting.lock().as_mut().and_then(VecDeque::pop_front);
                    if let Some(slot) = slot {
                        let _ = slot.send(Ok(response));
                    }
                }
                Ok(None) => return "the broker ended the produce stream".into(),
                Err(status) => return status.to_string(),
            }
        }
    }

    /// Ends the stream: every request still waiting fails, and the next
    /// request opens a new stream.
    fn close(&self, reason: &str) {
        let slots = self.waiting.lock().take().unwrap_or_default();
        for slot in slots {
            let _ = slot.send(Err(self.broke(reason)));
        }
    }

    fn broke(&self, reason: &str) -> ClientError {
        ClientError::Transport {
            address: self.address.clone(),
            reason: reason.to_string(),
        }
    }
}

impl Routes {
    /// Sends `request` in order (see the module's doc) and returns its
    /// answer to come, merged from every leader's part.
    pub async fn send_in_order(&self, request: ProduceRequest) -> Result<PendingProduce> {
        self.learn(&request.topic_names()).await;
        let single_node = self.state.read().brokers.len() <= 1;
        if single_node {
            let address = self.bootstrap_address.clone();
            let answered =
                self.produce_streams
                    .send(None, || self.bootstrap(), address.clone(), request);
            let state = Arc::clone(&self.state);
            return Ok(Box::pin(async move {
                let answer = answered.await.unwrap_or_else(|_| Err(dropped(&address)))?;
                super::forget(&state, ProduceRequest::stale(&answer));
                Ok(answer)
            }));
        }
        let parts = {
            let state = self.state.read();
            request.split(|topic, partition| {
                state.leaders.get(&(topic.to_string(), partition)).copied()
            })
        };
        let mut answers = Vec::with_capacity(parts.len());
        for (leader, part) in parts {
            let unreachable = part.failed(
                ErrorCode::NotLeader,
                "the partition's leader is unreachable",
            );
            let broker = leader.and_then(|node| self.state.read().brokers.get(&node).cloned());
            let answered: PendingProduce = match broker {
                Some((address, client)) => {
                    let answered = self.produce_streams.send(leader, || client, address, part);
                    Box::pin(async move { answered.await.unwrap_or_else(|_| Err(dropped(""))) })
                }
                // A partition whose leader is unknown is asked of any
                // broker, whose answer names the leader; its retry comes
                // in order once the leader is known.
                None => {
                    let mut client = self.metadata_source();
                    Box::pin(async move {
                        let answer = client.produce(part).await;
                        answer
                            .map(tonic::Response::into_inner)
                            .map_err(|status| dropped(&status.to_string()))
                    })
                }
            };
            answers.push(async move {
                answered.await.unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "a partition leader did not answer");
                    unreachable
                })
            });
        }
        let state = Arc::clone(&self.state);
        Ok(Box::pin(async move {
            let mut merged = ProduceResponse::default();
            for answer in futures::future::join_all(answers).await {
                super::forget(&state, ProduceRequest::stale(&answer));
                ProduceRequest::merge(&mut merged, answer);
            }
            Ok(merged)
        }))
    }
}

fn dropped(reason: &str) -> ClientError {
    ClientError::Transport {
        address: String::new(),
        reason: format!("the produce stream went away: {reason}"),
    }
}
