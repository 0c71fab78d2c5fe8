//! How a client's requests reach brokers.

use futures::future::BoxFuture;
use spool_protocol::proto::*;

use crate::{Client, Result};

macro_rules! transport {
    ($($kind:ident $name:ident($request:ty) -> $response:ty;)*) => {
        /// How a [`Client`]'s requests reach brokers: one method per RPC of
        /// the protocol (`spool_protocol::with_rpcs!`).
        ///
        /// The contract every method keeps:
        ///
        /// - **Delivery.** The request reaches the broker that must answer
        ///   it (a partition's leader, a group's or transactional id's
        ///   coordinator, the controller's leader), or is split among them
        ///   with their answers merged, so the caller sees one response per
        ///   request in the request's own order of partitions and items.
        ///   An embedded transport has one broker and calls it directly.
        /// - **Failures.** A broker's refusal (per partition, per topic, per
        ///   request) travels *inside* the response as an `ErrorCode` and a
        ///   message. `Err` means the request could not be delivered: it got
        ///   no answer ([`ClientError::Transport`](crate::ClientError::Transport),
        ///   [`ClientError::Timeout`](crate::ClientError::Timeout)), and the
        ///   caller cannot tell whether it took effect; or the broker to
        ///   deliver it to could not be found (a coordinator lookup refused,
        ///   as [`ClientError::Broker`](crate::ClientError::Broker)). Callers retry by
        ///   [`ClientError::is_retriable`](crate::ClientError::is_retriable);
        ///   idempotent producers make a retried produce safe.
        /// - **Following the cluster.** Answers of `NOT_LEADER` or
        ///   `NOT_COORDINATOR`, and unreachable brokers, make the transport
        ///   forget what it knew of that partition or coordinator, so the
        ///   caller's retry goes where the cluster now says.
        /// - **Cancellation.** Dropping the returned future abandons the
        ///   wait, not the request: it may still take effect.
        /// - **No blocking.** Methods never block the calling thread; all
        ///   waiting happens in the returned future.
        pub trait Transport: Send + Sync + 'static {
            $(
                #[doc = concat!("Sends a `", stringify!($request), "`; see the trait's contract.")]
                fn $name(&self, request: $request) -> BoxFuture<'_, Result<$response>>;
            )*

            /// Sends a produce request *in order*: once the returned future
            /// resolves, the request is on its way to each partition's
            /// leader behind every request sent before it this way, and
            /// ahead of every request sent after; it resolves to the answer
            /// to come, under `produce`'s contract. A producer keeps several
            /// requests in flight per partition this way and still has its
            /// batches appended in order (as Kafka's producer does with
            /// `max.in.flight.requests.per.connection`).
            ///
            /// `Err` means the request was not sent. The default sends
            /// through `produce` and resolves once answered: correct, with
            /// one request in flight at a time.
            fn produce_in_order(&self, request: ProduceRequest) -> BoxFuture<'_, Result<PendingProduce>> {
                Box::pin(async move {
                    let answer = self.produce(request).await;
                    Ok(Box::pin(std::future::ready(answer)) as PendingProduce)
                })
            }
        }

        /// One method per RPC, sent through the client's transport.
        impl Client {
            /// Sends a produce request in order; see
            /// [`Transport::produce_in_order`].
            pub async fn produce_in_order(&self, request: ProduceRequest) -> Result<PendingProduce> {
                self.transport.produce_in_order(request).await
            }

            $(
                pub async fn $name(&self, request: $request) -> Result<$response> {
                    self.transport.$name(request).await
                }
            )*
        }
    };
}

spool_protocol::with_rpcs!(transport);

/// The answer to a produce request sent with
/// [`Transport::produce_in_order`], to be awaited while later requests go
/// out.
pub type PendingProduce = BoxFuture<'static, Result<ProduceResponse>>;
