//! The `berth` command: the server and its operator commands.

mod cli;
mod demo;
mod listener;
mod metrics_history;
mod onnxruntime;
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
    /// Install ONNX Runtime (for berth/onnx) into the data directory with python3's pip, unless
    /// one is found already.
    InstallOnnxruntime {
        /// The data directory berth serves from.
        #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
        data_dir: std::path::PathBuf,
    },
    /// A built-in image's worker process (berth starts these itself).
    #[command(hide = true, subcommand)]
    Worker(worker::Worker),
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
        Command::InstallOnnxruntime { data_dir } => install_onnxruntime(&data_dir),
        Command::Endpoints { server } => cli::endpoints(server),
        Command::Invoke { server, args } => cli::invoke(server, args),
        Command::Weights { server, args } => cli::weights(server, args),
        Command::Logs { server, args } => cli::logs(server, args),
        Command::Events { server, args } => cli::events(server, args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
