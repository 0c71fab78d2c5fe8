//! Transaction state, kept in the compacted internal topic
//! `__transaction_state` and folded into memory: each change of a
//! transactional id's state is one record keyed by the id, proposed
//! through the partition's Raft group and folded once committed, so the
//! map always agrees with the log (as the offsets of `groups::offsets`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;

use super::state::TxnMetadata;
use crate::broker::shards::ShardState;
use crate::broker::Partition;
use crate::{BrokerError, Result};
use spool_raft::AnswerWhen;
use spool_record::{BatchBuilder, Compression};

/// How many bytes of the log one read folds.
const FOLD_READ_BYTES: usize = 1 << 20;

/// Key layout version; a key of another version is skipped.
const KEY_VERSION: u8 = 0;

/// The transactional ids of one partition of `__transaction_state`.
pub struct TxnStore {
    partition: Arc<Partition>,
    folded: RwLock<Folded>,
}

#[derive(Default)]
struct Folded {
    ids: BTreeMap<String, TxnMetadata>,
    next: u64,
}

impl ShardState for TxnStore {
    fn load(partition: &Arc<Partition>) -> Result<TxnStore> {
        TxnStore::load(Arc::clone(partition))
    }
}

impl TxnStore {
    /// A store over `partition` that has folded everything committed.
    pub fn load(partition: Arc<Partition>) -> Result<TxnStore> {
        let store = TxnStore {
            folded: RwLock::new(Folded {
                next: partition.log.log_start_offset(),
                ..Folded::default()
            }),
            partition,
        };
        store.catch_up()?;
        Ok(store)
    }

    /// Folds the records committed since the last call.
    pub fn catch_up(&self) -> Result<()> {
        let mut folded = self.folded.write();
        let Folded { ids, next } = &mut *folded;
        self.partition
            .fold_committed(next, FOLD_READ_BYTES, |batch, from| {
                for record in batch.records()?.iter() {
                    let record = record?;
                    let id = match record.key {
                        Some([KEY_VERSION, id @ ..]) if record.offset >= from => {
                            String::from_utf8_lossy(id).into_owned()
                        }
                        _ => continue,
                    };
                    match record.value.map(bincode::deserialize::<TxnMetadata>) {
                        Some(Ok(metadata)) => {
                            ids.insert(id, metadata);
                        }
                        Some(Err(e)) => {
                            tracing::warn!(id = %id, error = %e, "skipping an unreadable transaction state record")
                        }
                        None => {
                            ids.remove(&id);
                        }
                    }
                }
                Ok(())
            })
    }

    /// Writes `metadata` as the state of `id` and returns once it is
    /// committed (on disk on a majority) and folded.
    pub async fn write(&self, id: &str, metadata: &TxnMetadata, timeout: Duration) -> Result<()> {
        let value = bincode::serialize(metadata).map_err(|e| {
            BrokerError::InvalidRequest(format!("cannot encode transaction state: {e}"))
        })?;
        let mut key = vec![KEY_VERSION];
        key.extend_from_slice(id.as_bytes());
        let mut builder = BatchBuilder::new(Compression::None);
        let now = self.partition.log.now_ms() as i64;
        builder.push(now, Some(&key), Some(&value), &[]);
        self.partition
            .replica()
            .append_batches(
                vec![Bytes::from(builder.build())],
                AnswerWhen::Committed,
                timeout,
            )
            .await?;
        self.catch_up()
    }

    pub fn get(&self, id: &str) -> Option<TxnMetadata> {
        self.folded.read().ids.get(id).cloned()
    }

    /// Every transactional id of the partition with its state.
    pub fn all(&self) -> Vec<(String, TxnMetadata)> {
        let folded = self.folded.read();
        folded
            .ids
            .iter()
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    }
}
