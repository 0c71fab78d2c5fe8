//! A throwaway PostgreSQL server for the tests that need one: a cluster
//! made by `initdb` in a temporary directory, started by `pg_ctl` on a
//! free port of 127.0.0.1 (and a Unix socket in the same directory), and
//! stopped (`-m immediate`) and removed when dropped.
//!
//! PostgreSQL refuses to run as root. Run as root (as CI runs), the
//! server's programs run as the `postgres` user (`runuser`, else `su`),
//! with the directory given to it. Without PostgreSQL's programs a test
//! fails, saying to run scripts/ensure-test-deps.sh: it never passes
//! without having run.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tokio_postgres::{Client, NoTls};

/// The user PostgreSQL runs as when the tests run as root (Debian's
/// package creates it).
const SERVER_USER: &str = "postgres";

/// A running server; see the module's comment.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// `Some(postgres)` when the tests run as root.
    run_as: Option<&'static str>,
}

impl PgServer {
    /// Makes and starts a server (a few seconds: initdb writes a cluster).
    pub async fn start() -> PgServer {
        match tokio::task::spawn_blocking(PgServer::start_blocking).await {
            Ok(server) => server,
            // The test fails with the helper's own message (no PostgreSQL,
            // initdb's output, ...).
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    fn start_blocking() -> PgServer {
        let bin = find_bin();
        let dir = tempfile::Builder::new()
            .prefix("spool-pg-")
            .tempdir()
            .unwrap();
        let run_as = (effective_uid() == 0).then_some(SERVER_USER);
        if let Some(user) = run_as {
            give_to(dir.path(), user);
        }
        let mut server = PgServer {
            dir,
            bin,
            port: 0,
            run_as,
        };
        let data = server.data();
        server
            .run(
                "initdb",
                &[
                    "-D",
                    path_text(&data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
            )
            .unwrap_or_else(|e| panic!("initdb failed: {e}"));
        // A port found free may be taken before the server binds it: a
        // few tries, each on a new port.
        let mut failures = Vec::new();
        for _ in 0..3 {
            server.port = free_port();
            match server.try_start() {
                Ok(()) => return server,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "PostgreSQL did not start:\n{}\n{}",
            failures.join("\n"),
            server.log()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn try_start(&self) -> Result<(), String> {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        // fsync, full-page writes and synchronous commits off: a test's
        // server is thrown away, so its durability is not worth the time.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c synchronous_commit=off",
            self.port,
            path_text(self.dir.path())
        );
        let args = [
            "-D",
            path_text(&data),
            "-l",
            path_text(&log),
            "-o",
            options.as_str(),
            "-w",
            "-t",
            "60",
            "start",
        ];
        self.run("pg_ctl", &args)
    }

    /// The server's log, for a failure's message.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs one of PostgreSQL's programs, as the server's user if root.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let mut command = self.command(program, args);
        // A locale the machine lacks would stop the server; C is always there.
        command.current_dir(self.dir.path()).env("LC_ALL", "C");
        finish(program, command.output())
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let Some(user) = self.run_as else {
            let mut command = Command::new(path.as_os_str());
            command.args(args);
            return command;
        };
        if let Some(runuser) = find_runuser() {
            let mut command = Command::new(runuser);
            command
                .args(["-u", user, "--"])
                .arg(path.as_os_str())
                .args(args);
            return command;
        }
        let mut line = shell_quote(path_text(&path));
        for arg in args {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        let mut command = Command::new("su");
        command.args([user, "-s", "/bin/sh", "-c", line.as_str()]);
        command
    }

    /// The URL of the `postgres` database as the `postgres` user.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A client of the `postgres` database, its connection driven by a
    /// task of its own.
    pub async fn connect(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.port == 0 {
            return;
        }
        let data = self.data();
        let args = ["-D", path_text(&data), "-m", "immediate", "-w", "stop"];
        if let Err(e) = self.run("pg_ctl", &args) {
            eprintln!("stopping the test's PostgreSQL failed: {e}");
        }
    }
}

fn finish(program: &str, output: std::io::Result<Output>) -> Result<(), String> {
    let output = output.map_err(|e| format!("{program} could not run: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{program} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("a temporary path is UTF-8")
}

fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// The directory of `initdb` and `pg_ctl`: PATH's, else the newest of
/// Debian's `/usr/lib/postgresql/<version>/bin`.
fn find_bin() -> PathBuf {
    let complete = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = find_in_path("initdb").filter(|dir| complete(dir.as_path())) {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin.as_path()))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's initdb and pg_ctl were found neither on PATH nor in \
             /usr/lib/postgresql/*/bin; run scripts/ensure-test-deps.sh, which installs \
             Debian's postgresql package"
        ),
    }
}

/// util-linux's `runuser`, on PATH or where Debian puts it.
fn find_runuser() -> Option<PathBuf> {
    find_in_path("runuser")
        .map(|dir| dir.join("runuser"))
        .or_else(|| {
            ["/usr/sbin/runuser", "/sbin/runuser"]
                .into_iter()
                .map(PathBuf::from)
                .find(|path| path.is_file())
        })
}

/// The directory on PATH that holds `program`.
fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join(program).is_file())
}

/// The process's effective user id, from /proc (no libc needed).
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uids = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .expect("/proc/self/status has a Uid line");
    // Real, effective, saved and filesystem ids.
    uids.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Gives `dir` to `user`, so PostgreSQL run as that user can write it.
fn give_to(dir: &Path, user: &str) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let entry = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&user) && fields.len() > 3)
        .unwrap_or_else(|| {
            panic!(
                "no `{user}` user to run PostgreSQL as (it refuses to run as root); run \
                 scripts/ensure-test-deps.sh, which installs Debian's postgresql package"
            )
        });
    let uid: u32 = entry[2].parse().unwrap();
    let gid: u32 = entry[3].parse().unwrap();
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
