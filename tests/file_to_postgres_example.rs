//! examples/file_to_postgres.rs run as its readers run it (the binary
//! `cargo test` builds with the other examples), against a PostgreSQL
//! server started by the test: a file of known words goes through the
//! file source, the word count topology and the PostgreSQL sink, and the
//! table must hold each word's count in the file exactly.

#[path = "../connect/tests/pg/mod.rs"]
mod pg;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use pg::PgServer;

/// The example binary, next to this test's own executable.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let binary = profile_dir.join("examples").join("file_to_postgres");
    assert!(
        binary.exists(),
        "{} missing: `cargo test` builds the examples",
        binary.display()
    );
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_counts_a_files_words_into_a_postgresql_table() {
    let pg = PgServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    // 300 lines of three words each, capitals included (the topology
    // lowercases): each word's row is replaced many times by upserts, and
    // the last count must be the file's.
    let words = ["Red", "green", "BLUE", "red", "yellow", "Green", "red"];
    let text: String = (0..300)
        .map(|i| {
            let word = |j: usize| words[(i * (2 * j + 1) + j) % words.len()];
            format!("{} {} {}\n", word(0), word(1), word(2))
        })
        .collect();
    std::fs::write(&input, &text).unwrap();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for word in text.split_whitespace() {
        *expected.entry(word.to_lowercase()).or_default() += 1;
    }

    // 25 s: the pipeline needs a few to start (group joins) and well under
    // a second per stage after that; the margin is for a loaded machine.
    let (binary, url) = (example_binary(), pg.url());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(binary)
            .args(["--connection-url", url.as_str(), "--seconds", "25"])
            .args(["--table", "counts", "--file"])
            .arg(&input)
            .env("RUST_LOG", "warn")
            .output()
    })
    .await
    .unwrap()
    .expect("run the file_to_postgres example");
    let log = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{}\n{log}", output.status);

    let db = pg.connect().await;
    let rows = db
        .query("SELECT word, \"count\" FROM counts", &[])
        .await
        .unwrap();
    let actual: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(actual, expected, "{log}");
    // What the example printed is what the table holds.
    let (top_word, top_count) = expected.iter().max_by_key(|(_, n)| **n).unwrap();
    let summary = format!("{} distinct words in table counts", expected.len());
    let top_line = format!("{top_word:>12} {top_count}");
    assert!(log.contains(&summary) && log.contains(&top_line), "{log}");
    // The sink's primary key is the word, as `pk.fields=word` asks.
    let key: Vec<String> = db
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = 'counts'::regclass AND i.indisprimary",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(key, ["word"]);
}
