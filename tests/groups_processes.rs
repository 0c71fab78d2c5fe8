//! Consumer groups with real processes: three `spool consume --group`
//! processes share a topic, one is killed with SIGKILL mid-way, and between
//! them every record is printed; `groups describe` then shows no lag, and
//! `groups reset-offsets` rewinds the group for a replay.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

use common::BrokerProcess;
use std::time::Duration;

fn spool_cmd(address: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spool"));
    command.args(args).env("SPOOL_BOOTSTRAP", address);
    command
}

fn run(address: &str, args: &[&str], stdin: &str) -> String {
    let mut child = spool_cmd(address, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "spool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A group member whose output is drained as it comes: a member that
/// cannot write blocks, stops polling, and stalls every rebalance.
fn group_consumer(address: &str, group: &str) -> (Guard, std::thread::JoinHandle<String>) {
    let args = [
        "consume",
        "events",
        "--group",
        group,
        "--from-beginning",
        "--format",
        "json",
        "--session-timeout-ms",
        "1000",
        "--idle-timeout-ms",
        "4000",
    ];
    let mut child = spool_cmd(address, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut output = String::new();
        let _ = stdout.read_to_string(&mut output);
        output
    });
    (Guard(child), reader)
}

fn values(output: &str) -> Vec<String> {
    output
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_group_of_processes_consumes_everything_despite_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    // A config file, as an operator would write it: short group sessions so
    // the killed member is noticed within a second.
    let config = dir.path().join("broker.toml");
    let data_dir = dir.path().join("data");
    let toml = format!(
        "data_dir = {:?}\ngroup_min_session_timeout_ms = 500\n",
        data_dir.to_str().unwrap()
    );
    std::fs::write(&config, toml).unwrap();
    let broker = BrokerProcess::start(&["--config", config.to_str().unwrap()]);
    let address = broker.address.clone();
    run(
        &address,
        &["topics", "create", "events", "--partitions", "6"],
        "",
    );
    let first: String = (0..2000).map(|i| format!("k{i}:v{i}\n")).collect();
    run(
        &address,
        &["produce", "events", "--key-separator", ":"],
        &first,
    );

    let mut members: Vec<_> = (0..3).map(|_| group_consumer(&address, "g")).collect();
    std::thread::sleep(Duration::from_secs(2));
    // SIGKILL one member: no commit, no leave; the group finds out when its
    // session times out.
    let (mut killed, killed_output) = members.remove(0);
    killed.0.kill().unwrap();
    let mut seen: BTreeSet<String> = values(&killed_output.join().unwrap()).into_iter().collect();
    let second: String = (2000..3000).map(|i| format!("k{i}:v{i}\n")).collect();
    run(
        &address,
        &["produce", "events", "--key-separator", ":"],
        &second,
    );

    for (mut member, output) in members {
        let mut stderr = String::new();
        member
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            member.0.wait().unwrap().success(),
            "a member failed: {stderr}"
        );
        seen.extend(values(&output.join().unwrap()));
    }
    let expected: BTreeSet<String> = (0..3000).map(|i| format!("v{i}")).collect();
    assert_eq!(seen, expected, "every record reached some member");

    let describe = run(&address, &["groups", "describe", "g"], "");
    let lags: Vec<&str> = describe
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    assert_eq!(lags, vec!["0"; 6], "{describe}");

    let plan = run(
        &address,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "g",
            "--topic",
            "events",
            "--to-earliest",
        ],
        "",
    );
    assert!(plan.contains("dry run"), "{plan}");
    run(
        &address,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "g",
            "--topic",
            "events",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    let replay = run(
        &address,
        &[
            "consume",
            "events",
            "--group",
            "g",
            "--format",
            "json",
            "--max",
            "3000",
            "--session-timeout-ms",
            "1000",
        ],
        "",
    );
    assert_eq!(
        values(&replay).into_iter().collect::<BTreeSet<_>>(),
        expected,
        "the reset group reads everything again"
    );
}
