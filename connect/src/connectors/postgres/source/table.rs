//! One table (or the query) a task reads: found and described once, then
//! queried on from its position, each row a record whose offset is the
//! position just past it.
//!
//! A poll's rows always end where a restart may resume without repeating
//! or skipping a row. In the incrementing modes every row is such a
//! place. In timestamp mode a row is only after the last whole run of
//! equal timestamps (the next query asks for later timestamps), so a
//! batch that `batch.max.rows` cut inside a run is shortened to the run
//! before it, or, if one run fills the whole batch, completed by a query
//! for that timestamp. The worker commits offsets only between polls, so
//! the offset it stores is always one of those places.

use std::collections::VecDeque;

use serde_json::Map;
use tokio::time::Instant;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement};

use super::config::{
    Mode, Source, SourceSettings, TableName, INCREMENTING_COLUMN_NAME, TABLE_WHITELIST,
    TIMESTAMP_COLUMN_NAME,
};
use super::failed;
use super::offset::{self, PgTimestamp, Position};
use super::query::{self, Parts, Shape};
use super::values::{self, Raw, Read, Select};
use crate::api::{OffsetStorageReader, SourcePartition, SourceRecord, Value};
use crate::{ConnectError, Result};

/// Finds a table's schema and name: none when it does not exist (or the
/// user cannot see it); `$1` the quoted, maybe schema-qualified, name.
const FIND_TABLE: &str = "SELECT n.nspname::text, c.relname::text \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.oid = to_regclass($1)";

/// A query parameter.
type Param<'a> = &'a (dyn ToSql + Sync);

/// A column as it is selected: its name and how its value is read.
#[derive(Clone, Debug)]
struct Column {
    name: String,
    read: Read,
}

/// What a task reads of one table or query (see the module's comment).
pub struct Querier {
    /// `schema.table`, or `query`: for logs and errors.
    pub name: String,
    topic: String,
    partition: SourcePartition,
    mode: Mode,
    parts: Parts,
    columns: Vec<Column>,
    /// Indexes into `columns` of the incrementing and timestamp columns.
    incrementing: Option<usize>,
    timestamps: Vec<usize>,
    position: Position,
    /// Statements prepared so far, by shape.
    statements: Vec<(Shape, Statement)>,
    /// When the table is to be queried next.
    pub due: Instant,
    /// A bulk read's records not returned yet.
    pending: VecDeque<SourceRecord>,
}

impl Querier {
    /// Finds and describes `table` (the query for `None`), and resumes
    /// from its stored offset, if any.
    pub async fn open(
        client: &Client,
        table: Option<&TableName>,
        settings: &SourceSettings,
        offsets: &OffsetStorageReader,
    ) -> Result<Querier> {
        let (name, from, topic, partition) = match (table, &settings.source) {
            (Some(table), _) => {
                let (schema, found) = find(client, table).await?;
                let from = format!("{}.{}", sql_quote(&schema), sql_quote(&found));
                let name = format!("{schema}.{found}");
                let topic = settings.topic(Some(&found));
                (name, from, topic, offset::table_partition(&schema, &found))
            }
            (None, Source::Query(text)) => (
                "query".to_string(),
                query::subquery(text),
                settings.topic(None),
                offset::query_partition(),
            ),
            (None, Source::Tables(_)) => {
                return Err(ConnectError::Task(
                    "PostgreSQL source: a task of tables was asked for the query".into(),
                ))
            }
        };
        let described = client
            .prepare(&query::describe(&from))
            .await
            .map_err(|e| failed(format!("describing the columns of `{name}`"), e))?;
        let selected: Vec<(String, Select)> = described
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), values::select_for(c.type_())))
            .collect();
        let columns = selected
            .iter()
            .map(|(column, select)| Column {
                name: column.clone(),
                read: match select {
                    Select::Native(read) => *read,
                    Select::Json => Read::Jsonb,
                    Select::Text => Read::Text,
                },
            })
            .collect::<Vec<_>>();
        let incrementing = incrementing_column(&name, &columns, settings)?;
        let timestamps = timestamp_columns(&name, described.columns(), settings)?;
        let parts = Parts {
            from,
            select: query::select_list(&selected),
            incrementing: settings
                .incrementing_column
                .as_deref()
                .map(sql_quote)
                .unwrap_or_default(),
            timestamp: query::timestamp_expression(&settings.timestamp_columns),
        };
        let position = match offsets.offset(&partition) {
            Some(stored) => Position::from_offset(stored).map_err(|reason| {
                ConnectError::Task(format!(
                    "PostgreSQL source: the stored offset of `{name}` is not one of its \
                     offsets: {reason}"
                ))
            })?,
            None => Position::default(),
        };
        tracing::info!(
            table = %name,
            %topic,
            mode = settings.mode.name(),
            ?position,
            "PostgreSQL source reading"
        );
        Ok(Querier {
            name,
            topic,
            partition,
            mode: settings.mode,
            parts,
            columns,
            incrementing,
            timestamps,
            position,
            statements: Vec::new(),
            due: Instant::now(),
            pending: VecDeque::new(),
        })
    }

    /// The next records of this table: at most `batch.max.rows`, ending
    /// where a restart may resume (see the module's comment). Sets when
    /// the table is due again: at once when there may be more.
    pub async fn poll(
        &mut self,
        client: &Client,
        settings: &SourceSettings,
    ) -> Result<Vec<SourceRecord>> {
        let limit = settings.batch_max_rows;
        if self.mode == Mode::Bulk {
            return self.poll_bulk(client, settings).await;
        }
        let mut rows = self.query(client, settings, limit).await?;
        let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
        if full && self.mode == Mode::Timestamp {
            rows = self.whole_runs(client, settings, rows).await?;
        }
        let records = rows
            .iter()
            .map(|row| self.record(row))
            .collect::<Result<Vec<_>>>()?;
        self.due = match full {
            true => Instant::now(),
            false => Instant::now() + settings.poll_interval,
        };
        Ok(records)
    }

    /// The rows after the position, at most `limit`.
    async fn query(
        &mut self,
        client: &Client,
        settings: &SourceSettings,
        limit: i64,
    ) -> Result<Vec<Row>> {
        let Position {
            incrementing,
            timestamp,
        } = self.position;
        // A timestamp without its incrementing value (an offset altered by
        // hand) reads every row of that timestamp again: repeating a row
        // is better than skipping one.
        let inc = incrementing.unwrap_or(i64::MIN);
        let (shape, params): (Shape, Vec<Param<'_>>) = match (self.mode, &incrementing, &timestamp)
        {
            (Mode::Incrementing, Some(inc), _) => {
                (Shape::Resume, vec![inc as Param<'_>, &limit as Param<'_>])
            }
            (Mode::Timestamp, _, Some(ts)) => {
                (Shape::Resume, vec![ts as Param<'_>, &limit as Param<'_>])
            }
            (Mode::TimestampIncrementing, _, Some(ts)) => (
                Shape::Resume,
                vec![ts as Param<'_>, &inc as Param<'_>, &limit as Param<'_>],
            ),
            _ => (Shape::Start, vec![&limit as Param<'_>]),
        };
        let statement = self.statement(client, settings, shape).await?;
        client
            .query(&statement, &params)
            .await
            .map_err(|e| failed(format!("reading `{}`", self.name), e))
    }

    /// `rows`, a full batch in timestamp mode, ending with a whole run of
    /// equal timestamps: the last run dropped (the next query reads it
    /// whole), or, when the batch is one run, completed.
    async fn whole_runs(
        &mut self,
        client: &Client,
        settings: &SourceSettings,
        mut rows: Vec<Row>,
    ) -> Result<Vec<Row>> {
        if rows.is_empty() {
            return Ok(rows);
        }
        let last = self.timestamp_of(&rows[rows.len() - 1])?;
        let mut keep = rows.len();
        while keep > 0 && self.timestamp_of(&rows[keep - 1])? == last {
            keep -= 1;
        }
        if keep > 0 {
            rows.truncate(keep);
            return Ok(rows);
        }
        let statement = self.statement(client, settings, Shape::Group).await?;
        client
            .query(&statement, &[&last])
            .await
            .map_err(|e| failed(format!("reading a timestamp's rows of `{}`", self.name), e))
    }

    /// A bulk read's next records: the whole table is read when the last
    /// read is all returned, and handed out `batch.max.rows` at a time.
    async fn poll_bulk(
        &mut self,
        client: &Client,
        settings: &SourceSettings,
    ) -> Result<Vec<SourceRecord>> {
        if self.pending.is_empty() {
            let statement = self.statement(client, settings, Shape::Start).await?;
            let rows = client
                .query(&statement, &[])
                .await
                .map_err(|e| failed(format!("reading `{}`", self.name), e))?;
            for row in &rows {
                let record = self.record(row)?;
                self.pending.push_back(record);
            }
        }
        let take = usize::try_from(settings.batch_max_rows)
            .unwrap_or(usize::MAX)
            .min(self.pending.len());
        let records: Vec<SourceRecord> = self.pending.drain(..take).collect();
        self.due = match self.pending.is_empty() {
            true => Instant::now() + settings.poll_interval,
            false => Instant::now(),
        };
        Ok(records)
    }

    /// The statement of `shape`, prepared once.
    async fn statement(
        &mut self,
        client: &Client,
        settings: &SourceSettings,
        shape: Shape,
    ) -> Result<Statement> {
        if let Some((_, statement)) = self.statements.iter().find(|(s, _)| *s == shape) {
            return Ok(statement.clone());
        }
        let text = query::statement(&self.parts, self.mode, shape, settings.timestamp_delay_ms);
        let statement = client
            .prepare(&text)
            .await
            .map_err(|e| failed(format!("preparing the query of `{}`: {text}", self.name), e))?;
        self.statements.push((shape, statement.clone()));
        Ok(statement)
    }

    /// `row` as a record, and the position moved past it.
    fn record(&mut self, row: &Row) -> Result<SourceRecord> {
        let mut fields = Map::with_capacity(self.columns.len());
        for (index, column) in self.columns.iter().enumerate() {
            let raw = self.raw(row, index)?;
            let value = values::decode(column.read, raw).map_err(|reason| {
                ConnectError::Task(format!(
                    "PostgreSQL source: column `{}` of `{}`: {reason}",
                    column.name, self.name
                ))
            })?;
            fields.insert(column.name.clone(), value);
        }
        if let Some(index) = self.incrementing {
            let read = self.columns[index].read;
            let value = values::integer(read, self.raw(row, index)?)
                .map_err(|reason| ConnectError::Task(format!("PostgreSQL source: {reason}")))?;
            self.position.incrementing = value.or(self.position.incrementing);
        }
        if !self.timestamps.is_empty() {
            self.position.timestamp = Some(self.timestamp_of(row)?);
        }
        Ok(SourceRecord::new(
            self.partition.clone(),
            self.position.to_offset(),
            self.topic.clone(),
            Some(Value::Object(fields)),
        ))
    }

    /// The row's timestamp: its first timestamp column that is not NULL.
    fn timestamp_of(&self, row: &Row) -> Result<PgTimestamp> {
        for index in &self.timestamps {
            if let Raw(Some(bytes)) = self.raw(row, *index)? {
                return values::timestamp(bytes)
                    .map_err(|reason| ConnectError::Task(format!("PostgreSQL source: {reason}")));
            }
        }
        Err(ConnectError::Task(format!(
            "PostgreSQL source: a row of `{}` without a timestamp was read",
            self.name
        )))
    }

    fn raw<'a>(&self, row: &'a Row, index: usize) -> Result<Raw<'a>> {
        row.try_get::<_, Raw<'a>>(index)
            .map_err(|e| failed(format!("reading a row of `{}`", self.name), e))
    }
}

fn sql_quote(name: &str) -> String {
    super::super::sql::quote(name)
}

/// The schema and name of `table`, as the catalog has them.
async fn find(client: &Client, table: &TableName) -> Result<(String, String)> {
    let found = client
        .query_opt(FIND_TABLE, &[&table.quoted()])
        .await
        .map_err(|e| failed(format!("looking up table `{}`", table.entry()), e))?;
    let Some(row) = found else {
        return Err(ConnectError::config(
            TABLE_WHITELIST,
            format!(
                "table `{}` does not exist, or the connection's user cannot see it",
                table.entry()
            ),
        ));
    };
    let read =
        |e: tokio_postgres::Error| failed(format!("looking up table `{}`", table.entry()), e);
    Ok((row.try_get(0).map_err(read)?, row.try_get(1).map_err(read)?))
}

/// The index of the incrementing column, checked to be an integer.
fn incrementing_column(
    name: &str,
    columns: &[Column],
    settings: &SourceSettings,
) -> Result<Option<usize>> {
    let Some(wanted) = settings.incrementing_column.as_deref() else {
        return Ok(None);
    };
    let Some(index) = columns.iter().position(|c| c.name == wanted) else {
        return Err(ConnectError::config(
            INCREMENTING_COLUMN_NAME,
            format!("`{name}` has no column `{wanted}`"),
        ));
    };
    match columns[index].read {
        Read::Int2 | Read::Int4 | Read::Int8 => Ok(Some(index)),
        _ => Err(ConnectError::config(
            INCREMENTING_COLUMN_NAME,
            format!("column `{wanted}` of `{name}` is not a smallint, integer or bigint"),
        )),
    }
}

/// The indexes of the timestamp columns, checked to be timestamps of one
/// type (their COALESCE compares as that type).
fn timestamp_columns(
    name: &str,
    described: &[tokio_postgres::Column],
    settings: &SourceSettings,
) -> Result<Vec<usize>> {
    let mut indexes = Vec::with_capacity(settings.timestamp_columns.len());
    let mut kind: Option<&Type> = None;
    for wanted in &settings.timestamp_columns {
        let Some(index) = described.iter().position(|c| c.name() == wanted.as_str()) else {
            return Err(ConnectError::config(
                TIMESTAMP_COLUMN_NAME,
                format!("`{name}` has no column `{wanted}`"),
            ));
        };
        let ty = described[index].type_();
        if !matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ) {
            return Err(ConnectError::config(
                TIMESTAMP_COLUMN_NAME,
                format!(
                    "column `{wanted}` of `{name}` is a {}, not a timestamp or timestamptz",
                    ty.name()
                ),
            ));
        }
        if kind.is_some_and(|first| first != ty) {
            return Err(ConnectError::config(
                TIMESTAMP_COLUMN_NAME,
                format!("the columns of `{name}` mix timestamp and timestamptz"),
            ));
        }
        kind = Some(ty);
        indexes.push(index);
    }
    Ok(indexes)
}
