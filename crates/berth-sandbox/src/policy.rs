//! What a sandboxed worker may touch: the system's programs and libraries, a few files of
//! `/etc`, `/proc` and `/sys` to read, a handful of devices, and what its kind of worker adds
//! (its program, its model files, its scratch directory).

use std::path::{Path, PathBuf};

/// Directories of the system's programs and libraries: read and run.
pub const SYSTEM_READ_EXEC: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// The files and directories of `/etc` that programs read to load libraries, resolve names,
/// check certificates and know users and time zones — not all of `/etc`, which holds secrets
/// (`shadow`, keys, other services' settings).
const ETC_READ: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ld.so.preload",
    "localtime",
    "timezone",
    "resolv.conf",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "services",
    "protocols",
    "passwd",
    "group",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "crypto-policies",
    "mime.types",
    "os-release",
    "debian_version",
    "alternatives",
    "locale.alias",
    "locale.conf",
];

/// Devices every program expects: read and write.
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/shm"];

/// Paths a sandboxed process may use, by kind of access. Paths that do not exist are skipped
/// when the sandbox is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Read and run programs from.
    pub read_exec: Vec<PathBuf>,
    /// Read only.
    pub read: Vec<PathBuf>,
    /// Read, write, create and remove beneath.
    pub write: Vec<PathBuf>,
}

impl Policy {
    /// What every worker gets: the system's programs and libraries, the programs on `path` (the
    /// `PATH` workers are given) with the installations they belong to, `extra` directories the
    /// operator added, some of `/etc`, `/proc` and `/sys` to read, and the common devices.
    pub fn system(path: Option<&std::ffi::OsStr>, extra: &[PathBuf]) -> Policy {
        let mut p = Policy::default();
        p.read_exec.extend(SYSTEM_READ_EXEC.iter().map(PathBuf::from));
        if let Some(path) = path {
            for dir in std::env::split_paths(path).filter(|d| d.is_absolute()) {
                for root in installation_roots(&dir) {
                    p.add_read_exec(root);
                }
            }
        }
        p.read_exec.extend(extra.iter().cloned());
        p.read.extend(ETC_READ.iter().map(|name| Path::new("/etc").join(name)));
        p.read.extend(["/proc", "/sys"].map(PathBuf::from));
        p.write.extend(DEVICES.iter().map(PathBuf::from));
        p
    }

    pub fn add_read_exec(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        let path = path.into();
        if !self.read_exec.iter().any(|p| path.starts_with(p)) {
            self.read_exec.push(path);
        }
        self
    }

    pub fn add_read(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.read.push(path.into());
        self
    }

    pub fn add_write(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.write.push(path.into());
        self
    }

    /// A program and what it needs to run: its installation (a virtualenv, a language's
    /// install) and that of the program its link leads to.
    pub fn add_program(&mut self, program: &Path) -> &mut Self {
        if let Some(dir) = program.parent() {
            for root in installation_roots(dir) {
                self.add_read_exec(root);
            }
        }
        if let Ok(target) = program.canonicalize() {
            if let Some(dir) = target.parent() {
                self.add_read_exec(installation_of(dir));
            }
            self.add_read_exec(target);
        }
        self.add_read_exec(program.to_path_buf())
    }
}

/// The installation a directory of programs belongs to: `<prefix>` for a `<prefix>/bin` (or
/// `sbin`) beside a `<prefix>/lib`, as virtualenvs, language installs and `/usr/local` are laid
/// out; the directory itself otherwise (so a `~/.tool/bin` does not open `~/.tool`).
fn installation_of(dir: &Path) -> PathBuf {
    let named_bin = dir.file_name().is_some_and(|n| n == "bin" || n == "sbin");
    match dir.parent() {
        // `/bin` beside `/lib` is the system's own, not an installation of all of `/`.
        Some(prefix) if named_bin && prefix.parent().is_some() && prefix.join("lib").is_dir() => prefix.to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// A `PATH` directory's installation, and the installations its links lead into (a virtualenv's
/// `python3` links to the interpreter it was made from).
fn installation_roots(dir: &Path) -> Vec<PathBuf> {
    if SYSTEM_READ_EXEC.iter().any(|s| dir.starts_with(s)) {
        return Vec::new();
    }
    let mut roots = vec![installation_of(dir)];
    let Ok(entries) = std::fs::read_dir(dir) else { return roots };
    // A directory of thousands of programs is a system one: its links lead within the system.
    for entry in entries.flatten().take(512) {
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        let target = if is_link { entry.path().canonicalize().ok() } else { None };
        if let Some(root) = target.as_deref().and_then(Path::parent).map(installation_of) {
            if !roots.iter().any(|r| root.starts_with(r)) && !SYSTEM_READ_EXEC.iter().any(|s| root.starts_with(s)) {
                roots.push(root);
            }
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installations_are_prefixes_with_a_lib_and_the_targets_of_links() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("python");
        std::fs::create_dir_all(base.join("bin")).unwrap();
        std::fs::create_dir_all(base.join("lib")).unwrap();
        std::fs::write(base.join("bin/python3"), b"").unwrap();
        let venv = dir.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::create_dir_all(venv.join("lib")).unwrap();
        std::os::unix::fs::symlink(base.join("bin/python3"), venv.join("bin/python3")).unwrap();
        let tool = dir.path().join("tool");
        std::fs::create_dir_all(tool.join("bin")).unwrap();

        let base = base.canonicalize().unwrap();
        assert_eq!(installation_roots(&venv.join("bin")), vec![venv.clone(), base.clone()]);
        assert_eq!(installation_roots(&tool.join("bin")), vec![tool.join("bin")], "no lib beside bin: the directory alone");
        assert_eq!(installation_of(Path::new("/bin")), PathBuf::from("/bin"), "never all of /");
        assert!(installation_roots(Path::new("/usr/bin")).is_empty(), "system directories are allowed already");
        let mut p = Policy::default();
        p.add_program(&venv.join("bin/python3"));
        assert!(p.read_exec.contains(&venv) && p.read_exec.contains(&base), "{:?}", p.read_exec);
    }
}
