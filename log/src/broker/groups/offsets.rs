//! Committed offsets, kept in the compacted internal topic
//! `__consumer_offsets` and mirrored in memory.
//!
//! Each commit appends one record per partition, keyed by (group, topic,
//! partition) so compaction keeps only the latest, and syncs it to disk
//! before the commit is acknowledged. At startup the topic is read from the
//! beginning to rebuild the map.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::broker::Partition;
use crate::record::{BatchBuilder, BatchIter, Compression};
use crate::{LogError, Result};

/// The internal topic's name, as in Kafka.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A committed offset and the metadata string the committer attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: u64,
    pub metadata: String,
}

type OffsetKey = (String, String, u32);

pub struct OffsetStore {
    partition: Arc<Partition>,
    offsets: RwLock<BTreeMap<OffsetKey, Committed>>,
}

impl OffsetStore {
    /// Loads every committed offset from the offsets topic's partition.
    pub fn load(partition: Arc<Partition>) -> Result<OffsetStore> {
        let mut offsets = BTreeMap::new();
        let log = &partition.log;
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let read = log.read(offset, 1 << 20)?;
            if read.bytes.is_empty() {
                break;
            }
            for batch in BatchIter::new(&read.bytes) {
                for record in batch?.records()?.iter() {
                    let record = record?;
                    if record.offset < offset {
                        continue;
                    }
                    let Some(key) = record.key.and_then(decode_key) else {
                        continue;
                    };
                    match record.value.and_then(decode_value) {
                        Some(committed) => offsets.insert(key, committed),
                        None => offsets.remove(&key),
                    };
                }
            }
            offset = read.next_offset;
        }
        tracing::info!(committed = offsets.len(), "loaded committed offsets");
        Ok(OffsetStore {
            partition,
            offsets: RwLock::new(offsets),
        })
    }

    /// Appends the commits to the offsets log and makes them visible, in
    /// one step under the map's lock, so the log and the map always agree
    /// on which commit came last. Not yet durable: call [`OffsetStore::sync`]
    /// before acknowledging.
    pub fn append(&self, group: &str, commits: &[(String, u32, Committed)]) -> Result<()> {
        if commits.is_empty() {
            return Ok(());
        }
        for (topic, _, _) in commits {
            crate::config::validate_topic_name(topic)?;
        }
        let mut builder = BatchBuilder::new(Compression::None);
        let now = crate::storage::Clock::now_ms(&crate::storage::SystemClock) as i64;
        for (topic, partition, committed) in commits {
            let key = encode_key(group, topic, *partition);
            builder.push(now, Some(&key), Some(&encode_value(committed)), &[]);
        }
        let mut bytes = builder.build();
        let mut offsets = self.offsets.write();
        self.partition.log.append(&mut bytes, 0)?;
        for (topic, partition, committed) in commits {
            offsets.insert(
                (group.to_string(), topic.clone(), *partition),
                committed.clone(),
            );
        }
        drop(offsets);
        self.partition.notify_appended();
        Ok(())
    }

    /// Makes every appended commit durable.
    pub fn sync(&self) -> Result<()> {
        self.partition.log.flush().map(|_| ())
    }

    pub fn fetch(&self, group: &str, topic: &str, partition: u32) -> Option<Committed> {
        self.offsets
            .read()
            .get(&(group.to_string(), topic.to_string(), partition))
            .cloned()
    }

    /// Every committed partition of a group.
    pub fn fetch_all(&self, group: &str) -> Vec<(String, u32, Committed)> {
        self.offsets
            .read()
            .iter()
            .filter(|((g, _, _), _)| g == group)
            .map(|((_, t, p), c)| (t.clone(), *p, c.clone()))
            .collect()
    }

    /// Groups that have committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .offsets
            .read()
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

/// Rejects group ids that cannot be stored.
pub fn validate_group_id(group: &str) -> Result<()> {
    if group.is_empty() || group.len() > u16::MAX as usize {
        return Err(LogError::InvalidRequest(
            "a group id must be 1 to 65535 bytes".into(),
        ));
    }
    Ok(())
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
