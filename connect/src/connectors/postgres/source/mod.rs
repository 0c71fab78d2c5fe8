//! The PostgreSQL source: rows of tables (or of one query) as records,
//! read incrementally and, on a worker with exactly-once, produced
//! exactly once. Its keys, modes and offsets are those of Confluent's
//! JDBC source connector, for PostgreSQL alone.
//!
//! The connector spreads the tables of `table.whitelist` (or
//! `table.include.list`) round-robin over at most `tasks.max` tasks, each
//! given its share under `tables` (a query is one task). A task opens one
//! session, finds and describes each of its tables (`table`), and queries
//! whichever table is due (`task`): at once while it has more rows,
//! otherwise every `poll.interval.ms`. Each row is a record of topic
//! `topic.prefix` + table, its value a JSON object of the row's columns
//! (`values` says how each type reads), without a key (Confluent's; the
//! `ValueToKey` transform makes one).
//!
//! `mode` says which rows are new (`query` has the SQL):
//! - `incrementing`: rows whose `incrementing.column.name` is above the
//!   last one read. Only new rows; a row whose id was taken before a row
//!   read already but committed after it is never read (ids are handed
//!   out before commit).
//! - `timestamp`: rows whose `timestamp.column.name` is after the last
//!   one read and before the database's clock minus
//!   `timestamp.delay.interval.ms`, so a transaction that commits within
//!   the delay is not passed over. New and updated rows; a row written
//!   with an older timestamp than one read already is never read.
//! - `timestamp+incrementing`: rows whose (timestamp, id) pair is after
//!   the last one read, with the same delay: updates and rows of equal
//!   timestamps are read exactly once, the most robust mode.
//! - `bulk`: every row, every poll interval, with no offset.
//!
//! Offsets (`offset`) are Confluent's: partition `{"protocol": "1",
//! "table": "<schema>.<table>"}` (`{"query": "query"}` for the query),
//! offset `{"incrementing": n}` and/or `{"timestamp": ms,
//! "timestamp_nanos": ns}`. A task resumes from the stored offset with
//! strictly-greater conditions, so a committed row is never read again
//! and none after it is skipped; a poll's rows always end where such a
//! resumption is exact (`table`). Exactly-once is then the worker's
//! (`exactly.once.source.support`, KIP-618): each poll's records and the
//! offset they reach commit in one transaction. The connector API has no
//! hook for a connector to declare its exactly-once support (Kafka's
//! `exactlyOnceSupport`); this connector keeps the contract that makes it
//! unnecessary, its position living only in the offsets it returns.

mod config;
mod offset;
mod query;
mod table;
mod task;
mod values;

pub use config::{
    config_def, Mode, BATCH_MAX_ROWS, INCREMENTING_COLUMN_NAME, MODE, POLL_INTERVAL_MS, QUERY,
    TABLE_INCLUDE_LIST, TABLE_WHITELIST, TASK_TABLES, TIMESTAMP_COLUMN_NAME,
    TIMESTAMP_DELAY_INTERVAL_MS, TOPIC_PREFIX,
};
pub use offset::{
    INCREMENTING_FIELD, PROTOCOL_FIELD, QUERY_FIELD, TABLE_FIELD, TIMESTAMP_FIELD,
    TIMESTAMP_NANOS_FIELD,
};
pub use task::PostgresSourceTask;

use crate::api::{
    ConfigDef, ConfigMap, SourceConnector, SourceOffset, SourcePartition, SourceTask, Value,
};
use crate::{ConnectError, Result};

use self::config::{Source, SourceSettings, TableName};
use self::offset::Position;

/// The source's class (spool's own: Kafka has no PostgreSQL connector;
/// Confluent's is `io.confluent.connect.jdbc.JdbcSourceConnector`).
pub const POSTGRES_SOURCE: &str = "io.spool.connect.postgres.PostgresSourceConnector";

/// The PostgreSQL source connector (see the module's comment).
#[derive(Debug, Default)]
pub struct PostgresSourceConnector {
    config: ConfigMap,
    /// The tables as the config lists them; empty for a query.
    tables: Vec<String>,
}

impl SourceConnector for PostgresSourceConnector {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    /// Checks the keys together (a mode's column named, tables or a query);
    /// the database is first reached by the tasks, which fail if it cannot
    /// be or a table or column is not there.
    fn start(&mut self, config: &ConfigMap) -> Result<()> {
        let settings = SourceSettings::from_config(config)?;
        self.tables = match &settings.source {
            Source::Tables(tables) => tables.iter().map(TableName::entry).collect(),
            Source::Query(_) => Vec::new(),
        };
        self.config = config.clone();
        Ok(())
    }

    /// The tables round-robin over at most `max_tasks` tasks (no more
    /// tasks than tables); one task for a query.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        if self.tables.is_empty() {
            return Ok(vec![self.config.clone()]);
        }
        Ok(spread(&self.tables, max_tasks)
            .into_iter()
            .map(|tables| {
                let mut config = self.config.clone();
                config.insert(TASK_TABLES.to_string(), tables.join(","));
                config
            })
            .collect())
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(PostgresSourceTask::default())
    }

    /// A partition must be a table's or the query's, an offset hold
    /// integers where Confluent's do. The offsets are the connector's
    /// only record of how far it read, so an alteration is complete.
    fn alter_offsets(
        &self,
        _config: &ConfigMap,
        offsets: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<bool> {
        let shown = |map: &std::collections::BTreeMap<String, Value>| {
            Value::Object(map.clone().into_iter().collect()).to_string()
        };
        for (partition, offset) in offsets {
            if !offset::is_partition(partition) {
                return Err(ConnectError::BadRequest(format!(
                    "a PostgreSQL source partition is {{\"protocol\": \"1\", \"table\": \
                     \"<schema>.<table>\"}} or {{\"query\": \"query\"}}, not {}",
                    shown(partition)
                )));
            }
            if let Some(offset) = offset {
                Position::from_offset(offset).map_err(|reason| {
                    ConnectError::BadRequest(format!(
                        "a PostgreSQL source offset holds `incrementing`, `timestamp` and \
                         `timestamp_nanos` integers; {} does not: {reason}",
                        shown(offset)
                    ))
                })?;
            }
        }
        Ok(true)
    }
}

/// `tables` round-robin over at most `max_tasks` groups, none empty.
fn spread(tables: &[String], max_tasks: usize) -> Vec<Vec<String>> {
    let tasks = max_tasks.max(1).min(tables.len().max(1));
    let mut groups = vec![Vec::new(); tasks];
    for (index, table) in tables.iter().enumerate() {
        groups[index % tasks].push(table.clone());
    }
    groups
}

/// A failure of the database, with what the source was doing.
fn failed(doing: impl std::fmt::Display, error: tokio_postgres::Error) -> ConnectError {
    ConnectError::Task(format!("PostgreSQL source: {doing}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::config_map;
    use serde_json::json;

    fn connector(pairs: &[(&str, &str)]) -> PostgresSourceConnector {
        let mut config = config_map(&[
            ("connection.url", "postgresql://postgres@127.0.0.1:5432/db"),
            (TOPIC_PREFIX, "pg-"),
        ]);
        config.extend(config_map(pairs));
        let mut connector = PostgresSourceConnector::default();
        connector.start(&config).unwrap();
        connector
    }

    #[test]
    fn tables_are_spread_round_robin_and_a_query_is_one_task() {
        let tables = connector(&[(MODE, "bulk"), (TABLE_WHITELIST, "a,b,s.c,d,e")]);
        let configs = tables.task_configs(2).unwrap();
        let assigned: Vec<&str> = configs.iter().map(|c| c[TASK_TABLES].as_str()).collect();
        assert_eq!(assigned, ["a,s.c,e", "b,d"]);
        assert_eq!(tables.task_configs(9).unwrap().len(), 5);
        assert_eq!(
            tables.task_configs(1).unwrap()[0][TASK_TABLES],
            "a,b,s.c,d,e"
        );
        let query = connector(&[(MODE, "bulk"), (QUERY, "SELECT 1 AS one")]);
        let configs = query.task_configs(4).unwrap();
        assert_eq!(configs.len(), 1);
        assert!(!configs[0].contains_key(TASK_TABLES));
    }

    #[test]
    fn offsets_of_other_shapes_are_refused() {
        let source = connector(&[(MODE, "bulk"), (TABLE_WHITELIST, "a")]);
        let config = ConfigMap::new();
        let table: SourcePartition = [
            (PROTOCOL_FIELD.to_string(), json!("1")),
            (TABLE_FIELD.to_string(), json!("public.a")),
        ]
        .into();
        let good: SourceOffset = [(INCREMENTING_FIELD.to_string(), json!(7))].into();
        assert!(source
            .alter_offsets(
                &config,
                &[(table.clone(), Some(good)), (table.clone(), None)]
            )
            .unwrap());
        let bad: SourceOffset = [(TIMESTAMP_FIELD.to_string(), json!("noon"))].into();
        let refused = source.alter_offsets(&config, &[(table, Some(bad))]);
        assert!(matches!(refused, Err(ConnectError::BadRequest(_))));
        let file: SourcePartition = [("filename".to_string(), json!("x"))].into();
        assert!(source.alter_offsets(&config, &[(file, None)]).is_err());
    }
}
