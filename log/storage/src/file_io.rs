//! The writes, truncations and syncs of segment files, behind a trait so
//! that tests can make the disk misbehave (`testing::FaultyFileIo`: failed
//! and slow fsyncs, write errors, a full disk, a power cut that drops what
//! was never synced) without touching a real device.
//!
//! Only what decides durability goes through [`FileIo`]: appends to a
//! segment's log file, cutting it, and the fsyncs of segment and index
//! files. Small metadata files (checkpoints, Raft votes) are written whole,
//! synced and renamed into place by `durable_file`/`checkpoint` and stay on
//! the operating system directly: they are never left half-written, and a
//! failure writing them is returned to the caller like any other error.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How the log touches the bytes of its segment files.
///
/// Every method gets the open file and the path it was opened from (for
/// errors, and so a test layer can tell files apart).
pub trait FileIo: Send + Sync + std::fmt::Debug + 'static {
    /// Writes all of `bytes` at `position` of `file`.
    ///
    /// Contract: on `Ok`, a later read of that range returns `bytes`; they
    /// are not durable until a later [`FileIo::sync`] of the same file
    /// returns `Ok`. On `Err`, any part of the range may hold anything: the
    /// caller must not count the range as written (the log keeps its end
    /// where it was, so the next append overwrites it).
    fn write_at(&self, file: &File, path: &Path, bytes: &[u8], position: u64) -> io::Result<()>;

    /// Makes every byte written to `file` so far durable (`fdatasync`).
    ///
    /// Contract: `Ok` means every write that returned before this call
    /// survives a power cut. `Err` means nothing about those writes: some
    /// may be on the device, some lost, and on Linux the kernel may have
    /// marked the failed pages clean, so a second sync could return `Ok`
    /// without writing them (PostgreSQL's "fsyncgate", 2018). The caller
    /// must therefore never retry a failed sync as if it could succeed:
    /// `PartitionLog` stops taking writes and reports the failure instead.
    fn sync(&self, file: &File, path: &Path) -> io::Result<()>;

    /// Cuts (or extends with zeros) `file` to `len` bytes. Like a write, the
    /// new length is durable only after a successful [`FileIo::sync`].
    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()>;
}

/// The operating system's file calls: what every broker runs with.
#[derive(Debug)]
pub struct OsFileIo;

impl FileIo for OsFileIo {
    fn write_at(&self, file: &File, _path: &Path, bytes: &[u8], position: u64) -> io::Result<()> {
        file.write_all_at(bytes, position)
    }

    fn sync(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_data()
    }

    fn set_len(&self, file: &File, _path: &Path, len: u64) -> io::Result<()> {
        file.set_len(len)
    }
}
