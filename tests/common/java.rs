//! Apache Kafka's Java programs in tests/java/, run against a broker
//! process: Kafka's classpath from the reference harness
//! (scripts/kafka-reference.sh, which fetches the jars once into
//! ~/.cache/spool; scripts/test.sh does before the tests), javac and java.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Kafka's classpath, from the reference harness. Asked once per test
/// binary, so that tests running in parallel never fetch Kafka twice at
/// once when it is not fetched yet.
pub fn kafka_classpath() -> String {
    static CLASSPATH: OnceLock<String> = OnceLock::new();
    CLASSPATH
        .get_or_init(|| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka-reference.sh");
            let output = Command::new("bash")
                .args([script, "classpath"])
                .output()
                .expect("running scripts/kafka-reference.sh");
            assert!(
                output.status.success(),
                "scripts/kafka-reference.sh classpath failed (scripts/test.sh fetches Kafka): {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap().trim().to_string()
        })
        .clone()
}

/// Compiles `sources` (paths under tests/java/) into `out`.
pub fn compile(classpath: &str, sources: &[&str], out: &Path) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java");
    let output = Command::new("javac")
        .args(["-d", out.to_str().unwrap(), "-cp", classpath])
        .args(sources.iter().map(|source| dir.join(source)))
        .output()
        .expect("running javac (scripts/kafka-reference.sh installs a JDK)");
    assert!(
        output.status.success(),
        "javac failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The harness's log4j configuration (warnings and errors, to stderr).
pub fn log4j_config() -> PathBuf {
    let home = std::env::var("SPOOL_KAFKA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/spool/kafka-4.4.0")
        });
    home.join("log4j2.properties")
}

/// `java` running `class` with Kafka's classpath plus `classes` (where
/// [`compile`] put the programs), a 512 MiB heap and the harness's log4j
/// configuration; the caller adds the program's arguments.
pub fn java(classpath: &str, classes: &Path, class: &str) -> Command {
    let mut command = Command::new("java");
    command
        .arg("-Xmx512m")
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            log4j_config().display()
        ))
        .args(["-cp", &format!("{classpath}:{}", classes.display()), class]);
    command
}
