//! [`FaultyFileIo`]: a [`FileIo`] that does what the operating system
//! does until a test tells it to fail, and remembers how much of each file
//! was synced, so that a "power cut" can drop every byte that never was.
//!
//! The model, and what it leaves out:
//! - a file's durable length is its length at its last successful sync
//!   through this layer (or, for a file this layer first sees being
//!   written, its length before that write); a power cut cuts each file
//!   back to it. Segment logs are append-only, so that is every byte
//!   written since;
//! - an injected sync failure does not sync, as a failing device would
//!   not, and leaves the durable length where it was;
//! - not modelled: renames and directory entries (a segment created and
//!   never synced survives as an empty file), and files written around
//!   this layer (checkpoints and Raft state, which are synced before they
//!   are renamed into place).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::file_io::FileIo;

/// A fault that hits the next `remaining` operations on files whose path
/// contains `matching`.
#[derive(Clone, Debug)]
struct Fault {
    matching: String,
    remaining: u64,
    errno: i32,
}

impl Fault {
    /// The error to return for an operation on `path`, using the fault up.
    fn hit(slot: &mut Option<Fault>, path: &Path) -> Option<io::Error> {
        let fault = slot.as_mut()?;
        if !path.to_string_lossy().contains(&fault.matching) {
            return None;
        }
        let error = io::Error::from_raw_os_error(fault.errno);
        fault.remaining -= 1;
        if fault.remaining == 0 {
            *slot = None;
        }
        Some(error)
    }
}

#[derive(Debug, Default)]
struct Faults {
    syncs: Option<Fault>,
    writes: Option<Fault>,
    slow_sync: Option<Duration>,
}

/// A fault-injecting file layer for tests; see the [module docs](self).
#[derive(Debug, Default)]
pub struct FaultyFileIo {
    faults: Mutex<Faults>,
    /// Durable length of every file written or synced through this layer.
    durable: Mutex<HashMap<PathBuf, u64>>,
    syncs_failed: AtomicU64,
    writes_failed: AtomicU64,
}

/// Pass as a count: the fault lasts until [`FaultyFileIo::heal`].
pub const FOREVER: u64 = u64::MAX;

impl FaultyFileIo {
    pub fn new() -> Arc<FaultyFileIo> {
        Arc::new(FaultyFileIo::default())
    }

    /// The next `times` syncs of files whose path contains `matching`
    /// (`""`: every file) fail with EIO and sync nothing.
    pub fn fail_syncs(&self, matching: &str, times: u64) {
        self.faults.lock().syncs = Some(fault(matching, times, libc::EIO));
    }

    /// The next `times` writes of matching files fail with `errno` (EIO, or
    /// ENOSPC for a full disk) and write nothing.
    pub fn fail_writes(&self, matching: &str, times: u64, errno: i32) {
        self.faults.lock().writes = Some(fault(matching, times, errno));
    }

    /// Every sync takes `delay` longer (a slow or overloaded device), which
    /// also widens the window in which written bytes are not yet durable.
    pub fn slow_syncs(&self, delay: Duration) {
        self.faults.lock().slow_sync = Some(delay);
    }

    /// Removes every fault: the disk behaves again.
    pub fn heal(&self) {
        *self.faults.lock() = Faults::default();
    }

    /// Syncs that failed because a test said so.
    pub fn syncs_failed(&self) -> u64 {
        self.syncs_failed.load(Ordering::SeqCst)
    }

    /// Writes that failed because a test said so.
    pub fn writes_failed(&self) -> u64 {
        self.writes_failed.load(Ordering::SeqCst)
    }

    /// Cuts every file written through this layer back to its durable
    /// length, as a power cut would, and returns the bytes dropped. Call it
    /// with no log open on these files (crash the node first): it is the
    /// disk as the next boot finds it.
    pub fn power_cut(&self) -> io::Result<u64> {
        let mut durable = self.durable.lock();
        let mut dropped = 0;
        for (path, &length) in durable.iter() {
            let file = match OpenOptions::new().write(true).open(path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let size = file.metadata()?.len();
            if size > length {
                file.set_len(length)?;
                file.sync_all()?;
                dropped += size - length;
            }
        }
        durable.clear();
        Ok(dropped)
    }

    /// Notes `file`'s current length as durable, if this layer has not seen
    /// the file yet (what it held before was there when the layer came).
    fn track(&self, file: &File, path: &Path) -> io::Result<()> {
        let mut durable = self.durable.lock();
        if !durable.contains_key(path) {
            durable.insert(path.to_path_buf(), file.metadata()?.len());
        }
        Ok(())
    }
}

fn fault(matching: &str, times: u64, errno: i32) -> Fault {
    Fault {
        matching: matching.to_string(),
        remaining: times.max(1),
        errno,
    }
}

impl FileIo for FaultyFileIo {
    fn write_at(&self, file: &File, path: &Path, bytes: &[u8], position: u64) -> io::Result<()> {
        if let Some(error) = Fault::hit(&mut self.faults.lock().writes, path) {
            self.writes_failed.fetch_add(1, Ordering::SeqCst);
            return Err(error);
        }
        self.track(file, path)?;
        file.write_all_at(bytes, position)
    }

    fn sync(&self, file: &File, path: &Path) -> io::Result<()> {
        let (failure, delay) = {
            let mut faults = self.faults.lock();
            (Fault::hit(&mut faults.syncs, path), faults.slow_sync)
        };
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        if let Some(error) = failure {
            self.syncs_failed.fetch_add(1, Ordering::SeqCst);
            return Err(error);
        }
        // The length is read before the sync: a write racing with it may or
        // may not be covered, so it is not counted.
        let length = file.metadata()?.len();
        file.sync_data()?;
        self.durable.lock().insert(path.to_path_buf(), length);
        Ok(())
    }

    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.track(file, path)?;
        file.set_len(len)?;
        if let Some(durable) = self.durable.lock().get_mut(path) {
            *durable = (*durable).min(len);
        }
        Ok(())
    }
}
