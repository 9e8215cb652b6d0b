//! Finding the ONNX Runtime shared library without the user's help — the server's lookup, in the
//! operator's environment; a `berth/onnx` worker is given the path berth found and looks for nothing.
//!
//! Order: an explicit path (`BERTH_ORT_DYLIB`, then `ORT_DYLIB_PATH`, ONNX Runtime's own
//! variable); the `onnxruntime` package of the `python3` on `PATH`; a copy under berth's data
//! directory (`<data-dir>/onnxruntime/`). The PyPI wheel ships `libonnxruntime.so.<version>`
//! in `onnxruntime/capi/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What to tell a person when no library is found.
pub const INSTALL_HINT: &str = "run `berth install-onnxruntime --data-dir <berth's data dir>`, \
     or install it for the python3 on PATH (`python3 -m pip install onnxruntime`), or set BERTH_ORT_DYLIB to the path of libonnxruntime.so";

/// Where the library was found, for logs and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub how: &'static str,
}

/// ONNX Runtime is not where berth looks; the message says where it looked and how to get it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

/// Finds the library; `data_dir` is berth's data directory, if known.
pub fn find(data_dir: Option<&Path>) -> Result<Found, NotFound> {
    look(data_dir).map_err(NotFound)
}

fn look(data_dir: Option<&Path>) -> Result<Found, String> {
    for var in ["BERTH_ORT_DYLIB", "ORT_DYLIB_PATH"] {
        if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            let path = PathBuf::from(p);
            return if path.is_file() {
                Ok(Found { path, how: if var == "BERTH_ORT_DYLIB" { "BERTH_ORT_DYLIB" } else { "ORT_DYLIB_PATH" } })
            } else {
                Err(format!("{var} is set to {}, which is not a file", path.display()))
            };
        }
    }
    if let Some(dir) = python_package_dir() {
        if let Some(path) = library_in(&dir.join("capi")) {
            return Ok(Found { path, how: "python3's onnxruntime package" });
        }
    }
    if let Some(path) = data_dir.and_then(|d| library_in(&d.join("onnxruntime"))) {
        return Ok(Found { path, how: "berth's data directory" });
    }
    Err(format!("ONNX Runtime was not found: {INSTALL_HINT}"))
}

/// The directory of the `onnxruntime` Python package, asked of `python3` itself.
fn python_package_dir() -> Option<PathBuf> {
    let out = Command::new("python3").args(["-c", "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(dir.trim()))
}

/// `libonnxruntime.so` or the newest `libonnxruntime.so.<version>` in `dir`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so.")))
        .collect();
    candidates.sort();
    candidates.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_versioned_library_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(library_in(dir.path()), None);
        std::fs::write(dir.path().join("libonnxruntime_providers_shared.so"), b"").unwrap();
        assert_eq!(library_in(dir.path()), None);
        std::fs::write(dir.path().join("libonnxruntime.so.1.32.0"), b"").unwrap();
        assert_eq!(library_in(dir.path()), Some(dir.path().join("libonnxruntime.so.1.32.0")));
    }
}
