//! Records as rows: a record's value, a JSON object (or Kafka's schema
//! envelope around one), and with `pk.mode=record_key` its key, as the
//! columns of one row.
//!
//! The worker's JsonConverter with `schemas.enable` checks the envelope
//! and hands on only its payload, so a schema reaches the sink when the
//! topic's JSON holds envelopes and the connector reads it as plain JSON
//! (`value.converter.schemas.enable=false`): an object of exactly
//! `schema` (a struct schema) and `payload` (an object) is taken as one,
//! and its fields' types become the columns' types. Without one, the
//! types are inferred from the values (`columns`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Map;

use super::columns::ColumnType;
use super::config::{check_identifier, PkMode, RowSettings, DEFAULT_KEY_COLUMN};
use crate::api::{SinkRecord, Value};
use crate::{ConnectError, Result};

/// What errors name the sink as: a record it cannot convert is a data
/// error, as a converter's (Kafka's `DataException`).
const SINK: &str = "PostgresSink";

/// One record as a row: where it sits in the log, and its columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub values: Map<String, Value>,
}

/// The lowest and highest offset of a partition's rows in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub topic: String,
    pub partition: u32,
    pub lowest: u64,
    pub highest: u64,
}

/// One table's rows of a batch, with what the rows say of its columns.
#[derive(Clone, Debug, Default)]
pub struct TableRows {
    pub table: String,
    rows: Vec<Row>,
    /// Every column name of `rows`, kept as rows come so that a write
    /// need not walk them again for it.
    names: BTreeSet<String>,
    /// The offsets of `rows` per partition, kept as rows come so that a
    /// write works out its locks and offsets without walking them.
    spans: Vec<Span>,
    /// Column types the rows' schema envelopes declare; the first
    /// declaration of a column wins.
    pub declared: BTreeMap<String, ColumnType>,
    /// The primary key's columns (none without `pk.mode`).
    pub pk: Vec<String>,
}

impl TableRows {
    pub fn new(table: impl Into<String>, pk: Vec<String>) -> TableRows {
        TableRows {
            table: table.into(),
            pk,
            ..TableRows::default()
        }
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    pub fn push(&mut self, row: Row) {
        // A batch holds thousands of rows of the same few columns: a row
        // with the same names as the one before adds none, and comparing
        // them costs far less than a set's look-ups.
        let same = self
            .rows
            .last()
            .is_some_and(|previous| previous.values.keys().eq(row.values.keys()));
        if !same {
            for name in row.values.keys() {
                if !self.names.contains(name) {
                    self.names.insert(name.clone());
                }
            }
        }
        self.widen_span(&row);
        self.rows.push(row);
    }

    fn widen_span(&mut self, row: &Row) {
        // A partition's records come in runs: the last span is nearly
        // always the row's.
        let of_row = |span: &Span| span.partition == row.partition && span.topic == row.topic;
        let span = match self.spans.last() {
            Some(last) if of_row(last) => self.spans.last_mut(),
            _ => self.spans.iter_mut().find(|span| of_row(span)),
        };
        match span {
            Some(span) => {
                span.lowest = span.lowest.min(row.offset);
                span.highest = span.highest.max(row.offset);
            }
            None => self.spans.push(Span {
                topic: row.topic.clone(),
                partition: row.partition,
                lowest: row.offset,
                highest: row.offset,
            }),
        }
    }

    /// Keeps the rows `keep` accepts; how many went.
    pub fn retain(&mut self, keep: impl FnMut(&Row) -> bool) -> usize {
        let before = self.rows.len();
        self.rows.retain(keep);
        let removed = before - self.rows.len();
        if removed > 0 {
            let rows = std::mem::take(&mut self.rows);
            self.names.clear();
            self.spans.clear();
            for row in rows {
                self.push(row);
            }
        }
        removed
    }

    /// The columns of the rows: the key's columns first (in the key's
    /// order), then the others in name order.
    pub fn column_names(&self) -> Vec<String> {
        let key = self.pk.iter().filter(|k| self.names.contains(*k));
        let others = self.names.iter().filter(|n| !self.pk.contains(n));
        key.chain(others).cloned().collect()
    }
}

/// A record converted: its row, the column types its schema envelope
/// declares (none without one), and its primary key's columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    pub row: Row,
    pub declared: Vec<(String, ColumnType)>,
    pub pk: Vec<String>,
}

/// Where a record sits, for its errors.
struct Place<'a> {
    topic: &'a str,
    partition: u32,
    offset: u64,
}

impl Place<'_> {
    fn error(&self, reason: impl std::fmt::Display) -> ConnectError {
        ConnectError::Conversion {
            converter: SINK,
            topic: self.topic.to_string(),
            reason: format!(
                "partition {}, offset {}: {reason}",
                self.partition, self.offset
            ),
        }
    }
}

/// `record` as a row; a record whose value is not an object, or that
/// lacks its primary key, is an error naming its topic, partition and
/// offset.
pub fn convert(record: SinkRecord, settings: &RowSettings) -> Result<Converted> {
    let SinkRecord {
        topic,
        partition,
        offset,
        key,
        value,
        ..
    } = record;
    let place = Place {
        topic: &topic,
        partition,
        offset,
    };
    let (mut values, schema) = match value {
        Some(Value::Object(object)) => open_envelope(object),
        other => {
            return Err(place.error(format!(
                "the PostgreSQL sink writes records whose values are JSON objects, and this \
                 value is {}",
                kind(other.as_ref())
            )))
        }
    };
    let mut declared = schema.as_ref().map(declared_types).unwrap_or_default();
    if !settings.fields_include.is_empty() {
        let kept = |name: &str| {
            settings.fields_include.iter().any(|f| f == name)
                || (settings.pk_mode == PkMode::RecordValue
                    && settings.pk_fields.iter().any(|f| f == name))
        };
        values.retain(|name, _| kept(name.as_str()));
        declared.retain(|(name, _)| kept(name.as_str()));
    }
    let pk = match settings.pk_mode {
        PkMode::None => Vec::new(),
        PkMode::RecordValue => {
            for field in &settings.pk_fields {
                if values.get(field).is_none_or(Value::is_null) {
                    return Err(place.error(format!("its value has no key field `{field}`")));
                }
            }
            settings.pk_fields.clone()
        }
        PkMode::RecordKey => {
            let columns = key_columns(key, settings, &place)?;
            let pk: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
            for (name, value) in columns {
                // The key's column wins over a value field of its name:
                // it is what the row is found by.
                declared.retain(|(declared, _)| *declared != name);
                values.insert(name, value);
            }
            pk
        }
    };
    for name in values.keys() {
        check_identifier(name).map_err(|reason| place.error(reason))?;
    }
    let row = Row {
        topic,
        partition,
        offset,
        values,
    };
    Ok(Converted { row, declared, pk })
}

/// The key's columns under `pk.mode=record_key`: an object key's fields
/// (those of `pk.fields`, or all of them), or a primitive key as the one
/// column `pk.fields` names (`__connect_key` when it names none).
fn key_columns(
    key: Option<Value>,
    settings: &RowSettings,
    place: &Place<'_>,
) -> Result<Vec<(String, Value)>> {
    match key {
        None | Some(Value::Null) => Err(place.error("pk.mode=record_key, but it has no key")),
        Some(Value::Object(object)) => {
            let (mut object, _) = open_envelope(object);
            if settings.pk_fields.is_empty() {
                if object.is_empty() {
                    return Err(place.error("its key is an object without fields"));
                }
                // In name order, whatever order the key's JSON had.
                let fields: BTreeMap<String, Value> = object.into_iter().collect();
                return Ok(fields.into_iter().collect());
            }
            settings
                .pk_fields
                .iter()
                .map(|field| match object.remove(field) {
                    Some(value) if !value.is_null() => Ok((field.clone(), value)),
                    _ => Err(place.error(format!("its key has no field `{field}`"))),
                })
                .collect()
        }
        Some(primitive) => match settings.pk_fields.as_slice() {
            [] => Ok(vec![(DEFAULT_KEY_COLUMN.to_string(), primitive)]),
            [column] => Ok(vec![(column.clone(), primitive)]),
            more => Err(place.error(format!(
                "its key is {}, one column, but pk.fields names {}",
                kind(Some(&primitive)),
                more.len()
            ))),
        },
    }
}

/// An object's payload and schema if it is Kafka's envelope around an
/// object (see the module's comment), else the object itself.
fn open_envelope(mut object: Map<String, Value>) -> (Map<String, Value>, Option<Value>) {
    let struct_schema = object
        .get("schema")
        .and_then(|schema| schema.get("type"))
        .and_then(Value::as_str)
        == Some("struct");
    if object.len() != 2 || !struct_schema {
        return (object, None);
    }
    match object.remove("payload") {
        Some(Value::Object(payload)) => (payload, object.remove("schema")),
        Some(other) => {
            object.insert("payload".to_string(), other);
            (object, None)
        }
        None => (object, None),
    }
}

/// The column types a struct schema gives its fields; fields of a type
/// it does not map are left to inference.
fn declared_types(schema: &Value) -> Vec<(String, ColumnType)> {
    let fields = schema.get("fields").and_then(Value::as_array);
    fields
        .into_iter()
        .flatten()
        .filter_map(|field| {
            let name = field.get("field")?.as_str()?;
            let kind = field.get("type")?.as_str()?;
            Some((name.to_string(), ColumnType::of_schema_type(kind)?))
        })
        .collect()
}

/// What a value is, for an error.
fn kind(value: Option<&Value>) -> &'static str {
    match value {
        None => "absent (a tombstone)",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "an array",
        Some(Value::Object(_)) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(key: Option<Value>, value: Option<Value>) -> SinkRecord {
        SinkRecord {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            key,
            value,
            headers: Vec::new(),
            timestamp: 0,
        }
    }

    fn settings(pk_mode: PkMode, pk_fields: &[&str], include: &[&str]) -> RowSettings {
        RowSettings {
            pk_mode,
            pk_fields: pk_fields.iter().map(|f| f.to_string()).collect(),
            fields_include: include.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn row(partition: u32, offset: u64, values: Value) -> Row {
        Row {
            topic: "orders".into(),
            partition,
            offset,
            values: object(values),
        }
    }

    #[test]
    fn a_table_keeps_its_column_names_and_partition_spans_as_rows_come_and_go() {
        let mut table = TableRows::new("t", vec!["id".to_string()]);
        table.push(row(0, 5, json!({"id": 1, "b": 1})));
        table.push(row(0, 6, json!({"id": 2, "b": 1})));
        table.push(row(1, 3, json!({"id": 3, "a": 1})));
        table.push(row(0, 7, json!({"id": 4, "c": 1})));
        assert_eq!(table.column_names(), ["id", "a", "b", "c"]);
        let spans: Vec<(u32, u64, u64)> = table
            .spans()
            .iter()
            .map(|s| (s.partition, s.lowest, s.highest))
            .collect();
        assert_eq!(spans, [(0, 5, 7), (1, 3, 3)]);

        assert_eq!(table.retain(|row| row.partition == 0 && row.offset > 5), 2);
        assert_eq!(table.column_names(), ["id", "b", "c"]);
        let spans: Vec<(u32, u64, u64)> = table
            .spans()
            .iter()
            .map(|s| (s.partition, s.lowest, s.highest))
            .collect();
        assert_eq!(spans, [(0, 6, 7)]);
    }

    #[test]
    fn an_object_is_a_row_and_an_envelope_declares_its_types() {
        let plain = settings(PkMode::None, &[], &[]);
        let value = json!({"id": 1, "name": "ada"});
        let converted = convert(record(None, Some(value.clone())), &plain).unwrap();
        assert_eq!(converted.row.values, object(value));
        assert_eq!((converted.row.partition, converted.row.offset), (2, 41));
        assert!(converted.declared.is_empty() && converted.pk.is_empty());

        let envelope = json!({
            "schema": {"type": "struct", "optional": false, "fields": [
                {"field": "id", "type": "int32", "optional": false},
                {"field": "name", "type": "string", "optional": true},
            ]},
            "payload": {"id": 1, "name": "ada"},
        });
        let converted = convert(record(None, Some(envelope)), &plain).unwrap();
        assert_eq!(
            converted.row.values,
            object(json!({"id": 1, "name": "ada"}))
        );
        assert_eq!(
            converted.declared,
            [
                ("id".to_string(), ColumnType::Integer),
                ("name".to_string(), ColumnType::Text)
            ]
        );
    }

    #[test]
    fn keys_come_from_the_key_or_the_value() {
        let by_value = settings(PkMode::RecordValue, &["id"], &["name"]);
        let value = json!({"id": 7, "name": "x", "dropped": true});
        let converted = convert(record(None, Some(value)), &by_value).unwrap();
        assert_eq!(converted.row.values, object(json!({"id": 7, "name": "x"})));
        assert_eq!(converted.pk, ["id"]);

        let primitive = settings(PkMode::RecordKey, &[], &[]);
        let converted = convert(record(Some(json!("k1")), Some(json!({"v": 1}))), &primitive);
        let converted = converted.unwrap();
        assert_eq!(converted.row.values["__connect_key"], "k1");
        assert_eq!(converted.pk, ["__connect_key"]);

        let whole = settings(PkMode::RecordKey, &[], &[]);
        let key = json!({"b": 2, "a": 1});
        let converted = convert(record(Some(key), Some(json!({"a": 0, "v": 1}))), &whole);
        let converted = converted.unwrap();
        assert_eq!(converted.pk, ["a", "b"]);
        assert_eq!(converted.row.values["a"], 1, "the key's field wins");
    }

    #[test]
    fn a_record_that_is_no_row_names_its_place() {
        let plain = settings(PkMode::None, &[], &[]);
        let error = convert(record(None, Some(json!("text"))), &plain).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("`orders`") && text.contains("partition 2, offset 41"),
            "{text}"
        );
        assert!(text.contains("a string"), "{text}");
        assert!(convert(record(None, None), &plain).is_err());
        let keyed = settings(PkMode::RecordKey, &[], &[]);
        let error = convert(record(None, Some(json!({"v": 1}))), &keyed).unwrap_err();
        assert!(error.to_string().contains("no key"), "{error}");
        let by_value = settings(PkMode::RecordValue, &["id"], &[]);
        let error = convert(record(None, Some(json!({"v": 1}))), &by_value).unwrap_err();
        assert!(error.to_string().contains("`id`"), "{error}");
        let mut long = Map::new();
        long.insert("x".repeat(64), json!(1));
        let error = convert(record(None, Some(Value::Object(long))), &plain).unwrap_err();
        assert!(error.to_string().contains("63 bytes"), "{error}");
    }
}
