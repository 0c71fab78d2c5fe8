//! Helpers shared by the tests that run real `spool` processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod java;

/// A `spool broker` child process. It binds the address it is given (port 0
/// by default, so parallel tests never race for a port) and the address it
/// really listens on is read from its log.
pub struct BrokerProcess {
    child: Child,
    pub address: String,
    pub metrics_address: Option<String>,
    /// Where its Kafka protocol listener is (port 0 by default too).
    pub kafka_address: Option<String>,
    log: Arc<Mutex<String>>,
}

impl BrokerProcess {
    /// Starts `spool broker` with `args` plus `--listen` (unless given).
    pub fn start(args: &[&str]) -> BrokerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spool"));
        command.arg("broker").args(args);
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        if !args.contains(&"--metrics-listen") {
            command.args(["--metrics-listen", "127.0.0.1:0"]);
        }
        if !args.contains(&"--kafka-listen") {
            command.args(["--kafka-listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("start broker");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let mut metrics_address = None;
        let mut kafka_address = None;
        let address = loop {
            let line = lines
                .next()
                .expect("broker exited before listening")
                .unwrap();
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.split(" metrics on ").nth(1) {
                metrics_address = Some(rest.trim().to_string());
            }
            if let Some(rest) = line.split(" Kafka protocol on ").nth(1) {
                kafka_address = Some(rest.trim().to_string());
            }
            if let Some(rest) = line.split(" listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining the log so the broker never blocks on a full pipe.
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        BrokerProcess {
            child,
            address,
            metrics_address,
            kafka_address,
            log,
        }
    }

    /// What the broker logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// How the process exited, if it has (crashed, or killed).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, ...) to the broker.
    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// SIGTERM, then wait for a clean exit; returns the broker's log.
    pub fn stop(mut self) -> String {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50)); // let the drain thread finish
        let log = self.log.lock().unwrap().clone();
        assert!(status.success(), "broker exited with {status}: {log}");
        log
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` with `stdin`, failing the test on a non-zero exit.
pub fn run(command: &mut Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e} (scripts/test.sh installs it)"));
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_string();
    let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs tests/kafka/clients.py (the Python Kafka clients) with `args`;
/// answers what it printed.
pub fn kafka_clients(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/clients.py");
    let output = run(Command::new("python3").arg(script).args(args), "");
    String::from_utf8(output.stdout).unwrap()
}

/// One JSON value per non-empty line of `text` (what `spool consume
/// --format json` and tests/kafka/clients.py print).
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("`{l}`: {e}")))
        .collect()
}
