//! The in-memory backend: an ordered map, gone with the process.

use std::collections::BTreeMap;

use parking_lot::RwLock;

use super::{Positions, Restored, StoreBackend, WriteBatch};
use crate::Result;

/// Behind a read-write lock, as backends are shared (see
/// [`StoreBackend`]): a write holds it for one batch, reads for one
/// look-up.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    changelog_offset: Option<u64>,
    positions: Positions,
}

impl Inner {
    fn write(&mut self, batch: &WriteBatch) {
        for (key, value) in batch {
            match value {
                Some(value) => self.entries.insert(key.clone(), value.clone()),
                None => self.entries.remove(key),
            };
        }
    }
}

impl StoreBackend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.read().entries.get(key).cloned())
    }

    fn apply(&self, batch: &WriteBatch, changelog_offset: Option<u64>) -> Result<()> {
        let mut inner = self.inner.write();
        inner.write(batch);
        if changelog_offset.is_some() {
            inner.changelog_offset = changelog_offset;
        }
        Ok(())
    }

    fn restore<'a>(
        &self,
        entries: &mut dyn Iterator<Item = Restored<'a>>,
        changelog_offset: u64,
    ) -> Result<()> {
        let mut inner = self.inner.write();
        for (key, value) in entries {
            match value {
                Some(value) => inner.entries.insert(key.to_vec(), value.to_vec()),
                None => inner.entries.remove(key),
            };
        }
        inner.changelog_offset = Some(changelog_offset);
        Ok(())
    }

    fn finish_restore(&self) -> Result<()> {
        Ok(())
    }

    fn apply_positions(&self, batch: &WriteBatch, positions: &Positions) -> Result<()> {
        let mut inner = self.inner.write();
        inner.write(batch);
        inner
            .positions
            .extend(positions.iter().map(|(&p, &offset)| (p, offset)));
        Ok(())
    }

    fn positions(&self) -> Result<Positions> {
        Ok(self.inner.read().positions.clone())
    }

    fn changelog_offset(&self) -> Result<Option<u64>> {
        Ok(self.inner.read().changelog_offset)
    }

    fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(self
            .inner
            .read()
            .entries
            .range(from.to_vec()..to.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .inner
            .read()
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
