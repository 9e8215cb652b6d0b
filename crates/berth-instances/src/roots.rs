//! The directories under which callers may name files on this machine: `exec:` programs
//! (`--exec-root`) and `file://` model data, capture destinations and label locations
//! (`--file-root`). A path is accepted only when it lies under a root both as written and once
//! every link in it is resolved; a path outside is refused before the file system is asked
//! anything about it, so the answer never tells whether it exists.

use crate::error::SettingError;
use std::io;
use std::path::{Component, Path, PathBuf};

/// A set of allowed directories, each kept as given and as resolved.
#[derive(Debug, Clone, Default)]
pub struct AllowedRoots {
    roots: Vec<(PathBuf, PathBuf)>,
}

/// Why a path was not accepted.
#[derive(Debug)]
pub enum RootError {
    /// No root is configured: the kind of path is off.
    NoRoots,
    /// The path is not under a root (as written, or once its links are resolved).
    Outside,
    /// The path is under a root but does not exist.
    NotFound(io::Error),
}

impl AllowedRoots {
    /// The roots; each must exist. `flag` names the option, for the error.
    pub fn new(dirs: &[PathBuf], flag: &str) -> Result<Self, SettingError> {
        let mut roots = Vec::new();
        // An empty entry (`BERTH_EXEC_ROOTS=` or `a::b`) names nothing.
        for dir in dirs.iter().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_absolute() {
                return Err(SettingError(format!("{flag} {} must be an absolute path", dir.display())));
            }
            let resolved = dir.canonicalize().map_err(|e| SettingError(format!("{flag} {}: {e}", dir.display())))?;
            if !resolved.is_dir() {
                return Err(SettingError(format!("{flag} {} is not a directory", dir.display())));
            }
            roots.push((lexical(dir).unwrap_or_else(|| dir.clone()), resolved));
        }
        Ok(AllowedRoots { roots })
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Adds a directory berth itself writes (the demo's models).
    pub fn with(mut self, dir: &Path) -> Self {
        if let Ok(resolved) = dir.canonicalize() {
            self.roots.push((dir.to_path_buf(), resolved));
        }
        self
    }

    /// The resolved path of `path` if it is under a root.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, RootError> {
        if self.roots.is_empty() {
            return Err(RootError::NoRoots);
        }
        let written = lexical(path).ok_or(RootError::Outside)?;
        if !self.roots.iter().any(|(given, resolved)| written.starts_with(given) || written.starts_with(resolved)) {
            return Err(RootError::Outside);
        }
        match written.canonicalize() {
            Ok(resolved) if self.contains_resolved(&resolved) => Ok(resolved),
            Ok(_) => Err(RootError::Outside),
            Err(e) => {
                // Missing: say so only if what does exist of it is inside a root.
                let existing = written.ancestors().find_map(|a| a.canonicalize().ok());
                match existing {
                    Some(a) if self.contains_resolved(&a) => Err(RootError::NotFound(e)),
                    _ => Err(RootError::Outside),
                }
            }
        }
    }

    /// The path, as written, of a directory berth may create and write under: it lies under a
    /// root as written, and what exists of it resolves under a root.
    pub fn resolve_for_writing(&self, path: &Path) -> Result<PathBuf, RootError> {
        match self.resolve(path) {
            Ok(resolved) => Ok(resolved),
            Err(RootError::NotFound(_)) => lexical(path).ok_or(RootError::Outside),
            Err(e) => Err(e),
        }
    }

    fn contains_resolved(&self, resolved: &Path) -> bool {
        self.roots.iter().any(|(_, root)| resolved.starts_with(root))
    }

    /// The roots, resolved (what sandboxed `exec:` programs may read and run).
    pub fn resolved(&self) -> impl Iterator<Item = &Path> {
        self.roots.iter().map(|(_, resolved)| resolved.as_path())
    }

    /// The roots as given, for messages.
    pub fn describe(&self) -> String {
        self.roots.iter().map(|(given, _)| given.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// An absolute path with `.` and `..` applied, without looking at the file system.
fn lexical(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(p) => out.push(p),
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_a_root_resolve_however_they_are_written() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("models")).unwrap();
        std::fs::write(root.join("models/m.onnx"), b"x").unwrap();
        std::fs::write(tmp.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), root.join("models/link-out")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("dir-out")).unwrap();
        let roots = AllowedRoots::new(std::slice::from_ref(&root), "--file-root").unwrap();

        assert!(roots.resolve(&root.join("models/m.onnx")).unwrap().ends_with("models/m.onnx"));
        assert!(roots.resolve(&root.join("models/../models/m.onnx")).is_ok());
        for outside in [
            tmp.path().join("secret"),
            root.join("../secret"),
            root.join("models/link-out"),
            root.join("dir-out/secret"),
            root.join("dir-out/absent"),
            PathBuf::from("/etc/shadow"),
            PathBuf::from("/no/such/file"),
            PathBuf::from("relative"),
        ] {
            assert!(matches!(roots.resolve(&outside), Err(RootError::Outside)), "{}", outside.display());
        }
        assert!(matches!(roots.resolve(&root.join("models/absent")), Err(RootError::NotFound(_))));
        assert!(matches!(AllowedRoots::default().resolve(&root), Err(RootError::NoRoots)));
        assert!(AllowedRoots::new(&[PathBuf::from("relative")], "--file-root").is_err());
        assert!(AllowedRoots::new(&[tmp.path().join("absent")], "--file-root").is_err());
    }
}
