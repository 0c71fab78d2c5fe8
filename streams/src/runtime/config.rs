//! `StreamsConfig`: an application's settings, each default next to why
//! it is what it is (Kafka Streams' names in the comments).

use std::path::PathBuf;
use std::time::Duration;

use crate::topology::ErrorHandling;
use crate::{Result, StreamsError};

/// `processing.guarantee`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Each record's effects appear at least once: after a crash, records
    /// since the last commit are processed again (Kafka Streams' default).
    #[default]
    AtLeastOnce,
    /// Each record's effects (outputs, store updates, its input offset)
    /// commit together in one transaction, or not at all (Kafka's
    /// `exactly_once_v2`: one transactional producer per thread).
    ExactlyOnce,
}

/// What happens when a processing thread stops with an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnThreadFailure {
    /// Start a new thread in its place (Kafka Streams' `REPLACE_THREAD`):
    /// it rejoins the group and resumes its tasks from their last commit.
    /// The default: a transient failure (a broker restarting) must not
    /// take an instance down.
    #[default]
    ReplaceThread,
    /// Stop this instance's other threads too (`SHUTDOWN_CLIENT`);
    /// `KafkaStreams::close` returns the error.
    ShutdownInstance,
}

/// An application's settings. `StreamsConfig::new(id)` gives Kafka
/// Streams' defaults; change fields directly.
#[derive(Clone, Debug)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group, the prefix of internal
    /// topics and transactional ids, and the state directory's name.
    pub application_id: String,
    /// `state.dir` (default `<temp dir>/spool-streams`, as Kafka Streams
    /// uses `<temp dir>/kafka-streams`): stores live under
    /// `<state_dir>/<application_id>/<task>/<store>`. Point it at a
    /// persistent disk in production: a store that survives a restart
    /// resumes instead of restoring.
    pub state_dir: PathBuf,
    /// `num.stream.threads` (default 1): processing threads, each a group
    /// member with its own tasks, consumer and (exactly-once) producer.
    pub num_threads: usize,
    pub processing_guarantee: ProcessingGuarantee,
    /// `commit.interval.ms`: `None` for Kafka Streams' defaults, 100 ms
    /// under exactly-once (outputs become visible only at a commit, so
    /// this is their latency) and 30 s under at-least-once (a commit there
    /// only bounds what a crash reprocesses).
    pub commit_interval: Option<Duration>,
    /// `deserialization.exception.handler` (log and continue),
    /// `processing.exception.handler` (fail) and
    /// `errors.dead.letter.queue.topic.name` (none): see [`ErrorHandling`].
    pub errors: ErrorHandling,
    /// What happens when a processing thread stops with an error
    /// (Kafka Streams' uncaught exception handler): by default it is
    /// replaced by a new one, which resumes from the last commit.
    pub on_thread_failure: OnThreadFailure,
    /// Memory shared by every RocksDB store of this instance: block cache
    /// and memtables together (default 64 MiB; Kafka Streams' per-store
    /// defaults reach that with a handful of stores, and it has no total).
    pub state_memory_bytes: usize,
    /// How long a store's finished commits may wait in memory before they
    /// are written to the store itself (default 1 s; see
    /// [`ApplyPolicy`](crate::state::ApplyPolicy)). They are in the
    /// changelog already, so waiting loses nothing in a crash and costs
    /// the restart at most this much changelog to read back, while a key
    /// written at every commit (a count's hot keys, ten commits a second
    /// under exactly-once) reaches RocksDB once per interval instead of
    /// once per commit. Zero writes every commit.
    pub state_apply_interval: Duration,
    /// Or as soon as the waiting commits hold this many bytes of keys and
    /// values (default 4 MiB): the memory they hold per store, outside
    /// `state_memory_bytes`. A store whose keys are all new gains nothing
    /// from waiting; one that writes past this at every commit (40 MB/s
    /// at 100 ms commits) is written at every commit.
    pub state_apply_max_bytes: usize,
    /// Replicas of internal topics (default 0: the broker's choice, three
    /// or the cluster's size if smaller; Kafka Streams' `-1`).
    pub replication_factor: u32,
    /// Static membership (`group.instance.id` per thread, suffixed with
    /// the thread's index) and the transactional ids' middle part. `None`
    /// uses an id kept in the state directory, so a restarted instance
    /// reuses its transactional ids and fences its own past incarnation
    /// at once instead of waiting for its open transaction to time out.
    pub instance_id: Option<String>,
    /// `repartition.purge.interval.ms` (default 30 s, as Kafka Streams):
    /// how often records every task has committed are deleted from the
    /// repartition topics (DeleteRecords), which nothing reads again.
    pub repartition_purge_interval: Duration,
    /// How long the group waits for a silent member (default 45 s, as
    /// Kafka's consumer; a crashed instance's tasks move after this).
    pub session_timeout: Duration,
    /// Where the instance serves its metrics in Prometheus' text format,
    /// per task included (default none: an embedded library opens no
    /// port unless asked; `app.metrics()` and `app.task_metrics()` are
    /// always there).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How often an application whose sources read topics by pattern
    /// looks for topics created (or deleted) since, and takes them up
    /// (default 5 minutes, Kafka's `metadata.max.age.ms`, which paces
    /// Kafka Streams' pattern subscriptions too).
    pub metadata_max_age: Duration,
}

impl StreamsConfig {
    pub fn new(application_id: &str) -> StreamsConfig {
        StreamsConfig {
            application_id: application_id.to_string(),
            state_dir: std::env::temp_dir().join("spool-streams"),
            num_threads: 1,
            processing_guarantee: ProcessingGuarantee::default(),
            commit_interval: None,
            errors: ErrorHandling::default(),
            on_thread_failure: OnThreadFailure::default(),
            state_memory_bytes: 64 << 20,
            state_apply_interval: Duration::from_secs(1),
            state_apply_max_bytes: 4 << 20,
            replication_factor: 0,
            instance_id: None,
            repartition_purge_interval: Duration::from_secs(30),
            session_timeout: Duration::from_secs(45),
            metrics_listen: None,
            metadata_max_age: Duration::from_secs(300),
        }
    }

    /// The commit interval in effect.
    pub fn commit_interval(&self) -> Duration {
        self.commit_interval
            .unwrap_or(match self.processing_guarantee {
                ProcessingGuarantee::ExactlyOnce => Duration::from_millis(100),
                ProcessingGuarantee::AtLeastOnce => Duration::from_secs(30),
            })
    }

    /// When stores write their finished commits.
    pub fn apply_policy(&self) -> crate::state::ApplyPolicy {
        crate::state::ApplyPolicy {
            interval: self.state_apply_interval,
            max_pending_bytes: self.state_apply_max_bytes,
        }
    }

    pub fn exactly_once(&self) -> bool {
        self.processing_guarantee == ProcessingGuarantee::ExactlyOnce
    }

    /// Refuses settings that cannot work, naming the setting.
    pub fn validate(&self) -> Result<()> {
        let id = &self.application_id;
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if id.is_empty() || !id.chars().all(legal) {
            return Err(StreamsError::Config(format!(
                "application_id `{id}` must be non-empty ASCII letters, digits, `.`, `_` or `-` (it names topics)"
            )));
        }
        if self.num_threads == 0 {
            return Err(StreamsError::Config(
                "num_threads must be at least 1".into(),
            ));
        }
        if self.commit_interval().is_zero() {
            return Err(StreamsError::Config(
                "commit_interval must be positive".into(),
            ));
        }
        if self.state_memory_bytes < 1 << 20 {
            return Err(StreamsError::Config(
                "state_memory_bytes below 1 MiB leaves RocksDB no room to work".into(),
            ));
        }
        Ok(())
    }
}
