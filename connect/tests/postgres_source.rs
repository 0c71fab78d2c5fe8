//! The PostgreSQL source on an embedded broker and a real PostgreSQL
//! server (started by the test, see `pg`), on a worker with exactly-once:
//! rows of two tables of many types reach their topics once and in order,
//! later rows follow, and a new worker resumes from the committed
//! offsets; in timestamp+incrementing mode rows of equal timestamps and
//! updated rows are read once each, across a task restart; in timestamp
//! mode runs of equal timestamps that the batch limit cuts are read
//! whole, and rows newer than the delay wait; three tables and a query
//! spread over tasks; bad configs are refused naming the key.

mod common;
mod pg;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spool_client::proto::IsolationLevel;
use spool_client::{Client, ConsumerConfig, OffsetReset, TopicPartition};
use spool_connect::api::ConfigMap;
use spool_connect::{create_connector, ConnectError, Connector, State, Worker, WorkerConfig};

use common::{all_running, broker, props, start_worker, wait_for_status, wait_for_topic, PATIENCE};
use pg::PgServer;

/// A key and a value, as JSON.
type Row = (Option<Value>, Value);

/// A worker with exactly-once, its offsets in a one-partition topic,
/// flushing every 100 ms.
fn exactly_once_worker(dir: &Path) -> WorkerConfig {
    let mut config = WorkerConfig::new(dir.join("connect.offsets"));
    config.offset_flush_interval = Duration::from_millis(100);
    config.exactly_once_source_support = true;
    config.offset_storage_topic = Some("pg-source-offsets".to_string());
    config.offset_storage_partitions = 1;
    config
}

/// A source of the database at `url` into `pg-<table>` topics, its values
/// plain JSON, requiring exactly-once.
fn source_config(url: &str, extra: &[(&str, &str)]) -> ConfigMap {
    let mut config = props(&[
        ("connector.class", "PostgresSource"),
        ("connection.url", url),
        ("topic.prefix", "pg-"),
        ("poll.interval.ms", "200"),
        ("value.converter", "json"),
        ("value.converter.schemas.enable", "false"),
        ("exactly.once.support", "required"),
    ]);
    config.extend(props(extra));
    config
}

/// The records of `topic` as a read_committed consumer sees them, once
/// `expected` arrived and half a second more, so that one more (a
/// duplicate) is seen too.
async fn read_rows(client: &Client, topic: &str, expected: usize) -> Vec<Row> {
    wait_for_topic(client, topic).await;
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    consumer.assign([TopicPartition::new(topic, 0)]);
    let parse = |bytes: Option<&[u8]>| bytes.map(|b| serde_json::from_slice::<Value>(b).unwrap());
    let mut rows = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    let settle = Duration::from_millis(500);
    let mut settled: Option<Instant> = None;
    while settled.is_none_or(|since| since.elapsed() < settle) {
        assert!(
            Instant::now() < deadline,
            "{topic} shows {} records, not {expected}: {rows:?}",
            rows.len()
        );
        let records = consumer.poll(Duration::from_millis(100)).await.unwrap();
        rows.extend(records.iter().map(|r| {
            let value = parse(r.value.as_deref()).unwrap_or(Value::Null);
            (parse(r.key.as_deref()), value)
        }));
        if settled.is_none() && rows.len() >= expected {
            settled = Some(Instant::now());
        }
    }
    rows
}

fn field(rows: &[Row], name: &str) -> Vec<i64> {
    rows.iter()
        .map(|(_, value)| value[name].as_i64().unwrap_or(-1))
        .collect()
}

fn ids(rows: &[Row]) -> Vec<i64> {
    field(rows, "id")
}

fn range(to: i64) -> Vec<i64> {
    (1..=to).collect()
}

async fn sql(db: &tokio_postgres::Client, statements: &str) {
    db.batch_execute(statements).await.unwrap();
}

const CUSTOMERS: &str = "
    CREATE TABLE customers (
        id bigserial PRIMARY KEY, name text NOT NULL, email varchar(100), code char(4),
        small smallint, score real, ratio double precision, balance numeric(12, 2),
        active boolean, joined timestamptz, seen timestamp, birthday date, photo bytea,
        prefs jsonb, extra json, tags text[], uid uuid);
    INSERT INTO customers (name, email, code, small, score, ratio, balance, active, joined,
        seen, birthday, photo, prefs, extra, tags, uid)
    VALUES ('Ada', 'ada@example.com', 'AB', -7, 0.5, 2.25, 1234.50, true,
        '2024-05-06 07:08:09.123456+00', '2024-05-06 07:08:09.5', '1815-12-10', '\\x010203',
        '{\"theme\": \"dark\", \"n\": [1, 2]}', '{\"a\": null}', ARRAY['x', 'y'],
        '12345678-9abc-def0-0123-456789abcdef');
    INSERT INTO customers (name) VALUES ('Bob');
    INSERT INTO customers (name) SELECT 'c' || i FROM generate_series(3, 40) AS i;
    CREATE TABLE orders (
        id serial PRIMARY KEY, customer_id bigint NOT NULL, amount numeric NOT NULL, note text);
    INSERT INTO orders (customer_id, amount, note)
        SELECT i % 40 + 1, i * 1.5, 'o' || i FROM generate_series(1, 250) AS i;";

/// Customer 1, every type read as the docs say.
fn ada() -> Value {
    json!({
        "id": 1, "name": "Ada", "email": "ada@example.com", "code": "AB  ", "small": -7,
        "score": 0.5, "ratio": 2.25, "balance": "1234.50", "active": true,
        "joined": 1_714_979_289_123i64, "seen": 1_714_979_289_500i64, "birthday": "1815-12-10",
        "photo": "AQID", "prefs": {"theme": "dark", "n": [1, 2]}, "extra": {"a": null},
        "tags": ["x", "y"], "uid": "12345678-9abc-def0-0123-456789abcdef",
    })
}

/// Customer 2: NULLs are nulls.
fn bob() -> Value {
    json!({
        "id": 2, "name": "Bob", "email": null, "code": null, "small": null, "score": null,
        "ratio": null, "balance": null, "active": null, "joined": null, "seen": null,
        "birthday": null, "photo": null, "prefs": null, "extra": null, "tags": null, "uid": null,
    })
}

fn order(i: i64) -> Value {
    json!({
        "id": i, "customer_id": i % 40 + 1, "amount": format!("{:.1}", i as f64 * 1.5),
        "note": format!("o{i}"),
    })
}

/// Waits until connector `name` has committed `offset` for `table`.
async fn wait_for_offset(worker: &Worker, name: &str, table: &str, offset: Value) {
    let partition = json!({"protocol": "1", "table": table});
    let deadline = Instant::now() + PATIENCE;
    loop {
        let offsets = worker.connector_offsets(name).await.unwrap().offsets;
        let found = offsets
            .iter()
            .find(|o| serde_json::to_value(&o.partition).unwrap() == partition)
            .and_then(|o| o.offset.as_ref())
            .map(|o| serde_json::to_value(o).unwrap());
        if found.as_ref() == Some(&offset) {
            return;
        }
        assert!(Instant::now() < deadline, "{offsets:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tables_reach_their_topics_once_in_order_and_a_new_worker_resumes() {
    let pg = PgServer::start().await;
    let db = pg.connect().await;
    sql(&db, CUSTOMERS).await;
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["pg-customers", "pg-orders"]).await;
    let config = source_config(
        &pg.url(),
        &[
            ("mode", "incrementing"),
            ("incrementing.column.name", "id"),
            ("table.whitelist", "customers,public.orders"),
            ("tasks.max", "2"),
            ("batch.max.rows", "64"),
        ],
    );
    let worker = Worker::start(client.clone(), exactly_once_worker(dir.path()))
        .await
        .unwrap();
    worker.add_connector("pg", config.clone()).await.unwrap();

    let customers = read_rows(&client, "pg-customers", 40).await;
    assert_eq!(ids(&customers), range(40));
    assert_eq!(customers[0].1, ada());
    assert_eq!(customers[1].1, bob());
    assert_eq!(customers[39].1["name"], "c40");
    assert!(customers.iter().all(|(key, _)| key.is_none()), "no key");
    let orders = read_rows(&client, "pg-orders", 250).await;
    assert_eq!(ids(&orders), range(250));
    assert_eq!(orders[9].1, order(10));
    let status = wait_for_status(&worker, "pg", all_running).await;
    assert_eq!(status.tasks.len(), 2, "a table per task");

    // Rows inserted later are read on.
    sql(
        &db,
        "INSERT INTO customers (name) SELECT 'd' || i FROM generate_series(41, 50) AS i;
         INSERT INTO orders (customer_id, amount, note)
             SELECT i % 40 + 1, i * 1.5, 'o' || i FROM generate_series(251, 270) AS i;",
    )
    .await;
    assert_eq!(
        ids(&read_rows(&client, "pg-customers", 50).await),
        range(50)
    );
    assert_eq!(ids(&read_rows(&client, "pg-orders", 270).await), range(270));
    wait_for_offset(&worker, "pg", "public.orders", json!({"incrementing": 270})).await;
    worker.shutdown().await.unwrap();

    // Rows inserted while no worker runs; a new worker on the same offsets
    // goes on after the committed rows, repeating none.
    sql(
        &db,
        "INSERT INTO customers (name) SELECT 'e' || i FROM generate_series(51, 55) AS i;
         INSERT INTO orders (customer_id, amount, note)
             SELECT i % 40 + 1, i * 1.5, 'o' || i FROM generate_series(271, 275) AS i;",
    )
    .await;
    let worker = Worker::start(client.clone(), exactly_once_worker(dir.path()))
        .await
        .unwrap();
    worker.add_connector("pg", config).await.unwrap();
    let customers = read_rows(&client, "pg-customers", 55).await;
    assert_eq!(ids(&customers), range(55));
    assert_eq!(customers[54].1["name"], "e55");
    let orders = read_rows(&client, "pg-orders", 275).await;
    assert_eq!(ids(&orders), range(275));
    assert_eq!(orders[274].1, order(275));
    wait_for_offset(
        &worker,
        "pg",
        "public.customers",
        json!({"incrementing": 55}),
    )
    .await;
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

const TIMESTAMPED: &str = "
    CREATE TABLE events (id serial PRIMARY KEY, updated_at timestamptz NOT NULL, v text);
    INSERT INTO events (updated_at, v)
        SELECT '2024-01-01 00:00:00+00'::timestamptz + (i / 10) * INTERVAL '1 minute', 'e' || i
        FROM generate_series(0, 29) AS i;
    CREATE TABLE ticks (at timestamp NOT NULL, v integer NOT NULL);
    INSERT INTO ticks
        SELECT '2024-01-01 00:00:00'::timestamp + (i / 10) * INTERVAL '1 second', i
        FROM generate_series(0, 29) AS i;";

/// 2024-01-01T00:00:00Z in milliseconds.
const NEW_YEAR: i64 = 1_704_067_200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_modes_read_equal_timestamps_and_updates_once() {
    let pg = PgServer::start().await;
    let db = pg.connect().await;
    sql(&db, TIMESTAMPED).await;
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["pg-events", "pg-ticks"]).await;
    let worker = Worker::start(client.clone(), exactly_once_worker(dir.path()))
        .await
        .unwrap();
    // Batches of 4 cut every run of 10 equal timestamps.
    let events = source_config(
        &pg.url(),
        &[
            ("mode", "timestamp+incrementing"),
            ("timestamp.column.name", "updated_at"),
            ("incrementing.column.name", "id"),
            ("table.include.list", "events"),
            ("batch.max.rows", "4"),
        ],
    );
    worker.add_connector("events", events).await.unwrap();
    let rows = read_rows(&client, "pg-events", 30).await;
    assert_eq!(ids(&rows), range(30));
    assert_eq!(
        rows[0].1,
        json!({"id": 1, "updated_at": NEW_YEAR, "v": "e0"})
    );
    assert_eq!(rows[29].1["updated_at"], NEW_YEAR + 2 * 60_000);

    // An update moves a row past the others: it is read again, once; a new
    // row of the very same timestamp follows it by its id.
    sql(
        &db,
        "UPDATE events SET updated_at = now() - INTERVAL '1 second', v = 'changed' WHERE id = 5",
    )
    .await;
    let rows = read_rows(&client, "pg-events", 31).await;
    assert_eq!(rows.len(), 31);
    assert_eq!(rows[30].1["v"], "changed");
    let changed_at = rows[30].1["updated_at"].clone();
    sql(
        &db,
        "INSERT INTO events (updated_at, v) SELECT updated_at, 'same' FROM events WHERE id = 5",
    )
    .await;
    let rows = read_rows(&client, "pg-events", 32).await;
    assert_eq!(rows.len(), 32);
    assert_eq!(rows[31].1["id"], 31);
    assert_eq!(rows[31].1["updated_at"], changed_at);

    // A restarted task resumes from the committed (timestamp, id).
    worker.restart_task("events", 0).await.unwrap();
    wait_for_status(&worker, "events", all_running).await;
    sql(
        &db,
        "INSERT INTO events (updated_at, v) VALUES (now() - INTERVAL '1 second', 'after')",
    )
    .await;
    let rows = read_rows(&client, "pg-events", 33).await;
    assert_eq!(rows.len(), 33);
    assert_eq!(rows[32].1["v"], "after");

    timestamp_mode_reads_whole_runs_and_waits_out_the_delay(&client, &worker, &pg, &db).await;
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

/// Timestamp mode alone, batches of 4 over runs of 10 equal timestamps,
/// and a delay of an hour: every run is read whole, a row of the last
/// hour waits.
async fn timestamp_mode_reads_whole_runs_and_waits_out_the_delay(
    client: &Client,
    worker: &Worker,
    pg: &PgServer,
    db: &tokio_postgres::Client,
) {
    let ticks = source_config(
        &pg.url(),
        &[
            ("mode", "timestamp"),
            ("timestamp.column.name", "at"),
            ("table.whitelist", "ticks"),
            ("batch.max.rows", "4"),
            ("timestamp.delay.interval.ms", "3600000"),
        ],
    );
    worker.add_connector("ticks", ticks).await.unwrap();
    let rows = read_rows(client, "pg-ticks", 30).await;
    let mut seen = field(&rows, "v");
    seen.sort_unstable();
    assert_eq!(seen, (0..30).collect::<Vec<i64>>(), "each row once");
    let at = field(&rows, "at");
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "in timestamp order");
    assert_eq!(at[29], NEW_YEAR + 2000);

    sql(
        db,
        "INSERT INTO ticks VALUES (LOCALTIMESTAMP, 100);
         INSERT INTO ticks VALUES ('2024-01-01 00:00:05', 101);",
    )
    .await;
    let rows = read_rows(client, "pg-ticks", 31).await;
    assert_eq!(rows.len(), 31, "the row of the last hour waits");
    assert_eq!(rows[30].1, json!({"at": NEW_YEAR + 5000, "v": 101}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_spread_over_two_tasks_and_a_query_reads_its_own_rows() {
    let pg = PgServer::start().await;
    let db = pg.connect().await;
    for table in ["a", "b", "c"] {
        let create = format!(
            "CREATE TABLE {table} (id serial PRIMARY KEY, n integer NOT NULL);
             INSERT INTO {table} (n) SELECT i FROM generate_series(1, 100) AS i;"
        );
        sql(&db, &create).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let topics = ["pg-a", "pg-b", "pg-c", "pg-query"];
    let (node, client) = broker(dir.path(), &topics).await;
    let worker = Worker::start(client.clone(), exactly_once_worker(dir.path()))
        .await
        .unwrap();
    // The id as the record's key, by Kafka's transforms.
    let keyed = source_config(
        &pg.url(),
        &[
            ("mode", "incrementing"),
            ("incrementing.column.name", "id"),
            ("table.whitelist", "a,b,c"),
            ("tasks.max", "2"),
            ("batch.max.rows", "30"),
            ("key.converter", "json"),
            ("key.converter.schemas.enable", "false"),
            ("transforms", "tokey,extract"),
            (
                "transforms.tokey.type",
                "org.apache.kafka.connect.transforms.ValueToKey",
            ),
            ("transforms.tokey.fields", "id"),
            (
                "transforms.extract.type",
                "org.apache.kafka.connect.transforms.ExtractField$Key",
            ),
            ("transforms.extract.field", "id"),
        ],
    );
    worker.add_connector("abc", keyed).await.unwrap();
    for topic in ["pg-a", "pg-b", "pg-c"] {
        let rows = read_rows(&client, topic, 100).await;
        assert_eq!(ids(&rows), range(100), "{topic}");
        let keys: Vec<i64> = rows
            .iter()
            .map(|(key, _)| key.as_ref().and_then(Value::as_i64).unwrap_or(-1))
            .collect();
        assert_eq!(keys, range(100), "{topic}");
    }
    let status = wait_for_status(&worker, "abc", all_running).await;
    assert_eq!(status.tasks.len(), 2);
    let assigned: Vec<String> = worker
        .connector_tasks("abc")
        .await
        .unwrap()
        .into_iter()
        .map(|task| task.config["tables"].clone())
        .collect();
    assert_eq!(assigned, ["a,c", "b"]);

    // A query, wrapped so the mode's conditions apply to its columns.
    let query = source_config(
        &pg.url(),
        &[
            ("mode", "incrementing"),
            ("incrementing.column.name", "id"),
            (
                "query",
                "SELECT id, n * 2 AS doubled FROM a WHERE n % 2 = 0",
            ),
            ("topic.prefix", "pg-query"),
            ("tasks.max", "3"),
        ],
    );
    worker.add_connector("query", query).await.unwrap();
    let rows = read_rows(&client, "pg-query", 50).await;
    assert_eq!(ids(&rows), (1..=50).map(|i| i * 2).collect::<Vec<i64>>());
    assert_eq!(rows[0].1, json!({"id": 2, "doubled": 4}));
    let status = wait_for_status(&worker, "query", all_running).await;
    assert_eq!(status.tasks.len(), 1, "a query is one task");

    // A table that is not there fails its task, naming it.
    let ghost = source_config(
        &pg.url(),
        &[
            ("mode", "incrementing"),
            ("incrementing.column.name", "id"),
            ("table.whitelist", "nope"),
        ],
    );
    worker.add_connector("ghost", ghost).await.unwrap();
    let status = wait_for_status(&worker, "ghost", |s| {
        s.tasks
            .first()
            .is_some_and(|t| t.info.state == State::Failed)
    })
    .await;
    let trace = status.tasks[0].info.trace.clone().unwrap_or_default();
    assert!(
        trace.contains("table.whitelist") && trace.contains("`nope`"),
        "{trace}"
    );
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &[]).await;
    let worker = start_worker(&client, dir.path()).await;
    // No server is needed: configs are checked before any task connects.
    let url = "postgresql://postgres@127.0.0.1:1/postgres";
    let config = |pairs: &[(&str, &str)]| {
        let mut config = source_config(url, &[("table.whitelist", "t")]);
        config.remove("exactly.once.support");
        config.extend(props(pairs));
        config
    };

    // A key wrong by itself: refused before anything starts.
    let unknown_mode = config(&[("mode", "newest")]);
    let refused = worker.add_connector("bad", unknown_mode.clone()).await;
    assert!(
        matches!(&refused, Err(ConnectError::InvalidConfig { key, .. }) if key == "mode"),
        "{refused:?}"
    );
    let validated = worker.validate(&unknown_mode).unwrap();
    let mode = validated.iter().find(|v| v.name == "mode").unwrap();
    assert_eq!(mode.errors.len(), 1, "{mode:?}");
    assert_eq!(mode.recommended_values.len(), 4);

    // Keys wrong together: the connector refuses to start, naming the key.
    let Connector::Source(mut connector) = create_connector("PostgresSource").unwrap() else {
        panic!("PostgresSource is not a source");
    };
    let mut refused_key = |pairs: &[(&str, &str)]| match connector.start(&config(pairs)) {
        Err(ConnectError::InvalidConfig { key, .. }) => key,
        other => panic!("not refused by a key: {other:?}"),
    };
    assert_eq!(
        refused_key(&[("mode", "incrementing")]),
        "incrementing.column.name"
    );
    assert_eq!(
        refused_key(&[("mode", "timestamp"), ("query", "SELECT 1")]),
        "timestamp.column.name"
    );
    assert_eq!(
        refused_key(&[("mode", "bulk"), ("query", "SELECT 1")]),
        "query"
    );
    // On a worker, it is FAILED with that reason.
    let missing_column = config(&[("mode", "timestamp+incrementing")]);
    worker
        .add_connector("no-column", missing_column)
        .await
        .unwrap();
    let status =
        wait_for_status(&worker, "no-column", |s| s.connector.state == State::Failed).await;
    let trace = status.connector.trace.unwrap_or_default();
    assert!(trace.contains("incrementing.column.name"), "{trace}");
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}
