//! `berth serve`'s flags and their environment variables.

use berth_instances::DockerEngine;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub(super) listen: SocketAddr,
    /// Directory for the state database, unpacked models and instance logs.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
    pub(super) data_dir: PathBuf,
    /// Where berth keeps its state: unset, a SQLite database in the data directory; or a
    /// PostgreSQL database, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (the password may
    /// come from PGPASSWORD instead, kept out of the process list).
    #[arg(long, env = "BERTH_STORE")]
    pub(super) store: Option<String>,
    /// This server's name in the cluster of servers sharing a PostgreSQL store (default: the
    /// host name); each server of a cluster has its own.
    #[arg(long, env = "BERTH_NODE_NAME")]
    pub(super) node_name: Option<String>,
    /// The URL the other servers of a cluster reach this one at (default: the listen address).
    /// Needed when berth listens on every address (0.0.0.0): in a pod, `http://$(POD_IP):8080`.
    #[arg(long, env = "BERTH_ADVERTISE_URL")]
    pub(super) advertise_url: Option<String>,
    /// Region reported in ARNs.
    #[arg(long, env = "BERTH_REGION", default_value = "us-east-1")]
    pub(super) region: String,
    /// Account id reported in ARNs.
    #[arg(long, env = "BERTH_ACCOUNT_ID", default_value = "123456789012")]
    pub(super) account_id: String,
    /// Seconds an instance may take to pass `/ping` when the variant does not set
    /// ContainerStartupHealthCheckTimeoutInSeconds.
    #[arg(long, env = "BERTH_STARTUP_TIMEOUT", default_value_t = 600)]
    pub(super) startup_timeout: u64,
    /// Seconds a container may take to answer one invocation (SageMaker: 60).
    #[arg(long, env = "BERTH_INVOCATION_TIMEOUT", default_value_t = 60)]
    pub(super) invocation_timeout: u64,
    /// Seconds in-flight requests get to finish when an instance is retired.
    #[arg(long, env = "BERTH_DRAIN_TIMEOUT", default_value_t = 60)]
    pub(super) drain_timeout: u64,
    /// Most worker instances running at once, across all endpoints.
    #[arg(long, env = "BERTH_MAX_INSTANCES", default_value_t = 64)]
    pub(super) max_instances: usize,
    /// Most endpoints.
    #[arg(long, env = "BERTH_MAX_ENDPOINTS", default_value_t = 500)]
    pub(super) max_endpoints: usize,
    /// Most endpoint configurations.
    #[arg(long, env = "BERTH_MAX_ENDPOINT_CONFIGS", default_value_t = 10_000)]
    pub(super) max_endpoint_configs: usize,
    /// Most CloudWatch metric alarms.
    #[arg(long, env = "BERTH_MAX_ALARMS", default_value_t = 10_000)]
    pub(super) max_alarms: usize,
    /// Most models.
    #[arg(long, env = "BERTH_MAX_MODELS", default_value_t = 10_000)]
    pub(super) max_models: usize,
    /// Largest total size in bytes a model archive may unpack to.
    #[arg(long, env = "BERTH_MAX_MODEL_BYTES", default_value_t = 20 * 1024 * 1024 * 1024)]
    pub(super) max_model_bytes: u64,
    /// Most files a model archive may contain.
    #[arg(long, env = "BERTH_MAX_MODEL_FILES", default_value_t = 100_000)]
    pub(super) max_model_files: u64,
    /// Most bytes a compressed model archive may unpack to per compressed byte (checked once it
    /// unpacks to more than 64 MiB).
    #[arg(long, env = "BERTH_MAX_MODEL_EXPANSION", default_value_t = 200)]
    pub(super) max_model_expansion: u64,
    /// The Docker engine that runs container images: `auto` (DOCKER_HOST, else the default unix
    /// socket), `off`, or its URL (unix:///var/run/docker.sock, tcp://host:2375).
    #[arg(long, env = "BERTH_DOCKER", default_value = "auto", value_parser = DockerEngine::parse)]
    pub(super) docker: DockerEngine,
    /// What runs instances: `local` (processes and the Docker engine on this machine) or
    /// `kubernetes` (each instance a pod in --kubernetes-namespace; in-cluster configuration,
    /// else KUBECONFIG or ~/.kube/config).
    #[arg(long, env = "BERTH_BACKEND", default_value = "local", value_parser = ["local", "kubernetes"])]
    pub(super) backend: String,
    /// The namespace instances' pods are made in (default: berth's own pod's, or the
    /// kubeconfig context's).
    #[arg(long, env = "BERTH_KUBERNETES_NAMESPACE")]
    pub(super) kubernetes_namespace: Option<String>,
    /// berth's own image, which `berth/onnx` instances and each pod's model-data init container run.
    #[arg(long, env = "BERTH_KUBERNETES_IMAGE", default_value = concat!("berth:", env!("CARGO_PKG_VERSION")))]
    pub(super) kubernetes_image: String,
    /// `imagePullPolicy` of instances' containers: Always, IfNotPresent or Never (default:
    /// Kubernetes' own for each image's tag).
    #[arg(long, env = "BERTH_KUBERNETES_IMAGE_PULL_POLICY", value_parser = ["Always", "IfNotPresent", "Never"])]
    pub(super) kubernetes_image_pull_policy: Option<String>,
    /// `deployment/NAME`: berth's own Deployment, set as the owner of every pod it makes, so
    /// that deleting berth deletes them.
    #[arg(long, env = "BERTH_KUBERNETES_OWNER")]
    pub(super) kubernetes_owner: Option<String>,
    /// A Secret in the namespace whose keys the model-data init container gets as its
    /// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY for S3).
    #[arg(long, env = "BERTH_KUBERNETES_MODEL_SECRET")]
    pub(super) kubernetes_model_secret: Option<String>,
    /// How AWS's framework images (scikit-learn, XGBoost, PyTorch) run as pods: `runtime`
    /// (berth's Python runtime in berth's image, the framework's packages from the package
    /// registry) or `pull` (the image itself, for a cluster that can pull from AWS's ECR).
    #[arg(long, env = "BERTH_KUBERNETES_FRAMEWORK_IMAGES", default_value = "runtime", value_parser = ["runtime", "pull"])]
    pub(super) kubernetes_framework_images: String,
    /// Whether an image the Docker engine lacks is pulled from its registry: `never` (only
    /// images built or loaded on this machine run) or `missing`.
    #[arg(long, env = "BERTH_DOCKER_PULL", default_value = "never", value_parser = ["never", "missing"])]
    pub(super) docker_pull: String,
    /// Whether berth's Python runtime serves `berth/python` and AWS's framework images
    /// (scikit-learn, XGBoost) the Docker engine does not hold: `on` runs the model's own code
    /// (its handler script and pickled model) as berth's user, so it is `off` unless allowed.
    /// With `--backend kubernetes` it runs in the model's own pods, always allowed.
    #[arg(long, env = "BERTH_PYTHON_RUNTIME", default_value = "off", value_parser = ["off", "on"])]
    pub(super) python_runtime: String,
    /// The Python interpreter the runtime's environments are made from (3.8 or newer, with venv).
    #[arg(long, env = "BERTH_PYTHON", default_value = "python3")]
    pub(super) python: String,
    /// No package registry: only Python environments made earlier (`berth prepare-python`) are
    /// used, and ONNX Runtime is not installed when missing (`berth install-onnxruntime`).
    #[arg(long, env = "BERTH_OFFLINE")]
    pub(super) offline: bool,
    /// A directory `exec:` programs may be run from (repeatable; `BERTH_EXEC_ROOTS` takes a
    /// `:`-separated list). Without one, `exec:` images are refused.
    #[arg(long = "exec-root", env = "BERTH_EXEC_ROOTS", value_delimiter = ':')]
    pub(super) exec_roots: Vec<PathBuf>,
    /// A directory `file://` model data, capture destinations and ground-truth locations may be
    /// under (repeatable; `BERTH_FILE_ROOTS` takes a `:`-separated list). Without one, `file://`
    /// is refused.
    #[arg(long = "file-root", env = "BERTH_FILE_ROOTS", value_delimiter = ':')]
    pub(super) file_roots: Vec<PathBuf>,
    /// Whether local workers (`exec:` programs, `berth/onnx`, the Python runtime and its package
    /// installs) start sandboxed: `on` confines what they read, write, run and signal as far as
    /// the kernel allows (Landlock, no capabilities, no new privileges, seccomp); `off` runs them
    /// with all of berth's user's rights.
    #[arg(long, env = "BERTH_WORKER_SANDBOX", default_value = "on", value_parser = ["on", "off"])]
    pub(super) worker_sandbox: String,
    /// A directory sandboxed workers may also read and run programs from (repeatable;
    /// `BERTH_WORKER_READ` takes a `:`-separated list): an interpreter installed outside the
    /// system's directories and the installations on PATH, say.
    #[arg(long = "worker-read", env = "BERTH_WORKER_READ", value_delimiter = ':')]
    pub(super) worker_read: Vec<PathBuf>,
    /// A URL each registry change (a model package's approval) is POSTed to, as JSON in the
    /// shape EventBridge delivers SageMaker's "Model Package State Change".
    #[arg(long, env = "BERTH_REGISTRY_WEBHOOK")]
    pub(super) registry_webhook: Option<String>,
    /// Deploy only approved model packages: `CreateModel` naming a version that is not
    /// `Approved` is refused.
    #[arg(long, env = "BERTH_REQUIRE_APPROVED_PACKAGES")]
    pub(super) require_approved_packages: bool,
    /// A JSON file of instance prices in USD per hour (`{"ml.c5.large": 0.085, ...}`) for the
    /// costs inference recommendations report; over AWS's on-demand list prices (us-east-1),
    /// which berth knows for common instance types.
    #[arg(long, env = "BERTH_INSTANCE_PRICES")]
    pub(super) instance_prices: Option<PathBuf>,
    /// Size in bytes at which an instance's log is rotated (one older file is kept).
    #[arg(long, env = "BERTH_LOG_MAX_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub(super) log_max_bytes: u64,
    /// The ONNX Runtime library (libonnxruntime.so) for `berth/onnx`; found by itself when
    /// unset (python3's onnxruntime package, or <data-dir>/onnxruntime/).
    #[arg(long, env = "BERTH_ORT_DYLIB")]
    pub(super) onnxruntime: Option<PathBuf>,
    /// Days of per-minute metric history kept (per-second history covers the last hour).
    #[arg(long, env = "BERTH_METRICS_RETENTION_DAYS", default_value_t = 15)]
    pub(super) metrics_retention_days: u64,
    /// Seconds of metrics an autoscaling decision looks at (target tracking's window;
    /// SageMakerVariantInvocationsPerInstance is still per minute).
    #[arg(long, env = "BERTH_SCALING_WINDOW", default_value_t = 60)]
    pub(super) scaling_window: u64,
    /// Seconds a serverless variant's instance may sit idle before it stops (scale to zero).
    #[arg(long, env = "BERTH_SERVERLESS_IDLE", default_value_t = 300)]
    pub(super) serverless_idle: u64,
    /// Seconds between weight updates of endpoints with bandit routing or automatic promotion
    /// (tags `berth:routing`, `berth:auto-promote`).
    #[arg(long, env = "BERTH_BANDIT_INTERVAL", default_value_t = 10)]
    pub(super) bandit_interval: u64,
    /// Worker memory limits: `auto` puts each instance in a memory cgroup limited to its
    /// instance type's (or serverless size's) memory where the kernel lets berth create one;
    /// `off` only reports memory use.
    #[arg(long, env = "BERTH_MEMORY_LIMITS", default_value = "auto", value_parser = ["auto", "off"])]
    pub(super) memory_limits: String,
    /// Also deploy the demo: endpoint `demo`, two bundled iris models on `berth/onnx` at 1:1
    /// with data capture, and traffic with ground truth of its own (see --demo-traffic).
    #[arg(long, env = "BERTH_DEMO")]
    pub(super) demo: bool,
    /// With --demo: `on` sends the demo endpoint traffic and, a few seconds later, the true
    /// labels, so its A/B test decides within about a minute; `off` stays quiet.
    #[arg(long, env = "BERTH_DEMO_TRAFFIC", default_value = "on", value_parser = ["on", "off"])]
    pub(super) demo_traffic: String,
    /// Authentication: `none` accepts every request; `sigv4` checks AWS Signature Version 4 on
    /// the AWS APIs and HTTP basic auth on /metrics, /ui and /berth/v1, against the key pairs
    /// in --credentials-file.
    #[arg(long, env = "BERTH_AUTH", default_value = "none", value_parser = ["none", "sigv4"])]
    pub(super) auth: String,
    /// The principals for `--auth sigv4`: a file in the AWS shared-credentials format, each
    /// profile's aws_access_key_id and aws_secret_access_key being one key pair.
    #[arg(long, env = "BERTH_CREDENTIALS_FILE")]
    pub(super) credentials_file: Option<PathBuf>,
    /// Serve a non-loopback address without authentication anyway (anyone who reaches the
    /// port can then deploy and run models).
    #[arg(long, env = "BERTH_ALLOW_UNAUTHENTICATED")]
    pub(super) allow_unauthenticated: bool,
    /// TLS certificate chain (PEM); with --tls-key, berth serves HTTPS.
    #[arg(long, env = "BERTH_TLS_CERT", requires = "tls_key")]
    pub(super) tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for --tls-cert.
    #[arg(long, env = "BERTH_TLS_KEY", requires = "tls_cert")]
    pub(super) tls_key: Option<PathBuf>,
    /// A host name requests may carry in `Host` besides loopback names and the listen
    /// address (repeatable; `*` allows any, e.g. behind a proxy that checks it).
    #[arg(long = "allowed-host", env = "BERTH_ALLOWED_HOSTS", value_delimiter = ',')]
    pub(super) allowed_hosts: Vec<String>,
    /// Threads that serve connections, each with its own event loop (0: one per CPU core).
    #[arg(long, env = "BERTH_IO_THREADS", default_value_t = 0)]
    pub(super) io_threads: usize,
    /// Most connections open at once; more wait until one closes.
    #[arg(long, env = "BERTH_MAX_CONNECTIONS", default_value_t = 4096)]
    pub(super) max_connections: usize,
    /// Seconds a connection may take to send a request's headers (and a new connection its first request).
    #[arg(long, env = "BERTH_HEADER_TIMEOUT", default_value_t = 10)]
    pub(super) header_timeout: u64,
    /// Most bytes of request bodies held at once across all connections (a body that would pass
    /// it is refused with 503 ServiceUnavailable). Default: 1/8 of the machine's memory, between
    /// 64 MiB and 4 GiB.
    #[arg(long, env = "BERTH_MAX_BODY_MEMORY")]
    pub(super) max_body_memory: Option<u64>,
    /// Seconds a request body may take to arrive.
    #[arg(long, env = "BERTH_BODY_TIMEOUT", default_value_t = 60)]
    pub(super) body_timeout: u64,
    /// Seconds a keep-alive connection may wait for its next request.
    #[arg(long, env = "BERTH_IDLE_TIMEOUT", default_value_t = 60)]
    pub(super) idle_timeout: u64,
    /// Seconds connections get to finish their requests once berth is stopping.
    #[arg(long, env = "BERTH_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub(super) shutdown_timeout: u64,
    /// Most bytes of captured invocations held for the capture writer (beyond, captures are
    /// dropped, counted and reported; invocations are served as before). Default: 1/64 of the
    /// machine's memory, between 16 MiB and 1 GiB.
    #[arg(long, env = "BERTH_CAPTURE_BUFFER_BYTES")]
    pub(super) capture_buffer_bytes: Option<u64>,
    /// Log format: `text` or `json`. Verbosity follows RUST_LOG (default `info`).
    #[arg(long, env = "BERTH_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub(super) log_format: String,
}
