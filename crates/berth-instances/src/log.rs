//! An instance's log file: what its processes write to stdout and stderr, read from a pipe by
//! berth and written to `<instance>.log`, which is rotated to `<instance>.log.1` when it passes
//! its size limit, so no instance can fill the disk with output.

use std::fs::{File, OpenOptions};
use std::io::{PipeReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One instance's log, shared by berth's notes and the output pump.
#[derive(Clone)]
pub struct InstanceLog {
    inner: Arc<Mutex<Rotating>>,
}

struct Rotating {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

impl InstanceLog {
    /// Opens (appending to) the log at `path`, created readable by berth's user only.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, String> {
        if let Some(dir) = path.parent() {
            crate::private_dir(dir).map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
        }
        let file = open_append(path).map_err(|e| format!("cannot open instance log {}: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(InstanceLog { inner: Arc::new(Mutex::new(Rotating { path: path.to_path_buf(), file, size, max: max_bytes.max(4096) })) })
    }

    /// A line of berth's own (start attempts).
    pub fn note(&self, line: &str) {
        self.write(format!("{line}\n").as_bytes());
    }

    /// Output of the instance's container, as it comes.
    pub fn write(&self, mut bytes: &[u8]) {
        let mut log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while !bytes.is_empty() {
            if log.size >= log.max {
                log.rotate();
            }
            let room = usize::try_from(log.max - log.size).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(bytes.len().min(room));
            if log.file.write_all(now).is_err() {
                return;
            }
            log.size += now.len() as u64;
            bytes = rest;
        }
    }

    /// Copies what the instance writes into the log, on a thread of its own, until every
    /// process holding the pipe's other end has exited.
    pub fn pump(&self, mut output: PipeReader) -> Option<std::thread::JoinHandle<()>> {
        let log = self.clone();
        let spawned = std::thread::Builder::new().name("berth-instance-log".into()).spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match output.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => log.write(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        });
        spawned.inspect_err(|e| tracing::warn!(error = %e, "cannot start the instance's log thread; its output is lost")).ok()
    }
}

impl Rotating {
    /// `<name>.log` becomes `<name>.log.1` (replacing the older one) and a new file starts.
    fn rotate(&mut self) {
        let mut older = self.path.clone().into_os_string();
        older.push(".1");
        let _ = std::fs::rename(&self.path, &older);
        if let Ok(file) = open_append(&self.path) {
            self.file = file;
            self.size = 0;
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_copied_and_rotated_at_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("logs/i.log");
        let log = InstanceLog::open(&path, 10_000).unwrap();
        log.note("---- start ----");
        let (reader, mut writer) = std::io::pipe().unwrap();
        let pump = log.pump(reader).unwrap();
        for i in 0..1000 {
            writeln!(writer, "line {i:04} of output").unwrap();
        }
        drop(writer);
        pump.join().unwrap();
        let older = std::fs::read_to_string(tmp.path().join("logs/i.log.1")).unwrap();
        let both = older + &std::fs::read_to_string(&path).unwrap();
        assert!(both.ends_with("line 0999 of output\n"), "the newest output is kept");
        let current = std::fs::metadata(&path).unwrap().len();
        let older = std::fs::metadata(tmp.path().join("logs/i.log.1")).unwrap().len();
        assert!(current <= 10_000 && older <= 10_000, "{current} {older}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
