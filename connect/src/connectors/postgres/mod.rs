//! The PostgreSQL sink: records of topics as rows of tables, written
//! exactly once. Its keys and modes are those of Confluent's JDBC sink
//! (`connection.url`, `insert.mode`, `pk.mode`, `auto.create`, ...), for
//! PostgreSQL alone, so it can use what PostgreSQL has: binary COPY, and
//! `INSERT ... ON CONFLICT` for upserts.
//!
//! A record's value is a JSON object whose fields are the row's columns
//! (`rows`; with `pk.mode=record_key` the key's fields too). Columns are
//! typed by Kafka's schema envelope where the value is one, else by the
//! values (`columns`). A table is created, and given new columns, as its
//! records need (`auto.create`, `auto.evolve`); rows go in by binary COPY,
//! or for upserts by COPY into a staging table and one `INSERT ... SELECT
//! DISTINCT ON (key) ... ON CONFLICT DO UPDATE`, the last record of a key
//! winning (`sql`, `database`). The task buffers rows and writes them when
//! `batch.size` wait, when fewer have waited 100 ms or the input went
//! quiet while no write is in flight, or when the worker flushes (`task`).
//!
//! Exactly once: each write is one PostgreSQL transaction holding the rows
//! and, in `spool_connect_offsets (connector, topic, partition,
//! next_offset)`, the next offset of every partition they came from. A
//! task that is given a partition reads its stored offset and has the
//! worker read the partition from there
//! ([`SinkTaskContext::offset`](crate::api::SinkTaskContext::offset)),
//! whatever the group committed: after a crash between a write and the
//! group's commit, nothing is written twice and nothing is skipped. Every
//! write also drops rows below the stored offsets under a lock per
//! partition, so neither a redelivery nor a task that still believes it
//! owns a partition it lost writes a row twice. The group's offsets only
//! follow (for lag and tools); altering them does not move the sink (its
//! `alter_offsets` says so): the table's offsets are the ones to change.
//!
//! The PostgreSQL source, rows of tables as records, is [`source`]; the
//! connection keys and sessions both share are `connection`'s.

mod columns;
pub mod config;
mod connection;
mod database;
mod rows;
pub mod source;
mod sql;
mod task;

pub use config::config_def;
pub use source::{PostgresSourceConnector, POSTGRES_SOURCE};
pub use task::PostgresSinkTask;

use crate::api::{ConfigDef, ConfigMap, SinkConnector, SinkTask, TopicPartition};
use crate::Result;

use self::config::SinkSettings;

/// The sink's class (spool's own: Kafka has no PostgreSQL connector).
pub const POSTGRES_SINK: &str = "io.spool.connect.postgres.PostgresSinkConnector";

/// The offsets table's name.
pub const OFFSETS_TABLE: &str = sql::OFFSETS_TABLE;

/// The PostgreSQL sink connector (see the module's comment).
#[derive(Debug, Default)]
pub struct PostgresSinkConnector {
    config: ConfigMap,
}

impl SinkConnector for PostgresSinkConnector {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    /// Checks the keys together (upsert needs a key, ...); the database is
    /// first reached by the tasks, which fail if it cannot be.
    fn start(&mut self, config: &ConfigMap) -> Result<()> {
        SinkSettings::from_config(config)?;
        self.config = config.clone();
        Ok(())
    }

    /// `max_tasks` tasks with the same config: the group spreads the
    /// topics' partitions over them, and each stores the offsets of its
    /// own partitions.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        Ok(vec![self.config.clone(); max_tasks.max(1)])
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(PostgresSinkTask::default())
    }

    /// Any offsets are accepted, but they are not the ones that count: a
    /// task reads its partitions from the offsets stored in the database
    /// (see the module's comment), so `false`, which tells the user to
    /// change them there.
    fn alter_offsets(
        &self,
        _config: &ConfigMap,
        _offsets: &[(TopicPartition, Option<u64>)],
    ) -> Result<bool> {
        Ok(false)
    }
}
