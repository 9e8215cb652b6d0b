//! The `berth` command: the server and its operator commands.

mod background;
mod cli;
mod cluster;
mod demo;
mod fetch;
mod forwarding;
mod listener;
mod metrics_history;
mod onnxruntime;
mod replication;
mod security;
mod serve;
mod worker;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth", version, about = "Self-hosted model hosting that speaks Amazon SageMaker's hosting API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: SageMaker control plane and runtime on one port.
    Serve(Box<serve::ServeArgs>),
    /// List endpoints with their variants, weights, instances and recent requests per second.
    Endpoints {
        #[command(flatten)]
        server: cli::Server,
    },
    /// Invoke an endpoint with the request body from stdin.
    Invoke {
        #[command(flatten)]
        server: cli::Server,
        #[command(flatten)]
        args: cli::InvokeArgs,
    },
    /// Set variant weights at once, e.g. `berth weights demo Variant1=25 Variant2=75`.
    Weights {
        #[command(flatten)]
        server: cli::Server,
        #[command(flatten)]
        args: cli::WeightsArgs,
    },
    /// Print an endpoint's A/B test: each variant's traffic, labelled accuracy with its 95%
    /// interval, and the always-valid test's verdict.
    Ab {
        #[command(flatten)]
        server: cli::Server,
        #[command(flatten)]
        args: cli::AbArgs,
    },
    /// Print an endpoint's instance logs (`--follow` to keep printing).
    Logs {
        #[command(flatten)]
        server: cli::Server,
        #[command(flatten)]
        args: cli::LogsArgs,
    },
    /// Print endpoint events: status and weight changes, deployment steps, instance starts,
    /// crashes and restarts (`--follow` to keep printing).
    Events {
        #[command(flatten)]
        server: cli::Server,
        #[command(flatten)]
        args: cli::EventsArgs,
    },
    /// List the servers of the cluster on a PostgreSQL store: name, address, whether it leads
    /// (the others stand by), and when it was last heard from.
    Nodes {
        /// The cluster's store, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
        #[arg(long, env = "BERTH_STORE")]
        store: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Install ONNX Runtime (for berth/onnx) into the data directory with python3's pip, unless
    /// one is found already.
    InstallOnnxruntime {
        /// The data directory berth serves from.
        #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
        data_dir: std::path::PathBuf,
    },
    /// Make (or find cached) the Python environment berth's Python runtime serves an image with,
    /// and print its interpreter: warms the cache before deploying, and gives the exact
    /// framework version to train or pickle models with.
    PreparePython {
        /// The data directory berth serves from.
        #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
        data_dir: std::path::PathBuf,
        /// A framework image (e.g. 683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3) or berth/python.
        #[arg(long)]
        image: String,
        /// A requirements.txt the model adds.
        #[arg(long)]
        requirements: Option<std::path::PathBuf>,
        /// The interpreter environments are made from.
        #[arg(long, env = "BERTH_PYTHON", default_value = "python3")]
        python: String,
        /// Use only an environment made earlier; fail if there is none.
        #[arg(long, env = "BERTH_OFFLINE")]
        offline: bool,
    },
    /// Fetch a model's data into a directory under berth's archive rules (the Kubernetes
    /// backend's init container runs this in each instance's pod).
    FetchModel(fetch::FetchArgs),
    /// A built-in image's worker process (berth starts these itself).
    #[command(hide = true, subcommand)]
    Worker(worker::Worker),
}

fn prepare_python(
    data_dir: &std::path::Path,
    image: &str,
    requirements: Option<&std::path::Path>,
    python: String,
    offline: bool,
) -> anyhow::Result<()> {
    let framework =
        berth_python::Framework::of_image(image).ok_or_else(|| anyhow::anyhow!("{image} is not served by berth's Python runtime"))?;
    std::fs::create_dir_all(data_dir)?;
    let environments = berth_python::PythonEnvironments::new(data_dir.canonicalize()?.join("python"), python, offline);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let progress = |step: String| eprintln!("{step}");
    let prepared = runtime.block_on(environments.prepare(&framework, requirements, &progress)).map_err(anyhow::Error::msg)?;
    if let Some(note) = prepared.note {
        eprintln!("{note}");
    }
    println!("{}", prepared.python.display());
    Ok(())
}

fn install_onnxruntime(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).init();
    std::fs::create_dir_all(data_dir)?;
    onnxruntime::ensure_installed(&data_dir.canonicalize()?)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Worker(worker) => worker::run(worker),
        Command::FetchModel(args) => fetch::run(args),
        Command::InstallOnnxruntime { data_dir } => install_onnxruntime(&data_dir),
        Command::PreparePython { data_dir, image, requirements, python, offline } => {
            prepare_python(&data_dir, &image, requirements.as_deref(), python, offline)
        }
        Command::Endpoints { server } => cli::endpoints(server),
        Command::Invoke { server, args } => cli::invoke(server, args),
        Command::Weights { server, args } => cli::weights(server, args),
        Command::Ab { server, args } => cli::ab(server, args),
        Command::Logs { server, args } => cli::logs(server, args),
        Command::Events { server, args } => cli::events(server, args),
        Command::Nodes { store, json } => cli::nodes(&store, json),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote the server's messages, which may quote a model's output.
            eprintln!("berth: {}", cli::printable(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}
