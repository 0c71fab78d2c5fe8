//! Where each broker's Kafka listener is, in the cluster metadata: every
//! broker announces its own (the Kafka Metadata response must name every
//! broker a client may be sent to, and only a broker knows its own
//! listener), and any broker's Metadata then names them all.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::moves::{change_response, topic_result};
use crate::broker::Broker;
use crate::Result;
use spool_protocol::proto::{AdvertiseListenerRequest, ClusterChangeResponse, ErrorCode};
use spool_raft::metadata::MetadataCommand;
use spool_raft::NodeId;

/// How long an announcement waits before trying again when the
/// controller has no leader yet or cannot be reached.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl Broker {
    /// Records broker `node`'s Kafka listener (see the module docs).
    pub async fn advertise_listener(
        &self,
        request: AdvertiseListenerRequest,
    ) -> ClusterChangeResponse {
        change_response(self.record_listener(request).await)
    }

    async fn record_listener(&self, request: AdvertiseListenerRequest) -> Result<()> {
        let cluster = &self.cluster;
        let node = NodeId::from(request.node_id);
        let forwarded = cluster.forward_until_answered(
            |mut client| {
                let request = request.clone();
                async move {
                    Ok(vec![topic_result(
                        client.advertise_listener(request).await?,
                    )])
                }
            },
            |image| image.kafka_listeners.get(&node) == Some(&request.kafka_address),
            ErrorCode::None,
        );
        if let Some(outcome) = forwarded.await {
            return outcome;
        }
        let command = MetadataCommand::AdvertiseKafkaListener {
            node,
            address: request.kafka_address,
        };
        cluster
            .controller
            .propose(command, cluster.config.metadata_timeout)
            .await?;
        Ok(())
    }

    /// Announces this broker's Kafka listener at `address` in the
    /// background, until the cluster's metadata holds it.
    pub fn announce_kafka_listener(self: &Arc<Self>, address: String) {
        let broker = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(broker) = broker.upgrade() else {
                    return;
                };
                let node = broker.config().node_id;
                if broker.kafka_listeners().get(&NodeId::from(node)) == Some(&address) {
                    return;
                }
                let request = AdvertiseListenerRequest {
                    node_id: node,
                    kafka_address: address.clone(),
                };
                if let Err(e) = broker.record_listener(request).await {
                    tracing::debug!(error = %e, "announcing the Kafka listener; retrying");
                }
                drop(broker);
                tokio::time::sleep(RETRY_AFTER).await;
            }
        });
    }

    /// Every broker's Kafka listener that the metadata holds.
    pub fn kafka_listeners(&self) -> BTreeMap<NodeId, String> {
        self.cluster.controller.image().kafka_listeners.clone()
    }
}
