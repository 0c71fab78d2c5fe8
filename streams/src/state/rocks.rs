//! The RocksDB backend: one database per (task, store) under the state
//! directory, all sharing one memory budget ([`StateMemory`]).
//!
//! RocksDB's write-ahead log is off: the changelog topic is the log. The
//! changelog offset lives in its own column family, written in the same
//! write batch as the data, and the two families flush atomically, so
//! whatever RocksDB recovers after a crash is a state and the offset it
//! belongs to.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, IteratorMode, Options,
    WriteBufferManager, WriteOptions, DB,
};

use super::{Positions, StoreBackend, WriteBatch};
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
    /// quarter of it for memtables, which RocksDB stalls writes to keep
    /// under rather than exceed.
    pub fn new(bytes: usize) -> StateMemory {
        let cache = Cache::new_lru_cache(bytes);
        let write_buffers =
            WriteBufferManager::new_write_buffer_manager_with_cache(bytes / 4, true, cache.clone());
        StateMemory {
            cache,
            write_buffers,
        }
    }
}

pub struct RocksBackend {
    db: DB,
    write_options: WriteOptions,
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
        options.set_block_based_table_factory(&table);
        let families = [
            ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, options.clone()),
            ColumnFamilyDescriptor::new(META_FAMILY, options.clone()),
        ];
        let db =
            DB::open_cf_descriptors(&options, path, families).map_err(|e| store_error(path, e))?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(false);
        Ok(RocksBackend {
            db,
            write_options,
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
            read_only: true,
        })
    }

    fn meta(&self) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(META_FAMILY)
            .ok_or_else(|| StreamsError::Store(format!("column family {META_FAMILY} missing")))
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

    fn apply(&mut self, batch: &WriteBatch, changelog_offset: Option<u64>) -> Result<()> {
        let mut write = data_batch(batch);
        if let Some(offset) = changelog_offset {
            write.put_cf(self.meta()?, OFFSET_KEY, offset.to_be_bytes());
        }
        self.db.write_opt(write, &self.write_options).map_err(rocks)
    }

    fn apply_positions(&mut self, batch: &WriteBatch, positions: &Positions) -> Result<()> {
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
        if let Err(e) = self.db.flush() {
            tracing::warn!(error = %e, "flushing a state store on close failed; it will restore from its changelog");
        }
    }
}
