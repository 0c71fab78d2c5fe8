//! The per-partition checkpoint file: where recovery may start, where the log
//! starts, and how far the cleaner has compacted.
//!
//! Written to a temporary file, synced, renamed over the old one and the
//! directory synced, so a crash leaves either the old or the new checkpoint.
//! A missing checkpoint means "trust nothing": recovery scans every segment.

use std::fs::{self, File};
use std::path::Path;

use crate::IoContext;
use crate::{Result, StorageError};

pub const FILE_NAME: &str = "checkpoint";
/// The first line of every checkpoint file. It names spool-log, the crate
/// this code lived in when the format was fixed; it stays, or every data
/// directory written before would become unreadable.
const HEADER: &str = "spool-log-checkpoint v1";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every segment that ends at or before this offset is synced and has
    /// synced index files; recovery validates only the segments after it.
    pub recovery_point: u64,
    /// The first offset readers may see (raised by retention and deletes).
    pub log_start_offset: u64,
    /// The cleaner has compacted everything before this offset.
    pub cleaner_offset: u64,
    /// Raft index of the first segment's first batch; later segments count
    /// on from it. (Written from the log's state at every checkpoint.)
    pub first_raft_index: u64,
    /// Base offset of the segment `first_raft_index` belongs to. Segments
    /// are deleted from the front after the checkpoint names their
    /// successor, so recovery deletes any segment before this one that a
    /// crash left behind instead of numbering from it.
    pub first_raft_segment: u64,
}

impl Checkpoint {
    pub fn read(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(FILE_NAME);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::default()),
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        let bad = |reason: &str| StorageError::CorruptBatch {
            file: path.clone(),
            position: 0,
            reason: format!("unreadable checkpoint: {reason}"),
        };
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(bad("unknown header"));
        }
        let mut checkpoint = Checkpoint::default();
        for line in lines {
            let (key, value) = line.split_once('=').ok_or_else(|| bad(line))?;
            let value: u64 = value.parse().map_err(|_| bad(line))?;
            match key {
                "recovery_point" => checkpoint.recovery_point = value,
                "log_start_offset" => checkpoint.log_start_offset = value,
                "cleaner_offset" => checkpoint.cleaner_offset = value,
                "first_raft_index" => checkpoint.first_raft_index = value,
                "first_raft_segment" => checkpoint.first_raft_segment = value,
                _ => return Err(bad(line)),
            }
        }
        Ok(checkpoint)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = format!(
            "{HEADER}\nrecovery_point={}\nlog_start_offset={}\ncleaner_offset={}\n\
             first_raft_index={}\nfirst_raft_segment={}\n",
            self.recovery_point,
            self.log_start_offset,
            self.cleaner_offset,
            self.first_raft_index,
            self.first_raft_segment
        );
        write_atomically(dir, FILE_NAME, text.as_bytes())
    }
}

/// Replaces `dir/name` with `bytes` so that a crash leaves the old or the
/// new content: written to `name.tmp`, synced, renamed, directory synced.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    fs::write(&tmp, bytes).at(&tmp)?;
    File::open(&tmp).and_then(|f| f.sync_all()).at(&tmp)?;
    fs::rename(&tmp, &path).at(&path)?;
    sync_dir(dir)
}

/// Makes renames and new files in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_defaults_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), Checkpoint::default());
        let c = Checkpoint {
            recovery_point: 42,
            log_start_offset: 7,
            cleaner_offset: 30,
            first_raft_index: 12,
            first_raft_segment: 5,
        };
        c.write(dir.path()).unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), c);
        fs::write(dir.path().join(FILE_NAME), "garbage").unwrap();
        assert!(Checkpoint::read(dir.path()).is_err());
    }
}
