//! Installing ONNX Runtime for `berth/onnx` when none is found: the library of the PyPI
//! `onnxruntime` wheel, fetched with python3's pip into `<data-dir>/onnxruntime/`.

use anyhow::Context;
use std::path::Path;
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
