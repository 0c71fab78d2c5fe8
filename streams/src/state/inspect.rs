//! An application's state directory seen from outside (`spool streams
//! describe --state-dir`): each store's size on disk and the changelog
//! offset it recorded, read without disturbing a running instance
//! (RocksDB opened read-only, no lock taken).

use std::path::Path;

use super::{Positions, RocksBackend, StoreBackend};
use crate::{Result, StreamsError};

/// One store under `<state_dir>/<application_id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOnDisk {
    /// The task (`0_1`), or `global` for a global table's store.
    pub task: String,
    pub store: String,
    /// Bytes of its files.
    pub bytes: u64,
    /// The changelog offset its state includes (a task's store).
    pub changelog_offset: Option<u64>,
    /// The offset reached in each partition of its topic (a global store).
    pub positions: Positions,
}

/// Every store of application `app` under `state_dir`, in task then store
/// order; a store RocksDB cannot read is reported with no offset.
pub fn stores_on_disk(state_dir: &Path, app: &str) -> Result<Vec<StoreOnDisk>> {
    let app_dir = state_dir.join(app);
    let mut found = Vec::new();
    for task in sorted_dirs(&app_dir)? {
        for store in sorted_dirs(&app_dir.join(&task))? {
            let path = app_dir.join(&task).join(&store);
            let (changelog_offset, positions) = match RocksBackend::open_read_only(&path) {
                Ok(db) => (db.changelog_offset()?, db.positions()?),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot read a store");
                    (None, Positions::new())
                }
            };
            found.push(StoreOnDisk {
                task: task.clone(),
                store,
                bytes: size_of(&path)?,
                changelog_offset,
                positions,
            });
        }
    }
    Ok(found)
}

/// The names of the directories in `dir` (none if it does not exist).
fn sorted_dirs(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unreadable(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(dir, e))?;
        if entry.file_type().map_err(|e| unreadable(dir, e))?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn size_of(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
        let metadata = entry
            .and_then(|e| e.metadata())
            .map_err(|e| unreadable(dir, e))?;
        if metadata.is_file() {
            total += metadata.len();
        }
    }
    Ok(total)
}

fn unreadable(dir: &Path, e: std::io::Error) -> StreamsError {
    StreamsError::StateDir(format!("reading {}: {e}", dir.display()))
}
