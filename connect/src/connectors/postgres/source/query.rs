//! The SQL the source sends: the queries of each mode, as Confluent's
//! JDBC source words them, with PostgreSQL's row comparison for
//! timestamp+incrementing. Names are always quoted (`sql::quote`), never
//! spliced in bare; a custom `query` is wrapped as a subquery, so the
//! mode's conditions apply to its output columns whatever it says.
//!
//! Parameters come in a fixed order: the stored position (incrementing
//! value and/or timestamp), then the row limit.
//!
//! - incrementing: `WHERE inc > $1 ORDER BY inc LIMIT $2`;
//! - timestamp: `WHERE ts > $1 AND ts < now - delay ORDER BY ts LIMIT $2`,
//!   and `WHERE ts = $1` to finish a run of equal timestamps that a limit
//!   cut (see `table`);
//! - timestamp+incrementing: `WHERE (ts, inc) > ($1, $2) AND ts < now -
//!   delay ORDER BY ts, inc LIMIT $3`;
//! - bulk: every row.
//!
//! Before anything is stored, the lower bound is left out. NULLs never
//! match: a row whose incrementing or timestamp column is NULL is never
//! read by those modes.

use super::super::sql::quote;
use super::config::Mode;
use super::values::Select;

/// Which query of a mode: from the start, or on from a stored position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// No position yet: from the first row.
    Start,
    /// After the stored position.
    Resume,
    /// Every row of one timestamp (timestamp mode only).
    Group,
}

/// What the queries of one table or query are made of, in SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts {
    /// What follows FROM: a quoted table, or the query as a subquery.
    pub from: String,
    /// The select list, each column read the way it can be read.
    pub select: String,
    /// The incrementing column, quoted; empty when the mode has none.
    pub incrementing: String,
    /// The timestamp column, quoted, or a COALESCE of several; empty when
    /// the mode has none.
    pub timestamp: String,
}

/// What follows FROM for `query`: it, as a subquery.
pub fn subquery(query: &str) -> String {
    format!("({}) AS {}", query.trim().trim_end_matches(';'), quote("q"))
}

/// A statement that describes `from`'s columns, for their names and types.
pub fn describe(from: &str) -> String {
    format!("SELECT * FROM {from}")
}

/// The select list of `columns` (name, how it is selected).
pub fn select_list(columns: &[(String, Select)]) -> String {
    columns
        .iter()
        .map(|(name, select)| {
            let column = quote(name);
            match select {
                Select::Native(_) => column,
                Select::Json => format!("to_jsonb({column}) AS {column}"),
                Select::Text => format!("{column}::text AS {column}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The timestamp expression of `columns`: the column, or the first of
/// them that is not NULL.
pub fn timestamp_expression(columns: &[String]) -> String {
    match columns {
        [] => String::new(),
        [one] => quote(one),
        many => format!(
            "COALESCE({})",
            many.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The statement of `mode`'s `shape` over `parts`; rows whose timestamp
/// is within `delay_ms` of the database's clock are left for later.
pub fn statement(parts: &Parts, mode: Mode, shape: Shape, delay_ms: i64) -> String {
    let Parts {
        from,
        select,
        incrementing: inc,
        timestamp: ts,
    } = parts;
    // An integer from the config, not from any user's data: safe inline,
    // and one parameter fewer to keep in order.
    let settled = format!("{ts} < CURRENT_TIMESTAMP - INTERVAL '{delay_ms} milliseconds'");
    let (condition, order, limit) = match (mode, shape) {
        (Mode::Bulk, _) => return format!("SELECT {select} FROM {from}"),
        (Mode::Incrementing, Shape::Start) => (format!("{inc} IS NOT NULL"), inc.clone(), 1),
        (Mode::Incrementing, _) => (format!("{inc} > $1::int8"), inc.clone(), 2),
        (Mode::Timestamp, Shape::Start) => (settled, ts.clone(), 1),
        (Mode::Timestamp, Shape::Resume) => (format!("{ts} > $1 AND {settled}"), ts.clone(), 2),
        (Mode::Timestamp, Shape::Group) => {
            return format!("SELECT {select} FROM {from} WHERE {ts} = $1")
        }
        (Mode::TimestampIncrementing, Shape::Start) => (
            format!("{inc} IS NOT NULL AND {settled}"),
            format!("{ts}, {inc}"),
            1,
        ),
        (Mode::TimestampIncrementing, _) => (
            format!("({ts}, {inc}) > ($1, $2::int8) AND {inc} IS NOT NULL AND {settled}"),
            format!("{ts}, {inc}"),
            3,
        ),
    };
    format!("SELECT {select} FROM {from} WHERE {condition} ORDER BY {order} LIMIT ${limit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::postgres::source::values::Read;

    fn parts(incrementing: &str, timestamp: &[&str]) -> Parts {
        let timestamps: Vec<String> = timestamp.iter().map(|t| t.to_string()).collect();
        Parts {
            from: "\"public\".\"t\"".into(),
            select: "\"id\"".into(),
            incrementing: if incrementing.is_empty() {
                String::new()
            } else {
                quote(incrementing)
            },
            timestamp: timestamp_expression(&timestamps),
        }
    }

    #[test]
    fn each_mode_has_confluents_conditions() {
        let inc = parts("id", &[]);
        assert_eq!(
            statement(&inc, Mode::Incrementing, Shape::Start, 0),
            "SELECT \"id\" FROM \"public\".\"t\" WHERE \"id\" IS NOT NULL ORDER BY \"id\" LIMIT $1"
        );
        assert_eq!(
            statement(&inc, Mode::Incrementing, Shape::Resume, 0),
            "SELECT \"id\" FROM \"public\".\"t\" WHERE \"id\" > $1::int8 ORDER BY \"id\" LIMIT $2"
        );
        let ts = parts("", &["at"]);
        assert_eq!(
            statement(&ts, Mode::Timestamp, Shape::Resume, 1500),
            "SELECT \"id\" FROM \"public\".\"t\" WHERE \"at\" > $1 AND \"at\" < CURRENT_TIMESTAMP \
             - INTERVAL '1500 milliseconds' ORDER BY \"at\" LIMIT $2"
        );
        assert_eq!(
            statement(&ts, Mode::Timestamp, Shape::Group, 0),
            "SELECT \"id\" FROM \"public\".\"t\" WHERE \"at\" = $1"
        );
        let both = parts("id", &["updated", "created"]);
        assert_eq!(
            statement(&both, Mode::TimestampIncrementing, Shape::Resume, 0),
            "SELECT \"id\" FROM \"public\".\"t\" WHERE (COALESCE(\"updated\", \"created\"), \"id\") \
             > ($1, $2::int8) AND \"id\" IS NOT NULL AND COALESCE(\"updated\", \"created\") < \
             CURRENT_TIMESTAMP - INTERVAL '0 milliseconds' ORDER BY COALESCE(\"updated\", \
             \"created\"), \"id\" LIMIT $3"
        );
        assert_eq!(
            statement(&inc, Mode::Bulk, Shape::Start, 0),
            "SELECT \"id\" FROM \"public\".\"t\""
        );
    }

    #[test]
    fn columns_are_selected_so_they_can_be_read_and_queries_wrapped() {
        let columns = [
            ("id".to_string(), Select::Native(Read::Int8)),
            ("tags".to_string(), Select::Json),
            ("born".to_string(), Select::Text),
        ];
        assert_eq!(
            select_list(&columns),
            "\"id\", to_jsonb(\"tags\") AS \"tags\", \"born\"::text AS \"born\""
        );
        assert_eq!(subquery(" SELECT a FROM b; "), "(SELECT a FROM b) AS \"q\"");
        assert_eq!(describe("\"t\""), "SELECT * FROM \"t\"");
    }
}
