//! The `spool` command-line program. Each subcommand lives in `cli/`.

mod cli;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    // Die quietly when stdout is a closed pipe (`spool consume t | head`),
    // as command-line tools do, instead of panicking on the failed write.
    // SAFETY: called before any thread starts; restores the default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPOOL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(cli.run())
}
