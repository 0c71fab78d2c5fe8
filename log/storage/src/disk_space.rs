//! The free-space reserve of a data directory: producers are refused
//! before the disk is full, not when it is.
//!
//! A write that meets a full disk (ENOSPC) fails inside a partition's Raft
//! log, and a Raft group whose log cannot be written stops: the partition
//! then serves nothing until the broker restarts. So the broker keeps a
//! reserve, as Redpanda does (`storage_min_free_bytes`): once the file
//! system holding the data directory has less than `min_free_bytes` free,
//! produce requests are refused with a retriable storage error naming the
//! directory and the space left, while everything that writes little and
//! keeps the cluster working (consumer-group offsets, transaction state,
//! Raft votes and metadata) goes on writing into the reserve. Reads never
//! need space. Producers are taken again by themselves once space returns
//! (retention deleting segments, a topic deleted, files removed by hand):
//! the free space is looked at again at most every [`RECHECK`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{IoContext, Result, StorageError};

/// How stale the free-space figure may be: a `statvfs` costs a system
/// call, and a produce request arrives every few microseconds under load;
/// ten looks a second cannot miss a disk filling at any real rate by more
/// than the reserve.
pub const RECHECK: Duration = Duration::from_millis(100);

/// The bytes free to unprivileged writers on the file system holding
/// `path` (`statvfs`'s `f_bavail` blocks of `f_frsize` bytes).
pub fn available_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        StorageError::InvalidRequest(format!("{} holds a NUL byte", path.display()))
    })?;
    // SAFETY: statvfs writes only into the zeroed struct it is given, and
    // reads the NUL-terminated path this function owns.
    let (status, stats) = unsafe {
        let mut stats: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c_path.as_ptr(), &mut stats), stats)
    };
    if status != 0 {
        return Err(std::io::Error::last_os_error()).at(path);
    }
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// The reserve of one data directory (see the module's comment).
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    min_free_bytes: u64,
    /// The free bytes as last looked at.
    free: AtomicU64,
    /// When they were, in nanoseconds since `created` (0: never): an
    /// atomic, not a lock, since every produce request reads it; two
    /// requests that both find it stale both look, which is harmless.
    checked_at: AtomicU64,
    created: Instant,
    /// Whether producers are being refused, so that the change is logged
    /// once each way rather than at every request.
    refusing: AtomicBool,
}

impl DiskSpace {
    /// The reserve of `dir`; `min_free_bytes` 0 refuses nothing.
    pub fn new(dir: impl Into<PathBuf>, min_free_bytes: u64) -> DiskSpace {
        DiskSpace {
            dir: dir.into(),
            min_free_bytes,
            free: AtomicU64::new(u64::MAX),
            checked_at: AtomicU64::new(0),
            created: Instant::now(),
            refusing: AtomicBool::new(false),
        }
    }

    /// Admits a write of `bytes` from a producer, or refuses it with
    /// [`StorageError::DiskFull`] when it would leave less than the
    /// reserve free. A file system that cannot be asked admits the write:
    /// the reserve guards against a full disk, not a broken one.
    pub fn admit(&self, bytes: usize) -> Result<()> {
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        let free = self.free_bytes();
        let wanted = self.min_free_bytes.saturating_add(bytes as u64);
        let short = free < wanted;
        if self.refusing.swap(short, Ordering::Relaxed) != short {
            match short {
                true => {
                    tracing::warn!(dir = %self.dir.display(), free, reserve = self.min_free_bytes, "disk space below the reserve: refusing producers")
                }
                false => {
                    tracing::info!(dir = %self.dir.display(), free, "disk space back above the reserve: taking producers again")
                }
            }
        }
        if short {
            return Err(StorageError::DiskFull {
                dir: self.dir.clone(),
                free,
                reserve: self.min_free_bytes,
            });
        }
        Ok(())
    }

    /// The free bytes, looked at again when the last look is older than
    /// [`RECHECK`].
    fn free_bytes(&self) -> u64 {
        // 1 ns past creation at the least, so that 0 stays "never".
        let now = u64::try_from(self.created.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let at = self.checked_at.load(Ordering::Relaxed);
        if at == 0 || now.saturating_sub(at) >= RECHECK.as_nanos() as u64 {
            self.checked_at.store(now, Ordering::Relaxed);
            match available_bytes(&self.dir) {
                Ok(free) => self.free.store(free, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell the data directory's free space");
                    self.free.store(u64::MAX, Ordering::Relaxed);
                }
            }
        }
        self.free.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_space_of_a_real_directory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let free = available_bytes(dir.path()).unwrap();
        assert!(free > 0, "a test machine has some space");
        let missing = available_bytes(&dir.path().join("missing"));
        assert!(
            matches!(missing, Err(StorageError::Io { .. })),
            "{missing:?}"
        );
    }

    #[test]
    fn writes_are_refused_below_the_reserve_and_taken_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let free = available_bytes(dir.path()).unwrap();
        DiskSpace::new(dir.path(), 0).admit(usize::MAX).unwrap();
        DiskSpace::new(dir.path(), 1).admit(0).unwrap();
        let refused = DiskSpace::new(dir.path(), free.saturating_mul(2)).admit(0);
        let error = refused.unwrap_err();
        assert!(matches!(error, StorageError::DiskFull { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        // The write's own size counts: a batch larger than what is free.
        let too_big = usize::try_from(free).unwrap_or(usize::MAX);
        assert!(DiskSpace::new(dir.path(), 1).admit(too_big).is_err());
    }
}
