//! Transactions: Kafka's exactly-once protocol on spool's replicated log.
//!
//! A transactional id hashes to one partition of the compacted, replicated
//! `__transaction_state` topic, and the broker leading that partition is
//! the id's transaction coordinator (found with `FindCoordinator`, key
//! type 1), as groups are coordinated through `__consumer_offsets`. The
//! coordinator (`coordinator`) keeps each id's producer id, epoch and open
//! transaction in the log (`store`, `state`); a partition's leader checks
//! with it that a partition was added before it takes the transaction's
//! first records there; ending a transaction writes a commit or abort
//! marker (a control batch) through each partition's Raft group
//! (`markers`). Partitions track their open and aborted transactions in
//! their producer table (`spool_raft::producers`), from which fetches derive
//! the last stable offset and the aborted transactions of read_committed
//! reads.

mod coordinator;
mod markers;
mod state;
mod store;

use std::sync::{Arc, Weak};

pub use coordinator::{TransactionConfig, TransactionCoordinator, DEFAULT_TXN_TIMEOUT_MS};
pub use state::{TxnMetadata, TxnState};

use self::coordinator::TxnShard;
use super::Broker;
use crate::{BrokerError, Result};
use ::spool_client::Client;
use spool_protocol::proto::*;
use spool_storage::config::{CleanupPolicy, LogConfig};

use super::checks::{epoch_of, validate_group_id, validate_transactional_id};
use spool_protocol::coordinator::{shard_of, OFFSETS_TOPIC};
pub use spool_protocol::coordinator::{KEY_TYPE_TRANSACTION, TRANSACTIONS_TOPIC};

/// The transaction topic's settings: compacted and never deleted by time.
pub(crate) fn transactions_topic_config(defaults: &LogConfig) -> LogConfig {
    let mut config = defaults.clone();
    config.cleanup_policy = CleanupPolicy::COMPACT;
    config.retention_ms = None;
    config.retention_bytes = None;
    config
}

fn txn_response(outcome: Result<()>) -> TxnResponse {
    crate::respond(outcome.map(|()| TxnResponse::default()))
}

impl Broker {
    /// The loaded shard of transactional id `id`, if this broker
    /// coordinates it.
    async fn txn_shard_for(&self, id: &str) -> Result<Arc<TxnShard>> {
        validate_transactional_id(id)?;
        self.transactions.shards.for_key(self, id, |_| {}).await
    }

    /// InitProducerId: a transactional id gets its producer id and a new
    /// epoch from its coordinator; any other producer a fresh id here.
    pub async fn init_producer_id(&self, request: InitProducerIdRequest) -> InitProducerIdResponse {
        if request.transactional_id.is_empty() {
            return self.producer_ids.init_producer_id(&request);
        }
        let timeout_ms = match request.transaction_timeout_ms {
            0 => DEFAULT_TXN_TIMEOUT_MS,
            ms => ms,
        };
        let outcome = async {
            if u128::from(timeout_ms) > self.transactions.config.max_timeout.as_millis() {
                return Err(BrokerError::Coded {
                    code: ErrorCode::InvalidTransactionTimeout,
                    message: format!(
                        "transaction timeout {timeout_ms} ms exceeds the broker's maximum of {:?}",
                        self.transactions.config.max_timeout
                    ),
                });
            }
            let id = &request.transactional_id;
            let shard = self.txn_shard_for(id).await?;
            self.init_transactional(&shard, id, timeout_ms, request.keep_prepared_txn)
                .await
        };
        match outcome.await {
            Ok((producer_id, epoch, kept)) => InitProducerIdResponse {
                producer_id,
                producer_epoch: i32::from(epoch),
                has_prepared_txn: kept,
                ..Default::default()
            },
            Err(e) => e.response(),
        }
    }

    pub async fn add_partitions_to_txn(&self, request: AddPartitionsToTxnRequest) -> TxnResponse {
        txn_response(
            async {
                let image = self.cluster.controller.image();
                let mut partitions = Vec::new();
                for topic in &request.topics {
                    let count = image
                        .topics
                        .get(&topic.name)
                        .map_or(0, |t| t.replicas.len() as u32);
                    for &partition in &topic.partitions {
                        if partition >= count {
                            return Err(BrokerError::UnknownTopicOrPartition {
                                topic: topic.name.clone(),
                                partition,
                            });
                        }
                        partitions.push((topic.name.clone(), partition));
                    }
                }
                let shard = self.txn_shard_for(&request.transactional_id).await?;
                let producer = (request.producer_id, epoch_of(request.producer_epoch)?);
                self.add_to_transaction(
                    &shard,
                    &request.transactional_id,
                    producer,
                    partitions,
                    None,
                )
                .await
            }
            .await,
        )
    }

    /// AddOffsetsToTxn: the group's partition of `__consumer_offsets`
    /// joins the transaction, so that its offsets commit with it.
    pub async fn add_offsets_to_txn(&self, request: AddOffsetsToTxnRequest) -> TxnResponse {
        txn_response(
            async {
                validate_group_id(&request.group_id)?;
                let offsets = self.offsets_partition_of(&request.group_id)?;
                let shard = self.txn_shard_for(&request.transactional_id).await?;
                let producer = (request.producer_id, epoch_of(request.producer_epoch)?);
                self.add_to_transaction(
                    &shard,
                    &request.transactional_id,
                    producer,
                    vec![offsets],
                    Some(request.group_id.clone()),
                )
                .await
            }
            .await,
        )
    }

    pub async fn end_txn(&self, request: EndTxnRequest) -> EndTxnResponse {
        let outcome = async {
            let shard = self.txn_shard_for(&request.transactional_id).await?;
            let producer = (request.producer_id, epoch_of(request.producer_epoch)?);
            self.end_transaction(
                &shard,
                &request.transactional_id,
                producer,
                request.commit,
                request.prepare,
                !request.keep_epoch,
            )
            .await
        };
        match outcome.await {
            Ok(epoch) => EndTxnResponse {
                producer_epoch: i32::from(epoch),
                ..Default::default()
            },
            Err(e) => e.response(),
        }
    }

    pub async fn verify_txn_partition(&self, request: VerifyTxnPartitionRequest) -> TxnResponse {
        txn_response(
            async {
                let shard = self.txn_shard_for(&request.transactional_id).await?;
                let producer = (request.producer_id, epoch_of(request.producer_epoch)?);
                self.verify_in_transaction(
                    &shard,
                    &request.transactional_id,
                    producer,
                    (request.topic.clone(), request.partition),
                )
            }
            .await,
        )
    }

    pub async fn abort_transaction(&self, request: AbortTransactionRequest) -> TxnResponse {
        txn_response(
            async {
                let shard = self.txn_shard_for(&request.transactional_id).await?;
                self.abort_by_operator(&shard, &request.transactional_id)
                    .await
            }
            .await,
        )
    }

    /// The transactional ids this broker coordinates; a client of a
    /// cluster asks every broker and merges the answers.
    pub async fn list_transactions(
        &self,
        _request: ListTransactionsRequest,
    ) -> ListTransactionsResponse {
        self.transactions.shards.load_led(self, |_| {}).await;
        let mut transactions: Vec<TransactionListing> = self
            .transactions
            .shards
            .current()
            .iter()
            .flat_map(|shard| shard.all())
            .map(|(id, m)| TransactionListing {
                transactional_id: id,
                producer_id: m.producer_id,
                state: m.state.name().into(),
            })
            .collect();
        transactions.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        ListTransactionsResponse { transactions }
    }

    pub async fn describe_transactions(
        &self,
        request: DescribeTransactionsRequest,
    ) -> DescribeTransactionsResponse {
        let mut transactions = Vec::new();
        for id in request.transactional_ids {
            let found = match self.txn_shard_for(&id).await {
                Ok(shard) => shard.get(&id).ok_or_else(|| BrokerError::Coded {
                    code: ErrorCode::TransactionalIdNotFound,
                    message: format!("transactional id `{id}` is unknown"),
                }),
                Err(e) => Err(e),
            };
            transactions.push(match found {
                Ok(m) => describe(id, &m),
                Err(e) => TransactionDescription {
                    transactional_id: id,
                    ..e.response()
                },
            });
        }
        DescribeTransactionsResponse { transactions }
    }

    /// The partition of `__consumer_offsets` that holds `group`'s offsets.
    pub(crate) fn offsets_partition_of(&self, group: &str) -> Result<(String, u32)> {
        let image = self.cluster.controller.image();
        let offsets = image.topics.get(OFFSETS_TOPIC).ok_or_else(|| {
            BrokerError::CoordinatorNotAvailable {
                key: group.to_string(),
                reason: "the offsets topic does not exist yet".into(),
            }
        })?;
        Ok((
            OFFSETS_TOPIC.to_string(),
            shard_of(group, offsets.replicas.len() as u32),
        ))
    }

    /// A client of this broker's cluster, for requests to other brokers
    /// (markers, partition checks), connected once through this broker's
    /// own address.
    pub(crate) async fn peer_client(&self) -> Result<Client> {
        let client = self
            .peer_client
            .get_or_try_init(|| Client::connect(&self.config.advertised_address))
            .await?;
        Ok(client.clone())
    }

    /// Checks with the coordinator of `transactional_id` (here or on
    /// another broker) that `topic`-`partition` is in the open transaction
    /// of `producer`.
    pub(crate) async fn verify_with_coordinator(
        &self,
        transactional_id: &str,
        producer: (i64, i16),
        topic: &str,
        partition: u32,
    ) -> Result<()> {
        let request = VerifyTxnPartitionRequest {
            transactional_id: transactional_id.to_string(),
            producer_id: producer.0,
            producer_epoch: i32::from(producer.1),
            topic: topic.to_string(),
            partition,
        };
        let answer = match self.txn_shard_for(transactional_id).await {
            Err(BrokerError::NotCoordinator { .. }) => {
                self.peer_client()
                    .await?
                    .verify_txn_partition(request)
                    .await?
            }
            _ => self.verify_txn_partition(request).await,
        };
        match BrokerError::from_code(answer.error, &answer.message) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn describe(id: String, m: &TxnMetadata) -> TransactionDescription {
    let mut topics: Vec<TxnTopic> = Vec::new();
    for (topic, partition) in &m.partitions {
        match topics.iter_mut().find(|t| &t.name == topic) {
            Some(t) => t.partitions.push(*partition),
            None => topics.push(TxnTopic {
                name: topic.clone(),
                partitions: vec![*partition],
            }),
        }
    }
    TransactionDescription {
        transactional_id: id,
        state: m.state.name().into(),
        producer_id: m.producer_id,
        producer_epoch: i32::from(m.epoch),
        timeout_ms: m.timeout_ms,
        start_ms: m.start_ms,
        topics,
        groups: m.groups.iter().cloned().collect(),
        ..Default::default()
    }
}

/// Every `sweep_interval`, aborts the transactions past their timeout and
/// completes decided ones in the shards this broker leads, until the
/// broker is dropped.
pub(crate) async fn sweep(broker: Weak<Broker>) {
    loop {
        let Some(strong) = broker.upgrade() else {
            return;
        };
        let interval = strong.transactions.config.sweep_interval;
        strong.transactions.shards.forget_lost();
        strong.transactions.shards.load_led(&strong, |_| {}).await;
        for shard in strong.transactions.shards.current() {
            strong.sweep_shard(&shard).await;
        }
        drop(strong);
        tokio::time::sleep(interval).await;
    }
}
