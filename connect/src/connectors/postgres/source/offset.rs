//! Source partitions and offsets in Confluent's JDBC source's shapes, and
//! the position in a table they stand for.
//!
//! A table's partition is `{"protocol": "1", "table": "<schema>.<table>"}`
//! (Confluent's offset protocol 1, the schema the one the table was found
//! in), a query's `{"query": "query"}`, as Confluent's. An offset holds
//! `incrementing` (the last incrementing value read) and/or `timestamp`
//! (milliseconds since the epoch) with `timestamp_nanos` (the nanoseconds
//! within that second, so the microseconds PostgreSQL keeps survive),
//! as Confluent writes them; bulk offsets are empty.
//!
//! A timestamp is kept as PostgreSQL sends it, microseconds since
//! 2000-01-01 ([`PgTimestamp`]), and written back as a query parameter in
//! the same form, so the comparison with the stored offset is exact.
//! Values of `timestamp` (without time zone) columns are read as UTC.

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type};

use crate::api::{SourceOffset, SourcePartition, Value};

/// A table partition's protocol field and its version (Confluent's).
pub const PROTOCOL_FIELD: &str = "protocol";
pub const PROTOCOL_VERSION: &str = "1";
/// A table partition's table field.
pub const TABLE_FIELD: &str = "table";
/// A query partition's one field, whose value is also `query`.
pub const QUERY_FIELD: &str = "query";
/// The offset's last incrementing value.
pub const INCREMENTING_FIELD: &str = "incrementing";
/// The offset's last timestamp, in milliseconds since the epoch.
pub const TIMESTAMP_FIELD: &str = "timestamp";
/// The offset's nanoseconds within the second of `timestamp`.
pub const TIMESTAMP_NANOS_FIELD: &str = "timestamp_nanos";

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The partition of a table found in `schema`.
pub fn table_partition(schema: &str, table: &str) -> SourcePartition {
    [
        (PROTOCOL_FIELD.to_string(), Value::from(PROTOCOL_VERSION)),
        (
            TABLE_FIELD.to_string(),
            Value::from(format!("{schema}.{table}")),
        ),
    ]
    .into()
}

/// The partition of the query.
pub fn query_partition() -> SourcePartition {
    [(QUERY_FIELD.to_string(), Value::from(QUERY_FIELD))].into()
}

/// Whether `partition` is one of this connector's shapes.
pub fn is_partition(partition: &SourcePartition) -> bool {
    let table = partition.len() == 2
        && partition.get(PROTOCOL_FIELD).and_then(Value::as_str) == Some(PROTOCOL_VERSION)
        && partition.get(TABLE_FIELD).is_some_and(Value::is_string);
    let query = partition.len() == 1
        && partition.get(QUERY_FIELD).and_then(Value::as_str) == Some(QUERY_FIELD);
    table || query
}

/// A timestamp as PostgreSQL's binary format has it: microseconds since
/// 2000-01-01, `i64::MAX` and `i64::MIN` being `infinity` and
/// `-infinity`. Written as a parameter of a `timestamp` or `timestamptz`
/// column in the same form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PgTimestamp(pub i64);

impl PgTimestamp {
    /// Microseconds since the Unix epoch; `None` for the infinities.
    pub fn epoch_micros(self) -> Option<i64> {
        match self.0 {
            i64::MAX | i64::MIN => None,
            micros => micros.checked_add(PG_EPOCH_MICROS),
        }
    }

    pub fn from_epoch_micros(micros: i64) -> Option<PgTimestamp> {
        micros.checked_sub(PG_EPOCH_MICROS).map(PgTimestamp)
    }

    /// Milliseconds since the Unix epoch, rounded down (what the record's
    /// value shows); `None` for the infinities.
    pub fn epoch_millis(self) -> Option<i64> {
        self.epoch_micros().map(|micros| micros.div_euclid(1000))
    }
}

impl ToSql for PgTimestamp {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i64(self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if !<PgTimestamp as ToSql>::accepts(ty) {
            return Err(format!("a timestamp offset compared with a {} column", ty.name()).into());
        }
        self.to_sql(ty, out)
    }
}

/// Where a table was read to: the last row's incrementing value and
/// timestamp, as the mode keeps them (none before the first row).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub incrementing: Option<i64>,
    pub timestamp: Option<PgTimestamp>,
}

impl Position {
    /// The offset of this position, in Confluent's fields.
    pub fn to_offset(self) -> SourceOffset {
        let mut offset = SourceOffset::new();
        if let Some(incrementing) = self.incrementing {
            offset.insert(INCREMENTING_FIELD.to_string(), Value::from(incrementing));
        }
        if let Some(micros) = self.timestamp.and_then(PgTimestamp::epoch_micros) {
            let millis = micros.div_euclid(1000);
            let nanos = micros.rem_euclid(1_000_000) * 1000;
            offset.insert(TIMESTAMP_FIELD.to_string(), Value::from(millis));
            offset.insert(TIMESTAMP_NANOS_FIELD.to_string(), Value::from(nanos));
        }
        offset
    }

    /// The position a stored offset holds; what is wrong with it if it is
    /// not one of this connector's.
    pub fn from_offset(offset: &SourceOffset) -> std::result::Result<Position, String> {
        let integer = |field: &str| match offset.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("`{field}` is {value}, not an integer")),
        };
        let incrementing = integer(INCREMENTING_FIELD)?;
        let timestamp = match (integer(TIMESTAMP_FIELD)?, integer(TIMESTAMP_NANOS_FIELD)?) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(format!(
                    "`{TIMESTAMP_NANOS_FIELD}` without `{TIMESTAMP_FIELD}`"
                ))
            }
            (Some(millis), nanos) => Some(timestamp_of(millis, nanos)?),
        };
        Ok(Position {
            incrementing,
            timestamp,
        })
    }
}

/// Confluent's `timestamp` and `timestamp_nanos` as a PostgreSQL
/// timestamp: the second of `millis`, and the nanoseconds within it
/// (the milliseconds' own when absent), to the microsecond.
fn timestamp_of(millis: i64, nanos: Option<i64>) -> std::result::Result<PgTimestamp, String> {
    let nanos = match nanos {
        Some(nanos) if (0..1_000_000_000).contains(&nanos) => nanos,
        Some(nanos) => {
            return Err(format!(
                "`{TIMESTAMP_NANOS_FIELD}` is {nanos}, not within a second"
            ))
        }
        None => millis.rem_euclid(1000) * 1_000_000,
    };
    millis
        .div_euclid(1000)
        .checked_mul(1_000_000)
        .and_then(|micros| micros.checked_add(nanos / 1000))
        .and_then(PgTimestamp::from_epoch_micros)
        .ok_or_else(|| format!("`{TIMESTAMP_FIELD}` {millis} is out of PostgreSQL's range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partitions_have_confluents_shapes() {
        let table = table_partition("public", "orders");
        assert_eq!(
            serde_json::to_value(&table).unwrap(),
            json!({"protocol": "1", "table": "public.orders"})
        );
        assert!(is_partition(&table));
        assert_eq!(
            serde_json::to_value(query_partition()).unwrap(),
            json!({"query": "query"})
        );
        assert!(is_partition(&query_partition()));
        let other: SourcePartition = [("filename".to_string(), json!("x"))].into();
        assert!(!is_partition(&other));
    }

    #[test]
    fn offsets_keep_every_microsecond_both_ways() {
        // 2024-05-06T07:08:09.123456Z
        let micros = 1_714_979_289_123_456;
        let timestamp = PgTimestamp::from_epoch_micros(micros).unwrap();
        let position = Position {
            incrementing: Some(42),
            timestamp: Some(timestamp),
        };
        let offset = position.to_offset();
        assert_eq!(
            serde_json::to_value(&offset).unwrap(),
            json!({
                "incrementing": 42,
                "timestamp": 1_714_979_289_123i64,
                "timestamp_nanos": 123_456_000,
            })
        );
        assert_eq!(Position::from_offset(&offset).unwrap(), position);
        assert_eq!(timestamp.epoch_millis(), Some(1_714_979_289_123));

        // Before the epoch, seconds round down and nanoseconds count up.
        let early = PgTimestamp::from_epoch_micros(-1_500).unwrap();
        let offset = Position {
            incrementing: None,
            timestamp: Some(early),
        }
        .to_offset();
        assert_eq!(offset[TIMESTAMP_FIELD], json!(-2));
        assert_eq!(offset[TIMESTAMP_NANOS_FIELD], json!(998_500_000));
        assert_eq!(
            Position::from_offset(&offset).unwrap().timestamp,
            Some(early)
        );

        // Milliseconds alone, as a hand-written offset may have them.
        let millis: SourceOffset = [(TIMESTAMP_FIELD.to_string(), json!(1_500))].into();
        let position = Position::from_offset(&millis).unwrap();
        assert_eq!(
            position.timestamp.and_then(PgTimestamp::epoch_micros),
            Some(1_500_000)
        );
        assert_eq!(
            Position::from_offset(&SourceOffset::new()).unwrap(),
            Position::default()
        );
        let bad: SourceOffset = [(INCREMENTING_FIELD.to_string(), json!("7"))].into();
        assert!(Position::from_offset(&bad)
            .unwrap_err()
            .contains("incrementing"));
        assert_eq!(PgTimestamp(i64::MAX).epoch_millis(), None);
    }
}
