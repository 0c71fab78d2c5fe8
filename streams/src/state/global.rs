//! A global table's store: one per instance, shared by every task that
//! looks it up and written only by the instance's global thread (or the
//! test driver). Writes reach it as the topic is read: the topic is the
//! store's changelog, so there is nothing to commit and no overlay.

use parking_lot::Mutex;

use super::{Positions, StoreBackend, StoreSpec, WriteBatch};
use crate::Result;

pub struct GlobalStore {
    spec: StoreSpec,
    /// A mutex rather than a read-write lock: a backend is `Send` but not
    /// `Sync`, and a lookup holds it for one point read.
    backend: Mutex<Box<dyn StoreBackend>>,
}

impl GlobalStore {
    pub fn new(spec: StoreSpec, backend: Box<dyn StoreBackend>) -> GlobalStore {
        GlobalStore {
            spec,
            backend: Mutex::new(backend),
        }
    }

    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.backend.lock().get(key)
    }

    /// Applies records read from the topic, with the positions they reach.
    pub fn apply(&self, batch: &WriteBatch, positions: &Positions) -> Result<()> {
        self.backend.lock().apply_positions(batch, positions)
    }

    pub fn positions(&self) -> Result<Positions> {
        self.backend.lock().positions()
    }

    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.backend.lock().entries()
    }
}
