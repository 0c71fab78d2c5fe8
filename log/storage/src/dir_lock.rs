//! The data directory's lock: one process serves a data directory.
//!
//! Two brokers on one directory would append to the same segment files
//! and replay each other's Raft logs: data is lost without an error
//! anywhere. Kafka refuses the second with "Failed to acquire lock on
//! file .lock"; spool does the same, naming the process that holds it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::{IoContext, Result, StorageError};

/// The lock file's name inside the data directory (Kafka's too).
pub const LOCK_FILE: &str = ".lock";

/// Held for as long as the directory is served; released when dropped,
/// and by the kernel when the process dies (an advisory `flock`), so a
/// crashed broker never leaves its directory locked.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Locks `dir` (created if missing) for this process, or fails with
    /// [`StorageError::DirectoryLocked`] naming the holder's pid. The pid
    /// is written into the lock file for the next one to name.
    pub fn acquire(dir: &Path) -> Result<DataDirLock> {
        std::fs::create_dir_all(dir).at(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .at(&path)?;
        // SAFETY: flock on a descriptor this function owns; no memory is
        // shared with the call.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StorageError::DirectoryLocked {
                dir: dir.to_path_buf(),
                holder: match holder.is_empty() {
                    true => "another process".into(),
                    false => format!("process {holder}"),
                },
            });
        }
        file.set_len(0).at(&path)?;
        file.rewind().at(&path)?;
        writeln!(file, "{}", std::process::id()).at(&path)?;
        Ok(DataDirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protection tested: the advisory lock itself. Before it, a second
    /// broker on a directory in use started and wrote the same segment
    /// files (seen by hand; issue 22).
    #[test]
    fn a_second_lock_on_a_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let refused = DataDirLock::acquire(dir.path()).unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains(".lock"), "{message}");
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
