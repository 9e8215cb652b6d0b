//! The `berth` command: the server and its operator commands.

mod demo;
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
    /// A built-in image's worker process (berth starts these itself).
    #[command(hide = true, subcommand)]
    Worker(worker::Worker),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Worker(worker) => worker::run(worker),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
