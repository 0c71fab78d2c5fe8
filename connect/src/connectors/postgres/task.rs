//! The sink task: records become rows as they are put and wait in a
//! buffer; a write (rows and offsets in one transaction) happens when
//! `batch.size` rows wait, when fewer wait while no write is in flight
//! and a put brought no records or they waited [`LINGER`], and when the
//! worker flushes. A partition the group gives the task is read from the
//! offset stored with its rows.
//!
//! A full batch is written in the background while the next records are
//! converted (one write in flight at most, so writes stay in order): the
//! conversion is the task's CPU and the COPY is PostgreSQL's, and the two
//! overlap instead of taking turns. A flush waits for its write. The
//! background write changes nothing of what is exactly once: its rows
//! and offsets still commit in one transaction, or neither does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::config::SinkSettings;
use super::database::{Database, Offsets};
use super::rows::{self, Converted, TableRows};
use crate::api::{ConfigMap, SinkRecord, SinkTask, SinkTaskContext, TopicPartition};
use crate::{ConnectError, Result};

/// The PostgreSQL sink's task (see the module's comment of `postgres`).
#[derive(Default)]
pub struct PostgresSinkTask {
    /// `None` until started, and again once stopped.
    running: Option<Running>,
}

struct Running {
    settings: SinkSettings,
    context: SinkTaskContext,
    connection: Connection,
    buffer: Buffer,
    /// The stored next offset of each partition, as the last read or
    /// write saw it: a flush that reaches no further writes nothing.
    known: Offsets,
}

/// The database, or the write that has it now.
enum Connection {
    Idle(Box<Database>),
    /// A write in the background; it hands the database back.
    Writing(oneshot::Receiver<(Database, Result<Offsets>)>),
    /// A background write panicked, taking the connection with it.
    Lost,
}

/// Rows put and not written yet, by table.
#[derive(Default)]
struct Buffer {
    tables: BTreeMap<String, TableRows>,
    rows: usize,
    /// When the oldest row waiting came.
    since: Option<Instant>,
}

/// How long rows short of a batch may wait for more while no write is in
/// flight. Far longer than a batch takes to fill under load (10,000 rows
/// of a busy topic come in tens of milliseconds), so full batches stay
/// the rule there; short enough that a trickle of records lands within a
/// tenth of a second, as Kafka Streams' exactly-once commits do.
const LINGER: Duration = Duration::from_millis(100);

impl Buffer {
    fn push(&mut self, table: &str, converted: Converted) -> Result<()> {
        let Converted { row, declared, pk } = converted;
        let rows = self
            .tables
            .entry(table.to_string())
            .or_insert_with_key(|table| TableRows::new(table.clone(), pk.clone()));
        if rows.pk != pk {
            return Err(ConnectError::Task(format!(
                "PostgreSQL sink: the record of `{}` at partition {}, offset {} has the key \
                 columns {pk:?}, but other rows of table `{}` have {:?}",
                row.topic, row.partition, row.offset, rows.table, rows.pk
            )));
        }
        for (column, kind) in declared {
            rows.declared.entry(column).or_insert(kind);
        }
        rows.push(row);
        self.rows += 1;
        self.since.get_or_insert_with(Instant::now);
        Ok(())
    }

    fn take(&mut self) -> Vec<TableRows> {
        self.rows = 0;
        self.since = None;
        std::mem::take(&mut self.tables).into_values().collect()
    }

    /// Drops the rows of `partitions`: the group gave them to another
    /// task, which reads them again from the stored offsets.
    fn discard(&mut self, partitions: &[TopicPartition]) {
        let owned_elsewhere = |topic: &str, partition: u32| {
            partitions
                .iter()
                .any(|tp| tp.partition == partition && tp.topic == topic)
        };
        for table in self.tables.values_mut() {
            table.retain(|row| !owned_elsewhere(row.topic.as_str(), row.partition));
        }
        self.tables.retain(|_, table| !table.rows().is_empty());
        self.rows = self.tables.values().map(|t| t.rows().len()).sum();
        if self.rows == 0 {
            self.since = None;
        }
    }
}

impl Running {
    /// Writes what is buffered, with the offsets `reached` (see
    /// `Database::write`), and waits for the write; nothing when nothing
    /// is buffered and no offset moved on.
    async fn write(&mut self, reached: &Offsets) -> Result<()> {
        self.start_write(reached).await?;
        self.database().await.map(|_| ())
    }

    /// Starts writing what is buffered in the background, once the
    /// previous write ended.
    async fn start_write(&mut self, reached: &Offsets) -> Result<()> {
        let mut database = self.take_database().await?;
        let moved_on = reached
            .iter()
            .any(|(tp, offset)| self.known.get(tp).is_none_or(|known| offset > known));
        if self.buffer.rows == 0 && !moved_on {
            self.connection = Connection::Idle(Box::new(database));
            return Ok(());
        }
        let rows = self.buffer.rows;
        let tables = self.buffer.take();
        let (reached, settings) = (reached.clone(), self.settings.clone());
        let (connector, task) = (self.context.connector().to_string(), self.context.task());
        let (hand_back, written) = oneshot::channel();
        tokio::spawn(async move {
            let mut tables = tables;
            let written = database.write(&mut tables, &reached, &settings).await;
            if written.is_ok() {
                tracing::debug!(%connector, task, rows, "rows written with their offsets");
            }
            // A task that stopped meanwhile no longer wants the database.
            let _ = hand_back.send((database, written));
            // Freeing ten thousand rows takes milliseconds: after the
            // hand-back, so the next write need not wait for it.
            drop(tables);
        });
        self.connection = Connection::Writing(written);
        Ok(())
    }

    /// Whether no write is in flight (the last one, if any, handed the
    /// database back); a failed write's error is this call's.
    fn writer_idle(&mut self) -> Result<bool> {
        let Connection::Writing(handed_back) = &mut self.connection else {
            return Ok(matches!(self.connection, Connection::Idle(_)));
        };
        match handed_back.try_recv() {
            Ok(finished) => self.took_back(finished).map(|()| true),
            Err(oneshot::error::TryRecvError::Empty) => Ok(false),
            Err(oneshot::error::TryRecvError::Closed) => {
                self.connection = Connection::Lost;
                Err(lost())
            }
        }
    }

    /// The database, once the write in flight (if any) ended; its error
    /// is this call's.
    async fn database(&mut self) -> Result<&mut Database> {
        if let Connection::Writing(handed_back) = &mut self.connection {
            match handed_back.await {
                Ok(finished) => self.took_back(finished)?,
                Err(_) => {
                    self.connection = Connection::Lost;
                    return Err(lost());
                }
            }
        }
        match &mut self.connection {
            Connection::Idle(database) => Ok(database.as_mut()),
            _ => Err(lost()),
        }
    }

    /// Takes the database out, waiting for the write in flight.
    async fn take_database(&mut self) -> Result<Database> {
        self.database().await?;
        match std::mem::replace(&mut self.connection, Connection::Lost) {
            Connection::Idle(database) => Ok(*database),
            _ => Err(lost()),
        }
    }

    /// Keeps the database a finished write handed back; the stored
    /// offsets it returns become `known`, and its error is the caller's.
    fn took_back(&mut self, (database, written): (Database, Result<Offsets>)) -> Result<()> {
        self.connection = Connection::Idle(Box::new(database));
        self.known = written?;
        Ok(())
    }
}

fn lost() -> ConnectError {
    ConnectError::Task("PostgreSQL sink: a write failed and took the connection with it".into())
}

impl PostgresSinkTask {
    fn running(&mut self) -> Result<&mut Running> {
        self.running
            .as_mut()
            .ok_or_else(|| ConnectError::Task("the PostgreSQL sink task is not started".into()))
    }

    async fn begin(&mut self, config: ConfigMap, context: SinkTaskContext) -> Result<()> {
        let settings = SinkSettings::from_config(&config)?;
        let database = Database::connect(&settings, context.connector(), context.task()).await?;
        database.create_offsets_table().await?;
        tracing::info!(
            connector = %context.connector(),
            task = context.task(),
            mode = ?settings.insert_mode,
            "PostgreSQL sink task started"
        );
        self.running = Some(Running {
            settings,
            context,
            connection: Connection::Idle(Box::new(database)),
            buffer: Buffer::default(),
            known: Offsets::new(),
        });
        Ok(())
    }

    /// Asks the worker to read each of `partitions` that has a stored
    /// offset from there: the rows below it are in the database, whatever
    /// the group committed.
    async fn resume(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        let running = self.running()?;
        let stored = running.database().await?.stored_offsets().await?;
        for tp in partitions {
            let Some(next) = stored.get(&tp).copied() else {
                continue;
            };
            tracing::info!(
                connector = %running.context.connector(),
                topic = %tp.topic,
                partition = tp.partition,
                offset = next,
                "resuming from the offset stored with the rows"
            );
            running.context.offset(tp.clone(), next);
            running.known.insert(tp, next);
        }
        Ok(())
    }

    /// Converts and buffers `records`, writing each time `batch.size`
    /// rows wait; and, while no write is in flight, rows short of a batch
    /// when this put brought no records (the worker puts after every poll:
    /// the poll brought none, or transforms dropped them all) or when they
    /// waited [`LINGER`]: they need not wait for the next commit.
    async fn buffer(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let quiet = records.is_empty();
        let running = self.running()?;
        // A batch's records mostly share a topic: its table's name is
        // worked out once per run of them.
        let mut table: Option<(String, String)> = None;
        for record in records {
            if table
                .as_ref()
                .is_none_or(|(topic, _)| *topic != record.topic)
            {
                let name = running.settings.table_name(&record.topic)?;
                table = Some((record.topic.clone(), name));
            }
            let name = table.as_ref().map_or("", |(_, name)| name.as_str());
            let converted = rows::convert(record, &running.settings.rows)?;
            running.buffer.push(name, converted)?;
            if running.buffer.rows >= running.settings.batch_size {
                running.start_write(&Offsets::new()).await?;
            }
        }
        let lingered = running.buffer.since.is_some_and(|t| t.elapsed() >= LINGER);
        if (quiet || lingered) && running.buffer.rows > 0 && running.writer_idle()? {
            running.start_write(&Offsets::new()).await?;
        }
        Ok(())
    }

    async fn flush_to(&mut self, offsets: Offsets) -> Result<()> {
        self.running()?.write(&offsets).await
    }

    /// Forgets `partitions`: their buffered rows, and what is known of
    /// their offsets (another task may move them on meanwhile).
    fn forget(&mut self, partitions: &[TopicPartition]) {
        if let Some(running) = self.running.as_mut() {
            running.buffer.discard(partitions);
            for tp in partitions {
                running.known.remove(tp);
            }
        }
    }
}

impl SinkTask for PostgresSinkTask {
    fn start(&mut self, config: ConfigMap, context: SinkTaskContext) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.begin(config, context))
    }

    fn open(&mut self, partitions: Vec<TopicPartition>) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.resume(partitions))
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.buffer(records))
    }

    fn flush(&mut self, offsets: BTreeMap<TopicPartition, u64>) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.flush_to(offsets))
    }

    fn close(&mut self, partitions: Vec<TopicPartition>) -> BoxFuture<'_, Result<()>> {
        self.forget(&partitions);
        crate::api::done()
    }

    /// Closes the connection; rows still buffered were never flushed, so
    /// their offsets were not committed either, and they are read again.
    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        self.running = None;
        crate::api::done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Value;
    use crate::connectors::postgres::columns::ColumnType;
    use crate::connectors::postgres::rows::Row;
    use serde_json::json;

    fn converted(topic: &str, partition: u32, offset: u64, pk: &[&str]) -> Converted {
        let values = json!({"id": offset});
        Converted {
            row: Row {
                topic: topic.into(),
                partition,
                offset,
                values: values.as_object().cloned().unwrap(),
            },
            declared: vec![("id".to_string(), ColumnType::Integer)],
            pk: pk.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn the_buffer_groups_rows_by_table_and_drops_closed_partitions() {
        let mut buffer = Buffer::default();
        buffer.push("a", converted("a", 0, 0, &[])).unwrap();
        buffer.push("a", converted("a", 1, 0, &[])).unwrap();
        buffer.push("b", converted("b", 0, 0, &[])).unwrap();
        assert_eq!(buffer.rows, 3);
        let error = buffer.push("a", converted("a", 0, 1, &["id"]));
        assert!(error.unwrap_err().to_string().contains("key columns"));
        buffer.discard(&[TopicPartition::new("a", 1), TopicPartition::new("b", 0)]);
        assert_eq!(buffer.rows, 1);
        let tables = buffer.take();
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].rows()[0].values["id"], Value::from(0));
        assert_eq!(tables[0].declared["id"], ColumnType::Integer);
        assert_eq!(buffer.rows, 0);
    }
}
