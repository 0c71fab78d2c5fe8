//! A global table's store: one per instance, shared by every task that
//! looks it up and written only by the instance's global thread (or the
//! test driver). Writes reach it as the topic is read: the topic is the
//! store's changelog, so there is nothing to commit and no overlay.

use super::{Positions, StoreBackend, StoreSpec, WriteBatch};
use crate::Result;

pub struct GlobalStore {
    spec: StoreSpec,
    /// Shared without a lock of ours: backends take writes through
    /// `&self`, and RocksDB reads never wait for a write.
    backend: Box<dyn StoreBackend>,
}

impl GlobalStore {
    pub fn new(spec: StoreSpec, backend: Box<dyn StoreBackend>) -> GlobalStore {
        GlobalStore { spec, backend }
    }

    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.backend.get(key)
    }

    /// Applies records read from the topic, with the positions they reach.
    pub fn apply(&self, batch: &WriteBatch, positions: &Positions) -> Result<()> {
        self.backend.apply_positions(batch, positions)
    }

    pub fn positions(&self) -> Result<Positions> {
        self.backend.positions()
    }

    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.backend.entries()
    }
}
