//! The PostgreSQL sink's keys, named as Confluent's JDBC sink names them
//! where it has them, each default next to why it is what it is, and the
//! settings a task runs with once they are parsed and checked together.

use tokio_postgres::Config;

use super::connection;
use crate::api::{ConfigDef, ConfigKey, ConfigMap, ConfigType, Importance, Validator};
use crate::{ConnectError, Result};

// The connection keys are shared with the source (`connection`).
pub use super::connection::{parse_url, CONNECTION_PASSWORD, CONNECTION_URL, CONNECTION_USER};

/// The table a topic's records go to; `${topic}` stands for the topic.
pub const TABLE_NAME_FORMAT: &str = "table.name.format";
/// `insert` or `upsert`.
pub const INSERT_MODE: &str = "insert.mode";
/// Where a row's primary key comes from: `none`, `record_key`, `record_value`.
pub const PK_MODE: &str = "pk.mode";
/// The primary key's columns.
pub const PK_FIELDS: &str = "pk.fields";
/// Whether a missing table is created.
pub const AUTO_CREATE: &str = "auto.create";
/// Whether a missing column is added.
pub const AUTO_EVOLVE: &str = "auto.evolve";
/// The most rows buffered before they are written.
pub const BATCH_SIZE: &str = "batch.size";
/// The value fields written; all when empty (Confluent's `fields.whitelist`).
pub const FIELDS_INCLUDE: &str = "fields.include";

/// What `table.name.format` replaces with a record's topic.
pub const TOPIC_PLACEHOLDER: &str = "${topic}";
/// The column of a primitive record key under `pk.mode=record_key` when
/// `pk.fields` names none (Confluent's name).
pub const DEFAULT_KEY_COLUMN: &str = "__connect_key";
/// PostgreSQL's longest identifier in bytes (`NAMEDATALEN - 1`): it cuts a
/// longer one silently, and the sink would then never find its own column
/// again, so a longer name is refused instead.
pub const MAX_IDENTIFIER: usize = 63;

/// How rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertMode {
    /// Binary COPY: every record is a new row.
    Insert,
    /// A row per primary key: a record whose key is there replaces its row.
    Upsert,
}

/// Where a row's primary key comes from (Confluent's `pk.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkMode {
    None,
    /// The record's key: an object's fields (`pk.fields`, or all of
    /// them), or a primitive key as one column.
    RecordKey,
    /// Fields of the record's value (`pk.fields`).
    RecordValue,
}

/// How a record becomes a row: the part of the settings `rows` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowSettings {
    pub pk_mode: PkMode,
    pub pk_fields: Vec<String>,
    pub fields_include: Vec<String>,
}

/// A task's settings, parsed and checked together.
#[derive(Clone)]
pub struct SinkSettings {
    pub connection: Config,
    pub table_format: String,
    pub insert_mode: InsertMode,
    pub rows: RowSettings,
    pub auto_create: bool,
    pub auto_evolve: bool,
    pub batch_size: usize,
}

/// The sink's keys (its topics are the worker's `topics` key).
pub fn config_def() -> ConfigDef {
    let key = |name: &str, config_type: ConfigType, importance: Importance, doc: &str| {
        ConfigKey::new(name, config_type, importance, doc)
    };
    ConfigDef::new()
        .merge(&connection::config_def())
        // Confluent's default: one table per topic, named as the topic,
        // so a sink of several topics needs no further key.
        .define(
            key(
                TABLE_NAME_FORMAT,
                ConfigType::String,
                Importance::Medium,
                "The table a topic's records go to; ${topic} stands for the topic.",
            )
            .default_value(TOPIC_PLACEHOLDER)
            .validator(Validator::NonEmptyString),
        )
        .merge(&mode_keys())
        .merge(&table_keys())
}

/// `insert.mode`, `pk.mode` and `pk.fields`.
fn mode_keys() -> ConfigDef {
    let names = |names: &[&str]| -> Vec<String> { names.iter().map(|n| n.to_string()).collect() };
    ConfigDef::new()
        // Confluent's default: insert needs no key and is the fastest
        // write (binary COPY); upsert is the choice of whoever has keys.
        .define(
            ConfigKey::new(
                INSERT_MODE,
                ConfigType::String,
                Importance::High,
                "insert: every record is a new row (binary COPY); upsert: a row per primary \
                 key, a record replacing the row of its key (needs pk.mode).",
            )
            .default_value("insert")
            .validator(Validator::OneOf(names(&["insert", "upsert"]))),
        )
        // Confluent's default: no key unless asked for, as a table of
        // events has none.
        .define(
            ConfigKey::new(
                PK_MODE,
                ConfigType::String,
                Importance::High,
                "Where the primary key comes from: none, record_key (the key's fields, or a \
                 primitive key as one column) or record_value (fields of the value).",
            )
            .default_value("none")
            .validator(Validator::OneOf(names(&[
                "none",
                "record_key",
                "record_value",
            ]))),
        )
        .define(
            ConfigKey::new(
                PK_FIELDS,
                ConfigType::List,
                Importance::Medium,
                "The primary key's columns: with record_value the value's fields (required); \
                 with record_key the key's fields (all of an object key when empty), or the \
                 one column of a primitive key (__connect_key when empty).",
            )
            .default_value(""),
        )
}

/// `auto.create`, `auto.evolve`, `batch.size` and `fields.include`.
fn table_keys() -> ConfigDef {
    ConfigDef::new()
        // True (Confluent's default is false): a pipeline should work on
        // an empty database, its tables shaped by the records; a DBA who
        // wants the tables made by hand turns it off.
        .define(
            ConfigKey::new(
                AUTO_CREATE,
                ConfigType::Boolean,
                Importance::Medium,
                "Whether a table that does not exist is created from the records' fields.",
            )
            .default_value("true"),
        )
        // True, for the same reason: a record with a new field should not
        // stop the pipeline. Columns are only ever added, never dropped or
        // changed, so no data is lost by it.
        .define(
            ConfigKey::new(
                AUTO_EVOLVE,
                ConfigType::Boolean,
                Importance::Medium,
                "Whether a column a record's field needs is added (ADD COLUMN); columns are \
                 never dropped.",
            )
            .default_value("true"),
        )
        // 10000: each write is one transaction with an offsets update and,
        // for upserts, a staging table; ten thousand rows make those costs
        // small per row while a batch stays a few megabytes in memory. A
        // flush (every offset.flush.interval.ms) writes a smaller one.
        .define(
            ConfigKey::new(
                BATCH_SIZE,
                ConfigType::Int,
                Importance::Medium,
                "The most rows buffered before they are written in one transaction; the \
                 worker's flushes write whatever is buffered.",
            )
            .default_value("10000")
            .validator(Validator::at_least(1)),
        )
        .define(
            ConfigKey::new(
                FIELDS_INCLUDE,
                ConfigType::List,
                Importance::Medium,
                "The value fields written as columns; every field when empty. Primary key \
                 fields are written in any case.",
            )
            .default_value(""),
        )
}

impl SinkSettings {
    /// The settings of a connector or task config; keys that are wrong
    /// together (upsert without a key, say) are refused naming one.
    pub fn from_config(config: &ConfigMap) -> Result<SinkSettings> {
        let parsed = config_def().parse(config)?;
        let insert_mode = match parsed.string(INSERT_MODE)? {
            "upsert" => InsertMode::Upsert,
            _ => InsertMode::Insert,
        };
        let pk_mode = match parsed.string(PK_MODE)? {
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            _ => PkMode::None,
        };
        let pk_fields = parsed.list(PK_FIELDS)?.to_vec();
        if insert_mode == InsertMode::Upsert && pk_mode == PkMode::None {
            return Err(ConnectError::config(
                INSERT_MODE,
                "upsert needs a primary key: set pk.mode to record_key or record_value",
            ));
        }
        if pk_mode == PkMode::RecordValue && pk_fields.is_empty() {
            return Err(ConnectError::config(
                PK_FIELDS,
                "pk.mode=record_value needs the value fields of the key",
            ));
        }
        let batch_size = usize::try_from(parsed.int(BATCH_SIZE)?)
            .map_err(|_| ConnectError::config(BATCH_SIZE, "must be positive"))?;
        let rows = RowSettings {
            pk_mode,
            pk_fields,
            fields_include: parsed.list(FIELDS_INCLUDE)?.to_vec(),
        };
        for (key, names) in [
            (PK_FIELDS, &rows.pk_fields),
            (FIELDS_INCLUDE, &rows.fields_include),
        ] {
            for name in names {
                check_identifier(name).map_err(|reason| ConnectError::config(key, reason))?;
            }
        }
        Ok(SinkSettings {
            connection: connection::from_parsed(&parsed)?,
            table_format: parsed.string(TABLE_NAME_FORMAT)?.to_string(),
            insert_mode,
            rows,
            auto_create: parsed.boolean(AUTO_CREATE)?,
            auto_evolve: parsed.boolean(AUTO_EVOLVE)?,
            batch_size,
        })
    }

    /// The table `topic`'s records go to.
    pub fn table_name(&self, topic: &str) -> Result<String> {
        let name = self.table_format.replace(TOPIC_PLACEHOLDER, topic);
        check_identifier(&name).map_err(|reason| {
            ConnectError::config(TABLE_NAME_FORMAT, format!("for topic `{topic}`: {reason}"))
        })?;
        Ok(name)
    }
}

/// Whether `name` can be a table or column name as it is: not empty, no
/// NUL (PostgreSQL refuses it), and short enough not to be cut.
pub fn check_identifier(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("an empty name cannot name a table or column".into());
    }
    if name.contains('\0') {
        return Err(format!("`{name}` holds a NUL character"));
    }
    if name.len() > MAX_IDENTIFIER {
        return Err(format!(
            "`{name}` is longer than PostgreSQL's {MAX_IDENTIFIER} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::config_map as map;

    #[test]
    fn defaults_insert_into_a_table_named_as_the_topic() {
        let settings = SinkSettings::from_config(&map(&[(
            CONNECTION_URL,
            "postgresql://postgres@127.0.0.1:5432/db",
        )]))
        .unwrap();
        assert_eq!(settings.insert_mode, InsertMode::Insert);
        assert_eq!(settings.rows.pk_mode, PkMode::None);
        assert!(settings.auto_create && settings.auto_evolve);
        assert_eq!(settings.batch_size, 10_000);
        assert_eq!(settings.table_name("orders").unwrap(), "orders");
        assert_eq!(settings.connection.get_user(), Some("postgres"));
        assert_eq!(settings.connection.get_dbname(), Some("db"));
    }

    #[test]
    fn user_password_and_jdbc_urls_are_taken() {
        let settings = SinkSettings::from_config(&map(&[
            (CONNECTION_URL, "jdbc:postgresql://db.example:6543/shop"),
            (CONNECTION_USER, "writer"),
            (CONNECTION_PASSWORD, "s3cret"),
            (TABLE_NAME_FORMAT, "kafka_${topic}"),
        ]))
        .unwrap();
        assert_eq!(settings.connection.get_user(), Some("writer"));
        assert_eq!(settings.connection.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(settings.connection.get_ports(), [6543]);
        assert_eq!(settings.table_name("orders").unwrap(), "kafka_orders");
        let pairs = map(&[(CONNECTION_URL, "host=localhost user=me dbname=x")]);
        let settings = SinkSettings::from_config(&pairs).unwrap();
        assert_eq!(settings.connection.get_user(), Some("me"));
    }

    #[test]
    fn keys_that_are_wrong_together_are_refused_by_name() {
        let url = (CONNECTION_URL, "postgresql://localhost/db");
        let refused = |pairs: &[(&str, &str)]| {
            let mut all = map(pairs);
            all.insert(url.0.into(), url.1.into());
            match SinkSettings::from_config(&all) {
                Err(ConnectError::InvalidConfig { key, .. }) => key,
                other => panic!("not refused: {:?}", other.map(|s| s.insert_mode)),
            }
        };
        assert_eq!(refused(&[(INSERT_MODE, "upsert")]), INSERT_MODE);
        assert_eq!(refused(&[(PK_MODE, "record_value")]), PK_FIELDS);
        assert_eq!(refused(&[(INSERT_MODE, "merge")]), INSERT_MODE);
        assert_eq!(refused(&[(BATCH_SIZE, "0")]), BATCH_SIZE);
        assert_eq!(refused(&[(PK_FIELDS, "a,,b")]), PK_FIELDS);
        let long = map(&[url, (TABLE_NAME_FORMAT, "a_long_prefix_${topic}")]);
        let settings = SinkSettings::from_config(&long).unwrap();
        let error = settings.table_name(&"t".repeat(50)).unwrap_err();
        assert!(error.to_string().contains("63 bytes"), "{error}");
        let bad_url = map(&[(CONNECTION_URL, "postgresql://h:notaport/db")]);
        let error = SinkSettings::from_config(&bad_url).err().unwrap();
        assert!(
            matches!(&error, ConnectError::InvalidConfig { key, .. } if key == CONNECTION_URL),
            "{error}"
        );
    }
}
