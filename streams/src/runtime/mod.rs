//! The runtime: runs a topology against a broker or cluster.
//!
//! [`KafkaStreams::start`] checks the config, locks the state directory,
//! creates the internal topics and starts the processing threads; each
//! thread is a member of the application's consumer group (see
//! `thread`). The design, and what is not built yet, is in
//! docs/streams.md.

mod commit;
mod config;
mod endpoint;
mod global;
mod metrics;
mod patterns;
mod restore;
mod task;
mod thread;
mod topics;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use spool_client::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{OnThreadFailure, ProcessingGuarantee, StreamsConfig};
pub use metrics::{StreamsMetrics, TaskMetrics};
pub use task::TaskId;

use crate::state::StateMemory;
use crate::topology::Topology;
use crate::{Result, StreamsError};

/// A running application (Kafka Streams' `KafkaStreams`). Close it with
/// [`KafkaStreams::close`]: threads commit what they did and leave the
/// group, so their tasks move at once instead of after a session timeout.
pub struct KafkaStreams {
    /// The running stream threads (a new generation when source patterns
    /// match new topics: `patterns`).
    threads: Arc<parking_lot::Mutex<patterns::Generation>>,
    /// The readers keeping global stores up to date, and the metrics
    /// endpoint.
    background: Vec<JoinHandle<Result<()>>>,
    /// Where the metrics endpoint listens, if it does.
    metrics_address: Option<std::net::SocketAddr>,
    stop: Arc<watch::Sender<bool>>,
    metrics: Arc<metrics::Metrics>,
    /// Held for the application's life: the state directory's lock.
    _lock: File,
}

impl KafkaStreams {
    /// Starts `topology` on the broker or cluster behind `client`.
    pub async fn start(
        topology: Topology,
        client: Client,
        config: StreamsConfig,
    ) -> Result<KafkaStreams> {
        config.validate()?;
        let app_dir = config.state_dir.join(&config.application_id);
        let lock = lock_state_dir(&app_dir)?;
        let instance = match &config.instance_id {
            Some(id) => id.clone(),
            None => instance_id(&app_dir)?,
        };
        let mut topology = topology;
        let unresolved = topology.has_patterns().then(|| topology.clone());
        if unresolved.is_some() {
            let existing = client
                .admin()
                .list_topics()
                .await
                .map_err(|e| StreamsError::client("listing topics for source patterns", e))?;
            topology.resolve_patterns(&existing, &config.application_id)?;
        }
        topics::prepare(&client, &topology, &config).await?;
        let (stop, stopped) = watch::channel(false);
        let stop = Arc::new(stop);
        let metrics = Arc::new(metrics::Metrics::default());
        let (config, topology) = (Arc::new(config), Arc::new(topology));
        let memory = StateMemory::new(config.state_memory_bytes);
        let (globals, mut background) = global::start(
            &client,
            &topology,
            &config,
            &memory,
            &metrics,
            stopped.clone(),
        )
        .await?;
        let mut metrics_address = None;
        if let Some(address) = config.metrics_listen {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| StreamsError::Config(format!("metrics_listen {address}: {e}")))?;
            metrics_address = listener.local_addr().ok();
            background.push(tokio::spawn(endpoint::serve(
                listener,
                config.application_id.clone(),
                Arc::clone(&metrics),
                stopped.clone(),
            )));
        }
        let shared = task::Shared {
            memory,
            globals: Arc::new(globals),
            partition_counts: Arc::new(topics::sink_partitions(&client, &topology).await?),
        };
        let threads = patterns::Threads {
            client: client.clone(),
            config: Arc::clone(&config),
            shared: shared.clone(),
            metrics: Arc::clone(&metrics),
            instance,
            stop: Arc::clone(&stop),
            running: Arc::default(),
        };
        let running = Arc::clone(&threads.running);
        threads.start(Arc::clone(&topology), shared);
        if let Some(unresolved) = unresolved {
            let current = patterns::matched(&topology);
            background.push(tokio::spawn(patterns::watch(
                unresolved,
                current,
                threads,
                stopped.clone(),
            )));
        }
        Ok(KafkaStreams {
            threads: running,
            background,
            metrics_address,
            stop,
            metrics,
            _lock: lock,
        })
    }

    /// Counters since the start.
    pub fn metrics(&self) -> StreamsMetrics {
        self.metrics.snapshot()
    }

    /// Where the metrics endpoint listens (`metrics_listen`, its port
    /// resolved when it was 0).
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics_address
    }

    /// Each task's figures, as its thread last published them.
    pub fn task_metrics(&self) -> Vec<(TaskId, TaskMetrics)> {
        self.metrics.tasks()
    }

    /// Whether a thread has stopped (with an error, since only `close`
    /// stops them otherwise).
    pub fn has_failed_thread(&self) -> bool {
        self.threads
            .lock()
            .handles
            .iter()
            .any(JoinHandle::is_finished)
    }

    /// Stops every thread at once, as a crash would: no commit, no
    /// goodbye to the group; open transactions stay open until this
    /// instance restarts (and fences them) or they time out. For tests of
    /// what a crash leaves behind.
    pub fn halt(self) {
        for thread in &self.background {
            thread.abort();
        }
        let threads = self.threads.lock();
        for thread in &threads.handles {
            thread.abort();
        }
        for thread in &threads.stopping {
            thread.abort();
        }
    }

    /// Stops every thread after its last commit; the first thread error,
    /// if any.
    pub async fn close(self) -> Result<()> {
        let _ = self.stop.send(true);
        let mut outcome = Ok(());
        // The background first: a pattern watcher may be starting a new
        // generation of threads, which it no longer does once it stopped.
        let background = self.background;
        for thread in background {
            note_outcome(thread.await, &mut outcome);
        }
        let threads = std::mem::take(&mut self.threads.lock().handles);
        for thread in threads {
            note_outcome(thread.await, &mut outcome);
        }
        outcome
    }
}

/// Keeps the first error of the threads `close` waits for.
fn note_outcome(
    joined: std::result::Result<Result<()>, tokio::task::JoinError>,
    outcome: &mut Result<()>,
) {
    let result = joined
        .map_err(|e| StreamsError::Stopped(format!("a stream thread panicked: {e}")))
        .and_then(|r| r);
    if let (Err(e), true) = (result, outcome.is_ok()) {
        *outcome = Err(e);
    }
}

/// Runs a processing thread, and replaces it when it fails, as
/// `on_thread_failure` says.
async fn supervise(
    thread: thread::StreamThread,
    stop: Arc<watch::Sender<bool>>,
    stopped: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        let outcome = thread.clone().run(stopped.clone()).await;
        let error = match outcome {
            Ok(()) => return Ok(()),
            Err(e) if *stopped.borrow() => return Err(e),
            Err(e) => e,
        };
        match thread.config.on_thread_failure {
            OnThreadFailure::ReplaceThread => {
                tracing::error!(thread = thread.index, %error, "a stream thread failed; replacing it");
                thread.metrics.thread_replaced();
                // Not at once: the cause (a broker restarting) may need a
                // moment, and a thread failing at once must not spin.
                tokio::time::sleep(THREAD_REPLACEMENT_PAUSE).await;
            }
            OnThreadFailure::ShutdownInstance => {
                tracing::error!(thread = thread.index, %error, "a stream thread failed; stopping the instance");
                let _ = stop.send(true);
                return Err(error);
            }
        }
    }
}

/// How long a failed thread's replacement waits before it starts.
const THREAD_REPLACEMENT_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Locks `<state_dir>/<application_id>` for this process: two instances
/// of one application on one state directory would write the same
/// stores.
fn lock_state_dir(dir: &Path) -> Result<File> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StreamsError::StateDir(format!("creating {}: {e}", dir.display())))?;
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StreamsError::StateDir(format!("opening {}: {e}", path.display())))?;
    // An advisory lock, released by the kernel when the process dies, so
    // a crashed instance never leaves the directory locked.
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns; no memory is shared.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        return Err(StreamsError::StateDir(format!(
            "{} is locked by another running instance of this application; give each instance its own state_dir",
            dir.display()
        )));
    }
    Ok(file)
}

/// This instance's id, made once and kept in the state directory.
fn instance_id(dir: &Path) -> Result<String> {
    let path = dir.join("instance-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let id = format!("{:x}{:x}", nanos, std::process::id());
    std::fs::write(&path, &id)
        .map_err(|e| StreamsError::StateDir(format!("writing {}: {e}", path.display())))?;
    Ok(id)
}
