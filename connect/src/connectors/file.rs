//! Kafka's FileStreamSourceConnector and FileStreamSinkConnector: lines
//! of a file into a topic, and records of topics as lines of a file.
//!
//! The source keeps Kafka's offsets exactly: source partition
//! `{"filename": <file>}`, source offset `{"position": <byte offset>}`
//! just past the line, so offsets written by Kafka's connector and by
//! this one mean the same. A line is emitted only once its newline is
//! there: a writer's half-written last line waits in the task, and its
//! position is not committed, until the rest arrives.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

use crate::api::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, Importance, SinkConnector, SinkRecord, SinkTask,
    SinkTaskContext, SourceConnector, SourceOffset, SourcePartition, SourceRecord, SourceTask,
    SourceTaskContext, TopicPartition, Validator, Value,
};
use crate::{ConnectError, Result};

/// Kafka's class of the file source.
pub const FILE_STREAM_SOURCE: &str = "org.apache.kafka.connect.file.FileStreamSourceConnector";
/// Kafka's class of the file sink.
pub const FILE_STREAM_SINK: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";

/// The file read or written.
pub const FILE_CONFIG: &str = "file";
/// The topic the source writes to.
pub const TOPIC_CONFIG: &str = "topic";
/// The most lines the source returns from one poll.
pub const BATCH_SIZE_CONFIG: &str = "batch.size";
/// The source partition's field: the file as configured.
pub const FILENAME_FIELD: &str = "filename";
/// The source offset's field: the byte offset just past a line.
pub const POSITION_FIELD: &str = "position";

/// How long a poll that found nothing new waits before it returns empty.
/// Kafka's task waits 1 s; a tail should show a new line sooner, and
/// looking for one five times a second costs a read that returns nothing.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// How much one read takes from the file.
const READ_CHUNK: usize = 64 * 1024;

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The source's keys, as Kafka's connector defines them (reading standard
/// input when `file` is absent is left out: a worker's standard input is
/// nobody's data).
pub fn source_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new(
                FILE_CONFIG,
                ConfigType::String,
                Importance::High,
                "Source filename.",
            )
            .validator(Validator::NonEmptyString),
        )
        .define(
            ConfigKey::new(
                TOPIC_CONFIG,
                ConfigType::String,
                Importance::High,
                "The topic to publish data to.",
            )
            .validator(Validator::NonEmptyString),
        )
        .define(
            // Kafka's default: lines are small, and a poll's records go to
            // the producer together, so a large batch costs little memory
            // and saves round trips through the worker's loop.
            ConfigKey::new(
                BATCH_SIZE_CONFIG,
                ConfigType::Int,
                Importance::Low,
                "The maximum number of records the source task can read from the file each \
                 time it is polled.",
            )
            .default_value("2000")
            .validator(Validator::at_least(1)),
        )
}

/// The sink's keys (its topics are the worker's `topics` key).
pub fn sink_config_def() -> ConfigDef {
    ConfigDef::new().define(
        ConfigKey::new(
            FILE_CONFIG,
            ConfigType::String,
            Importance::High,
            "Destination filename.",
        )
        .validator(Validator::NonEmptyString),
    )
}

/// The keys of `config` that `def` defines, for a task's config.
fn defined_keys(def: &ConfigDef, config: &ConfigMap) -> ConfigMap {
    def.keys()
        .iter()
        .filter_map(|key| Some((key.name.clone(), config.get(&key.name)?.clone())))
        .collect()
}

/// Kafka's `FileStreamSourceConnector`: one task reading one file.
#[derive(Debug, Default)]
pub struct FileStreamSourceConnector {
    config: ConfigMap,
}

impl SourceConnector for FileStreamSourceConnector {
    fn version(&self) -> &str {
        version()
    }

    fn config_def(&self) -> ConfigDef {
        source_config_def()
    }

    fn start(&mut self, config: &ConfigMap) -> Result<()> {
        let def = source_config_def();
        def.parse(config)?;
        self.config = defined_keys(&def, config);
        Ok(())
    }

    /// One task whatever `max_tasks` says: a file has one reader, and
    /// offsets are per file.
    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<ConfigMap>> {
        Ok(vec![self.config.clone()])
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FileStreamSourceTask::default())
    }

    /// Kafka's checks: a partition names its file, an offset is a byte
    /// position. The offsets are this connector's only record of how far
    /// it read, so an alteration is complete.
    fn alter_offsets(
        &self,
        _config: &ConfigMap,
        offsets: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<bool> {
        for (partition, offset) in offsets {
            if !partition.get(FILENAME_FIELD).is_some_and(Value::is_string) {
                return Err(ConnectError::BadRequest(format!(
                    "a file source partition is {{\"{FILENAME_FIELD}\": <file name>}}, not {}",
                    Value::Object(partition.clone().into_iter().collect())
                )));
            }
            if let Some(offset) = offset {
                position_of(offset).map_err(|_| {
                    ConnectError::BadRequest(format!(
                        "a file source offset is {{\"{POSITION_FIELD}\": <byte position>}}, \
                         a non-negative integer, not {}",
                        Value::Object(offset.clone().into_iter().collect())
                    ))
                })?;
            }
        }
        Ok(true)
    }
}

/// Kafka's `FileStreamSourceTask`: reads complete lines from where the
/// last committed offset says.
#[derive(Debug, Default)]
pub struct FileStreamSourceTask {
    path: PathBuf,
    topic: String,
    batch_size: usize,
    partition: SourcePartition,
    /// Open once the file exists; reads continue from where the last one
    /// stopped, so a growing file is tailed.
    file: Option<File>,
    /// The file offset of `buffer[0]`: the start of the first line not
    /// returned yet, and the position the last returned line committed.
    position: u64,
    /// Bytes read from the file but not returned, ending with the partial
    /// line waiting for its newline, if any.
    buffer: Vec<u8>,
    /// Complete lines in `buffer`.
    lines: usize,
}

impl FileStreamSourceTask {
    async fn begin(&mut self, config: ConfigMap, context: SourceTaskContext) -> Result<()> {
        let parsed = source_config_def().parse(&config)?;
        let file = parsed.string(FILE_CONFIG)?;
        self.path = PathBuf::from(file);
        self.topic = parsed.string(TOPIC_CONFIG)?.to_string();
        self.batch_size = usize::try_from(parsed.int(BATCH_SIZE_CONFIG)?)
            .map_err(|_| ConnectError::config(BATCH_SIZE_CONFIG, "must be positive"))?;
        self.partition = [(FILENAME_FIELD.to_string(), Value::from(file))].into();
        self.position = match context.offsets().offset(&self.partition) {
            Some(offset) => position_of(offset)?,
            None => 0,
        };
        tracing::info!(
            file = %self.path.display(),
            topic = %self.topic,
            position = self.position,
            "file source task starting"
        );
        Ok(())
    }

    async fn read_lines(&mut self) -> Result<Vec<SourceRecord>> {
        if self.file.is_none() && !self.open().await? {
            tokio::time::sleep(IDLE_WAIT).await;
            return Ok(Vec::new());
        }
        self.fill().await?;
        let records = self.take_lines();
        if records.is_empty() {
            tokio::time::sleep(IDLE_WAIT).await;
        }
        Ok(records)
    }

    /// Opens the file at the task's position; `false` if it does not exist
    /// yet (Kafka's task waits for it too).
    async fn open(&mut self) -> Result<bool> {
        let mut file = match File::open(&self.path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(file = %self.path.display(), "the source file does not exist yet");
                return Ok(false);
            }
            Err(e) => return Err(ConnectError::io(&self.path, e)),
        };
        file.seek(SeekFrom::Start(self.position))
            .await
            .map_err(|e| ConnectError::io(&self.path, e))?;
        self.file = Some(file);
        self.buffer.clear();
        self.lines = 0;
        Ok(true)
    }

    /// Reads until a batch of complete lines is buffered or the file ends.
    async fn fill(&mut self) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let mut chunk = vec![0u8; READ_CHUNK];
        while self.lines < self.batch_size {
            let read = file
                .read(&mut chunk)
                .await
                .map_err(|e| ConnectError::io(&self.path, e))?;
            if read == 0 {
                break;
            }
            let bytes = &chunk[..read];
            self.lines += bytes.iter().filter(|b| **b == b'\n').count();
            self.buffer.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// Takes up to a batch of complete lines off the buffer, each a record
    /// whose offset is the position just past its newline. A `\r` before
    /// the newline is dropped too, so Windows line ends read as Kafka's
    /// task reads them.
    fn take_lines(&mut self) -> Vec<SourceRecord> {
        let mut records = Vec::new();
        let mut start = 0;
        while records.len() < self.batch_size {
            let Some(length) = self.buffer[start..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let mut line = &self.buffer[start..start + length];
            if let [text @ .., b'\r'] = line {
                line = text;
            }
            start += length + 1;
            self.position += length as u64 + 1;
            self.lines -= 1;
            records.push(self.record(line));
        }
        self.buffer.drain(..start);
        records
    }

    fn record(&self, line: &[u8]) -> SourceRecord {
        // Kafka's task decodes lines as UTF-8 with replacement characters;
        // so does this one, and says so.
        let text = String::from_utf8_lossy(line);
        if let Cow::Owned(_) = &text {
            tracing::warn!(
                file = %self.path.display(),
                position = self.position,
                "a line is not UTF-8; invalid bytes were replaced"
            );
        }
        let offset: SourceOffset =
            [(POSITION_FIELD.to_string(), Value::from(self.position))].into();
        SourceRecord::new(
            self.partition.clone(),
            offset,
            self.topic.clone(),
            Some(Value::String(text.into_owned())),
        )
    }
}

/// The byte position a stored offset holds.
fn position_of(offset: &SourceOffset) -> Result<u64> {
    offset
        .get(POSITION_FIELD)
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            ConnectError::Task(format!(
                "the stored source offset {offset:?} has no `{POSITION_FIELD}` byte offset"
            ))
        })
}

impl SourceTask for FileStreamSourceTask {
    fn start(
        &mut self,
        config: ConfigMap,
        context: SourceTaskContext,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.begin(config, context))
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(self.read_lines())
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        self.file = None;
        crate::api::done()
    }
}

/// Kafka's `FileStreamSinkConnector`: records' values appended to a file.
#[derive(Debug, Default)]
pub struct FileStreamSinkConnector {
    config: ConfigMap,
}

impl SinkConnector for FileStreamSinkConnector {
    fn version(&self) -> &str {
        version()
    }

    fn config_def(&self) -> ConfigDef {
        sink_config_def()
    }

    fn start(&mut self, config: &ConfigMap) -> Result<()> {
        sink_config_def().parse(config)?;
        self.config = config.clone();
        Ok(())
    }

    /// One task whatever `max_tasks` says: two tasks appending to one file
    /// would interleave their buffered writes mid-line.
    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<ConfigMap>> {
        Ok(vec![self.config.clone()])
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileStreamSinkTask::default())
    }

    /// Any offsets will do, and the group's are the only ones this sink
    /// has (Kafka's sink answers the same).
    fn alter_offsets(
        &self,
        _config: &ConfigMap,
        _offsets: &[(TopicPartition, Option<u64>)],
    ) -> Result<bool> {
        Ok(true)
    }
}

/// Kafka's `FileStreamSinkTask`: appends each record's value as a line,
/// and makes the lines durable (fsync) on `flush`, before the offsets
/// that cover them are committed.
#[derive(Debug, Default)]
pub struct FileStreamSinkTask {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl FileStreamSinkTask {
    async fn begin(&mut self, config: ConfigMap) -> Result<()> {
        let parsed = sink_config_def().parse(&config)?;
        self.path = PathBuf::from(parsed.string(FILE_CONFIG)?);
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| ConnectError::io(&self.path, e))?;
        self.writer = Some(BufWriter::new(file));
        Ok(())
    }

    async fn write(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| ConnectError::Task("the file sink task is not started".into()))?;
        let io = |e| ConnectError::io(&self.path, e);
        for record in records {
            let line = line_of(record.value.as_ref());
            writer.write_all(line.as_bytes()).await.map_err(io)?;
            writer.write_all(b"\n").await.map_err(io)?;
        }
        Ok(())
    }

    /// Writes what is buffered and waits until it is on disk.
    async fn sync(&mut self) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        writer
            .flush()
            .await
            .map_err(|e| ConnectError::io(&self.path, e))?;
        writer
            .get_ref()
            .sync_data()
            .await
            .map_err(|e| ConnectError::io(&self.path, e))
    }

    async fn finish(&mut self) -> Result<()> {
        let synced = self.sync().await;
        self.writer = None;
        synced
    }
}

/// A value as its line: a string as it is, any other value as JSON text,
/// and no value as `null`, as Kafka's sink prints each value.
fn line_of(value: Option<&Value>) -> Cow<'_, str> {
    match value {
        Some(Value::String(text)) => Cow::Borrowed(text.as_str()),
        Some(other) => Cow::Owned(other.to_string()),
        None => Cow::Borrowed("null"),
    }
}

impl SinkTask for FileStreamSinkTask {
    fn start(&mut self, config: ConfigMap, _context: SinkTaskContext) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.begin(config))
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.write(records))
    }

    fn flush(&mut self, _offsets: BTreeMap<TopicPartition, u64>) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.sync())
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OffsetStorageReader;

    fn config(file: &std::path::Path) -> ConfigMap {
        [
            (FILE_CONFIG.to_string(), file.display().to_string()),
            (TOPIC_CONFIG.to_string(), "lines".to_string()),
            (BATCH_SIZE_CONFIG.to_string(), "3".to_string()),
        ]
        .into()
    }

    async fn started(file: &std::path::Path, offsets: OffsetStorageReader) -> FileStreamSourceTask {
        let mut task = FileStreamSourceTask::default();
        let context = SourceTaskContext::new("files", 0, offsets);
        task.start(config(file), context).await.unwrap();
        task
    }

    fn texts(records: &[SourceRecord]) -> Vec<&str> {
        records
            .iter()
            .map(|r| r.value.as_ref().and_then(Value::as_str).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn lines_come_in_batches_and_a_partial_line_waits_for_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "a\r\nbb\nccc\ndddd\npart").unwrap();
        let mut task = started(&path, OffsetStorageReader::default()).await;
        let first = task.poll().await.unwrap();
        assert_eq!(texts(&first), ["a", "bb", "ccc"]);
        let positions: Vec<u64> = first
            .iter()
            .map(|r| position_of(&r.source_offset).unwrap())
            .collect();
        assert_eq!(positions, [3, 6, 10]);
        assert_eq!(
            first[0].source_partition[FILENAME_FIELD],
            Value::from(path.display().to_string())
        );
        assert_eq!(texts(&task.poll().await.unwrap()), ["dddd"]);
        assert!(
            task.poll().await.unwrap().is_empty(),
            "`part` has no newline yet"
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"ial\n").unwrap();
        let last = task.poll().await.unwrap();
        assert_eq!(texts(&last), ["partial"]);
        assert_eq!(position_of(&last[0].source_offset).unwrap(), 23);
    }

    #[tokio::test]
    async fn a_task_resumes_from_the_committed_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        let partition: SourcePartition = [(
            FILENAME_FIELD.to_string(),
            Value::from(path.display().to_string()),
        )]
        .into();
        let offset: SourceOffset = [(POSITION_FIELD.to_string(), Value::from(4u64))].into();
        let mut task = started(&path, OffsetStorageReader::new([(partition, offset)])).await;
        assert_eq!(texts(&task.poll().await.unwrap()), ["two", "three"]);
    }

    #[tokio::test]
    async fn the_sink_appends_values_as_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, "before\n").unwrap();
        let mut task = FileStreamSinkTask::default();
        let config: ConfigMap = [(FILE_CONFIG.to_string(), path.display().to_string())].into();
        task.start(config, SinkTaskContext::new("files", 0))
            .await
            .unwrap();
        let record = |offset: u64, value: Option<Value>| SinkRecord {
            topic: "t".into(),
            partition: 0,
            offset,
            key: None,
            value,
            headers: Vec::new(),
            timestamp: 0,
        };
        let records = vec![
            record(0, Some(Value::from("text"))),
            record(1, Some(serde_json::json!({"n": 1}))),
            record(2, None),
        ];
        task.put(records).await.unwrap();
        task.flush(BTreeMap::new()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "before\ntext\n{\"n\":1}\nnull\n"
        );
        task.stop().await.unwrap();
    }
}
