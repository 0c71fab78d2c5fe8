//! What a log does after an fsync failed: it stops taking writes, and it
//! can be cut back to what its last successful syncs covered, so that it
//! is opened again from what reached the disk and not from what the page
//! cache happens to hold (see [`crate::FileIo::sync`]).

use super::log::PartitionLog;
use crate::{IoContext, Result, StorageError};

impl PartitionLog {
    pub(crate) fn record_flush_failure(&self, failure: String) {
        self.flush_failure.lock().get_or_insert(failure);
    }

    /// Refuses to go on after a failed fsync: neither an append (it could
    /// be acknowledged though an earlier write never reached the disk) nor
    /// a flush (a second fsync may return success without writing what the
    /// first one lost, and the flushed offset would then cover lost data).
    pub(crate) fn ensure_no_failed_sync(&self) -> Result<()> {
        match self.flush_failure.lock().as_ref() {
            None => Ok(()),
            Some(failure) => Err(StorageError::SyncFailed {
                dir: self.dir.clone(),
                reason: failure.clone(),
            }),
        }
    }

    /// The fsync failure this log stopped on, if any: the log takes no
    /// writes until it is opened again.
    pub fn failed_sync(&self) -> Option<String> {
        self.flush_failure.lock().clone()
    }

    /// After a failed fsync: cuts each segment file back to what its last
    /// successful sync covered, syncs the cut, and returns the bytes cut.
    /// The bytes past that point may be in the page cache and nowhere else;
    /// a replica that reopened them would serve, and vote with, entries its
    /// disk may not hold. Cut away, they come back from the group's leader.
    ///
    /// The log is unusable afterwards (its in-memory view no longer matches
    /// its files, and it refuses every write): drop it and open the
    /// directory again, whose recovery drops the segments a cut emptied.
    /// Fails, and can be called again later, while the disk still fails.
    pub fn discard_unsynced(&self) -> Result<u64> {
        if self.failed_sync().is_none() {
            return Err(StorageError::InvalidRequest(format!(
                "{}: no fsync failed, nothing to discard",
                self.dir.display()
            )));
        }
        let state = self.state.write();
        let mut cut = 0;
        for segment in state.segments.values() {
            if segment.synced < segment.size {
                let path = &segment.log_path;
                self.io
                    .set_len(&segment.file, path, segment.synced)
                    .at(path)?;
                self.io.sync(&segment.file, path).at(path)?;
                cut += segment.size - segment.synced;
            }
        }
        Ok(cut)
    }
}
