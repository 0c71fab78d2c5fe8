//! Command-line parsing and dispatch. Subcommands grow with the project; the
//! full shape is in shared/DESIGN.md.

mod bench_log;
mod stats;

use clap::{Parser, Subcommand};

/// spool: stream processing on its own replicated log.
#[derive(Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure spool's components and print one JSON summary line.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// Append to and read from a partition log in this process.
    ///
    /// Example: spool bench log --records 1000000 --record-size 1024 --fsync-every 1048576
    Log(bench_log::Args),
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Bench(Bench::Log(args)) => bench_log::run(args),
        }
    }
}
