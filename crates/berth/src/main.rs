//! The `berth` command: the server and its operator commands.

mod background;
mod cli;
mod cli_reference;
mod cluster;
mod demo;
mod fetch;
mod forwarding;
mod listener;
mod metrics_history;
mod model_loader;
mod onnxruntime;
mod replication;
mod security;
mod serve;
mod webhook;
mod worker;

use clap::{Parser, Subcommand};

/// `berth --version`: the version and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BERTH_COMMIT"), ")");

#[derive(Parser)]
#[command(
    name = "berth",
    version = VERSION,
    about = "Self-hosted model hosting that speaks Amazon SageMaker's hosting API",
    after_help = "Exit status: 0 on success, 1 when the command failed (the reason is on stderr), 2 when its arguments are wrong.\nNO_COLOR (set and not empty) turns colored output off."
)]
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
    /// Load-test an endpoint: open loop at `--rate` requests a second, or `--users` users, for
    /// `--duration` seconds, with `--payload` as the body; latency percentiles at the end.
    Loadtest {
        #[command(flatten)]
        server: cli::Server,
        #[command(flatten)]
        args: cli::LoadtestArgs,
    },
    /// Wait until an endpoint (or, with `--component`, an inference component) is InService;
    /// exit status 1 when it fails or the timeout passes.
    Wait {
        #[command(flatten)]
        server: cli::Server,
        #[command(flatten)]
        args: cli::WaitArgs,
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
    PreparePython(PreparePythonArgs),
    /// Fetch a model's data into a directory under berth's archive rules (the Kubernetes
    /// backend's init container runs this in each instance's pod).
    FetchModel(fetch::FetchArgs),
    /// The sidecar of a multi-model instance's pod: fetches the models berth asks for into the
    /// directory the model container loads them from (berth starts it in each such pod).
    #[command(hide = true)]
    ModelLoader(model_loader::LoaderArgs),
    /// A built-in image's worker process (berth starts these itself).
    #[command(hide = true, subcommand)]
    Worker(worker::Worker),
    /// Print a shell's completion script, e.g. `berth completions bash > /etc/bash_completion.d/berth`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print berth's man page (roff), e.g. `berth man > /usr/local/share/man/man1/berth.1`.
    Man,
    /// Print every command and flag as Markdown (the documentation's command-line reference).
    #[command(hide = true)]
    CliReference,
}

/// Whether to color what goes to stderr: a terminal, and no `NO_COLOR` (https://no-color.org).
pub(crate) fn colors() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `berth prepare-python`.
#[derive(clap::Args, Debug)]
struct PreparePythonArgs {
    /// The data directory berth serves from (environments are made under its `python/`).
    #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
    data_dir: std::path::PathBuf,
    /// Make environments under this directory instead of the data directory's `python/`.
    #[arg(long)]
    environments: Option<std::path::PathBuf>,
    /// A framework image (e.g. 683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3) or berth/python.
    #[arg(long)]
    image: String,
    /// A requirements.txt the model adds.
    #[arg(long, conflicts_with_all = ["model_dir", "code_dir"])]
    requirements: Option<std::path::PathBuf>,
    /// The model's directory: its `code/requirements.txt`, if any, is added (unless --code-dir).
    #[arg(long)]
    model_dir: Option<std::path::PathBuf>,
    /// The handler's source directory (SAGEMAKER_SUBMIT_DIRECTORY, unpacked): its
    /// `requirements.txt`, if any, is added.
    #[arg(long)]
    code_dir: Option<std::path::PathBuf>,
    /// Also make this path a symbolic link to the environment (the Kubernetes backend's pods
    /// serve with PATH/bin/python).
    #[arg(long)]
    link: Option<std::path::PathBuf>,
    /// The interpreter environments are made from.
    #[arg(long, env = "BERTH_PYTHON", default_value = "python3")]
    python: String,
    /// Use only an environment made earlier; fail if there is none.
    #[arg(long, env = "BERTH_OFFLINE")]
    offline: bool,
}

fn prepare_python(args: PreparePythonArgs) -> anyhow::Result<()> {
    let image = &args.image;
    let framework =
        berth_python::Framework::of_image(image).ok_or_else(|| anyhow::anyhow!("{image} is not served by berth's Python runtime"))?;
    let root = match args.environments {
        Some(dir) => dir,
        None => args.data_dir.join("python"),
    };
    std::fs::create_dir_all(&root)?;
    let environments = berth_python::PythonEnvironments::new(root.canonicalize()?, args.python, args.offline);
    let code_dir = args.model_dir.as_deref().and_then(|model| berth_python::code_dir(args.code_dir.as_deref(), model));
    let requirements = args.requirements.or_else(|| berth_python::requirements_of(code_dir.as_deref().or(args.code_dir.as_deref())));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let spinner = cli::spinner::Spinner::start(&format!("preparing the Python environment of {image}"));
    let progress = |step: String| spinner.say(&step);
    let prepared = runtime.block_on(environments.prepare(&framework, requirements.as_deref(), &progress)).map_err(anyhow::Error::msg);
    let prepared = match prepared {
        Ok(p) => {
            spinner.finish("Python environment ready");
            p
        }
        Err(e) => {
            spinner.finish("Python environment not made");
            return Err(e);
        }
    };
    if let Some(note) = prepared.note {
        eprintln!("{note}");
    }
    let environment = prepared.python.parent().and_then(std::path::Path::parent).unwrap_or(&root);
    if let Some(link) = &args.link {
        // Relative where the link sits beside the environment, so that the directory can move.
        let target = match (environment.parent(), link.parent()) {
            (Some(a), Some(b)) if a == b.canonicalize().unwrap_or_default() => environment.file_name().map(Into::into).unwrap_or_default(),
            _ => environment.to_path_buf(),
        };
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&target, link).map_err(|e| anyhow::anyhow!("cannot link {}: {e}", link.display()))?;
    }
    println!("{}", prepared.python.display());
    Ok(())
}

fn install_onnxruntime(data_dir: &std::path::Path) -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(colors()).init();
    std::fs::create_dir_all(data_dir)?;
    let spinner = cli::spinner::Spinner::start("looking for ONNX Runtime, installing it with pip if none is found");
    let installed = onnxruntime::ensure_installed(&data_dir.canonicalize()?);
    spinner.finish(if installed.is_ok() { "ONNX Runtime ready" } else { "ONNX Runtime not installed" });
    installed
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Worker(worker) => worker::run(worker),
        Command::FetchModel(args) => fetch::run(args),
        Command::ModelLoader(args) => model_loader::run(args),
        Command::InstallOnnxruntime { data_dir } => install_onnxruntime(&data_dir),
        Command::PreparePython(args) => prepare_python(args),
        Command::Endpoints { server } => cli::endpoints(server),
        Command::Invoke { server, args } => cli::invoke(server, args),
        Command::Loadtest { server, args } => cli::loadtest(server, args),
        Command::Weights { server, args } => cli::weights(server, args),
        Command::Wait { server, args } => cli::wait(server, args),
        Command::Ab { server, args } => cli::ab(server, args),
        Command::Logs { server, args } => cli::logs(server, args),
        Command::Events { server, args } => cli::events(server, args),
        Command::Nodes { store, json } => cli::nodes(&store, json),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "berth", &mut script);
            print_generated(&script)
        }
        Command::CliReference => print_generated(cli_reference::markdown(&<Cli as clap::CommandFactory>::command()).as_bytes()),
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut page)
                .map_err(anyhow::Error::from)
                .and_then(|()| print_generated(&page))
        }
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

/// Writes generated text to stdout. A reader that closes the pipe early (`| head`, `| grep -q`) is
/// not an error: the generators would otherwise panic on the broken pipe.
fn print_generated(text: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
