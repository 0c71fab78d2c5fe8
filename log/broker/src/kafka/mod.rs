//! Kafka's wire protocol, beside the gRPC service: existing Kafka clients
//! and tools (librdkafka, kcat, kafka-python, the Java client) talk to the
//! same broker.
//!
//! This module owns only the translation. Every request is decoded with
//! the `kafka-protocol` crate, turned into the broker's own request and
//! answered by the same [`Broker`] method the gRPC service calls — the
//! same partitions, group coordinator and transaction coordinator, never a
//! second implementation. Record batches pass through untouched: spool
//! stores Kafka's v2 batch format byte for byte, so a record produced over
//! one protocol reads back over the other with the same offset, key,
//! value, headers and timestamp.
//!
//! Layout: [`connection`] frames requests and answers them in order;
//! [`versions`] is the table of APIs and versions served (and ApiVersions
//! itself); [`data`], [`admin`], [`groups`] and [`transactions`] translate
//! one family of requests each; [`codes`] maps spool's error codes to
//! Kafka's. docs/kafka-compatibility.md lists what is and is not served.

mod admin;
mod codes;
mod configs;
mod connection;
mod data;
mod groups;
mod producers;
mod transactions;
mod versions;

pub use versions::decode_request;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::broker::Broker;
use crate::{BrokerError, Result};

/// Configuration of the Kafka listener.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Host that Metadata and FindCoordinator give clients for this broker
    /// (default: the listener's own address). Kafka clients connect to the
    /// advertised address, not the bootstrap one, so it must be reachable
    /// from them.
    pub advertised_host: String,
    pub advertised_port: u16,
    /// Create a topic the first time a client asks for its metadata, as
    /// Kafka's `auto.create.topics.enable` (default on, as in Kafka: many
    /// Kafka programs and librdkafka's tests rely on it).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic (default 1, Kafka's
    /// `num.partitions`).
    pub auto_create_partitions: u32,
    /// Largest request frame accepted (default 100 MiB, Kafka's
    /// `socket.request.max.bytes`); a larger one closes the connection
    /// before anything is read into memory.
    pub max_request_bytes: usize,
}

impl KafkaConfig {
    /// The defaults for a listener bound at `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> KafkaConfig {
        KafkaConfig {
            advertised_host: host.into(),
            advertised_port: port,
            auto_create_topics: true,
            auto_create_partitions: 1,
            max_request_bytes: 100 << 20,
        }
    }
}

/// A Kafka nullable string as spool's, where empty means none.
pub(crate) fn text_or_empty(value: Option<&str>) -> String {
    value.unwrap_or_default().to_string()
}

/// spool's string as a Kafka nullable one: null when empty.
pub(crate) fn none_if_empty(value: String) -> Option<kafka_protocol::protocol::StrBytes> {
    (!value.is_empty()).then(|| value.into())
}

/// Who sent a request: the header's client id and the host the connection
/// comes from, for the requests that record them (a group member's).
pub(crate) struct Caller<'a> {
    pub client_id: &'a str,
    pub host: &'a str,
}

/// What every connection shares: the broker and the listener's settings.
pub(crate) struct Session {
    pub broker: Arc<Broker>,
    pub config: KafkaConfig,
}

impl Session {
    /// Where Kafka clients reach broker `node`: this broker's own
    /// advertised listener, or the one another broker announced to the
    /// cluster metadata.
    pub fn kafka_address(&self, node: u32) -> Option<(String, i32)> {
        self.kafka_addresses().remove(&node)
    }

    /// Every broker's Kafka listener this broker knows of, by node id.
    pub fn kafka_addresses(&self) -> std::collections::BTreeMap<u32, (String, i32)> {
        let mut addresses: std::collections::BTreeMap<u32, (String, i32)> = self
            .broker
            .kafka_listeners()
            .into_iter()
            .filter_map(|(node, address)| {
                let (host, port) = address.rsplit_once(':')?;
                Some((
                    u32::try_from(node).ok()?,
                    (host.to_string(), port.parse().ok()?),
                ))
            })
            .collect();
        addresses.insert(
            self.broker.config().node_id,
            (
                self.config.advertised_host.clone(),
                i32::from(self.config.advertised_port),
            ),
        );
        addresses
    }
}

/// Serves Kafka clients on `listener` until `shutdown` completes. Each
/// connection gets a task; a broken connection ends only its own task.
pub async fn serve(
    broker: Arc<Broker>,
    config: KafkaConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let local = listener.local_addr().map_err(|source| BrokerError::Serve {
        what: "reading the Kafka listener's address".into(),
        source,
    })?;
    tracing::info!(address = %local, "serving the Kafka protocol");
    broker.announce_kafka_listener(format!(
        "{}:{}",
        config.advertised_host, config.advertised_port
    ));
    let session = Arc::new(Session { broker, config });
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let session = Arc::clone(&session);
                    tokio::spawn(async move {
                        if let Err(e) = connection::serve_connection(&session, stream).await {
                            tracing::debug!(%peer, error = %e, "Kafka connection closed");
                        }
                    });
                }
                // Out of file descriptors and the like: keep serving the
                // connections already open.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a Kafka connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}
