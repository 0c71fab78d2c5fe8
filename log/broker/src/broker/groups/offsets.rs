//! Committed offsets, kept in the compacted internal topic
//! `__consumer_offsets` and folded into memory.
//!
//! The topic has several partitions; a group's offsets live in the one its
//! id hashes to, and the broker leading that partition coordinates the
//! group. Each commit is one record batch, one record per partition keyed
//! by (group, topic, partition) so compaction keeps only the latest,
//! proposed through the partition's Raft group and acknowledged once
//! committed: on disk on a majority. The in-memory map is folded from the
//! partition's committed records in log order, never from the requests,
//! so it always agrees with the log: a commit returns only once the map
//! has folded it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::broker::shards::ShardState;
use crate::broker::Partition;
use crate::Result;
use spool_raft::{AnswerWhen, ProposedBatches};
use spool_record::{BatchBuilder, Compression};

pub use spool_protocol::coordinator::OFFSETS_TOPIC;

/// How many bytes of the offsets log one read folds.
const FOLD_READ_BYTES: usize = 1 << 20;

/// A committed offset and the metadata string the committer attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: u64,
    pub metadata: String,
}

type OffsetKey = (String, String, u32);

/// A partition of the offsets topic while this broker leads it.
pub struct OffsetShard {
    pub offsets: OffsetStore,
    /// Commits are checked and proposed under it, so that they reach the
    /// log in the order the coordinator accepted them.
    pub order: tokio::sync::Mutex<()>,
}

impl ShardState for OffsetShard {
    fn load(partition: &Arc<Partition>) -> Result<OffsetShard> {
        Ok(OffsetShard {
            offsets: OffsetStore::load(Arc::clone(partition))?,
            order: tokio::sync::Mutex::new(()),
        })
    }
}

/// A loaded shard of the offsets topic.
pub type Shard = crate::broker::shards::Shard<OffsetShard>;

/// The committed offsets of one partition of the offsets topic.
pub struct OffsetStore {
    partition: Arc<Partition>,
    folded: RwLock<Folded>,
}

#[derive(Default)]
struct Folded {
    offsets: BTreeMap<OffsetKey, Committed>,
    /// Offsets committed inside open transactions, by producer id: applied
    /// when the transaction's commit marker is folded, dropped at abort.
    pending: BTreeMap<i64, Vec<(OffsetKey, Option<Committed>)>>,
    /// The next offset of the log to fold.
    next: u64,
}

impl Folded {
    fn apply(&mut self, key: OffsetKey, committed: Option<Committed>) {
        match committed {
            Some(committed) => self.offsets.insert(key, committed),
            None => self.offsets.remove(&key),
        };
    }
}

impl OffsetStore {
    /// A store over `partition` that has folded everything committed.
    pub fn load(partition: Arc<Partition>) -> Result<OffsetStore> {
        let next = partition.log.log_start_offset();
        let store = OffsetStore {
            partition,
            folded: RwLock::new(Folded {
                next,
                ..Folded::default()
            }),
        };
        store.catch_up()?;
        tracing::info!(
            partition = store.partition.index,
            committed = store.folded.read().offsets.len(),
            "loaded committed offsets"
        );
        Ok(store)
    }

    /// Folds the records committed since the last call.
    pub fn catch_up(&self) -> Result<()> {
        let mut folded = self.folded.write();
        let mut next = folded.next;
        let outcome = self
            .partition
            .fold_committed(&mut next, FOLD_READ_BYTES, |batch, from| {
                if batch.next_offset() <= from {
                    return Ok(());
                }
                let attributes = batch.attributes();
                if attributes.is_control() {
                    let pending = folded.pending.remove(&batch.producer_id());
                    if spool_record::control_marker_is_commit(batch)? {
                        for (key, committed) in pending.unwrap_or_default() {
                            folded.apply(key, committed);
                        }
                    }
                    return Ok(());
                }
                for record in batch.records()?.iter() {
                    let record = record?;
                    if record.offset < from {
                        continue;
                    }
                    let Some(key) = record.key.and_then(decode_key) else {
                        continue;
                    };
                    let committed = record.value.and_then(decode_value);
                    match attributes.is_transactional() {
                        true => folded
                            .pending
                            .entry(batch.producer_id())
                            .or_default()
                            .push((key, committed)),
                        false => folded.apply(key, committed),
                    }
                }
                Ok(())
            });
        folded.next = next;
        outcome
    }

    /// Proposes the commits of `group` as one batch; the caller keeps the
    /// order of proposals and waits with [`OffsetStore::committed`]. With
    /// `transaction` (a producer id and epoch) the batch is that
    /// transaction's: its offsets take effect with its commit marker.
    pub async fn propose(
        &self,
        group: &str,
        commits: &[(String, u32, Committed)],
        transaction: Option<(i64, i16)>,
        timeout: Duration,
    ) -> Result<ProposedBatches> {
        for (topic, _, _) in commits {
            spool_storage::config::validate_topic_name(topic)?;
        }
        let records = commits
            .iter()
            .map(|(topic, partition, committed)| {
                (topic.as_str(), *partition, Some(encode_value(committed)))
            })
            .collect();
        self.propose_records(group, records, transaction, timeout)
            .await
    }

    /// Proposes tombstones for the offsets of `group` on `partitions` (as
    /// [`OffsetStore::propose`] does commits): compaction then drops them.
    pub async fn propose_deletions(
        &self,
        group: &str,
        partitions: &[(String, u32)],
        timeout: Duration,
    ) -> Result<ProposedBatches> {
        let records = partitions
            .iter()
            .map(|(topic, partition)| (topic.as_str(), *partition, None))
            .collect();
        self.propose_records(group, records, None, timeout).await
    }

    async fn propose_records(
        &self,
        group: &str,
        records: Vec<(&str, u32, Option<Vec<u8>>)>,
        transaction: Option<(i64, i16)>,
        timeout: Duration,
    ) -> Result<ProposedBatches> {
        let mut builder = BatchBuilder::new(Compression::None);
        if let Some((producer_id, epoch)) = transaction {
            builder = builder.producer(producer_id, epoch, -1).transactional(true);
        }
        let now = self.partition.log.now_ms() as i64;
        for (topic, partition, value) in records {
            let key = encode_key(group, topic, partition);
            builder.push(now, Some(&key), value.as_deref(), &[]);
        }
        let proposed = self
            .partition
            .replica()
            .propose_batches(
                vec![Bytes::from(builder.build())],
                AnswerWhen::Committed,
                timeout,
            )
            .await?;
        Ok(proposed)
    }

    /// Waits for proposed commits to be committed, then folds them.
    pub async fn committed(&self, proposed: ProposedBatches) -> Result<()> {
        proposed.answered().await?;
        self.catch_up()
    }

    pub fn fetch(&self, group: &str, topic: &str, partition: u32) -> Option<Committed> {
        self.folded
            .read()
            .offsets
            .get(&(group.to_string(), topic.to_string(), partition))
            .cloned()
    }

    /// Whether an open transaction holds an offset of `group` for the
    /// partition (an offset fetch that requires stable offsets waits).
    pub fn has_pending(&self, group: &str, topic: &str, partition: u32) -> bool {
        self.folded
            .read()
            .pending
            .values()
            .flatten()
            .any(|((g, t, p), _)| g == group && t == topic && *p == partition)
    }

    /// Every committed partition of a group.
    pub fn fetch_all(&self, group: &str) -> Vec<(String, u32, Committed)> {
        self.folded
            .read()
            .offsets
            .iter()
            .filter(|((g, _, _), _)| g == group)
            .map(|((_, t, p), c)| (t.clone(), *p, c.clone()))
            .collect()
    }

    /// Groups that have committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .folded
            .read()
            .offsets
            .keys()
            .map(|(g, _, _)| g.clone())
            .collect();
        groups.dedup();
        groups
    }
}

/// Key: version byte 0, then group, topic (u16 length + UTF-8) and partition.
fn encode_key(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    let mut key = vec![0u8];
    for text in [group, topic] {
        key.extend_from_slice(&(text.len() as u16).to_be_bytes());
        key.extend_from_slice(text.as_bytes());
    }
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

fn decode_key(bytes: &[u8]) -> Option<OffsetKey> {
    let (&version, mut rest) = bytes.split_first()?;
    if version != 0 {
        return None;
    }
    let mut text = || -> Option<String> {
        let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let s = String::from_utf8(rest.get(2..2 + len)?.to_vec()).ok()?;
        rest = &rest[2 + len..];
        Some(s)
    };
    let group = text()?;
    let topic = text()?;
    let partition = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    Some((group, topic, partition))
}

/// Value: offset (u64) then the metadata string.
fn encode_value(committed: &Committed) -> Vec<u8> {
    let mut value = committed.offset.to_be_bytes().to_vec();
    value.extend_from_slice(committed.metadata.as_bytes());
    value
}

fn decode_value(bytes: &[u8]) -> Option<Committed> {
    let offset = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let metadata = String::from_utf8_lossy(&bytes[8..]).into_owned();
    Some(Committed { offset, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let key = encode_key("g1", "orders", 7);
        assert_eq!(decode_key(&key), Some(("g1".into(), "orders".into(), 7)));
        assert_eq!(decode_key(&key[..key.len() - 1]), None);
        let c = Committed {
            offset: 42,
            metadata: "m".into(),
        };
        assert_eq!(decode_value(&encode_value(&c)), Some(c));
    }
}
