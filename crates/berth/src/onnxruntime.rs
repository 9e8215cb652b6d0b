//! Installing ONNX Runtime for `berth/onnx` when none is found: the library of the PyPI
//! `onnxruntime` wheel, fetched with python3's pip into `<data-dir>/onnxruntime/` — by
//! `berth install-onnxruntime`, or by the server itself the first time a `berth/onnx` instance
//! needs it (unless `--offline`).

use anyhow::Context;
use berth_instances::{BoxFuture, Prerequisite, Provided};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The onnxruntime release berth installs for itself.
const ONNXRUNTIME_VERSION: &str = "1.32.0";

/// Makes sure `berth/onnx` workers will find ONNX Runtime: if no library is found, installs the
/// PyPI wheel's library into `<data-dir>/onnxruntime/` with python3's pip.
pub fn ensure_installed(data_dir: &Path) -> anyhow::Result<()> {
    if let Ok(found) = berth_onnx::library::find(Some(data_dir)) {
        tracing::info!(library = %found.path.display(), how = found.how, "ONNX Runtime found");
        return Ok(());
    }
    let target = data_dir.join("onnxruntime");
    tracing::info!(version = ONNXRUNTIME_VERSION, dir = %target.display(), "ONNX Runtime not found; installing it with pip");
    let download = data_dir.join("onnxruntime-download");
    let _ = std::fs::remove_dir_all(&download);
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:", "--target"])
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .arg(&download)
        .arg(format!("onnxruntime=={ONNXRUNTIME_VERSION}"))
        .status()
        .context("running python3 -m pip to install ONNX Runtime")?;
    anyhow::ensure!(status.success(), "pip could not install onnxruntime=={ONNXRUNTIME_VERSION}: {}", berth_onnx::library::INSTALL_HINT);
    std::fs::create_dir_all(&target)?;
    for entry in std::fs::read_dir(download.join("onnxruntime").join("capi"))? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime")) {
            std::fs::copy(&path, target.join(path.file_name().unwrap_or_default()))?;
        }
    }
    let _ = std::fs::remove_dir_all(&download);
    let found = berth_onnx::library::find(Some(data_dir)).map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!(library = %found.path.display(), "ONNX Runtime installed");
    Ok(())
}

/// The server's side: before a `berth/onnx` instance starts, ONNX Runtime is found, or
/// installed once (one install at a time, whatever number of instances wait for it). The
/// library's path goes to the workers as berth's own variable: they never look it up themselves.
pub struct OnnxRuntimeInstaller {
    data_dir: PathBuf,
    /// `--offline`: never install.
    offline: bool,
    ready: std::sync::OnceLock<Provided>,
    installing: tokio::sync::Mutex<()>,
}

impl OnnxRuntimeInstaller {
    pub fn new(data_dir: PathBuf, offline: bool) -> Self {
        OnnxRuntimeInstaller { data_dir, offline, ready: std::sync::OnceLock::new(), installing: tokio::sync::Mutex::new(()) }
    }

    async fn ensure_now(&self, progress: &(dyn Fn(String) + Send + Sync)) -> Result<Provided, String> {
        if let Some(ready) = self.ready.get() {
            return Ok(ready.clone());
        }
        let _one_at_a_time = self.installing.lock().await;
        if let Some(ready) = self.ready.get() {
            return Ok(ready.clone());
        }
        let dir = self.data_dir.clone();
        let mut found = tokio::task::spawn_blocking(move || berth_onnx::library::find(Some(&dir))).await.map_err(|e| e.to_string())?;
        if let Err(missing) = &found {
            // A library named explicitly is the operator's choice: not replaced by an install.
            if ["BERTH_ORT_DYLIB", "ORT_DYLIB_PATH"].iter().any(|v| std::env::var_os(v).is_some_and(|p| !p.is_empty())) {
                return Err(missing.to_string());
            }
            if self.offline {
                return Err(format!(
                    "berth/onnx needs ONNX Runtime, which was not found, and berth is --offline so it installs nothing: {}",
                    berth_onnx::library::INSTALL_HINT
                ));
            }
            progress(format!("Installing ONNX Runtime {ONNXRUNTIME_VERSION} for berth/onnx with python3's pip (first use only)"));
            let dir = self.data_dir.clone();
            tokio::task::spawn_blocking(move || ensure_installed(&dir))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("berth/onnx needs ONNX Runtime, which was not found, and installing it failed: {e:#}"))?;
            progress("ONNX Runtime installed".to_string());
            let dir = self.data_dir.clone();
            found = tokio::task::spawn_blocking(move || berth_onnx::library::find(Some(&dir))).await.map_err(|e| e.to_string())?;
        }
        let library =
            found.map_err(|e| e.to_string())?.path.canonicalize().map_err(|e| format!("ONNX Runtime's library cannot be resolved: {e}"))?;
        let provided = Provided {
            environment: vec![("BERTH_ORT_DYLIB".to_string(), library.display().to_string())],
            // Its directory: ONNX Runtime loads its provider libraries from beside itself.
            reads: library.parent().map(Path::to_path_buf).into_iter().collect(),
        };
        Ok(self.ready.get_or_init(|| provided).clone())
    }
}

impl Prerequisite for OnnxRuntimeInstaller {
    fn ensure<'a>(&'a self, progress: &'a (dyn Fn(String) + Send + Sync)) -> BoxFuture<'a, Result<Provided, String>> {
        Box::pin(self.ensure_now(progress))
    }
}
