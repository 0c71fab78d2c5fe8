//! The embedded transport: a client of a broker in the same process.
//!
//! Each RPC calls the broker's method of the same name with the same
//! protocol message a gRPC client would send, so an embedded program runs
//! exactly the broker code a remote client reaches, minus the network.
//! The broker answers every failure inside its responses, so an embedded
//! call never fails in transport.

use std::sync::Arc;

use ::spool_client::{Client, PendingProduce, Result, Transport};
use futures::future::BoxFuture;
use spool_protocol::proto::*;

use crate::Broker;

/// A [`Transport`] that hands each request to a broker in this process.
#[derive(Clone)]
pub struct EmbeddedTransport {
    broker: Arc<Broker>,
}

impl EmbeddedTransport {
    pub fn new(broker: Arc<Broker>) -> EmbeddedTransport {
        EmbeddedTransport { broker }
    }

    /// A client of `broker`.
    pub fn client(broker: Arc<Broker>) -> Client {
        Client::new(Arc::new(EmbeddedTransport::new(broker)))
    }
}

/// One method per RPC: `async` RPCs await the broker's method, `sync` ones
/// call it directly.
macro_rules! embedded {
    (@call async $broker:expr, $name:ident, $request:ident) => { $broker.$name($request).await };
    (@call sync $broker:expr, $name:ident, $request:ident) => { $broker.$name($request) };
    ($($kind:ident $name:ident($request:ty) -> $response:ty;)*) => {
        impl Transport for EmbeddedTransport {
            $(
                fn $name(&self, request: $request) -> BoxFuture<'_, Result<$response>> {
                    Box::pin(async move { Ok(embedded!(@call $kind self.broker, $name, request)) })
                }
            )*

            // Proposed before it resolves, answered after, as the gRPC
            // produce stream does.
            fn produce_in_order(&self, request: ProduceRequest) -> BoxFuture<'_, Result<PendingProduce>> {
                Box::pin(async move {
                    let proposed = self.broker.propose(request).await;
                    let answer = async move { Ok(proposed.answered().await) };
                    Ok(Box::pin(answer) as PendingProduce)
                })
            }
        }
    };
}

spool_protocol::with_rpcs!(embedded);
