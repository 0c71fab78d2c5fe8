//! The in-memory backend: an ordered map, gone with the process.

use super::{Positions, Restored, StoreBackend, WriteBatch};
use crate::Result;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct MemoryBackend {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    changelog_offset: Option<u64>,
    positions: Positions,
}

impl MemoryBackend {
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
        Ok(self.entries.get(key).cloned())
    }

    fn apply(&mut self, batch: &WriteBatch, changelog_offset: Option<u64>) -> Result<()> {
        self.write(batch);
        if changelog_offset.is_some() {
            self.changelog_offset = changelog_offset;
        }
        Ok(())
    }

    fn restore<'a>(
        &mut self,
        entries: &mut dyn Iterator<Item = Restored<'a>>,
        changelog_offset: u64,
    ) -> Result<()> {
        for (key, value) in entries {
            match value {
                Some(value) => self.entries.insert(key.to_vec(), value.to_vec()),
                None => self.entries.remove(key),
            };
        }
        self.changelog_offset = Some(changelog_offset);
        Ok(())
    }

    fn finish_restore(&mut self) -> Result<()> {
        Ok(())
    }

    fn apply_positions(&mut self, batch: &WriteBatch, positions: &Positions) -> Result<()> {
        self.write(batch);
        self.positions
            .extend(positions.iter().map(|(&p, &offset)| (p, offset)));
        Ok(())
    }

    fn positions(&self) -> Result<Positions> {
        Ok(self.positions.clone())
    }

    fn changelog_offset(&self) -> Result<Option<u64>> {
        Ok(self.changelog_offset)
    }

    fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(self
            .entries
            .range(from.to_vec()..to.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
