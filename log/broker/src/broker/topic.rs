//! Topics and partitions as a broker serves them: each partition this
//! broker holds is a Raft replica of it (one voter on a single node), and
//! a topic is the settings and the partitions placed here. Where topics
//! exist and where their replicas go is the cluster metadata's business
//! (`spool_raft::metadata`); this module only holds what the reconciler started.

use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::Result;
use spool_raft::producers::ProducerStates;
use spool_raft::PartitionReplica;
use spool_record::{BatchIter, RecordBatch};
use spool_storage::config::LogConfig;
use spool_storage::{LogRead, PartitionLog};

/// One partition this broker holds: its log and the Raft replica whose
/// writes go through the partition's group and whose readers see only
/// what it has committed.
pub struct Partition {
    pub topic: String,
    pub index: u32,
    pub log: Arc<PartitionLog>,
    replica: Arc<PartitionReplica>,
}

impl Partition {
    pub(crate) fn new(topic: &str, index: u32, replica: Arc<PartitionReplica>) -> Partition {
        Partition {
            topic: topic.to_string(),
            index,
            log: Arc::clone(replica.log()),
            replica,
        }
    }

    /// The idempotent producers, as metadata responses describe them.
    pub fn describe_producers(&self) -> Vec<spool_protocol::proto::ProducerState> {
        let states = self.producer_states();
        let open: std::collections::HashMap<i64, u64> = states.open_transactions().collect();
        states
            .iter()
            .map(
                |(producer_id, entry)| spool_protocol::proto::ProducerState {
                    producer_id,
                    epoch: i32::from(entry.epoch),
                    last_sequence: entry.last_sequence().unwrap_or(-1),
                    last_offset: entry.last_offsets().map_or(0, |o| o.next.saturating_sub(1)),
                    last_append_ms: entry.last_append_ms,
                    txn_start_offset: open
                        .get(&producer_id)
                        .map_or(-1, |&first| i64::try_from(first).unwrap_or(i64::MAX)),
                },
            )
            .collect()
    }

    /// What this partition knows of its idempotent producers, as applied
    /// (a leader's proposals not yet committed are not in it).
    pub fn producer_states(&self) -> ProducerStates {
        self.replica.producer_states()
    }

    /// The partition's Raft replica on this broker.
    pub fn replica(&self) -> &Arc<PartitionReplica> {
        &self.replica
    }

    /// Whole committed batches from `offset`.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<LogRead> {
        Ok(self.replica.read_committed(offset, max_bytes)?)
    }

    /// Folds the committed batches from `*next` on into a coordinator's
    /// state, reading `read_bytes` at a time, and moves `*next` past them.
    /// `fold` gets each batch and the offset below which its records were
    /// folded before (the first batch read may start below `*next`).
    pub fn fold_committed(
        &self,
        next: &mut u64,
        read_bytes: usize,
        mut fold: impl FnMut(&RecordBatch<'_>, u64) -> Result<()>,
    ) -> Result<()> {
        while *next < self.high_watermark() {
            let read = self.read(*next, read_bytes)?;
            if read.bytes.is_empty() {
                break;
            }
            for batch in BatchIter::new(&read.bytes) {
                fold(&batch?, *next)?;
            }
            *next = read.next_offset;
        }
        Ok(())
    }

    /// The offset after the last committed record.
    pub fn high_watermark(&self) -> u64 {
        self.replica.high_watermark()
    }

    /// The name the log manager knows this partition by.
    pub fn log_name(&self) -> String {
        format!("{}-{}", self.topic, self.index)
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn watch_end(&self) -> watch::Receiver<u64> {
        self.replica.subscribe_high_watermark()
    }
}

/// A topic as this broker holds it: its settings and the partitions
/// placed here (in a cluster, not necessarily all of them).
pub struct Topic {
    pub name: String,
    config: RwLock<LogConfig>,
    partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    /// A topic with no partition yet: the reconciler adds the replicas
    /// placed on this broker.
    pub(crate) fn new(name: &str, config: LogConfig) -> Topic {
        Topic {
            name: name.to_string(),
            config: RwLock::new(config),
            partitions: RwLock::default(),
        }
    }

    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    /// Partition `index`, if this broker holds it (partitions stay sorted).
    pub fn partition(&self, index: u32) -> Option<Arc<Partition>> {
        let partitions = self.partitions.read();
        let position = partitions.binary_search_by_key(&index, |p| p.index).ok()?;
        Some(Arc::clone(&partitions[position]))
    }

    pub(crate) fn remove_partition(&self, index: u32) {
        self.partitions.write().retain(|p| p.index != index);
    }

    pub(crate) fn add_partition(&self, partition: Arc<Partition>) {
        let mut partitions = self.partitions.write();
        let position = partitions
            .binary_search_by_key(&partition.index, |p| p.index)
            .unwrap_or_else(|insert_at| insert_at);
        partitions.insert(position, partition);
    }

    /// How many of the topic's partitions this broker holds.
    pub fn partition_count(&self) -> u32 {
        self.partitions.read().len() as u32
    }

    /// Makes `config` the settings of the topic and its partitions' logs.
    pub(crate) fn apply_config(&self, config: LogConfig) {
        for partition in self.partitions() {
            partition.log.set_config(config.clone());
        }
        *self.config.write() = config;
    }
}
