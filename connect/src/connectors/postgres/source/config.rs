//! The PostgreSQL source's keys, named as Confluent's JDBC source names
//! them, each default next to why it is what it is, and the settings the
//! connector and its tasks run with once the keys are parsed and checked
//! together (a mode's column named, tables or a query but not both).

use std::time::Duration;

use tokio_postgres::Config;

use super::super::config::check_identifier;
use super::super::{connection, sql};
use crate::api::{ConfigDef, ConfigKey, ConfigMap, ConfigType, Importance, Validator};
use crate::{ConnectError, Result};

/// `bulk`, `incrementing`, `timestamp` or `timestamp+incrementing`.
pub const MODE: &str = "mode";
/// The strictly increasing column of the incrementing modes.
pub const INCREMENTING_COLUMN_NAME: &str = "incrementing.column.name";
/// The timestamp column(s) of the timestamp modes; several are COALESCEd.
pub const TIMESTAMP_COLUMN_NAME: &str = "timestamp.column.name";
/// The tables to read (Confluent's older name).
pub const TABLE_WHITELIST: &str = "table.whitelist";
/// The tables to read (Confluent's newer name of `table.whitelist`).
pub const TABLE_INCLUDE_LIST: &str = "table.include.list";
/// A query to read instead of tables.
pub const QUERY: &str = "query";
/// What each topic's name starts with: the topic is the prefix and the
/// table's name, or the prefix alone for a query.
pub const TOPIC_PREFIX: &str = "topic.prefix";
/// How often a table with nothing new is queried again.
pub const POLL_INTERVAL_MS: &str = "poll.interval.ms";
/// The most rows one query returns.
pub const BATCH_MAX_ROWS: &str = "batch.max.rows";
/// How long a timestamp must be in the past before its rows are read.
pub const TIMESTAMP_DELAY_INTERVAL_MS: &str = "timestamp.delay.interval.ms";
/// Set by the connector in each task's config, as Confluent's connector
/// sets it: the tables that task reads. Not for users to set.
pub const TASK_TABLES: &str = "tables";

/// How rows are found (Confluent's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every row, every poll interval; no offset.
    Bulk,
    /// Rows whose incrementing column is above the last one read.
    Incrementing,
    /// Rows whose timestamp is after the last one read.
    Timestamp,
    /// Rows whose (timestamp, incrementing) pair is after the last read.
    TimestampIncrementing,
}

impl Mode {
    const NAMES: [&'static str; 4] = [
        "bulk",
        "incrementing",
        "timestamp",
        "timestamp+incrementing",
    ];

    fn from_name(name: &str) -> Option<Mode> {
        Some(match name {
            "bulk" => Mode::Bulk,
            "incrementing" => Mode::Incrementing,
            "timestamp" => Mode::Timestamp,
            "timestamp+incrementing" => Mode::TimestampIncrementing,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Bulk => "bulk",
            Mode::Incrementing => "incrementing",
            Mode::Timestamp => "timestamp",
            Mode::TimestampIncrementing => "timestamp+incrementing",
        }
    }

    pub fn uses_incrementing(self) -> bool {
        matches!(self, Mode::Incrementing | Mode::TimestampIncrementing)
    }

    pub fn uses_timestamp(self) -> bool {
        matches!(self, Mode::Timestamp | Mode::TimestampIncrementing)
    }
}

/// A table as `table.whitelist` names it: `table` (found through the
/// session's `search_path`) or `schema.table`, each part as it is (case
/// kept, never folded), split at the first dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub table: String,
}

impl TableName {
    pub fn parse(entry: &str) -> std::result::Result<TableName, String> {
        let (schema, table) = match entry.split_once('.') {
            Some((schema, table)) => (Some(schema.to_string()), table.to_string()),
            None => (None, entry.to_string()),
        };
        if let Some(schema) = &schema {
            check_identifier(schema)?;
        }
        check_identifier(&table)?;
        Ok(TableName { schema, table })
    }

    /// The name as written in the config.
    pub fn entry(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{}", self.table),
            None => self.table.clone(),
        }
    }

    /// The name quoted for SQL: `"schema"."table"` or `"table"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", sql::quote(schema), sql::quote(&self.table)),
            None => sql::quote(&self.table),
        }
    }
}

/// What is read: tables, or one query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Tables(Vec<TableName>),
    Query(String),
}

/// The settings of a connector or task config, checked together.
#[derive(Clone)]
pub struct SourceSettings {
    pub connection: Config,
    pub mode: Mode,
    /// Set in the incrementing modes.
    pub incrementing_column: Option<String>,
    /// Not empty in the timestamp modes.
    pub timestamp_columns: Vec<String>,
    pub source: Source,
    pub topic_prefix: String,
    pub poll_interval: Duration,
    pub batch_max_rows: i64,
    pub timestamp_delay_ms: i64,
}

/// The source's keys.
pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .merge(&connection::config_def())
        .merge(&mode_keys())
        .merge(&source_keys())
        .merge(&poll_keys())
}

/// `mode` and the columns it reads by.
fn mode_keys() -> ConfigDef {
    let key = |name: &str, config_type: ConfigType, doc: &str| {
        ConfigKey::new(name, config_type, Importance::High, doc)
    };
    ConfigDef::new()
        // Required, as Confluent's: which rows count as new depends on the
        // table, and no default is right for most tables.
        .define(
            key(
                MODE,
                ConfigType::String,
                "How new rows are found: bulk (every row each poll), incrementing (a strictly \
                 increasing column), timestamp (a last-modified column), or \
                 timestamp+incrementing (both: new and updated rows, none missed).",
            )
            .validator(Validator::OneOf(
                Mode::NAMES.iter().map(|n| n.to_string()).collect(),
            )),
        )
        // Empty, as Confluent's: only the incrementing modes need it, and
        // they refuse to start without it.
        .define(
            key(
                INCREMENTING_COLUMN_NAME,
                ConfigType::String,
                "The strictly increasing integer column (smallint, integer or bigint; a serial or \
                 identity column) of the incrementing modes.",
            )
            .default_value(""),
        )
        .define(
            key(
                TIMESTAMP_COLUMN_NAME,
                ConfigType::List,
                "The timestamp or timestamptz column of the timestamp modes; with several, the \
                 first that is not NULL counts (COALESCE).",
            )
            .default_value(""),
        )
}

/// The tables or query, and the topics they go to.
fn source_keys() -> ConfigDef {
    let key = |name: &str, config_type: ConfigType, doc: &str| {
        ConfigKey::new(name, config_type, Importance::High, doc)
    };
    ConfigDef::new()
        .define(
            key(
                TABLE_WHITELIST,
                ConfigType::List,
                "The tables to read, as table or schema.table; spread over the tasks.",
            )
            .optional(),
        )
        .define(
            key(
                TABLE_INCLUDE_LIST,
                ConfigType::List,
                "The same as table.whitelist, by Confluent's newer name.",
            )
            .optional(),
        )
        // Empty, as Confluent's: tables are the common case.
        .define(
            key(
                QUERY,
                ConfigType::String,
                "A SELECT to read instead of tables (one task); the mode's conditions are \
                 applied around it.",
            )
            .default_value(""),
        )
        // Required, as Confluent's: topics named after bare tables would
        // collide with whatever else the cluster holds.
        .define(key(
            TOPIC_PREFIX,
            ConfigType::String,
            "Each table's topic is this prefix and the table's name; a query's topic is the \
             prefix itself.",
        ))
}

/// How often and how much is read.
fn poll_keys() -> ConfigDef {
    let key = |name: &str, config_type: ConfigType, doc: &str| {
        ConfigKey::new(name, config_type, Importance::Medium, doc)
    };
    ConfigDef::new()
        // Confluent's default: a table with nothing new costs one query
        // every five seconds; a table with more rows is read on at once.
        .define(
            key(
                POLL_INTERVAL_MS,
                ConfigType::Int,
                "How often, in milliseconds, a table that had nothing more is queried again.",
            )
            .default_value("5000")
            .validator(Validator::at_least(1)),
        )
        // 1000 (Confluent's is 100): each query is a round trip and, under
        // exactly-once, each poll a transaction; a thousand rows make both
        // cheap per row while a batch stays small in memory.
        .define(
            key(
                BATCH_MAX_ROWS,
                ConfigType::Int,
                "The most rows one query (and one poll) returns.",
            )
            .default_value("1000")
            .validator(Validator::at_least(1)),
        )
        // Confluent's default, 0: rows are read as soon as their timestamp
        // has passed. Raise it above the longest transaction that writes
        // the table, so a row committed late is not passed over.
        .define(
            key(
                TIMESTAMP_DELAY_INTERVAL_MS,
                ConfigType::Long,
                "In the timestamp modes, how long, in milliseconds, after its timestamp a row \
                 is read: rows whose timestamp is later than the database's now minus this \
                 wait for a later poll.",
            )
            .default_value("0")
            .validator(Validator::at_least(0)),
        )
}

impl SourceSettings {
    /// The settings of a connector or task config; keys that are wrong
    /// together are refused naming one.
    pub fn from_config(config: &ConfigMap) -> Result<SourceSettings> {
        let parsed = config_def().parse(config)?;
        let mode = Mode::from_name(parsed.string(MODE)?)
            .ok_or_else(|| ConnectError::config(MODE, "unknown mode"))?;
        let incrementing = parsed.string(INCREMENTING_COLUMN_NAME)?;
        let incrementing_column = match (mode.uses_incrementing(), incrementing.is_empty()) {
            (true, true) => {
                return Err(ConnectError::config(
                    INCREMENTING_COLUMN_NAME,
                    format!(
                        "mode `{}` needs the incrementing column's name",
                        mode.name()
                    ),
                ))
            }
            (true, false) => Some(incrementing.to_string()),
            (false, _) => None,
        };
        let timestamp_columns = match mode.uses_timestamp() {
            true => parsed.list(TIMESTAMP_COLUMN_NAME)?.to_vec(),
            false => Vec::new(),
        };
        if mode.uses_timestamp() && timestamp_columns.is_empty() {
            return Err(ConnectError::config(
                TIMESTAMP_COLUMN_NAME,
                format!("mode `{}` needs the timestamp column's name", mode.name()),
            ));
        }
        if let Some(name) = &incrementing_column {
            check_identifier(name)
                .map_err(|reason| ConnectError::config(INCREMENTING_COLUMN_NAME, reason))?;
        }
        for name in &timestamp_columns {
            check_identifier(name)
                .map_err(|reason| ConnectError::config(TIMESTAMP_COLUMN_NAME, reason))?;
        }
        let topic_prefix = parsed.string(TOPIC_PREFIX)?.to_string();
        let source = source(
            parsed.list(TABLE_WHITELIST)?,
            parsed.list(TABLE_INCLUDE_LIST)?,
            parsed.string(QUERY)?,
        )?;
        if matches!(source, Source::Query(_)) && topic_prefix.is_empty() {
            return Err(ConnectError::config(
                TOPIC_PREFIX,
                "a query's records go to the topic named by topic.prefix, which is empty",
            ));
        }
        let poll_interval = u64::try_from(parsed.int(POLL_INTERVAL_MS)?)
            .map_err(|_| ConnectError::config(POLL_INTERVAL_MS, "must be positive"))?;
        Ok(SourceSettings {
            connection: connection::from_parsed(&parsed)?,
            mode,
            incrementing_column,
            timestamp_columns,
            source,
            topic_prefix,
            poll_interval: Duration::from_millis(poll_interval),
            batch_max_rows: i64::from(parsed.int(BATCH_MAX_ROWS)?),
            timestamp_delay_ms: parsed.long(TIMESTAMP_DELAY_INTERVAL_MS)?,
        })
    }

    /// A task's settings: the connector's, reading the tables the
    /// connector gave it (`tables`) rather than all of them.
    pub fn for_task(config: &ConfigMap) -> Result<SourceSettings> {
        let mut settings = SourceSettings::from_config(config)?;
        let tables = matches!(settings.source, Source::Tables(_));
        if let (true, Some(assigned)) = (tables, config.get(TASK_TABLES)) {
            let tables = assigned
                .split(',')
                .map(|entry| TableName::parse(entry.trim()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|reason| ConnectError::config(TASK_TABLES, reason))?;
            settings.source = Source::Tables(tables);
        }
        Ok(settings)
    }

    /// The topic of `table`'s records (of the query's, for `None`).
    pub fn topic(&self, table: Option<&str>) -> String {
        match table {
            Some(table) => format!("{}{table}", self.topic_prefix),
            None => self.topic_prefix.clone(),
        }
    }
}

/// The tables or the query: one of them, not both, and the two names of
/// the table list agreeing when both are given.
fn source(whitelist: &[String], include: &[String], query: &str) -> Result<Source> {
    let tables = match (whitelist.is_empty(), include.is_empty()) {
        (false, false) if whitelist != include => {
            return Err(ConnectError::config(
                TABLE_INCLUDE_LIST,
                "names other tables than table.whitelist; give one of the two",
            ))
        }
        (false, _) => whitelist,
        (true, _) => include,
    };
    match (tables.is_empty(), query.is_empty()) {
        (true, true) => Err(ConnectError::config(
            TABLE_WHITELIST,
            "names no table: list the tables to read in table.whitelist (or \
             table.include.list), or give a query",
        )),
        (false, false) => Err(ConnectError::config(
            QUERY,
            "is given together with a table list; give one or the other",
        )),
        (true, false) => Ok(Source::Query(query.to_string())),
        (false, true) => {
            let key = match whitelist.is_empty() {
                true => TABLE_INCLUDE_LIST,
                false => TABLE_WHITELIST,
            };
            let mut parsed: Vec<TableName> = Vec::with_capacity(tables.len());
            for entry in tables {
                let table =
                    TableName::parse(entry).map_err(|reason| ConnectError::config(key, reason))?;
                if parsed.contains(&table) {
                    return Err(ConnectError::config(
                        key,
                        format!("names `{entry}` twice; a table is read by one task"),
                    ));
                }
                parsed.push(table);
            }
            Ok(Source::Tables(parsed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::config_map as map;

    const URL: (&str, &str) = ("connection.url", "postgresql://postgres@127.0.0.1:5432/db");

    fn settings(pairs: &[(&str, &str)]) -> Result<SourceSettings> {
        let mut all = map(pairs);
        all.insert(URL.0.into(), URL.1.into());
        SourceSettings::from_config(&all)
    }

    fn refused(pairs: &[(&str, &str)]) -> String {
        match settings(pairs) {
            Err(ConnectError::InvalidConfig { key, .. }) => key,
            Err(other) => panic!("refused otherwise: {other}"),
            Ok(_) => panic!("not refused: {pairs:?}"),
        }
    }

    #[test]
    fn defaults_and_table_names() {
        let parsed = settings(&[
            (MODE, "incrementing"),
            (INCREMENTING_COLUMN_NAME, "id"),
            (TABLE_WHITELIST, "orders, sales.Items"),
            (TOPIC_PREFIX, "pg-"),
        ])
        .unwrap();
        assert_eq!(parsed.mode, Mode::Incrementing);
        assert_eq!(parsed.incrementing_column.as_deref(), Some("id"));
        assert!(parsed.timestamp_columns.is_empty());
        assert_eq!(parsed.poll_interval, Duration::from_secs(5));
        assert_eq!(parsed.batch_max_rows, 1000);
        assert_eq!(parsed.timestamp_delay_ms, 0);
        let Source::Tables(tables) = &parsed.source else {
            panic!("{:?}", parsed.source);
        };
        assert_eq!(tables[0].quoted(), "\"orders\"");
        assert_eq!(tables[1].quoted(), "\"sales\".\"Items\"");
        assert_eq!(tables[1].entry(), "sales.Items");
        assert_eq!(parsed.topic(Some("orders")), "pg-orders");
    }

    #[test]
    fn keys_wrong_alone_or_together_are_refused_by_name() {
        let tables = (TABLE_WHITELIST, "t");
        let prefix = (TOPIC_PREFIX, "p-");
        assert_eq!(refused(&[(MODE, "newest"), tables, prefix]), MODE);
        assert_eq!(refused(&[tables, prefix]), MODE);
        assert_eq!(
            refused(&[(MODE, "incrementing"), tables, prefix]),
            INCREMENTING_COLUMN_NAME
        );
        let id = (INCREMENTING_COLUMN_NAME, "id");
        assert_eq!(
            refused(&[(MODE, "timestamp+incrementing"), id, tables, prefix]),
            TIMESTAMP_COLUMN_NAME
        );
        assert_eq!(refused(&[(MODE, "bulk"), prefix]), TABLE_WHITELIST);
        assert_eq!(
            refused(&[(MODE, "bulk"), tables, (QUERY, "SELECT 1"), prefix]),
            QUERY
        );
        assert_eq!(
            refused(&[(MODE, "bulk"), (QUERY, "SELECT 1"), (TOPIC_PREFIX, "")]),
            TOPIC_PREFIX
        );
        let twice = (TABLE_WHITELIST, "a,a");
        assert_eq!(refused(&[(MODE, "bulk"), twice, prefix]), TABLE_WHITELIST);
        let other = (TABLE_INCLUDE_LIST, "b");
        assert_eq!(
            refused(&[(MODE, "bulk"), tables, other, prefix]),
            TABLE_INCLUDE_LIST
        );
        assert_eq!(refused(&[(MODE, "bulk"), tables]), TOPIC_PREFIX);
        assert_eq!(
            refused(&[(MODE, "bulk"), tables, prefix, (BATCH_MAX_ROWS, "0")]),
            BATCH_MAX_ROWS
        );
    }

    #[test]
    fn a_task_reads_the_tables_it_was_given() {
        let mut config = map(&[
            URL,
            (MODE, "timestamp"),
            (TIMESTAMP_COLUMN_NAME, "updated_at, created_at"),
            (TABLE_INCLUDE_LIST, "a,b,c"),
            (TOPIC_PREFIX, ""),
        ]);
        config.insert(TASK_TABLES.into(), "a,c".into());
        let task = SourceSettings::for_task(&config).unwrap();
        assert_eq!(task.timestamp_columns, ["updated_at", "created_at"]);
        let names = match &task.source {
            Source::Tables(tables) => tables.iter().map(TableName::entry).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(names, ["a", "c"]);
        assert_eq!(task.topic(Some("a")), "a");
    }
}
