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
pub use environment::{PreparedEnvironment, PythonEnvironments};
pub use server::PythonWorkerSettings;

/// Creates a directory and its missing parents, readable by berth's user only (0700).
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
