//! The `spool` command-line program. Each subcommand lives in `cli/`.

mod cli;

use clap::Parser;

/// See Cargo.toml: glibc's malloc was a third of the streams hot path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // SIGPIPE stays ignored (Rust's default): a broker writes to sockets
    // with writev, which raises SIGPIPE when the peer has reset, and the
    // default action would kill the broker whenever a client or peer went
    // away abruptly. A closed stdout (`spool consume t | head`) shows up
    // as a BrokenPipe error instead, which `spool consume` takes as the
    // reader having all it wanted.
    // openraft warns whenever a proposal's answer finds its receiver gone,
    // which is every `acks=leader` write: its producer is answered once the
    // leader appended, and the commit's answer is dropped on purpose.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPOOL_LOG")
                .unwrap_or_else(|_| "warn,openraft::raft::responder=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(cli.run())
}
