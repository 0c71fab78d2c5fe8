//! The SQL the sink sends. Table and column names come from topics and
//! records, so each is quoted (`"name"`, a `"` inside doubled), never
//! spliced in bare: a field called `id; DROP TABLE x` is just a column.

use super::columns::ColumnType;

/// The table of the offsets written with the rows (see the module's
/// comment of `postgres`).
pub const OFFSETS_TABLE: &str = "spool_connect_offsets";

/// `partition` is quoted: it is a keyword (unreserved, but a future
/// PostgreSQL may reserve it).
pub const CREATE_OFFSETS_TABLE: &str = "CREATE TABLE IF NOT EXISTS spool_connect_offsets (\
     connector TEXT NOT NULL, topic TEXT NOT NULL, \"partition\" INT NOT NULL, \
     next_offset BIGINT NOT NULL, PRIMARY KEY (connector, topic, \"partition\"))";

/// A connector's stored offsets; `$1` the connector.
pub const READ_OFFSETS: &str = "SELECT topic, \"partition\", next_offset \
     FROM spool_connect_offsets WHERE connector = $1";

/// Stores next offsets; `$1` the connector, `$2`, `$3` and `$4` arrays of
/// topics, partitions and offsets, one entry per partition.
pub const WRITE_OFFSETS: &str = "INSERT INTO spool_connect_offsets \
     (connector, topic, \"partition\", next_offset) \
     SELECT $1::text, u.topic, u.part, u.next \
     FROM unnest($2::text[], $3::int4[], $4::int8[]) AS u(topic, part, next) \
     ON CONFLICT (connector, topic, \"partition\") DO UPDATE SET next_offset = EXCLUDED.next_offset";

/// Takes a transaction-long lock per partition, `$1` the partitions' lock
/// names in a fixed order (so two writers cannot wait on each other): the
/// writers of one partition then take turns between reading its offset
/// and storing the next one. `hashtextextended` is PostgreSQL 11's.
pub const LOCK_PARTITIONS: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k";

/// A table's columns with their type oids and type names; `$1` the
/// table's quoted name. No rows when the table does not exist.
pub const TABLE_COLUMNS: &str =
    "SELECT a.attname::text, a.atttypid, format_type(a.atttypid, NULL) \
     FROM pg_catalog.pg_attribute a \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped";

/// The staging table's column numbering rows in batch order, so an
/// upsert keeps the last row of each key.
pub const ORDINAL_COLUMN: &str = "__spool_ordinal";

/// `name` as a quoted identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn list<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|name| quote(name.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates `table` with `columns`, and a primary key of `pk` if any.
/// Columns other than the key are nullable, so that a later record
/// without a field still fits.
pub fn create_table(table: &str, columns: &[(String, ColumnType)], pk: &[String]) -> String {
    let mut parts: Vec<String> = columns
        .iter()
        .map(|(name, kind)| format!("{} {}", quote(name), kind.sql()))
        .collect();
    if !pk.is_empty() {
        parts.push(format!("PRIMARY KEY ({})", list(pk)));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        quote(table),
        parts.join(", ")
    )
}

/// Adds `columns` to `table`, each only if it is not there yet (another
/// task may have added it meanwhile).
pub fn add_columns(table: &str, columns: &[(String, ColumnType)]) -> String {
    let additions: Vec<String> = columns
        .iter()
        .map(|(name, kind)| format!("ADD COLUMN IF NOT EXISTS {} {}", quote(name), kind.sql()))
        .collect();
    format!("ALTER TABLE {} {}", quote(table), additions.join(", "))
}

/// Binary COPY into `columns` of `table`.
pub fn copy_in<S: AsRef<str>>(table: &str, columns: &[S]) -> String {
    format!(
        "COPY {} ({}) FROM STDIN BINARY",
        quote(table),
        list(columns)
    )
}

/// A temporary table `stage` with `columns` of `table` (their types, no
/// constraints, so a row is staged whatever `table`'s defaults) and the
/// ordinal; dropped when the transaction ends.
pub fn create_stage(stage: &str, table: &str, columns: &[String]) -> String {
    format!(
        "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {}, 0::bigint AS {} FROM {} \
         WITH NO DATA",
        quote(stage),
        list(columns),
        quote(ORDINAL_COLUMN),
        quote(table)
    )
}

/// Moves the staged rows into `table`: the last staged row of each key
/// (`DISTINCT ON` the key, latest ordinal first), inserted, or replacing
/// the columns of the row with that key.
pub fn upsert_from_stage(stage: &str, table: &str, columns: &[String], pk: &[String]) -> String {
    let others: Vec<&String> = columns.iter().filter(|c| !pk.contains(c)).collect();
    let action = match others.is_empty() {
        true => "DO NOTHING".to_string(),
        false => format!(
            "DO UPDATE SET {}",
            others
                .iter()
                .map(|c| format!("{0} = EXCLUDED.{0}", quote(c)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "INSERT INTO {table} ({columns}) SELECT DISTINCT ON ({pk}) {columns} FROM {stage} \
         ORDER BY {pk}, {ordinal} DESC ON CONFLICT ({pk}) {action}",
        table = quote(table),
        columns = list(columns),
        pk = list(pk),
        stage = quote(stage),
        ordinal = quote(ORDINAL_COLUMN),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_always_quoted() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("we\"ird; DROP"), "\"we\"\"ird; DROP\"");
        let columns = [
            ("id".to_string(), ColumnType::BigInt),
            ("Name".to_string(), ColumnType::Text),
        ];
        assert_eq!(
            create_table("orders", &columns, &["id".to_string()]),
            "CREATE TABLE IF NOT EXISTS \"orders\" (\"id\" BIGINT, \"Name\" TEXT, \
             PRIMARY KEY (\"id\"))"
        );
        assert_eq!(
            add_columns("orders", &columns[1..]),
            "ALTER TABLE \"orders\" ADD COLUMN IF NOT EXISTS \"Name\" TEXT"
        );
        assert_eq!(
            copy_in("orders", &["id", "Name"]),
            "COPY \"orders\" (\"id\", \"Name\") FROM STDIN BINARY"
        );
    }

    #[test]
    fn an_upsert_keeps_the_last_staged_row_of_each_key() {
        let columns = ["k".to_string(), "v".to_string()];
        let pk = ["k".to_string()];
        assert_eq!(
            create_stage("s0", "t", &columns),
            "CREATE TEMPORARY TABLE \"s0\" ON COMMIT DROP AS SELECT \"k\", \"v\", \
             0::bigint AS \"__spool_ordinal\" FROM \"t\" WITH NO DATA"
        );
        assert_eq!(
            upsert_from_stage("s0", "t", &columns, &pk),
            "INSERT INTO \"t\" (\"k\", \"v\") SELECT DISTINCT ON (\"k\") \"k\", \"v\" \
             FROM \"s0\" ORDER BY \"k\", \"__spool_ordinal\" DESC ON CONFLICT (\"k\") \
             DO UPDATE SET \"v\" = EXCLUDED.\"v\""
        );
        assert!(upsert_from_stage("s0", "t", &pk, &pk).ends_with("DO NOTHING"));
    }
}
