//! The PostgreSQL sink on an embedded broker and a real PostgreSQL server
//! (started by the test, see `pg`): records land as rows exactly, with
//! their types; upserts keep the last value of each key; a new field adds
//! a column; a record that is not an object fails the task naming it; and
//! after a crash of the sink's connection mid-stream every record is in
//! the table exactly once, the offsets table agreeing with the rows.

mod common;
mod pg;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spool_client::{Client, ProducerConfig, ProducerRecord};
use spool_connect::api::ConfigMap;
use spool_connect::{ConnectorStatus, State, Worker, WorkerConfig};

use common::{broker, props, start_worker, wait_for_status, PATIENCE};
use pg::PgServer;

/// Produces `records` (key, JSON value) to `topic` and waits for them.
async fn produce(client: &Client, topic: &str, records: Vec<(Option<String>, Value)>) {
    let producer = client.producer(ProducerConfig::default());
    let batch = records
        .into_iter()
        .map(|(key, value)| {
            let record = ProducerRecord::new(topic, serde_json::to_vec(&value).unwrap());
            match key {
                Some(key) => record.key(key),
                None => record,
            }
        })
        .collect();
    producer.send_batch(batch).await.unwrap().await.unwrap();
}

fn unkeyed(values: impl IntoIterator<Item = Value>) -> Vec<(Option<String>, Value)> {
    values.into_iter().map(|value| (None, value)).collect()
}

/// A sink of `topic` into the database at `url`, reading plain JSON.
fn sink_config(url: &str, topic: &str, extra: &[(&str, &str)]) -> ConfigMap {
    let mut config = props(&[
        ("connector.class", "PostgresSink"),
        ("topics", topic),
        ("connection.url", url),
        ("value.converter", "json"),
        ("value.converter.schemas.enable", "false"),
    ]);
    config.extend(props(extra));
    config
}

/// The one number `sql` answers; 0 while its table does not exist.
async fn number(db: &tokio_postgres::Client, sql: &str) -> i64 {
    match db.query_one(sql, &[]).await {
        Ok(row) => row.get::<_, Option<i64>>(0).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Waits until `sql` answers `expected`, then half a second more and
/// asks again, so rows written twice would be seen.
async fn wait_for_number(db: &tokio_postgres::Client, sql: &str, expected: i64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = number(db, sql).await;
        if now >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "`{sql}` is {now}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(number(db, sql).await, expected, "{sql}");
}

/// The columns of `table` and their types, in name order.
async fn column_types(db: &tokio_postgres::Client, table: &str) -> Vec<(String, String)> {
    let rows = db
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_name = $1 ORDER BY column_name",
            &[&table],
        )
        .await
        .unwrap();
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

/// The offsets table's rows.
async fn stored_offsets(db: &tokio_postgres::Client) -> Vec<(String, String, i32, i64)> {
    let rows = db
        .query(
            "SELECT connector, topic, \"partition\", next_offset FROM spool_connect_offsets \
             ORDER BY connector, topic, \"partition\"",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn failed(status: &ConnectorStatus) -> bool {
    status
        .tasks
        .first()
        .is_some_and(|t| t.info.state == State::Failed)
}

fn event(i: i64) -> Value {
    json!({
        "id": i,
        "name": format!("name-{i}"),
        "score": i as f64 * 0.5 + 0.25,
        "active": i % 2 == 0,
        "note": if i % 3 == 0 { Value::Null } else { json!(format!("n{i}")) },
        "tags": ["a", i.to_string()],
        "meta": {"n": i, "even": i % 2 == 0},
    })
}

/// Rows short of a batch are written once the input goes quiet, not at
/// the next offset commit (ten minutes away here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_lands_when_the_input_goes_quiet() {
    let pg = PgServer::start().await;
    let db = pg.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["quiet"]).await;
    let mut config = WorkerConfig::new(dir.path().join("connect.offsets"));
    config.offset_flush_interval = Duration::from_secs(600);
    let worker = Worker::start(client.clone(), config).await.unwrap();
    let sink = sink_config(&pg.url(), "quiet", &[("batch.size", "10000")]);
    worker.add_connector("pg-quiet", sink).await.unwrap();
    produce(&client, "quiet", unkeyed((0..5).map(event))).await;
    wait_for_number(&db, "SELECT count(*) FROM quiet", 5).await;
    produce(&client, "quiet", unkeyed((5..8).map(event))).await;
    wait_for_number(&db, "SELECT count(*) FROM quiet", 8).await;
    assert_eq!(
        stored_offsets(&db).await,
        [("pg-quiet".to_string(), "quiet".to_string(), 0, 8)]
    );
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_mode_lands_every_record_once_with_its_values_and_types() {
    let pg = PgServer::start().await;
    let db = pg.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["events", "typed"]).await;
    let expected: Vec<Value> = (0..3000).map(event).collect();
    produce(&client, "events", unkeyed(expected.clone())).await;
    let worker = start_worker(&client, dir.path()).await;
    let config = sink_config(&pg.url(), "events", &[("batch.size", "1000")]);
    worker.add_connector("pg-events", config).await.unwrap();

    wait_for_number(&db, "SELECT count(*) FROM events", 3000).await;
    let rows = db
        .query(
            "SELECT id, name, score, active, note, tags::text, meta::text FROM events ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let parse = |text: String| serde_json::from_str::<Value>(&text).unwrap();
    let actual: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "id": row.get::<_, i64>(0),
                "name": row.get::<_, String>(1),
                "score": row.get::<_, f64>(2),
                "active": row.get::<_, bool>(3),
                "note": row.get::<_, Option<String>>(4),
                "tags": parse(row.get(5)),
                "meta": parse(row.get(6)),
            })
        })
        .collect();
    assert_eq!(actual, expected);
    assert_eq!(
        column_types(&db, "events").await,
        pairs(&[
            ("active", "boolean"),
            ("id", "bigint"),
            ("meta", "jsonb"),
            ("name", "text"),
            ("note", "text"),
            ("score", "double precision"),
            ("tags", "jsonb"),
        ])
    );
    wait_for_number(
        &db,
        "SELECT max(next_offset) FROM spool_connect_offsets",
        3000,
    )
    .await;
    assert_eq!(
        stored_offsets(&db).await,
        [("pg-events".to_string(), "events".to_string(), 0, 3000)]
    );

    envelope_types_make_the_columns(&client, &worker, &pg, &db).await;

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

/// Kafka's schema envelope read as plain JSON: its types make the columns
/// (int32 an INTEGER, float a REAL, bytes a BYTEA).
async fn envelope_types_make_the_columns(
    client: &Client,
    worker: &Worker,
    pg: &PgServer,
    db: &tokio_postgres::Client,
) {
    let schema = json!({"type": "struct", "optional": false, "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "ratio", "type": "float", "optional": false},
        {"field": "blob", "type": "bytes", "optional": true},
    ]});
    let typed = (0..10)
        .map(|i| json!({"schema": schema, "payload": {"id": i, "ratio": 0.5, "blob": "AQID"}}));
    produce(client, "typed", unkeyed(typed)).await;
    let config = sink_config(&pg.url(), "typed", &[]);
    worker.add_connector("pg-typed", config).await.unwrap();
    wait_for_number(db, "SELECT count(*) FROM typed", 10).await;
    assert_eq!(
        column_types(db, "typed").await,
        pairs(&[("blob", "bytea"), ("id", "integer"), ("ratio", "real")])
    );
    let row = db
        .query_one("SELECT id, ratio, blob FROM typed WHERE id = 9", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 9);
    assert_eq!(row.get::<_, f32>(1), 0.5);
    assert_eq!(row.get::<_, Vec<u8>>(2), [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_mode_keeps_one_row_per_key_with_its_last_value() {
    let pg = PgServer::start().await;
    let db = pg.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["accounts"]).await;
    // 500 records over 10 keys; batches of 64 hold keys more than once,
    // and later batches replace rows of earlier ones.
    let records = (0..500i64)
        .map(|i| {
            let key = format!("acct-{}", i % 10);
            (Some(key), json!({"balance": i * 7, "seq": i}))
        })
        .collect();
    produce(&client, "accounts", records).await;
    let worker = start_worker(&client, dir.path()).await;
    let config = sink_config(
        &pg.url(),
        "accounts",
        &[
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("pk.fields", "account"),
            ("key.converter", "string"),
            ("batch.size", "64"),
        ],
    );
    worker.add_connector("pg-accounts", config).await.unwrap();

    wait_for_number(&db, "SELECT count(*) FROM accounts WHERE seq >= 490", 10).await;
    let rows = db
        .query(
            "SELECT account, balance, seq FROM accounts ORDER BY account",
            &[],
        )
        .await
        .unwrap();
    let actual: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let expected: Vec<(String, i64, i64)> = (490..500i64)
        .map(|i| (format!("acct-{}", i % 10), i * 7, i))
        .collect();
    assert_eq!(actual, expected);
    let key = db
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = 'accounts'::regclass AND i.indisprimary",
            &[],
        )
        .await
        .unwrap();
    let key: Vec<String> = key.iter().map(|row| row.get(0)).collect();
    assert_eq!(key, ["account"]);
    wait_for_number(
        &db,
        "SELECT max(next_offset) FROM spool_connect_offsets",
        500,
    )
    .await;

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_field_adds_a_column_and_a_record_that_is_no_object_fails_the_task() {
    let pg = PgServer::start().await;
    let db = pg.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["profiles"]).await;
    let worker = start_worker(&client, dir.path()).await;
    let config = sink_config(&pg.url(), "profiles", &[]);
    worker.add_connector("pg-profiles", config).await.unwrap();

    let first = (0..50i64).map(|i| json!({"id": i, "a": format!("a{i}")}));
    produce(&client, "profiles", unkeyed(first)).await;
    wait_for_number(&db, "SELECT count(*) FROM profiles", 50).await;
    let second = (50..100i64).map(|i| json!({"id": i, "a": format!("a{i}"), "b": i * 10}));
    produce(&client, "profiles", unkeyed(second)).await;
    wait_for_number(&db, "SELECT count(*) FROM profiles", 100).await;
    // Without `a`: its column stays (columns are never dropped), NULL.
    let third = (100..110i64).map(|i| json!({"id": i, "b": 1}));
    produce(&client, "profiles", unkeyed(third)).await;
    wait_for_number(&db, "SELECT count(*) FROM profiles", 110).await;
    assert_eq!(
        column_types(&db, "profiles").await,
        pairs(&[("a", "text"), ("b", "bigint"), ("id", "bigint")])
    );
    let rows = db
        .query("SELECT id, a, b FROM profiles ORDER BY id", &[])
        .await
        .unwrap();
    let actual: Vec<(i64, Option<String>, Option<i64>)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let expected: Vec<(i64, Option<String>, Option<i64>)> = (0..110i64)
        .map(|i| match i {
            0..=49 => (i, Some(format!("a{i}")), None),
            50..=99 => (i, Some(format!("a{i}")), Some(i * 10)),
            _ => (i, None, Some(1)),
        })
        .collect();
    assert_eq!(actual, expected);

    // A value that is a string, not an object: the task fails, and says
    // which record.
    produce(&client, "profiles", unkeyed([json!("not an object")])).await;
    let status = wait_for_status(&worker, "pg-profiles", failed).await;
    let trace = status.tasks[0].info.trace.clone().unwrap_or_default();
    assert!(
        trace.contains("`profiles`") && trace.contains("partition 0, offset 110"),
        "{trace}"
    );
    assert_eq!(number(&db, "SELECT count(*) FROM profiles").await, 110);

    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

fn payment(i: i64) -> Value {
    json!({"id": i, "amount": i * 3})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_mid_stream_every_record_is_in_the_table_exactly_once() {
    let pg = PgServer::start().await;
    let db = pg.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["payments"]).await;
    produce(&client, "payments", unkeyed((0..3000).map(payment))).await;
    // A worker that never commits the group's offsets in this test: every
    // row it writes is ahead of what the group says was read.
    let mut config = WorkerConfig::new(dir.path().join("first.offsets"));
    config.offset_flush_interval = Duration::from_secs(3600);
    let first = Worker::start(client.clone(), config).await.unwrap();
    let sink = sink_config(&pg.url(), "payments", &[("batch.size", "500")]);
    first
        .add_connector("pg-payments", sink.clone())
        .await
        .unwrap();
    wait_for_number_at_least(&db, "SELECT count(*) FROM payments", 1000).await;

    // The crash: the sink's session is killed, so its next write fails
    // (mid-transaction or at its start), and the task with it.
    let killed = number(
        &db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name LIKE 'spool-connect pg-payments-%'",
    )
    .await;
    assert_eq!(killed, 1);
    produce(&client, "payments", unkeyed((3000..5000).map(payment))).await;
    wait_for_status(&first, "pg-payments", failed).await;
    first.shutdown().await.unwrap();

    // What survived is whole: rows 0..n and the offset n, in one piece.
    let written = number(&db, "SELECT count(*) FROM payments").await;
    assert!((1000..5000).contains(&written), "{written} rows");
    assert_eq!(
        number(&db, "SELECT max(id) + 1 FROM payments").await,
        written
    );
    assert_eq!(
        stored_offsets(&db).await,
        [(
            "pg-payments".to_string(),
            "payments".to_string(),
            0,
            written
        )]
    );

    // A new worker: the group has no committed offset, the table has;
    // the sink goes on from the table's, and nothing is written twice.
    let second = start_worker(&client, dir.path()).await;
    second.add_connector("pg-payments", sink).await.unwrap();
    wait_for_number(&db, "SELECT count(*) FROM payments", 5000).await;
    assert_eq!(
        number(&db, "SELECT count(DISTINCT id) FROM payments").await,
        5000
    );
    let sum: i64 = (0..5000i64).map(|i| i * 3).sum();
    assert_eq!(
        number(&db, "SELECT sum(amount)::bigint FROM payments").await,
        sum
    );
    wait_for_number(
        &db,
        "SELECT max(next_offset) FROM spool_connect_offsets",
        5000,
    )
    .await;
    assert_eq!(
        stored_offsets(&db).await,
        [("pg-payments".to_string(), "payments".to_string(), 0, 5000)]
    );

    second.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

/// Waits until `sql` answers at least `least`.
async fn wait_for_number_at_least(db: &tokio_postgres::Client, sql: &str, least: i64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = number(db, sql).await;
        if now >= least {
            return;
        }
        assert!(Instant::now() < deadline, "`{sql}` is {now}, not {least}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
