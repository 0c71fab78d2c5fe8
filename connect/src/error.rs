//! The one error type of spool-connect.

use std::path::PathBuf;

/// What can go wrong in a connector, a converter or the worker. The
/// variants map onto Kafka Connect's REST answers (`rest`):
/// `InvalidConfig` and `BadRequest` are a 400, `UnknownConnector` and
/// `UnknownTask` a 404, `ConnectorExists` and `Rebalancing` a 409, the
/// rest a 500.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A configuration refused, naming the key, so a user fixes the one
    /// line that is wrong (Kafka's `ConfigException`).
    #[error("invalid configuration `{key}`: {reason}")]
    InvalidConfig { key: String, reason: String },
    /// The broker refused or failed a request the worker needs.
    #[error("{context}: {source}")]
    Client {
        context: String,
        #[source]
        source: spool_client::ClientError,
    },
    /// A key or value a converter cannot turn into bytes or back (Kafka's
    /// `DataException`).
    #[error("{converter} cannot convert a record of `{topic}`: {reason}")]
    Conversion {
        converter: &'static str,
        topic: String,
        reason: String,
    },
    /// A single-message transform that cannot handle a record (Kafka's
    /// `DataException` from a transformation): `transform` is its Kafka
    /// class name, `topic` the record's topic as it entered the chain.
    #[error(
        "transform `{alias}` ({}) cannot transform a record of `{topic}`: {reason}",
        simple_class(.transform)
    )]
    Transform {
        alias: String,
        transform: &'static str,
        topic: String,
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file the worker reads (its config, the offsets file) holds
    /// something it cannot use.
    #[error("{}: {reason}", .path.display())]
    InvalidFile { path: PathBuf, reason: String },
    /// A connector or task reports that it cannot go on (Kafka's
    /// `ConnectException`); the worker marks the task FAILED with it.
    #[error("{0}")]
    Task(String),
    /// No connector of that name runs on this worker.
    #[error("unknown connector `{0}`")]
    UnknownConnector(String),
    /// A connector of that name already runs on this worker.
    #[error("connector `{0}` already exists")]
    ConnectorExists(String),
    /// The connector has no task of that number.
    #[error("connector `{connector}` has no task {task}")]
    UnknownTask { connector: String, task: u32 },
    /// A request that cannot be carried out as asked, for a reason the
    /// message gives (an offset of the wrong shape, a body that is not
    /// the JSON expected): Kafka's `BadRequestException`.
    #[error("{0}")]
    BadRequest(String),
    /// The REST server could not listen on an address of `listeners`.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// The worker was shut down.
    #[error("the worker has stopped")]
    WorkerStopped,
    /// A distributed worker's group is rebalancing, or this worker has not
    /// joined it yet: a change is refused until the group settles, with
    /// Kafka's message, so a client retries it then.
    #[error("Cannot complete request because of a conflicting operation (e.g. worker rebalance)")]
    Rebalancing,
}

impl ConnectError {
    /// A configuration error for `key`.
    pub fn config(key: impl Into<String>, reason: impl Into<String>) -> ConnectError {
        ConnectError::InvalidConfig {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A client error with what the worker was doing.
    pub fn client(context: impl Into<String>, source: spool_client::ClientError) -> ConnectError {
        ConnectError::Client {
            context: context.into(),
            source,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ConnectError {
        ConnectError::Io {
            path: path.into(),
            source,
        }
    }

    /// The error with every cause under it, one per line: the `trace` a
    /// FAILED task's status carries (Kafka puts a Java stack trace there;
    /// the chain of causes is what a Rust error has to offer).
    pub fn trace(&self) -> String {
        let mut trace = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            // A message that already quotes its cause (`Client` does) is
            // not repeated.
            let text = error.to_string();
            if !trace.contains(&text) {
                trace.push_str("\ncaused by: ");
                trace.push_str(&text);
            }
            cause = error.source();
        }
        trace
    }
}

pub type Result<T> = std::result::Result<T, ConnectError>;

/// A Java class name without its package, for messages.
fn simple_class(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}
