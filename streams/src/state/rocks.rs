//! The RocksDB backend: one database per (task, store) under the state
//! directory, all sharing one memory budget ([`StateMemory`]).
//!
//! The changelog offset lives in its own column family, written in the
//! same write batch as the data, and the two families flush atomically,
//! so whatever RocksDB recovers after a crash is a state and the offset
//! it belongs to. The write-ahead log is on but never synced: a process
//! killed keeps its applied commits (the OS has them), and only a power
//! cut sends a store back to its last flush, to be caught up from the
//! changelog. A restore writes without the log (the changelog is the
//! log) and flushes both families when it ends, before any logged write
//! could be recovered on top of writes the log never saw.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, IteratorMode, Options,
    WriteBufferManager, WriteOptions, DB,
};

use super::{Positions, Restored, StoreBackend, WriteBatch};
use crate::{Result, StreamsError};

/// The column family holding the changelog offset.
const META_FAMILY: &str = "spool-meta";
const OFFSET_KEY: &[u8] = b"changelog-offset";
/// Followed by a partition's 4 bytes (big-endian): a global store's
/// position in that partition.
const POSITION_PREFIX: &[u8] = b"position-";

/// The memory every RocksDB store of one application instance shares:
/// one block cache, and one write-buffer manager charging memtables to
/// that cache. Kafka Streams gives each store its own cache and
/// memtables unless the user writes a `RocksDBConfigSetter`; with many
/// tasks that multiplies into gigabytes. Here the budget is one number.
#[derive(Clone)]
pub struct StateMemory {
    cache: Cache,
    write_buffers: WriteBufferManager,
}

impl StateMemory {
    /// A budget of `bytes` for block cache and memtables together; a
    /// quarter of it for memtables: a store whose write finds them over
    /// it flushes its own memtable (as Kafka Streams' bounded-memory
    /// setup). Writes are never stalled to wait for the budget: the
    /// memory may be held by another store's memtable, one that is not
    /// written to and so never flushes, and a stalled write would wait
    /// forever (a word count over ten million distinct words did).
    pub fn new(bytes: usize) -> StateMemory {
        let cache = Cache::new_lru_cache(bytes);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            bytes / 4,
            false,
            cache.clone(),
        );
        StateMemory {
            cache,
            write_buffers,
        }
    }
}

pub struct RocksBackend {
    db: DB,
    write_options: WriteOptions,
    /// For restores: no write-ahead log (see the module's comment).
    restore_options: WriteOptions,
    /// Opened to look, not to write (nothing to flush on close).
    read_only: bool,
}

impl RocksBackend {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, memory: &StateMemory) -> Result<RocksBackend> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_atomic_flush(true);
        options.set_compression_type(DBCompressionType::Lz4);
        options.set_write_buffer_manager(&memory.write_buffers);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&memory.cache);
        // Point reads of keys a store does not hold (a count's new keys)
        // skip every file whose filter says no, as Kafka Streams' default
        // RocksDB setup does.
        table.set_bloom_filter(10.0, false);
        options.set_block_based_table_factory(&table);
        let families = [
            ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, options.clone()),
            ColumnFamilyDescriptor::new(META_FAMILY, options.clone()),
        ];
        let db =
            DB::open_cf_descriptors(&options, path, families).map_err(|e| store_error(path, e))?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(false);
        let mut restore_options = WriteOptions::default();
        restore_options.disable_wal(true);
        Ok(RocksBackend {
            db,
            write_options,
            restore_options,
            read_only: false,
        })
    }

    /// Opens the store at `path` to read it while another process may
    /// have it open (RocksDB's read-only mode takes no lock).
    pub fn open_read_only(path: &Path) -> Result<RocksBackend> {
        let families = [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, META_FAMILY];
        let db = DB::open_cf_for_read_only(&Options::default(), path, families, false)
            .map_err(|e| store_error(path, e))?;
        Ok(RocksBackend {
            db,
            write_options: WriteOptions::default(),
            restore_options: WriteOptions::default(),
            read_only: true,
        })
    }

    fn meta(&self) -> Result<&rocksdb::ColumnFamily> {
        self.family(META_FAMILY)
    }

    fn family(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StreamsError::Store(format!("column family {name} missing")))
    }

    /// Flushes both families' memtables together.
    fn flush(&self) -> Result<()> {
        let families = [
            self.family(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)?,
            self.meta()?,
        ];
        self.db
            .flush_cfs_opt(&families, &rocksdb::FlushOptions::default())
            .map_err(rocks)
    }
}

fn store_error(path: &Path, e: rocksdb::Error) -> StreamsError {
    StreamsError::Store(format!("RocksDB at {}: {e}", path.display()))
}

fn rocks(e: rocksdb::Error) -> StreamsError {
    StreamsError::Store(format!("RocksDB: {e}"))
}

/// `batch` as a RocksDB write batch.
fn data_batch(batch: &WriteBatch) -> rocksdb::WriteBatch {
    let mut write = rocksdb::WriteBatch::default();
    for (key, value) in batch {
        match value {
            Some(value) => write.put(key, value),
            None => write.delete(key),
        }
    }
    write
}

impl StoreBackend for RocksBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(rocks)
    }

    fn apply(&self, batch: &WriteBatch, changelog_offset: Option<u64>) -> Result<()> {
        let mut write = data_batch(batch);
        if let Some(offset) = changelog_offset {
            write.put_cf(self.meta()?, OFFSET_KEY, offset.to_be_bytes());
        }
        self.db.write_opt(write, &self.write_options).map_err(rocks)
    }

    fn restore<'a>(
        &self,
        entries: &mut dyn Iterator<Item = Restored<'a>>,
        changelog_offset: u64,
    ) -> Result<()> {
        let mut write = rocksdb::WriteBatch::default();
        for (key, value) in entries {
            match value {
                Some(value) => write.put(key, value),
                None => write.delete(key),
            }
        }
        write.put_cf(self.meta()?, OFFSET_KEY, changelog_offset.to_be_bytes());
        self.db
            .write_opt(write, &self.restore_options)
            .map_err(rocks)
    }

    fn finish_restore(&self) -> Result<()> {
        self.flush()
    }

    fn apply_positions(&self, batch: &WriteBatch, positions: &Positions) -> Result<()> {
        let mut write = data_batch(batch);
        let meta = self.meta()?;
        for (partition, offset) in positions {
            let key = [POSITION_PREFIX, &partition.to_be_bytes()].concat();
            write.put_cf(meta, key, offset.to_be_bytes());
        }
        self.db.write_opt(write, &self.write_options).map_err(rocks)
    }

    fn positions(&self) -> Result<Positions> {
        let mut positions = Positions::new();
        let from = IteratorMode::From(POSITION_PREFIX, rocksdb::Direction::Forward);
        for entry in self.db.iterator_cf(self.meta()?, from) {
            let (key, value) = entry.map_err(rocks)?;
            let Some(partition) = key.strip_prefix(POSITION_PREFIX) else {
                break;
            };
            let (Ok(partition), Ok(offset)) =
                (<[u8; 4]>::try_from(partition), <[u8; 8]>::try_from(&*value))
            else {
                return Err(StreamsError::Store(
                    "a malformed global store position".into(),
                ));
            };
            positions.insert(u32::from_be_bytes(partition), u64::from_be_bytes(offset));
        }
        Ok(positions)
    }

    fn changelog_offset(&self) -> Result<Option<u64>> {
        let stored = self.db.get_cf(self.meta()?, OFFSET_KEY).map_err(rocks)?;
        match stored {
            None => Ok(None),
            Some(bytes) => {
                let bytes: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                    StreamsError::Store("a changelog offset that is not 8 bytes".into())
                })?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
        }
    }

    fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut found = Vec::new();
        for entry in self
            .db
            .iterator(IteratorMode::From(from, rocksdb::Direction::Forward))
        {
            let (key, value) = entry.map_err(rocks)?;
            if &*key >= to {
                break;
            }
            found.push((key.into_vec(), value.into_vec()));
        }
        Ok(found)
    }

    fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.db
            .iterator(IteratorMode::Start)
            .map(|entry| {
                entry
                    .map(|(k, v)| (k.into_vec(), v.into_vec()))
                    .map_err(rocks)
            })
            .collect()
    }
}

impl Drop for RocksBackend {
    fn drop(&mut self) {
        if self.read_only {
            return;
        }
        // Flushed memtables make the next open quick: nothing to replay
        // from the write-ahead log.
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "flushing a state store on close failed; it will restore from its changelog");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(prefix: &str, keys: usize) -> WriteBatch {
        (0..keys)
            .map(|i| {
                (
                    format!("{prefix}-{i:08}").into_bytes(),
                    Some(vec![7u8; 100]),
                )
            })
            .collect()
    }

    /// Two stores share a budget of 256 KiB of memtables; the first fills
    /// most of it and goes quiet; the second's writes must not wait for
    /// memory only the first could free.
    #[test]
    fn a_store_writes_while_another_holds_the_memtable_budget() {
        let dir = tempfile::tempdir().unwrap();
        let memory = StateMemory::new(1 << 20);
        let quiet = RocksBackend::open(&dir.path().join("a"), &memory).unwrap();
        quiet.apply(&batch("a", 1_500), Some(1)).unwrap();
        let busy = RocksBackend::open(&dir.path().join("b"), &memory).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for round in 0..20 {
                busy.apply(&batch(&format!("b{round}"), 500), Some(round))
                    .unwrap();
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the second store's writes stalled");
        drop(quiet);
    }

    /// A restore writes in changelog order (the later write of a key
    /// wins, a tombstone deletes) and, once finished, survives reopening
    /// with its offset, though it bypassed the write-ahead log.
    #[test]
    fn a_finished_restore_is_durable_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let memory = StateMemory::new(1 << 20);
        let store = RocksBackend::open(dir.path(), &memory).unwrap();
        let records: Vec<Restored<'_>> = vec![
            (b"a", Some(b"1")),
            (b"b", Some(b"1")),
            (b"a", Some(b"2")),
            (b"b", None),
        ];
        store.restore(&mut records.into_iter(), 4).unwrap();
        store.finish_restore().unwrap();
        // Not a clean close: nothing flushed on the way out but what the
        // restore flushed itself.
        std::mem::forget(store);
        let reopened = RocksBackend::open_read_only(dir.path()).unwrap();
        assert_eq!(
            reopened.entries().unwrap(),
            vec![(b"a".to_vec(), b"2".to_vec())]
        );
        assert_eq!(reopened.changelog_offset().unwrap(), Some(4));
    }
}
