//! The one error type of spool-streams.

/// What can go wrong in a streams program.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// Bytes from a topic or a store that are not an encoding of the
    /// codec's type (a poison record, or the wrong codec for the topic).
    #[error("cannot decode with the {codec} codec: {reason}")]
    Decode { codec: &'static str, reason: String },
    /// A value the codec cannot encode (a map with non-string keys in
    /// JSON, say).
    #[error("cannot encode with the {codec} codec: {reason}")]
    Encode { codec: &'static str, reason: String },
    /// A record of `topic` failed its source, and the policy is to stop.
    #[error("a record of `{topic}` cannot be processed: {source}")]
    Source {
        topic: String,
        #[source]
        source: Box<StreamsError>,
    },
    /// A record for a topic the topology does not read.
    #[error("the topology reads no topic `{0}`")]
    UnknownTopic(String),
    /// A sink's partitioner chose no partition of its topic, or the
    /// topic's partition count is unknown.
    #[error("cannot partition a record: {0}")]
    Partition(String),
    /// A topology refused when built, with every mistake found.
    #[error("invalid topology: {0}")]
    InvalidTopology(String),
    /// A state store failed to open, read or write.
    #[error("state store: {0}")]
    Store(String),
    /// The state directory cannot be used (unwritable, or locked by a
    /// running instance of the same application).
    #[error("state directory: {0}")]
    StateDir(String),
    /// The broker refused or failed a request the runtime needs.
    #[error("{context}: {source}")]
    Client {
        context: String,
        #[source]
        source: spool_client::ClientError,
    },
    /// Invalid settings, refused when the application starts.
    #[error("invalid config: {0}")]
    Config(String),
    /// The application was closed or one of its threads died.
    #[error("the application stopped: {0}")]
    Stopped(String),
}

impl StreamsError {
    /// A client error with what the runtime was doing.
    pub fn client(context: impl Into<String>, source: spool_client::ClientError) -> StreamsError {
        StreamsError::Client {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, StreamsError>;
