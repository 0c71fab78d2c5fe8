//! Produce: each partition's batches go through its Raft group, answered
//! per `acks`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Broker, Partition};
use crate::{BrokerError, Result};
use spool_protocol::proto::{
    Acks, ErrorCode, ProducePartitionResult, ProduceRequest, ProduceResponse, ProduceTopicResult,
};
use spool_raft::producers::{BatchKind, BatchOffsets, BatchOrigin, ProducerBatch};
use spool_raft::{AnswerWhen, ProposedBatches};
use spool_record::BatchIter;

/// How long a produce waits for its answer when the request names no
/// timeout: Kafka's `request.timeout.ms` default.
const DEFAULT_PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);

/// One partition's part of a request, on its way to an answer.
pub(crate) struct PartitionWrite {
    topic: String,
    index: u32,
    outcome: Result<(Arc<Partition>, ProposedBatches)>,
}

impl Broker {
    /// Appends every partition's batches. Each partition succeeds or fails
    /// on its own; a failed partition appends nothing (unless it failed
    /// after proposing, when its outcome is unknown, as in Kafka).
    pub async fn produce(&self, request: ProduceRequest) -> ProduceResponse {
        self.propose(request).await.answered().await
    }

    /// The first phase of [`Broker::produce`]: every partition's batches
    /// proposed, in the request's order. Requests proposed one after the
    /// other reach each partition's log in that order, which lets a caller
    /// pipeline requests and still keep their order (the Kafka listener's
    /// connections do: `crate::kafka`).
    pub(crate) async fn propose(&self, request: ProduceRequest) -> ProposedProduce {
        let acks = Acks::try_from(request.acks);
        let timeout = match request.timeout_ms {
            0 => DEFAULT_PRODUCE_TIMEOUT,
            ms => Duration::from_millis(ms.into()),
        };
        let mut writes = Vec::new();
        for topic in request.topics {
            for part in topic.partitions {
                let outcome = match acks {
                    // An unknown acks value must not silently become a
                    // weaker one.
                    Err(_) => Err(BrokerError::InvalidRequest(format!(
                        "unknown acks value {}",
                        request.acks
                    ))),
                    Ok(acks) => {
                        let id = &request.transactional_id;
                        self.propose_partition(
                            &topic.name,
                            part.records,
                            part.partition,
                            id,
                            acks,
                            timeout,
                        )
                        .await
                    }
                };
                writes.push(PartitionWrite {
                    topic: topic.name.clone(),
                    index: part.partition,
                    outcome,
                });
            }
        }
        ProposedProduce { writes }
    }
}

/// A produce request whose batches are proposed, its answer to come.
/// Owns all it needs: it can be awaited while later requests are
/// proposed.
pub(crate) struct ProposedProduce {
    writes: Vec<PartitionWrite>,
}

impl ProposedProduce {
    /// The second phase of [`Broker::produce`]: waits for every
    /// partition's answer.
    pub(crate) async fn answered(self) -> ProduceResponse {
        let answered = futures::future::join_all(self.writes.into_iter().map(|write| async move {
            let result = match write.outcome {
                Ok((partition, proposed)) => match proposed.answered().await {
                    Ok(placed) => placed_result(&partition, write.index, &placed),
                    Err(e) => error_result(write.index, &e.into()),
                },
                Err(e) => error_result(write.index, &e),
            };
            (write.topic, result)
        }))
        .await;
        let mut topics: Vec<ProduceTopicResult> = Vec::new();
        for (topic, result) in answered {
            match topics.iter_mut().find(|t| t.name == topic) {
                Some(t) => t.partitions.push(result),
                None => topics.push(ProduceTopicResult {
                    name: topic,
                    partitions: vec![result],
                }),
            }
        }
        ProduceResponse { topics }
    }
}

impl Broker {
    /// One partition's batches, checked and proposed: refused while the
    /// data directory's free space is below its reserve, or when the
    /// producer may not write them (see `check_producer_batches`).
    async fn propose_partition(
        &self,
        topic: &str,
        records: Bytes,
        index: u32,
        transactional_id: &str,
        acks: Acks,
        timeout: Duration,
    ) -> Result<(Arc<Partition>, ProposedBatches)> {
        let partition = self.partition(topic, index)?;
        self.disk_space.admit(records.len())?;
        self.check_producer_batches(&partition, transactional_id, &records)
            .await?;
        let proposed = propose_to(&partition, records, acks, timeout).await?;
        Ok((partition, proposed))
    }

    /// Refuses what a producer may not write (control batches, producer
    /// batches without sequences), and checks with the transaction's
    /// coordinator that the partition was added to the transaction before
    /// its first transactional records here: a leader that already holds
    /// records of the producer's open transaction at this epoch knows.
    async fn check_producer_batches(
        &self,
        partition: &Partition,
        transactional_id: &str,
        records: &Bytes,
    ) -> Result<()> {
        let mut unverified = None;
        for batch in BatchIter::new(records) {
            let batch = batch?;
            let Some(producer) = ProducerBatch::from_origin(&batch, BatchOrigin::Client)? else {
                continue;
            };
            if producer.kind == BatchKind::Transactional
                && !partition
                    .replica()
                    .transaction_open(producer.producer_id, producer.epoch)
            {
                unverified = Some((producer.producer_id, producer.epoch));
            }
        }
        let Some(producer) = unverified else {
            return Ok(());
        };
        if transactional_id.is_empty() {
            return Err(BrokerError::Coded {
                code: ErrorCode::InvalidTxnState,
                message: "transactional batches need the request's transactional id".into(),
            });
        }
        self.verify_with_coordinator(
            transactional_id,
            producer,
            &partition.topic,
            partition.index,
        )
        .await
    }
}

/// Proposes each batch of a partition as one Raft entry, to be answered
/// once all are committed (`acks=all`: on disk on a majority) or in the
/// leader's log (`acks=leader`, and `acks=none`, whose producer does not
/// wait for the answer anyway).
async fn propose_to(
    partition: &Partition,
    records: Bytes,
    acks: Acks,
    timeout: Duration,
) -> Result<ProposedBatches> {
    let recompress_to = partition.log.config().compression;
    let mut batches = Vec::new();
    let mut position = 0usize;
    for batch in BatchIter::new(&records) {
        let batch = batch?;
        let size = batch.size();
        let stored = match recompress_to {
            // The topic's `compression.type`, as Kafka applies it: every
            // batch of records in another codec is compressed again.
            Some(to)
                if !batch.attributes().is_control() && batch.attributes().compression()? != to =>
            {
                Bytes::from(spool_record::recompress(&batch, to)?)
            }
            _ => records.slice(position..position + size),
        };
        batches.push(stored);
        position += size;
    }
    let answer = match acks {
        Acks::All => AnswerWhen::Committed,
        Acks::Leader | Acks::None => AnswerWhen::LeaderAppended,
    };
    let proposed = partition
        .replica()
        .propose_batches(batches, answer, timeout)
        .await?;
    Ok(proposed)
}

fn placed_result(
    partition: &Partition,
    index: u32,
    placed: &[BatchOffsets],
) -> ProducePartitionResult {
    ProducePartitionResult {
        partition: index,
        base_offset: placed.first().map_or(0, |p| p.base),
        log_start_offset: partition.log.log_start_offset(),
        batch_base_offsets: match placed.len() {
            1 => Vec::new(),
            _ => placed.iter().map(|p| p.base).collect(),
        },
        ..Default::default()
    }
}

pub(super) fn error_result(partition: u32, error: &BrokerError) -> ProducePartitionResult {
    ProducePartitionResult {
        partition,
        ..error.response()
    }
}
