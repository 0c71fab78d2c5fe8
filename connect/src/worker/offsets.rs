//! Where source offsets are kept: [`OffsetBackingStore`] (Kafka's
//! interface of the same name) with two implementations, the standalone
//! worker's JSON file ([`FileOffsetStore`], here) and a compacted topic
//! ([`TopicOffsetStore`], in `offset_topic`), as Kafka's distributed
//! worker keeps them. The worker config picks one (`runtime::open_store`).
//!
//! The file is `{connector: [{"partition": ..., "offset": ...}]}` (Kafka's
//! standalone worker keeps its offsets in `offset.storage.file.filename`
//! too). The whole file is rewritten at each commit, atomically: a
//! temporary file is written and synced, renamed over the old one, and the
//! directory synced, so a crash leaves the old offsets or the new ones,
//! never a torn file. The file is small (one entry per source partition)
//! and commits come once per flush interval per task.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::api::context::partition_key;
use crate::api::{OffsetStorageReader, SourceOffset, SourcePartition};
use crate::{ConnectError, Result};

/// One source partition's change: its new offset, or `None` to forget it
/// (its connector then reads the partition from its start).
pub type OffsetChange = (SourcePartition, Option<SourceOffset>);

/// Where a worker keeps its source connectors' offsets (Kafka's
/// `OffsetBackingStore`): what a task resumes from, what its flushes
/// store, and what the offsets endpoints read and change. Shared by every
/// task of the worker; each call sees every change made before it.
pub trait OffsetBackingStore: Send + Sync {
    /// Where the offsets are, for logs: the file's path or the topic's name.
    fn location(&self) -> String;

    /// The committed offset of each of `connector`'s source partitions,
    /// ordered by partition key.
    fn committed<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(SourcePartition, SourceOffset)>>>;

    /// Stores `offsets` as `connector`'s latest: a task's flush, once the
    /// records up to them are acknowledged.
    fn commit_offsets<'a>(
        &'a self,
        connector: &'a str,
        offsets: Vec<(SourcePartition, SourceOffset)>,
    ) -> BoxFuture<'a, Result<()>>;

    /// Sets or forgets the offsets of some of `connector`'s source
    /// partitions (Kafka Connect's offsets alteration); others stay.
    fn alter_offsets<'a>(
        &'a self,
        connector: &'a str,
        changes: Vec<OffsetChange>,
    ) -> BoxFuture<'a, Result<()>>;

    /// Forgets every offset of `connector`, so its next task reads its
    /// sources from the start (Kafka Connect's offsets reset).
    fn reset_offsets<'a>(&'a self, connector: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// One source partition's committed offset, as the file holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    partition: SourcePartition,
    offset: SourceOffset,
}

/// Connector → partition key → entry.
type Offsets = BTreeMap<String, BTreeMap<String, Entry>>;

/// The offsets file and what it holds. Shared by every source task of
/// the worker; commits are serialized, so each write holds every commit
/// before it. Clones share the offsets (and so the serialization), which
/// lets a clone carry a write off the async threads.
#[derive(Clone, Debug)]
pub struct FileOffsetStore {
    path: PathBuf,
    offsets: Arc<Mutex<Offsets>>,
}

impl FileOffsetStore {
    /// Reads the offsets at `path`; a missing file holds none (a first
    /// run). Its directory is created if needed.
    pub fn open(path: impl Into<PathBuf>) -> Result<FileOffsetStore> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| ConnectError::io(dir, e))?;
        }
        let offsets = match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Offsets::new(),
            Err(e) => return Err(ConnectError::io(&path, e)),
        };
        Ok(FileOffsetStore {
            path,
            offsets: Arc::new(Mutex::new(offsets)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The committed offsets of `connector`'s source partitions.
    pub fn reader(&self, connector: &str) -> OffsetStorageReader {
        let offsets = self.offsets.lock();
        let entries = offsets.get(connector).into_iter().flat_map(|e| e.values());
        OffsetStorageReader::new(entries.map(|e| (e.partition.clone(), e.offset.clone())))
    }

    /// Stores `offsets` as `connector`'s latest, and writes the file. A
    /// blocking call (it syncs the disk): call it off the async threads.
    pub fn commit(
        &self,
        connector: &str,
        offsets: Vec<(SourcePartition, SourceOffset)>,
    ) -> Result<()> {
        let mut all = self.offsets.lock();
        let entries = all.entry(connector.to_string()).or_default();
        for (partition, offset) in offsets {
            entries.insert(partition_key(&partition), Entry { partition, offset });
        }
        self.write(&all)
    }

    /// Every committed offset of `connector`'s source partitions, in the
    /// order the file keeps them (by partition key).
    pub fn offsets(&self, connector: &str) -> Vec<(SourcePartition, SourceOffset)> {
        let offsets = self.offsets.lock();
        let entries = offsets.get(connector).into_iter().flat_map(|e| e.values());
        entries
            .map(|e| (e.partition.clone(), e.offset.clone()))
            .collect()
    }

    /// Sets the offsets of some of `connector`'s source partitions, or
    /// (`None`) forgets them, and writes the file: Kafka Connect's
    /// offsets alteration. The change is applied to a copy first, so a
    /// write that fails leaves the store as it was. A blocking call.
    pub fn alter(&self, connector: &str, changes: Vec<OffsetChange>) -> Result<()> {
        let mut all = self.offsets.lock();
        let mut altered = all.clone();
        let entries = altered.entry(connector.to_string()).or_default();
        for (partition, offset) in changes {
            let key = partition_key(&partition);
            match offset {
                Some(offset) => {
                    entries.insert(key, Entry { partition, offset });
                }
                None => {
                    entries.remove(&key);
                }
            }
        }
        if entries.is_empty() {
            altered.remove(connector);
        }
        self.write(&altered)?;
        *all = altered;
        Ok(())
    }

    /// Forgets every offset of `connector`, so its next task reads its
    /// sources from the start (Kafka Connect's offsets reset). A blocking
    /// call.
    pub fn reset(&self, connector: &str) -> Result<()> {
        let mut all = self.offsets.lock();
        if !all.contains_key(connector) {
            return Ok(());
        }
        let mut reset = all.clone();
        reset.remove(connector);
        self.write(&reset)?;
        *all = reset;
        Ok(())
    }

    fn write(&self, offsets: &Offsets) -> Result<()> {
        let by_connector: BTreeMap<&String, Vec<&Entry>> = offsets
            .iter()
            .map(|(connector, entries)| (connector, entries.values().collect()))
            .collect();
        let bytes =
            serde_json::to_vec_pretty(&by_connector).map_err(|e| ConnectError::InvalidFile {
                path: self.path.clone(),
                reason: format!("cannot encode the offsets: {e}"),
            })?;
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |e| ConnectError::io(path, e)
        };
        let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
        file.write_all(&bytes).map_err(io(&temporary))?;
        file.sync_all().map_err(io(&temporary))?;
        drop(file);
        std::fs::rename(&temporary, &self.path).map_err(io(&self.path))?;
        // The rename is durable only once the directory is synced.
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))
    }
}

/// The file's writes sync the disk, so each runs off the async threads
/// on a clone of the store.
impl OffsetBackingStore for FileOffsetStore {
    fn location(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn committed<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(SourcePartition, SourceOffset)>>> {
        let offsets = self.offsets(connector);
        Box::pin(async move { Ok::<_, ConnectError>(offsets) })
    }

    fn commit_offsets<'a>(
        &'a self,
        connector: &'a str,
        offsets: Vec<(SourcePartition, SourceOffset)>,
    ) -> BoxFuture<'a, Result<()>> {
        let (store, connector) = (self.clone(), connector.to_string());
        Box::pin(blocking(move || store.commit(&connector, offsets)))
    }

    fn alter_offsets<'a>(
        &'a self,
        connector: &'a str,
        changes: Vec<OffsetChange>,
    ) -> BoxFuture<'a, Result<()>> {
        let (store, connector) = (self.clone(), connector.to_string());
        Box::pin(blocking(move || store.alter(&connector, changes)))
    }

    fn reset_offsets<'a>(&'a self, connector: &'a str) -> BoxFuture<'a, Result<()>> {
        let (store, connector) = (self.clone(), connector.to_string());
        Box::pin(blocking(move || store.reset(&connector)))
    }
}

/// Runs a write of the offsets file off the async threads.
async fn blocking(work: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ConnectError::Task(format!("writing source offsets failed: {e}")))?
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Offsets> {
    let by_connector: BTreeMap<String, Vec<Entry>> =
        serde_json::from_slice(bytes).map_err(|e| ConnectError::InvalidFile {
            path: path.to_path_buf(),
            reason: format!("not an offsets file: {e}"),
        })?;
    Ok(by_connector
        .into_iter()
        .map(|(connector, entries)| {
            let entries = entries
                .into_iter()
                .map(|entry| (partition_key(&entry.partition), entry))
                .collect();
            (connector, entries)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Value;

    fn partition(file: &str) -> SourcePartition {
        [("filename".to_string(), Value::from(file))].into()
    }

    fn offset(position: u64) -> SourceOffset {
        [("position".to_string(), Value::from(position))].into()
    }

    #[test]
    fn offsets_survive_a_reopen_and_later_commits_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("connect.offsets");
        let store = FileOffsetStore::open(&path).unwrap();
        assert!(store.reader("files").offset(&partition("a")).is_none());
        store
            .commit(
                "files",
                vec![(partition("a"), offset(10)), (partition("b"), offset(5))],
            )
            .unwrap();
        store
            .commit("files", vec![(partition("a"), offset(20))])
            .unwrap();
        store
            .commit("other", vec![(partition("a"), offset(1))])
            .unwrap();

        let reopened = FileOffsetStore::open(&path).unwrap();
        let files = reopened.reader("files");
        assert_eq!(files.offset(&partition("a")), Some(&offset(20)));
        assert_eq!(files.offset(&partition("b")), Some(&offset(5)));
        assert_eq!(
            reopened.reader("other").offset(&partition("a")),
            Some(&offset(1))
        );
        assert!(!dir
            .path()
            .join("state")
            .join("connect.offsets.tmp")
            .exists());

        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["files"][0]["partition"]["filename"], "a");
        assert_eq!(json["files"][0]["offset"]["position"], 20);
    }

    #[test]
    fn offsets_are_altered_and_reset_durably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connect.offsets");
        let store = FileOffsetStore::open(&path).unwrap();
        store
            .commit(
                "files",
                vec![(partition("a"), offset(10)), (partition("b"), offset(5))],
            )
            .unwrap();
        store
            .commit("other", vec![(partition("a"), offset(1))])
            .unwrap();
        store
            .alter(
                "files",
                vec![(partition("a"), Some(offset(3))), (partition("b"), None)],
            )
            .unwrap();
        assert_eq!(store.offsets("files"), vec![(partition("a"), offset(3))]);
        let reopened = FileOffsetStore::open(&path).unwrap();
        assert_eq!(reopened.offsets("files"), vec![(partition("a"), offset(3))]);

        reopened.reset("files").unwrap();
        assert!(reopened.offsets("files").is_empty());
        let again = FileOffsetStore::open(&path).unwrap();
        assert!(again.offsets("files").is_empty());
        assert_eq!(again.offsets("other"), vec![(partition("a"), offset(1))]);
        // Forgetting the last partition forgets the connector.
        again.alter("other", vec![(partition("a"), None)]).unwrap();
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({}));
    }

    #[test]
    fn a_corrupt_offsets_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connect.offsets");
        std::fs::write(&path, "{not json").unwrap();
        let error = FileOffsetStore::open(&path).unwrap_err();
        assert!(error.to_string().contains("connect.offsets"), "{error}");
    }
}
