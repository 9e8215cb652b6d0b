//! Python environments for the runtime: one virtualenv per set of packages (a framework version,
//! plus a model's `requirements.txt`), made once with pip from the package registry and cached
//! under the data directory, shared by every model that needs the same set.

use berth_domain::Framework;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::Command;

/// A ready environment: its interpreter, and what differs from what was asked (a newer
/// framework version where the asked one does not install here).
#[derive(Debug, Clone)]
pub struct PreparedEnvironment {
    pub python: PathBuf,
    pub note: Option<String>,
}

/// Makes and caches environments under `root`.
pub struct PythonEnvironments {
    root: PathBuf,
    /// The interpreter environments are made from (`--python`).
    base_python: String,
    /// No registry: only environments made earlier are used (`--offline`).
    offline: bool,
    timeout: Duration,
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PythonEnvironments {
    pub fn new(root: PathBuf, base_python: String, offline: bool) -> Self {
        PythonEnvironments { root, base_python, offline, timeout: Duration::from_secs(20 * 60), building: Mutex::default() }
    }

    /// The environment for `framework` (and `requirements`, a `requirements.txt`), made now if
    /// it is not cached. `progress` hears each step in words.
    pub async fn prepare(
        &self,
        framework: &Framework,
        requirements: Option<&Path>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<PreparedEnvironment, String> {
        let extra = match requirements {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the model's requirements.txt: {e}"))?;
                check_requirements(&text)?;
                Some(text)
            }
            None => None,
        };
        let sets = framework.package_sets();
        let key = format!("{:016x}", stable_hash(&format!("{}|{sets:?}|{extra:?}", self.base_python)));
        let dir = self.root.join(&key);
        let lock = self.building.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default().clone();
        let _building = lock.lock().await;
        if let Ok(marker) = std::fs::read_to_string(dir.join(".complete")) {
            return Ok(PreparedEnvironment { python: dir.join("bin/python"), note: Some(marker).filter(|m| !m.is_empty()) });
        }
        if self.offline {
            return Err(format!(
                "berth is --offline and the environment for {}{} is not prepared: prepare it where the package registry is reachable \
                 (berth prepare-python --image IMAGE, on this data directory), or start berth without --offline",
                sets[0].join(" "),
                if extra.is_some() { " and the model's requirements.txt" } else { "" }
            ));
        }
        crate::private_dir(&self.root).map_err(|e| format!("cannot create {}: {e}", self.root.display()))?;
        let work = tokio::time::timeout(self.timeout, self.build(&dir, &sets, requirements, progress));
        let note = work
            .await
            .map_err(|_| format!("preparing the Python environment took longer than {} minutes", self.timeout.as_secs() / 60))??;
        Ok(PreparedEnvironment { python: dir.join("bin/python"), note })
    }

    async fn build(
        &self,
        dir: &Path,
        sets: &[Vec<String>],
        requirements: Option<&Path>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Option<String>, String> {
        let mut failures = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            progress(format!("Preparing a Python environment (first use, cached afterwards): installing {}", set.join(" ")));
            run(Command::new(&self.base_python).arg("-m").arg("venv").arg(&tmp), "python -m venv").await?;
            let mut pip = Command::new(tmp.join("bin/python"));
            pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"]);
            // Every package only as a wheel: installing one runs none of its code (a source
            // package's build would run it as berth's user), and a framework version without
            // one for this Python is skipped at once rather than compiled for minutes.
            pip.arg("--only-binary=:all:");
            pip.args(set);
            // The operator's settings of pip and the network, nothing else of berth's
            // environment (which may hold credentials).
            pip.env_clear().envs(std::env::vars_os().filter(|(name, _)| name.to_str().is_some_and(|n| pip_may_see(n, true))));
            if let Some(r) = requirements {
                pip.arg("-r").arg(r);
            }
            match run(&mut pip, "pip install").await {
                Ok(()) => {
                    let note = (i > 0).then(|| {
                        format!(
                            "{} does not install for this host's Python; using {} instead ({})",
                            sets[0][0],
                            set[0],
                            failures.join("; ")
                        )
                    });
                    std::fs::write(tmp.join(".complete"), note.clone().unwrap_or_default()).map_err(|e| e.to_string())?;
                    std::fs::rename(&tmp, dir).map_err(|e| format!("cannot move the environment into place: {e}"))?;
                    if let Some(n) = &note {
                        progress(n.clone());
                    }
                    return Ok(note);
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    failures.push(format!("{}: {}", set[0], e.lines().last().unwrap_or("")));
                }
            }
        }
        Err(format!("no version of the framework installs for this host's Python: {}", failures.join("; ")))
    }
}

/// Whether pip is given this variable of berth's environment: its own settings, the network's
/// (proxies), and, on berth's own machine (`local`), what finding programs, certificates and
/// the user's cache needs (a pod has its image's own).
pub fn pip_may_see(name: &str, local: bool) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("PIP_")
        || upper.ends_with("_PROXY")
        || (local
            && matches!(
                upper.as_str(),
                "PATH" | "HOME" | "LANG" | "XDG_CACHE_HOME" | "SSL_CERT_FILE" | "SSL_CERT_DIR" | "REQUESTS_CA_BUNDLE"
            ))
}

/// A model's `requirements.txt` may name packages only — names, extras, version specifiers,
/// environment markers, `--hash` — never pip options (another index, source builds, other
/// files), URLs or paths, which would let the archive choose what pip runs.
fn check_requirements(text: &str) -> Result<(), String> {
    let joined = text.replace("\\\n", " ");
    for (n, raw) in joined.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let requirement = words.next().unwrap_or("");
        let refused = requirement.starts_with(['-', '.', '/', '~'])
            || line.contains("://")
            || line.contains('@')
            || !line.chars().all(|c| c.is_ascii_alphanumeric() || " \t._-[],<>=!~*;:'\"()".contains(c))
            || words.any(|w| w.starts_with('-') && !w.starts_with("--hash="));
        if refused {
            let shown: String = line.chars().take(80).collect();
            return Err(format!(
                "requirements.txt line {}: '{shown}' is not a package requirement; berth installs packages by name from wheels only \
                 (no pip options, URLs or paths)",
                n + 1
            ));
        }
    }
    Ok(())
}

/// Runs a command to completion; on failure, the last lines of its output are the reason.
async fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).kill_on_drop(true).output().await.map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).rev().take(3).collect();
    Err(format!("{what} failed ({}): {}", out.status, tail.into_iter().rev().collect::<Vec<_>>().join(" | ")))
}

/// FNV-1a: stable across builds, so cache keys stay the same.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

#[cfg(test)]
mod tests {
    use super::check_requirements;

    #[test]
    fn requirements_name_packages_only() {
        let ok = "# pinned\nnumpy==1.26.4\npandas>=2.0,<3  # comment\nrequests[socks] ~= 2.31\n\
                  tomli; python_version < \"3.11\"\nscipy==1.11 --hash=sha256:abcdef\nsix \\\n  ==1.16\n";
        assert_eq!(check_requirements(ok), Ok(()));
        for refused in [
            "--index-url http://evil.example/simple\nnumpy",
            "--no-binary :all:",
            "-e git+https://example.com/x.git#egg=x",
            "-r /etc/passwd",
            "x @ https://example.com/x.whl",
            "x@file:///tmp/x.whl",
            "./local-package",
            "/abs/path.whl",
            "https://example.com/x.tar.gz",
            "numpy --global-option=build_ext",
            "x $(touch /tmp/y)",
        ] {
            assert!(check_requirements(refused).is_err(), "{refused}");
        }
    }
}
