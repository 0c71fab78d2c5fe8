//! `spool connect`: a standalone worker (`standalone`, Kafka's
//! connect-standalone), a distributed worker (`distributed`, Kafka's
//! connect-distributed), and commands that call a worker's REST API
//! (`list`, `status`, `create`, `delete`, `pause`, `resume`, `stop`,
//! `restart`, `offsets`, `plugins`, `validate`), printing its JSON answers
//! and exiting non-zero with the server's message on an error. The user
//! guide is docs/connect.md.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use http::Method;
use serde::Serialize;
use serde_json::Value;
use spool_broker::node::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use spool_broker::{Node, NodeConfig};
use spool_client::{Client, DEFAULT_BOOTSTRAP};
use spool_connect::api::ConfigMap;
use spool_connect::rest::RestListeners;
use spool_connect::worker::{listener_address, read_connector_file};
use spool_connect::{DistributedConfig, DistributedWorker, RestServer, Worker, WorkerConfig};

use super::broker::shutdown_signal;
use super::connect_client::{segment, RestArgs};

#[derive(Subcommand)]
pub enum Command {
    /// Run a standalone worker with the connectors of the files given,
    /// serving the REST API, until Ctrl-C. Without a broker address, a
    /// broker runs inside the worker's process.
    ///
    /// Example: spool connect standalone worker.toml file-source.json
    Standalone(StandaloneArgs),
    /// Run a distributed worker: it joins the worker group of its config's
    /// `group.id` on the broker, shares the group's connectors with the
    /// other workers, and serves the REST API, until Ctrl-C. Connectors
    /// are created through the REST API (`spool connect create`) on any
    /// worker of the group.
    ///
    /// Example: spool connect distributed worker.toml
    Distributed(DistributedArgs),
    /// List the connectors, or with --expand their status or info.
    ///
    /// Example: spool connect list --expand status
    List {
        /// status or info (repeatable).
        #[arg(long, value_parser = ["status", "info"])]
        expand: Vec<String>,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Show a connector's state and its tasks'.
    ///
    /// Example: spool connect status local-file-source
    Status {
        name: String,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Create a connector from a file: Kafka's JSON ({"name", "config"}, or
    /// a flat config with `name`) or a .properties file.
    ///
    /// Example: spool connect create file-source.json
    Create {
        file: PathBuf,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Stop a connector and forget it (its source offsets stay).
    ///
    /// Example: spool connect delete local-file-source
    Delete {
        name: String,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Pause a connector's tasks.
    ///
    /// Example: spool connect pause local-file-source
    Pause {
        name: String,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Resume a paused or stopped connector.
    ///
    /// Example: spool connect resume local-file-source
    Resume {
        name: String,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Stop a connector but keep its config (Kafka's STOPPED state).
    ///
    /// Example: spool connect stop local-file-source
    Stop {
        name: String,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Restart a connector, and with --include-tasks its tasks.
    ///
    /// Example: spool connect restart local-file-source --include-tasks --only-failed
    Restart {
        name: String,
        /// Restart the connector's tasks too.
        #[arg(long)]
        include_tasks: bool,
        /// Restart only what failed.
        #[arg(long)]
        only_failed: bool,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Show a connector's committed offsets, or with --reset forget them
    /// all (the connector then reads from the start).
    ///
    /// Example: spool connect offsets local-file-source
    Offsets {
        name: String,
        /// Forget every offset instead of showing them.
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        rest: RestArgs,
    },
    /// List the connector classes the worker runs.
    ///
    /// Example: spool connect plugins
    Plugins {
        #[command(flatten)]
        rest: RestArgs,
    },
    /// Check a connector file's config against its class, every key at
    /// once; exits non-zero if any key is wrong.
    ///
    /// Example: spool connect validate file-source.json
    Validate {
        file: PathBuf,
        #[command(flatten)]
        rest: RestArgs,
    },
}

/// `POST /connectors`' body.
#[derive(Serialize)]
struct CreateRequest {
    name: String,
    config: ConfigMap,
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let (rest, method, path, body) = match command {
        Command::Standalone(args) => return standalone(args).await,
        Command::Distributed(args) => return distributed(args).await,
        Command::List { expand, rest } => {
            let query: Vec<String> = expand.iter().map(|e| format!("expand={e}")).collect();
            let path = match query.is_empty() {
                true => "/connectors".to_string(),
                false => format!("/connectors?{}", query.join("&")),
            };
            (rest, Method::GET, path, None)
        }
        Command::Status { name, rest } => (rest, Method::GET, at(&name, "/status"), None),
        Command::Create { file, rest } => {
            let (name, config) = read_connector_file(&file)?;
            let body = serde_json::to_value(CreateRequest { name, config })?;
            (rest, Method::POST, "/connectors".to_string(), Some(body))
        }
        Command::Delete { name, rest } => (rest, Method::DELETE, at(&name, ""), None),
        Command::Pause { name, rest } => (rest, Method::PUT, at(&name, "/pause"), None),
        Command::Resume { name, rest } => (rest, Method::PUT, at(&name, "/resume"), None),
        Command::Stop { name, rest } => (rest, Method::PUT, at(&name, "/stop"), None),
        Command::Restart {
            name,
            include_tasks,
            only_failed,
            rest,
        } => {
            let query = format!("/restart?includeTasks={include_tasks}&onlyFailed={only_failed}");
            (rest, Method::POST, at(&name, &query), None)
        }
        Command::Offsets { name, reset, rest } => {
            let method = if reset { Method::DELETE } else { Method::GET };
            (rest, method, at(&name, "/offsets"), None)
        }
        Command::Plugins { rest } => (rest, Method::GET, "/connector-plugins".to_string(), None),
        Command::Validate { file, rest } => return validate(file, rest).await,
    };
    let answer = rest
        .client()?
        .send(method.clone(), &path, body.as_ref())
        .await?;
    match answer {
        Some(answer) => println!("{}", serde_json::to_string_pretty(&answer)?),
        // A 202 or 204: the worker took the request.
        None => eprintln!("{method} {path}: accepted"),
    }
    Ok(())
}

/// The path of connector `name`, then `rest`.
fn at(name: &str, rest: &str) -> String {
    format!("/connectors/{}{rest}", segment(name))
}

async fn validate(file: PathBuf, rest: RestArgs) -> anyhow::Result<()> {
    let (_, config) = read_connector_file(&file)?;
    let class = config
        .get("connector.class")
        .with_context(|| format!("{} names no `connector.class`", file.display()))?;
    let path = format!("/connector-plugins/{}/config/validate", segment(class));
    let body = serde_json::to_value(config)?;
    let answer = rest
        .client()?
        .send(Method::PUT, &path, Some(&body))
        .await?
        .context("the worker's validation has no body")?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    match answer.get("error_count").and_then(Value::as_u64) {
        Some(0) => Ok(()),
        Some(errors) => bail!("{} has {errors} configuration error(s)", file.display()),
        None => bail!("the worker's validation has no error_count"),
    }
}

#[derive(clap::Args)]
pub struct StandaloneArgs {
    /// The worker's config: a TOML file with Kafka Connect's keys
    /// (`offset.storage.file.filename` is required; see docs/connect.md).
    worker_config: PathBuf,
    /// Connectors to start: Kafka's JSON ({"name", "config"}, or a flat
    /// config with `name`) or .properties files.
    connectors: Vec<PathBuf>,
    /// The broker (host:port). Default: the worker config's `bootstrap`
    /// or `bootstrap.servers`; without any, a broker runs in this process.
    #[arg(long, env = "SPOOL_BOOTSTRAP")]
    bootstrap: Option<String>,
    /// Where the broker running in this process keeps its data.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The gRPC listener of the broker running in this process, so other
    /// `spool` commands reach it (`off` for none).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: String,
}

async fn standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    let mut config = WorkerConfig::from_file(&args.worker_config)?;
    let connectors = args
        .connectors
        .iter()
        .map(|file| read_connector_file(file).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Kafka's worker id: the address its REST API is reached at.
    if let Some(address) = config
        .listeners
        .first()
        .map(String::as_str)
        .map(listener_address)
    {
        config.worker_id = address.map_err(|reason| anyhow!("listeners: {reason}"))?;
    }
    let bootstrap = args.bootstrap.clone().or_else(|| config.bootstrap.clone());
    let (client, node) = match bootstrap {
        Some(address) => {
            let client = Client::connect(&address)
                .await
                .with_context(|| format!("connecting to the broker at {address}"))?;
            (client, None)
        }
        None => {
            let node = embedded_broker(&args).await?;
            (node.client(), Some(node))
        }
    };
    let served = serve(client, config, connectors).await;
    if let Some(node) = node {
        node.shutdown().await?;
    }
    served?;
    eprintln!("spool connect worker stopped cleanly");
    Ok(())
}

/// A broker in this process, its data in `--data-dir`, reachable on
/// `--listen` by other `spool` commands (to create topics, say).
async fn embedded_broker(args: &StandaloneArgs) -> anyhow::Result<Node> {
    let mut config = NodeConfig::embedded(&args.data_dir);
    config.listen = args.listen.clone();
    let node = Node::start(config)
        .await
        .with_context(|| format!("starting a broker on {}", args.data_dir.display()))?;
    match node.grpc_address() {
        Some(address) => eprintln!(
            "broker in this process on {address}, with data in {}",
            args.data_dir.display()
        ),
        None => eprintln!(
            "broker in this process, with data in {}",
            args.data_dir.display()
        ),
    }
    Ok(node)
}

/// Runs the worker and its REST API until Ctrl-C or SIGTERM, then stops
/// both; a connector that cannot start stops the worker, as in Kafka.
async fn serve(
    client: Client,
    config: WorkerConfig,
    connectors: Vec<(String, ConfigMap)>,
) -> anyhow::Result<()> {
    let worker = Worker::start(client, config).await?;
    let rest = match RestServer::start(worker.clone()).await {
        Ok(rest) => rest,
        Err(e) => {
            worker.shutdown().await?;
            return Err(e.into());
        }
    };
    for address in rest.addresses() {
        eprintln!("spool connect REST API on http://{address}");
    }
    let mut started = Ok(());
    for (name, config) in connectors {
        if let Err(e) = worker.add_connector(&name, config).await {
            started = Err(anyhow::Error::from(e).context(format!("starting connector {name}")));
            break;
        }
        eprintln!("connector {name} started");
    }
    if started.is_ok() {
        shutdown_signal().await;
    }
    let stopped = rest.stop().await;
    worker.shutdown().await?;
    stopped?;
    started
}

#[derive(clap::Args)]
pub struct DistributedArgs {
    /// The worker's config: a TOML file with Kafka Connect's keys
    /// (`group.id`, `config.storage.topic`, `status.storage.topic`,
    /// `offset.storage.topic`, `listeners`, ...; see docs/connect.md).
    worker_config: PathBuf,
    /// The broker (host:port). Default: the worker config's `bootstrap`
    /// or `bootstrap.servers`, else 127.0.0.1:9292. A distributed worker
    /// runs no broker of its own: the workers of a group share one.
    #[arg(long, env = "SPOOL_BOOTSTRAP")]
    bootstrap: Option<String>,
}

async fn distributed(args: DistributedArgs) -> anyhow::Result<()> {
    let mut config = DistributedConfig::from_file(&args.worker_config)?;
    // Bound first, so the worker's id is the address its REST API is
    // reached at (Kafka's worker id), a port the system chose included.
    let listeners = RestListeners::bind(&config.worker).await?;
    if let Some(address) = listeners.addresses().first() {
        config.worker.worker_id = address.to_string();
    }
    let bootstrap = args
        .bootstrap
        .or_else(|| config.worker.bootstrap.clone())
        .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string());
    let client = Client::connect(&bootstrap)
        .await
        .with_context(|| format!("connecting to the broker at {bootstrap}"))?;
    let group = config.worker.group_id.clone();
    let worker_id = config.worker.worker_id.clone();
    let worker = DistributedWorker::start(client, config).await?;
    let rest = RestServer::serve(listeners, worker.clone());
    for address in rest.addresses() {
        eprintln!("spool connect REST API on http://{address}");
    }
    eprintln!("spool connect distributed worker {worker_id} in group {group}");
    let ended = tokio::select! {
        () = shutdown_signal() => Ok(()),
        finished = worker.finished() => match finished {
            Ok(()) => Err(anyhow!("the worker stopped")),
            Err(e) => Err(anyhow::Error::from(e).context("the worker failed")),
        },
    };
    let stopped = rest.stop().await;
    worker.shutdown().await?;
    stopped?;
    ended?;
    eprintln!("spool connect worker stopped cleanly");
    Ok(())
}
