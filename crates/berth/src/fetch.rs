//! `berth fetch-model`: the model data of an instance, fetched into a directory by the same code
//! and under the same archive rules as berth's own model directories (S3 objects and prefixes,
//! archives unpacked with their size, count and expansion limits, nothing outside the
//! directory). The Kubernetes backend runs it as each pod's init container, into the volume the
//! model container sees at /opt/ml/model.

use berth_instances::{AllowedRoots, ExtractLimits, ModelArtifacts, ModelSource};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// The directory the model's files end up in (made if missing; must be empty).
    #[arg(long)]
    into: PathBuf,
    /// A ModelDataUrl: an s3:// archive, object or prefix (ending in /).
    #[arg(long, group = "source", required = true)]
    url: Option<String>,
    /// ModelDataSource with S3DataType S3Prefix: every object under the prefix.
    #[arg(long, group = "source")]
    s3_prefix: Option<String>,
    /// ModelDataSource with S3DataType S3Object: one object, a gzipped tar with --gzip.
    #[arg(long, group = "source")]
    s3_object: Option<String>,
    #[arg(long, requires = "s3_object")]
    gzip: bool,
    #[command(flatten)]
    limits: FetchLimits,
}

/// The archive rules' limits of a fetch (berth's own `--max-model-*` flags pass them on).
#[derive(clap::Args, Debug, Clone)]
pub struct FetchLimits {
    /// Largest total size in bytes the model may unpack to.
    #[arg(long, default_value_t = 20 * 1024 * 1024 * 1024)]
    max_model_bytes: u64,
    /// Most files the model may contain.
    #[arg(long, default_value_t = 100_000)]
    max_model_files: u64,
    /// Most bytes a compressed archive may unpack to per compressed byte.
    #[arg(long, default_value_t = 200)]
    max_model_expansion: u64,
    /// Longest the download and unpacking may take, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}

impl FetchLimits {
    pub fn extract(&self) -> ExtractLimits {
        ExtractLimits {
            max_total_bytes: self.max_model_bytes,
            max_entries: self.max_model_files,
            max_ratio: self.max_model_expansion.max(1),
            deadline: None,
        }
    }
}

pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
    let source = match (args.url, args.s3_prefix, args.s3_object) {
        (Some(url), _, _) => ModelSource::Url(url),
        (_, Some(prefix), _) => ModelSource::S3Prefix(prefix),
        (_, _, Some(uri)) => ModelSource::S3Object { uri, gzip: args.gzip },
        _ => anyhow::bail!("give the model data with --url, --s3-prefix or --s3-object"),
    };
    std::fs::create_dir_all(&args.into).map_err(|e| anyhow::anyhow!("cannot make {}: {e}", args.into.display()))?;
    if std::fs::read_dir(&args.into)?.next().is_some() {
        anyhow::bail!("{} is not empty", args.into.display());
    }
    // Fetched beside its destination (same file system), then moved into it.
    let staging = args.into.join(".berth-fetch");
    let limits = args.limits.extract();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let fetched = runtime.block_on(async {
        // No file:// roots: the model data comes from S3, never from the pod's own files.
        let artifacts = ModelArtifacts::new(staging.clone(), limits, AllowedRoots::default());
        let dir = artifacts.prepare(source.as_data(), Duration::from_secs(args.limits.timeout)).await?;
        let moved = move_children(dir.path(), &args.into);
        drop(dir);
        moved
    });
    let _ = std::fs::remove_dir_all(&staging);
    let files = fetched.map_err(|e| anyhow::anyhow!("could not fetch the model data: {e}"))?;
    // The model's container may run as any user: it reads what berth's user fetched.
    readable_by_all(&args.into)?;
    eprintln!("berth: fetched {files} model files into {}", args.into.display());
    Ok(())
}

/// Moves what `from` holds into `to` (renames: the same file system); returns the files moved.
pub(crate) fn move_children(from: &Path, to: &Path) -> anyhow::Result<usize> {
    let mut moved = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::rename(entry.path(), to.join(entry.file_name()))?;
        moved += 1;
    }
    Ok(moved)
}

/// Directories 0755 and files 0644 under `dir` (symbolic links are never followed).
pub(crate) fn readable_by_all(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755))?;
            readable_by_all(&entry.path())?;
        } else if kind.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}
