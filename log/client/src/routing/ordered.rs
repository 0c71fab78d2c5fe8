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
//!
//! Order is what the broker's sequence checks rely on, not what they
//! need: a request that overtakes an earlier one anyway (a stream that
//! broke and was reopened, a leader that moved) is refused as out of
//! sequence once the partition knows the producer, and the producer sends
//! it again after the earlier one (`producer::sender`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use super::{Partitioned, Routes};
use crate::{ClientError, PendingProduce, Result};
use spool_protocol::proto::spool_client::SpoolClient;
use spool_protocol::proto::*;

type Answer = oneshot::Sender<Result<ProduceResponse>>;

/// How often a stream looks whether its oldest request's sender gave up
/// waiting (the producer's request timeout ran out).
const GIVE_UP_CHECK: Duration = Duration::from_secs(1);

/// The open produce streams of a client, by broker (`None`: the
/// bootstrap broker, on a single node). Dropping them ends every stream:
/// the broker answers what it was sent, then closes its side.
#[derive(Default)]
pub(super) struct ProduceStreams {
    streams: Mutex<HashMap<Option<u32>, ProduceStream>>,
}

/// The handle of one stream, kept by [`ProduceStreams`]; dropping it
/// ends the stream.
struct ProduceStream {
    shared: Arc<Shared>,
}

/// What a stream's handle and its answering task share.
struct Shared {
    /// `None` once the stream ended: it takes no more requests.
    open: Mutex<Option<Open>>,
    address: String,
}

/// An open stream: requests go out through `requests`, and `slots` holds
/// their answer slots in the same order. Ending the stream drops
/// `requests`, which ends the request side on the wire too, so the
/// broker stops reading, answers what it read, and ends its side.
struct Open {
    requests: mpsc::UnboundedSender<ProduceRequest>,
    slots: VecDeque<Answer>,
}

impl ProduceStreams {
    /// Queues `request` on the stream to `broker` (reached with `client`
    /// at `address`), opening one if none is open or the open one just
    /// ended; resolves to its answer.
    fn send(
        &self,
        broker: Option<u32>,
        client: impl FnOnce() -> SpoolClient<Channel>,
        address: String,
        request: ProduceRequest,
    ) -> oneshot::Receiver<Result<ProduceResponse>> {
        let (answer, answered) = oneshot::channel();
        let mut streams = self.streams.lock();
        let queued = match streams.get(&broker) {
            Some(stream) => stream.shared.send(request, answer),
            None => Err((request, answer)),
        };
        if let Err((request, answer)) = queued {
            let stream = ProduceStream::open(client(), address);
            // A stream just opened takes it, unless its task already
            // failed (the runtime shutting down): then the answer says so.
            if let Err((_, answer)) = stream.shared.send(request, answer) {
                let _ = answer.send(Err(stream.shared.broke("the produce stream ended")));
            }
            streams.insert(broker, stream);
        }
        answered
    }
}

impl ProduceStream {
    fn open(mut client: SpoolClient<Channel>, address: String) -> ProduceStream {
        let (requests, mut outgoing) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            open: Mutex::new(Some(Open {
                requests,
                slots: VecDeque::new(),
            })),
            address,
        });
        let answering = Arc::clone(&shared);
        tokio::spawn(async move {
            let outgoing = futures::stream::poll_fn(move |cx| outgoing.poll_recv(cx));
            let reason = match client.produce_stream(outgoing).await {
                Ok(answers) => answering.answer(answers.into_inner()).await,
                Err(status) => status.to_string(),
            };
            answering.close(&reason);
        });
        ProduceStream { shared }
    }
}

impl Drop for ProduceStream {
    fn drop(&mut self) {
        self.shared.close("the client was dropped");
    }
}

impl Shared {
    /// Sends `request` with its answer slot, both under the lock so that
    /// the slots stay in the requests' order; gives them back if the
    /// stream ended.
    fn send(
        &self,
        request: ProduceRequest,
        answer: Answer,
    ) -> std::result::Result<(), (ProduceRequest, Answer)> {
        let mut open = self.open.lock();
        let Some(open) = open.as_mut() else {
            return Err((request, answer));
        };
        match open.requests.send(request) {
            Ok(()) => {
                open.slots.push_back(answer);
                Ok(())
            }
            Err(mpsc::error::SendError(request)) => Err((request, answer)),
        }
    }

    /// Hands each answer to the oldest waiting request until the stream
    /// ends; returns why it ended. A stream whose oldest request was
    /// given up on (its sender's timeout ran out) is ended too, as
    /// Kafka's client closes a connection on a request timeout: the
    /// broker may be hung, and the retry should not queue behind it.
    async fn answer(&self, mut answers: tonic::Streaming<ProduceResponse>) -> String {
        let mut check = tokio::time::interval(GIVE_UP_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                answer = answers.message() => match answer {
                    Ok(Some(response)) => {
                        let slot = self.open.lock().as_mut().and_then(|o| o.slots.pop_front());
                        if let Some(slot) = slot {
                            let _ = slot.send(Ok(response));
                        }
                    }
                    Ok(None) => return "the broker ended the produce stream".into(),
                    Err(status) => return status.to_string(),
                },
                _ = check.tick() => {
                    let open = self.open.lock();
                    let oldest = open.as_ref().and_then(|o| o.slots.front());
                    if oldest.is_some_and(oneshot::Sender::is_closed) {
                        return "a request on the produce stream timed out".into();
                    }
                }
            }
        }
    }

    /// Ends the stream: every request still waiting fails, and the next
    /// request opens a new stream.
    fn close(&self, reason: &str) {
        let Some(open) = self.open.lock().take() else {
            return;
        };
        for slot in open.slots {
            let _ = slot.send(Err(self.broke(reason)));
        }
    }

    /// The error of a request the stream could not answer: a transport
    /// failure, which the producer retries.
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
                let answer = answered.await.unwrap_or_else(|_| Err(gone(&address)))?;
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
        let answers: Vec<_> = parts
            .into_iter()
            .map(|(leader, part)| self.send_part(leader, part))
            .collect();
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

    /// Queues one leader's part of a request on its stream; the answer to
    /// come gives its partitions `NOT_LEADER` if the leader cannot be
    /// reached, as [`Routes::call`] does. A part whose leader is unknown
    /// is answered `NOT_LEADER` at once, not sent to any broker: only a
    /// leader's stream keeps the order, and the retry, after fresh
    /// metadata, goes to the leader.
    fn send_part(
        &self,
        leader: Option<u32>,
        part: ProduceRequest,
    ) -> impl std::future::Future<Output = ProduceResponse> + Send + 'static {
        let broker = leader.and_then(|node| self.state.read().brokers.get(&node).cloned());
        let (unreachable, answered) = match broker {
            Some((address, client)) => {
                let unreachable = part.failed(
                    ErrorCode::NotLeader,
                    "the partition's leader is unreachable",
                );
                let answered = self
                    .produce_streams
                    .send(leader, || client, address.clone(), part);
                (unreachable, Some((answered, address)))
            }
            None => {
                let unknown =
                    part.failed(ErrorCode::NotLeader, "the partition's leader is unknown");
                (unknown, None)
            }
        };
        async move {
            let Some((answered, address)) = answered else {
                return unreachable;
            };
            match answered.await.unwrap_or_else(|_| Err(gone(&address))) {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::debug!(error = %e, "a partition leader did not answer");
                    unreachable
                }
            }
        }
    }
}

/// The error of a request whose stream's task went away without
/// answering it (it panicked, or the runtime is shutting down).
fn gone(address: &str) -> ClientError {
    ClientError::Transport {
        address: address.to_string(),
        reason: "the produce stream went away".into(),
    }
}
