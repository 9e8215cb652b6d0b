//! The built-in `berth/python` image: framework models as SageMaker users ship them (a model
//! archive, maybe an `inference.py` with `model_fn` and friends), served without Docker.
//!
//! [`Framework`] recognises AWS's framework serving images (and `berth/python`) and says which
//! packages serve them; [`PythonEnvironments`] makes and caches a virtualenv per package set
//! (in the server process, before an instance starts); [`server::run`] is the worker process
//! (`berth worker python serve`): HTTP in Rust in front of Python processes that run
//! `runtime.py`, the SageMaker inference toolkit's handler contract.

#![forbid(unsafe_code)]

mod backend;
mod environment;
pub mod server;

pub use backend::PythonBackend;
pub use berth_domain::{framework_of, Framework, FrameworkKind};
pub use environment::{pip_may_see, PreparedEnvironment, PythonEnvironments};
pub use server::PythonWorkerSettings;

/// The handler's source directory, as the inference toolkit finds it: the unpacked
/// `SAGEMAKER_SUBMIT_DIRECTORY` where one is given, else the model archive's `code/`.
pub fn code_dir(submitted: Option<&std::path::Path>, model_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    match submitted {
        Some(dir) => Some(dir.to_path_buf()),
        None => Some(model_dir.join("code")).filter(|d| d.is_dir()),
    }
}

/// The `requirements.txt` a model's source directory adds to its environment, if it has one.
pub fn requirements_of(code_dir: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    code_dir.map(|d| d.join("requirements.txt")).filter(|r| r.is_file())
}

/// Creates a directory and its missing parents, readable by berth's user only (0700).
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
