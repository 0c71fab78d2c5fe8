//! A task's PostgreSQL connection: tables created and given new columns
//! to fit a batch, and each batch written in one transaction together
//! with the next offset of every partition it covers.
//!
//! A write (see `Database::write`): the tables are made to fit first, each
//! change a statement of its own, since a created table or an added column
//! is right whatever becomes of the rows; then one transaction locks the
//! batch's partitions, reads their stored offsets, drops the rows below
//! them (written already, by an earlier run or by a task that still
//! believed it owned the partition), copies the rest in, stores the new
//! offsets and commits. Rows and offsets are durable together or not at
//! all.

use std::collections::BTreeMap;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Kind, ToSql, Type};
use tokio_postgres::{Client, Statement, Transaction};

use super::columns::{Cell, ColumnType};
use super::config::{InsertMode, SinkSettings};
use super::connection;
use super::rows::{Row, TableRows};
use super::sql;
use crate::api::TopicPartition;
use crate::{ConnectError, Result};

/// The next offset to read of each partition: every record below it is
/// written.
pub type Offsets = BTreeMap<TopicPartition, u64>;

/// The columns a write sends to a table, with their types in the table.
struct Plan {
    columns: Vec<String>,
    types: Vec<Type>,
}

/// A task's connection (see the module's comment).
pub struct Database {
    client: Client,
    connector: String,
    /// Each table's columns and their types, as last read from the
    /// catalog: read again only when a batch needs a column not in it.
    tables: BTreeMap<String, BTreeMap<String, Type>>,
    /// The statements every write sends, parsed once per connection
    /// rather than once per write (a round trip each).
    statements: Option<Statements>,
}

/// See `Database::statements`.
#[derive(Clone)]
struct Statements {
    lock_partitions: Statement,
    read_offsets: Statement,
    write_offsets: Statement,
}

impl Database {
    /// Connects as `settings` say, naming the session after the task.
    pub async fn connect(settings: &SinkSettings, connector: &str, task: u32) -> Result<Database> {
        let client = connection::connect(&settings.connection, connector, task)
            .await
            .map_err(|e| failed("connecting to the database", e))?;
        Ok(Database {
            client,
            connector: connector.to_string(),
            tables: BTreeMap::new(),
            statements: None,
        })
    }

    /// Creates the offsets table if it is not there.
    pub async fn create_offsets_table(&self) -> Result<()> {
        self.ddl(sql::CREATE_OFFSETS_TABLE).await
    }

    /// The offsets stored for this connector's partitions.
    pub async fn stored_offsets(&self) -> Result<Offsets> {
        let rows = self
            .client
            .query(sql::READ_OFFSETS, &[&self.connector])
            .await
            .map_err(|e| failed("reading the stored offsets", e))?;
        parse_offsets(&rows)
    }

    /// Writes `tables` and, for each partition they or `reached` cover,
    /// the next offset (the higher of the rows' and `reached`'s) in one
    /// transaction (see the module's comment). Returns every stored
    /// offset of the connector as the transaction left them.
    pub async fn write(
        &mut self,
        tables: &mut [TableRows],
        reached: &Offsets,
        settings: &SinkSettings,
    ) -> Result<Offsets> {
        let mut plans = Vec::with_capacity(tables.len());
        for table in tables.iter() {
            plans.push(self.plan(table, settings).await?);
        }
        let locks = lock_names(&self.connector, tables, reached);
        let statements = match &self.statements {
            Some(statements) => statements.clone(),
            None => {
                let prepared = Statements::prepare(&self.client).await?;
                self.statements.insert(prepared).clone()
            }
        };
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| failed("beginning a transaction", e))?;
        // Sent together (tokio-postgres pipelines them) and run in order:
        // the offsets are read under the locks.
        let (lock_params, read_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
            ([&locks], [&self.connector]);
        let (locked, read) = tokio::join!(
            biased;
            tx.execute(&statements.lock_partitions, &lock_params),
            tx.query(&statements.read_offsets, &read_params)
        );
        locked.map_err(|e| failed("locking the partitions' offsets", e))?;
        let rows = read.map_err(|e| failed("reading the stored offsets", e))?;
        let stored = parse_offsets(&rows)?;
        let dropped = drop_written(tables, &stored);
        if dropped > 0 {
            tracing::info!(
                connector = %self.connector,
                records = dropped,
                "records already written were delivered again; they are not written twice"
            );
        }
        for (index, (table, plan)) in tables.iter().zip(&plans).enumerate() {
            if table.rows().is_empty() {
                continue;
            }
            match settings.insert_mode {
                InsertMode::Insert => {
                    let statement = sql::copy_in(&table.table, &plan.columns);
                    copy_rows(
                        &tx,
                        &table.table,
                        &statement,
                        &plan.types,
                        plan,
                        table.rows(),
                    )
                    .await?
                }
                InsertMode::Upsert => upsert(&tx, index, table, plan).await?,
            }
        }
        let next = next_offsets(&stored, tables, reached);
        if !next.is_empty() {
            store_offsets(&tx, &statements.write_offsets, &self.connector, &next).await?;
        }
        tx.commit()
            .await
            .map_err(|e| failed("committing the rows with their offsets", e))?;
        let mut known = stored;
        known.extend(next);
        Ok(known)
    }

    /// Makes `table` fit its rows (created, or given the columns it lacks,
    /// as `auto.create` and `auto.evolve` allow) and says which columns
    /// the rows go to, with their types in the table.
    async fn plan(&mut self, table: &TableRows, settings: &SinkSettings) -> Result<Plan> {
        let wanted = table.column_names();
        let name = &table.table;
        let mut known = self.columns(name, false).await?;
        if known.is_empty() {
            if !settings.auto_create {
                return Err(ConnectError::Task(format!(
                    "PostgreSQL sink: table `{name}` does not exist, and auto.create is false"
                )));
            }
            self.ddl(&sql::create_table(name, &typed(table, &wanted), &table.pk))
                .await?;
            known = self.columns(name, true).await?;
        }
        let missing: Vec<String> = wanted
            .iter()
            .filter(|column| !known.contains_key(*column))
            .cloned()
            .collect();
        if !missing.is_empty() {
            if !settings.auto_evolve {
                let names: Vec<&str> = missing.iter().map(String::as_str).collect();
                return Err(ConnectError::Task(format!(
                    "PostgreSQL sink: table `{name}` has no column {}, and auto.evolve is false",
                    names.join(", ")
                )));
            }
            self.ddl(&sql::add_columns(name, &typed(table, &missing)))
                .await?;
            known = self.columns(name, true).await?;
        }
        let mut plan = Plan {
            columns: Vec::with_capacity(wanted.len()),
            types: Vec::with_capacity(wanted.len()),
        };
        for column in wanted {
            let ty = known.get(&column).cloned().ok_or_else(|| {
                ConnectError::Task(format!(
                    "PostgreSQL sink: table `{name}` still has no column `{column}`"
                ))
            })?;
            plan.columns.push(column);
            plan.types.push(ty);
        }
        Ok(plan)
    }

    /// `table`'s columns and their types (none if it does not exist):
    /// from what was read before unless `reload`.
    async fn columns(&mut self, table: &str, reload: bool) -> Result<BTreeMap<String, Type>> {
        if !reload {
            if let Some(known) = self.tables.get(table) {
                return Ok(known.clone());
            }
        }
        let rows = self
            .client
            .query(sql::TABLE_COLUMNS, &[&sql::quote(table)])
            .await
            .map_err(|e| failed(format!("reading the columns of `{table}`"), e))?;
        let mut columns = BTreeMap::new();
        for row in &rows {
            let read =
                |e: tokio_postgres::Error| failed(format!("reading the columns of `{table}`"), e);
            let name: String = row.try_get(0).map_err(read)?;
            let oid: u32 = row.try_get(1).map_err(read)?;
            let type_name: String = row.try_get(2).map_err(read)?;
            // A type that is not built in (an enum, a domain) keeps its
            // name, so that a value written into it fails naming it.
            let ty = Type::from_oid(oid)
                .unwrap_or_else(|| Type::new(type_name, oid, Kind::Simple, String::new()));
            columns.insert(name, ty);
        }
        if !columns.is_empty() {
            self.tables.insert(table.to_string(), columns.clone());
        }
        Ok(columns)
    }

    /// Runs a `CREATE ... IF NOT EXISTS` or `ADD COLUMN IF NOT EXISTS`.
    async fn ddl(&self, statement: &str) -> Result<()> {
        match self.client.batch_execute(statement).await {
            Ok(()) => Ok(()),
            // Two tasks making one table at once: the slower one's `IF NOT
            // EXISTS` can still trip over the catalog's unique index,
            // though what it made is there; the reload after it finds it.
            Err(e) if concurrent_ddl(&e) => {
                tracing::debug!(statement, error = %e, "made concurrently by another session");
                Ok(())
            }
            Err(e) => Err(failed(format!("running `{statement}`"), e)),
        }
    }
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements> {
        let prepare = |text: &'static str| async move {
            client
                .prepare(text)
                .await
                .map_err(|e| failed(format!("preparing `{text}`"), e))
        };
        Ok(Statements {
            lock_partitions: prepare(sql::LOCK_PARTITIONS).await?,
            read_offsets: prepare(sql::READ_OFFSETS).await?,
            write_offsets: prepare(sql::WRITE_OFFSETS).await?,
        })
    }
}

fn concurrent_ddl(error: &tokio_postgres::Error) -> bool {
    [
        SqlState::UNIQUE_VIOLATION,
        SqlState::DUPLICATE_TABLE,
        SqlState::DUPLICATE_COLUMN,
        SqlState::DUPLICATE_OBJECT,
    ]
    .iter()
    .any(|code| error.code() == Some(code))
}

/// The type column `name` would be created as: its schema's, else what
/// its values in the rows fit. Asked only for a column the table lacks:
/// inferring walks every row.
fn column_type(table: &TableRows, name: &str) -> ColumnType {
    match table.declared.get(name) {
        Some(declared) => *declared,
        None => ColumnType::infer(table.rows().iter().filter_map(|row| row.values.get(name))),
    }
}

/// `names` with the types they would be created as.
fn typed(table: &TableRows, names: &[String]) -> Vec<(String, ColumnType)> {
    names
        .iter()
        .map(|name| (name.clone(), column_type(table, name)))
        .collect()
}

/// The lock names of the partitions a write covers, sorted: every writer
/// takes its locks in that order.
fn lock_names(connector: &str, tables: &[TableRows], reached: &Offsets) -> Vec<String> {
    let mut partitions: Vec<(&str, u32)> = tables
        .iter()
        .flat_map(|t| t.spans().iter().map(|s| (s.topic.as_str(), s.partition)))
        .chain(reached.keys().map(|tp| (tp.topic.as_str(), tp.partition)))
        .collect();
    partitions.sort_unstable();
    partitions.dedup();
    // The connector last: a topic has no `/`, so no two partitions share a
    // name whatever the connector is called.
    partitions
        .into_iter()
        .map(|(topic, partition)| format!("spool-connect/{topic}/{partition}/{connector}"))
        .collect()
}

/// Drops the rows below their partition's stored offset; how many.
fn drop_written(tables: &mut [TableRows], stored: &Offsets) -> usize {
    let stored: BTreeMap<(&str, u32), u64> = stored
        .iter()
        .map(|(tp, offset)| ((tp.topic.as_str(), tp.partition), *offset))
        .collect();
    let below = |topic: &str, partition: u32, offset: u64| {
        stored
            .get(&(topic, partition))
            .is_some_and(|next| offset < *next)
    };
    let mut dropped = 0;
    for table in tables {
        // Nearly always no row is below: a redelivery follows only a
        // rebalance or a restart.
        let any_below = table
            .spans()
            .iter()
            .any(|span| below(&span.topic, span.partition, span.lowest));
        if any_below {
            dropped += table.retain(|row| !below(&row.topic, row.partition, row.offset));
        }
    }
    dropped
}

/// The offsets a write stores: per partition, past its last row or what
/// `reached` says, whichever is higher, where that is beyond the stored
/// offset (never back).
fn next_offsets(stored: &Offsets, tables: &[TableRows], reached: &Offsets) -> Offsets {
    let mut next: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    for span in tables.iter().flat_map(|t| t.spans()) {
        let key = (span.topic.as_str(), span.partition);
        raise(&mut next, key, span.highest.saturating_add(1));
    }
    for (tp, offset) in reached {
        raise(&mut next, (tp.topic.as_str(), tp.partition), *offset);
    }
    next.into_iter()
        .map(|((topic, partition), offset)| (TopicPartition::new(topic, partition), offset))
        .filter(|(tp, offset)| stored.get(tp).is_none_or(|known| offset > known))
        .collect()
}

fn raise<'a>(next: &mut BTreeMap<(&'a str, u32), u64>, key: (&'a str, u32), offset: u64) {
    let entry = next.entry(key).or_insert(offset);
    *entry = (*entry).max(offset);
}

fn parse_offsets(rows: &[tokio_postgres::Row]) -> Result<Offsets> {
    let read = |e: tokio_postgres::Error| failed(format!("reading {}", sql::OFFSETS_TABLE), e);
    let mut offsets = Offsets::new();
    for row in rows {
        let topic: String = row.try_get(0).map_err(read)?;
        let partition: i32 = row.try_get(1).map_err(read)?;
        let next: i64 = row.try_get(2).map_err(read)?;
        let (Ok(partition), Ok(next)) = (u32::try_from(partition), u64::try_from(next)) else {
            return Err(ConnectError::Task(format!(
                "PostgreSQL sink: {} holds a negative partition or offset for `{topic}`: \
                 {partition}, {next}",
                sql::OFFSETS_TABLE
            )));
        };
        offsets.insert(TopicPartition::new(topic, partition), next);
    }
    Ok(offsets)
}

async fn store_offsets(
    tx: &Transaction<'_>,
    write_offsets: &Statement,
    connector: &str,
    next: &Offsets,
) -> Result<()> {
    let mut topics = Vec::with_capacity(next.len());
    let mut partitions = Vec::with_capacity(next.len());
    let mut offsets = Vec::with_capacity(next.len());
    for (tp, offset) in next {
        let too_large = || {
            ConnectError::Task(format!(
                "PostgreSQL sink: {}/{} at {offset} does not fit {}",
                tp.topic,
                tp.partition,
                sql::OFFSETS_TABLE
            ))
        };
        topics.push(tp.topic.clone());
        partitions.push(i32::try_from(tp.partition).map_err(|_| too_large())?);
        offsets.push(i64::try_from(*offset).map_err(|_| too_large())?);
    }
    tx.execute(write_offsets, &[&connector, &topics, &partitions, &offsets])
        .await
        .map_err(|e| failed("storing the offsets", e))?;
    Ok(())
}

/// Upserts a table's rows: copied into a staging table, then moved over,
/// the last row of each key winning (see `sql::upsert_from_stage`).
async fn upsert(tx: &Transaction<'_>, index: usize, table: &TableRows, plan: &Plan) -> Result<()> {
    if table.pk.is_empty() {
        return Err(ConnectError::Task(format!(
            "PostgreSQL sink: an upsert into `{}` needs a primary key",
            table.table
        )));
    }
    let stage = format!("spool_stage_{index}");
    let statement = sql::create_stage(&stage, &table.table, &plan.columns);
    tx.batch_execute(&statement)
        .await
        .map_err(|e| failed(format!("staging rows for `{}`", table.table), e))?;
    let mut columns = plan.columns.clone();
    columns.push(sql::ORDINAL_COLUMN.to_string());
    let mut types = plan.types.clone();
    types.push(Type::INT8);
    let staged = Plan { columns, types };
    let statement = sql::copy_in(&stage, &staged.columns);
    copy_rows(
        tx,
        &table.table,
        &statement,
        &staged.types,
        plan,
        table.rows(),
    )
    .await?;
    let statement = sql::upsert_from_stage(&stage, &table.table, &plan.columns, &table.pk);
    tx.batch_execute(&statement)
        .await
        .map_err(|e| failed(format!("upserting into `{}`", table.table), e))?;
    Ok(())
}

/// Copies `rows` by `statement` (a binary COPY into `plan`'s columns,
/// and the ordinal when `types` has one more). `table` is for errors.
async fn copy_rows(
    tx: &Transaction<'_>,
    table: &str,
    statement: &str,
    types: &[Type],
    plan: &Plan,
    rows: &[Row],
) -> Result<()> {
    let ordinal = types.len() > plan.columns.len();
    let sink = tx
        .copy_in(statement)
        .await
        .map_err(|e| failed(format!("starting the COPY into `{table}`"), e))?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, types));
    let mut cells: Vec<Cell<'_>> = Vec::with_capacity(types.len());
    for (index, row) in rows.iter().enumerate() {
        cells.clear();
        cells.extend(plan.columns.iter().map(|column| Cell::Value {
            column,
            value: row.values.get(column),
        }));
        if ordinal {
            cells.push(Cell::Ordinal(i64::try_from(index).unwrap_or(i64::MAX)));
        }
        writer.as_mut().write_raw(cells.iter()).await.map_err(|e| {
            ConnectError::Task(format!(
                "PostgreSQL sink: writing the record of `{}` at partition {}, offset {} \
                     into `{table}`: {e}",
                row.topic, row.partition, row.offset
            ))
        })?;
    }
    writer
        .as_mut()
        .finish()
        .await
        .map_err(|e| failed(format!("finishing the COPY into `{table}`"), e))?;
    Ok(())
}

/// A failure of the database, with what the sink was doing.
fn failed(doing: impl std::fmt::Display, error: tokio_postgres::Error) -> ConnectError {
    ConnectError::Task(format!("PostgreSQL sink: {doing}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(topic: &str, partition: u32, offset: u64, values: serde_json::Value) -> Row {
        Row {
            topic: topic.into(),
            partition,
            offset,
            values: values.as_object().cloned().unwrap(),
        }
    }

    fn table(rows: Vec<Row>, pk: &[&str]) -> TableRows {
        let mut table = TableRows::new("t", pk.iter().map(|p| p.to_string()).collect());
        for row in rows {
            table.push(row);
        }
        table
    }

    #[test]
    fn columns_come_key_first_then_by_name_typed_by_their_values() {
        let mut rows = table(
            vec![
                row("a", 0, 0, json!({"z": 1, "id": "x"})),
                row("a", 0, 1, json!({"b": true, "z": 2.5, "id": "y"})),
            ],
            &["id"],
        );
        rows.declared.insert("b".into(), ColumnType::Text);
        assert_eq!(
            typed(&rows, &rows.column_names()),
            [
                ("id".to_string(), ColumnType::Text),
                ("b".to_string(), ColumnType::Text),
                ("z".to_string(), ColumnType::DoublePrecision),
            ]
        );
    }

    #[test]
    fn rows_below_the_stored_offsets_are_dropped_and_offsets_only_move_on() {
        let stored: Offsets = [(TopicPartition::new("a", 0), 2)].into();
        let mut tables = vec![table(
            vec![
                row("a", 0, 1, json!({})),
                row("a", 0, 2, json!({})),
                row("a", 1, 0, json!({})),
            ],
            &[],
        )];
        assert_eq!(drop_written(&mut tables, &stored), 1);
        assert_eq!(tables[0].rows().len(), 2);
        let reached: Offsets = [(TopicPartition::new("a", 1), 5)].into();
        let next = next_offsets(&stored, &tables, &reached);
        assert_eq!(
            next.into_iter().collect::<Vec<_>>(),
            [
                (TopicPartition::new("a", 0), 3),
                (TopicPartition::new("a", 1), 5)
            ]
        );
        let behind: Offsets = [(TopicPartition::new("a", 0), 1)].into();
        assert!(next_offsets(&stored, &[], &behind).is_empty());
        assert_eq!(
            lock_names("c", &tables, &reached),
            ["spool-connect/a/0/c", "spool-connect/a/1/c"]
        );
    }
}
