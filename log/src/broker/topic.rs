//! Topics, partitions, and the topic metadata files that let a broker find
//! them again after a restart.
//!
//! A topic's metadata is `topics/<name>.conf`: its partition count and its
//! settings as `key=value` lines. It is written to a temporary file and
//! renamed into place, so a crash leaves the old or the new version. The file
//! is the commit point: a topic exists once it is written and is gone once
//! it is removed; partition directories without a metadata file (left by a
//! crash during create or delete) are removed at startup.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::watch;

use super::idempotence::LocalProducers;
use crate::config::LogConfig;
use crate::error::IoContext;
use crate::producers::ProducerStates;
use crate::replication::PartitionReplica;
use crate::storage::{write_atomically, LogRead, PartitionLog, SystemClock};
use crate::Result;

/// One partition: its log, and a watch that fetches wait on for new data.
/// In a cluster the partition is also a Raft replica: writes go through
/// it and readers see only what it has committed.
pub struct Partition {
    pub topic: String,
    pub index: u32,
    pub log: Arc<PartitionLog>,
    log_end: watch::Sender<u64>,
    replica: Option<Arc<PartitionReplica>>,
    /// The producer table of a partition that is not replicated (a
    /// replica keeps its own, applied through Raft).
    local_producers: Option<LocalProducers>,
}

impl Partition {
    fn open(data_dir: &Path, topic: &str, index: u32, config: LogConfig) -> Result<Partition> {
        let log = Arc::new(PartitionLog::open(
            partition_dir(data_dir, topic, index),
            config,
            Arc::new(SystemClock),
        )?);
        start_flusher_if_needed(&log);
        let (log_end, _) = watch::channel(log.log_end_offset());
        let local_producers = Some(LocalProducers::load(&log)?);
        Ok(Partition {
            topic: topic.to_string(),
            index,
            log,
            log_end,
            replica: None,
            local_producers,
        })
    }

    /// A partition whose writes go through `replica`'s Raft group.
    pub(crate) fn replicated(topic: &str, index: u32, replica: Arc<PartitionReplica>) -> Partition {
        let log = Arc::clone(replica.log());
        let (log_end, _) = watch::channel(log.log_end_offset());
        Partition {
            topic: topic.to_string(),
            index,
            log,
            log_end,
            replica: Some(replica),
            local_producers: None,
        }
    }

    /// The producer table of a partition that is not replicated.
    pub(crate) fn local_producers(&self) -> Option<&LocalProducers> {
        self.local_producers.as_ref()
    }

    /// The idempotent producers, as metadata responses describe them.
    pub fn describe_producers(&self) -> Vec<crate::proto::ProducerState> {
        self.producer_states()
            .iter()
            .map(|(producer_id, entry)| crate::proto::ProducerState {
                producer_id,
                epoch: i32::from(entry.epoch),
                last_sequence: entry.last_sequence().unwrap_or(-1),
                last_offset: entry.last_offsets().map_or(0, |o| o.next.saturating_sub(1)),
                last_append_ms: entry.last_append_ms,
            })
            .collect()
    }

    /// What this partition knows of its idempotent producers: on a
    /// replica, as applied (a leader's proposals not yet committed are not
    /// in it).
    pub fn producer_states(&self) -> ProducerStates {
        match (&self.replica, &self.local_producers) {
            (Some(replica), _) => replica.producer_states(),
            (None, Some(local)) => local.states(),
            (None, None) => ProducerStates::default(),
        }
    }

    /// The Raft replica, in a cluster.
    pub fn replica(&self) -> Option<&Arc<PartitionReplica>> {
        self.replica.as_ref()
    }

    /// Whole batches from `offset` that readers may see: everything in the
    /// log on a single node, only committed batches in a cluster.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<LogRead> {
        match &self.replica {
            Some(replica) => replica.read_committed(offset, max_bytes),
            None => self.log.read(offset, max_bytes),
        }
    }

    /// The offset after the last record readers may see.
    pub fn high_watermark(&self) -> u64 {
        match &self.replica {
            Some(replica) => replica.high_watermark(),
            None => self.log.log_end_offset(),
        }
    }

    /// The name the log manager knows this partition by.
    pub fn log_name(&self) -> String {
        format!("{}-{}", self.topic, self.index)
    }

    /// Tells waiting fetches that the log grew.
    pub fn notify_appended(&self) {
        self.log_end.send_replace(self.log.log_end_offset());
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn watch_end(&self) -> watch::Receiver<u64> {
        match &self.replica {
            Some(replica) => replica.subscribe_high_watermark(),
            None => self.log_end.subscribe(),
        }
    }
}

/// A topic: its settings and partitions.
pub struct Topic {
    pub name: String,
    config: RwLock<LogConfig>,
    partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    /// Partition `index`, if this broker holds it (in a cluster a broker
    /// holds only the partitions placed on it; partitions stay sorted).
    pub fn partition(&self, index: u32) -> Option<Arc<Partition>> {
        let partitions = self.partitions.read();
        let position = partitions.binary_search_by_key(&index, |p| p.index).ok()?;
        Some(Arc::clone(&partitions[position]))
    }

    /// A topic of a cluster, with no partition yet: the broker adds the
    /// replicas placed on it. Its metadata lives in the controller's log,
    /// so it has no file under `topics/`.
    pub(crate) fn in_cluster(name: &str, config: LogConfig) -> Topic {
        Topic {
            name: name.to_string(),
            config: RwLock::new(config),
            partitions: RwLock::default(),
        }
    }

    pub(crate) fn remove_partition(&self, index: u32) {
        self.partitions.write().retain(|p| p.index != index);
    }

    pub(crate) fn add_partition(&self, partition: Arc<Partition>) {
        let mut partitions = self.partitions.write();
        let position = partitions
            .binary_search_by_key(&partition.index, |p| p.index)
            .unwrap_or_else(|insert_at| insert_at);
        partitions.insert(position, partition);
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions.read().len() as u32
    }

    /// Creates the topic's partitions and metadata file.
    pub(crate) fn create(
        data_dir: &Path,
        name: &str,
        partitions: u32,
        config: LogConfig,
    ) -> Result<Topic> {
        let topic = Topic {
            name: name.to_string(),
            config: RwLock::new(config.clone()),
            partitions: RwLock::default(),
        };
        topic.grow(data_dir, partitions)?;
        // New partition directories must survive a power loss before the
        // metadata file that points at them is written.
        fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .at(data_dir)?;
        topic.save(data_dir)?;
        Ok(topic)
    }

    /// Opens partitions up to `count` (existing ones are kept).
    pub(crate) fn grow(&self, data_dir: &Path, count: u32) -> Result<Vec<Arc<Partition>>> {
        let config = self.config();
        let mut partitions = self.partitions.write();
        let mut added = Vec::new();
        for index in partitions.len() as u32..count {
            let partition = Arc::new(Partition::open(
                data_dir,
                &self.name,
                index,
                config.clone(),
            )?);
            added.push(Arc::clone(&partition));
            partitions.push(partition);
        }
        Ok(added)
    }

    pub(crate) fn set_config(&self, data_dir: &Path, config: LogConfig) -> Result<()> {
        self.apply_config(config);
        self.save(data_dir)
    }

    /// Makes `config` the settings of the topic and its partitions' logs,
    /// in memory (a replicated topic's settings live in the metadata).
    pub(crate) fn apply_config(&self, config: LogConfig) {
        for partition in self.partitions() {
            partition.log.set_config(config.clone());
            start_flusher_if_needed(&partition.log);
        }
        *self.config.write() = config;
    }

    pub(crate) fn save(&self, data_dir: &Path) -> Result<()> {
        let mut text = format!("partitions={}\n", self.partition_count());
        for (key, value) in self.config().to_pairs() {
            text.push_str(&format!("config.{key}={value}\n"));
        }
        let dir = data_dir.join("topics");
        fs::create_dir_all(&dir).at(&dir)?;
        write_atomically(&dir, &format!("{}.conf", self.name), text.as_bytes())
    }

    /// Removes the metadata file (the commit point), then the partitions.
    pub(crate) fn delete(&self, data_dir: &Path) -> Result<()> {
        let path = meta_path(data_dir, &self.name);
        fs::remove_file(&path).at(&path)?;
        // The unlink is the commit point: make it durable before any data
        // goes, or a crash could bring back a topic with holes.
        let meta_dir = data_dir.join("topics");
        fs::File::open(&meta_dir)
            .and_then(|d| d.sync_all())
            .at(&meta_dir)?;
        for partition in self.partitions.write().drain(..) {
            let dir = partition.log.dir().to_path_buf();
            fs::remove_dir_all(&dir).at(&dir)?;
        }
        Ok(())
    }
}

/// A log with a `flush.bytes` or `flush.ms` policy syncs from a flusher
/// thread of its own; a log with the default policy (explicit flushes, as
/// `acks=all` does) needs none, so a broker with many partitions does not
/// carry a thread per partition.
fn start_flusher_if_needed(log: &Arc<PartitionLog>) {
    if log.config().fsync != crate::config::FsyncPolicy::EXPLICIT {
        log.start_background_flush();
    }
}

fn meta_path(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join("topics").join(format!("{topic}.conf"))
}

pub(crate) fn partition_dir(data_dir: &Path, topic: &str, index: u32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

/// Loads every topic under `data_dir` and removes orphaned partition
/// directories.
pub(crate) fn load_all(
    data_dir: &Path,
    defaults: &LogConfig,
) -> Result<BTreeMap<String, Arc<Topic>>> {
    let meta_dir = data_dir.join("topics");
    fs::create_dir_all(&meta_dir).at(&meta_dir)?;
    let mut topics = BTreeMap::new();
    for entry in fs::read_dir(&meta_dir).at(&meta_dir)? {
        let path = entry.at(&meta_dir)?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".conf"))
        else {
            let _ = fs::remove_file(&path); // an interrupted write's temporary file
            continue;
        };
        let (partitions, config) = parse_meta(&path, defaults)?;
        let topic = Topic {
            name: name.to_string(),
            config: RwLock::new(config),
            partitions: RwLock::default(),
        };
        topic.grow(data_dir, partitions)?;
        topics.insert(name.to_string(), Arc::new(topic));
    }
    remove_orphans(data_dir, &topics)?;
    Ok(topics)
}

fn parse_meta(path: &Path, defaults: &LogConfig) -> Result<(u32, LogConfig)> {
    let text = fs::read_to_string(path).at(path)?;
    let bad = |line: &str| {
        crate::LogError::InvalidRequest(format!("{}: bad line `{line}`", path.display()))
    };
    let mut partitions = None;
    let mut config = defaults.clone();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line.split_once('=').ok_or_else(|| bad(line))?;
        match key.strip_prefix("config.") {
            Some(config_key) => config.set(config_key, value)?,
            None if key == "partitions" => {
                partitions = Some(value.parse::<u32>().map_err(|_| bad(line))?)
            }
            None => return Err(bad(line)),
        }
    }
    Ok((
        partitions.ok_or_else(|| bad("missing partitions="))?,
        config,
    ))
}

fn remove_orphans(data_dir: &Path, topics: &BTreeMap<String, Arc<Topic>>) -> Result<()> {
    for entry in fs::read_dir(data_dir).at(data_dir)? {
        let path = entry.at(data_dir)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((topic, index)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(index) = index.parse::<u32>() else {
            continue;
        };
        let known = topics
            .get(topic)
            .is_some_and(|t| index < t.partition_count());
        if path.is_dir() && !known {
            tracing::warn!(dir = %path.display(), "removing a partition directory no topic owns");
            fs::remove_dir_all(&path).at(&path)?;
        }
    }
    Ok(())
}
