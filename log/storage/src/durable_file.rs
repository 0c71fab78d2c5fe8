//! Small durable files: a value in bincode with a CRC32C trailer, written
//! to a temporary file, synced, renamed over the old one and the directory
//! synced. A crash leaves the old or the new content, never a mix, and a
//! damaged file is reported, never read as something else.

use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{sync_dir, write_atomically};
use crate::{Result, StorageError};

/// Reads `dir/name`, or `None` when it does not exist.
pub fn read_durable<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(&path, e)),
    };
    let corrupt = |reason: String| StorageError::CorruptBatch {
        file: path.clone(),
        position: 0,
        reason,
    };
    if bytes.len() < 4 {
        return Err(corrupt("shorter than its checksum".into()));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes(trailer.try_into().expect("four bytes"));
    if crc32c::crc32c(body) != stored {
        return Err(corrupt("checksum mismatch".into()));
    }
    let value = bincode::deserialize(body).map_err(|e| corrupt(e.to_string()))?;
    Ok(Some(value))
}

/// Replaces `dir/name` with `value`, durably (see the module docs).
pub fn write_durable<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    let mut bytes = bincode::serialize(value)
        .map_err(|e| StorageError::InvalidRequest(format!("cannot encode {name}: {e}")))?;
    bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_be_bytes());
    write_atomically(dir, name, &bytes)
}

/// Removes `dir/name` durably (a missing file is fine): once this returns,
/// a crash cannot bring the file back.
pub fn remove_durable(dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(&path, e)),
    }
}
