//! An instance's log file: what its processes write to stdout and stderr, read from a pipe by
//! berth and written to `<instance>.log`, which is rotated to `<instance>.log.1` when it passes
//! its size limit, so no instance can fill the disk with output. Each line starts with the UTC
//! time its first byte arrived (`2026-12-06T10:00:00.123Z `), as `docker logs -t` shows them:
//! CloudWatch Logs' API serves the lines as events at those times ([`read_events`]).

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
    /// The next byte starts a line (and gets its time).
    at_line_start: bool,
}

/// Length of a line's time stamp, with the space after it.
const STAMP: usize = 25;

/// Now as a line's time stamp.
fn stamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z ",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A log line's time (ms since the epoch) and text; no time when it has no stamp (a log
/// written before lines had them).
pub fn parse_line(line: &str) -> (Option<i64>, &str) {
    let parsed = line
        .get(..STAMP - 1)
        .filter(|_| line.as_bytes().get(STAMP - 1) == Some(&b' '))
        .and_then(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok());
    match parsed {
        Some(t) => (Some((t.unix_timestamp_nanos() / 1_000_000) as i64), &line[STAMP..]),
        None => (None, line),
    }
}

/// The lines of an instance's log (its older file, then the current one) as (time, text) events;
/// a line without a stamp takes the time of the line before it (or of the file, for the first).
pub fn read_events(path: &Path) -> Vec<(i64, String)> {
    let mut older = path.as_os_str().to_owned();
    older.push(".1");
    let mut events = Vec::new();
    for file in [PathBuf::from(older), path.to_path_buf()] {
        let Ok(bytes) = std::fs::read(&file) else { continue };
        let modified = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let mut last = events.last().map_or(modified, |(t, _): &(i64, String)| *t);
        for line in String::from_utf8_lossy(&bytes).lines() {
            let (at, text) = parse_line(line);
            last = at.unwrap_or(last);
            events.push((last, text.to_string()));
        }
    }
    events
}

impl InstanceLog {
    /// Opens (appending to) the log at `path`, created readable by berth's user only.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, String> {
        if let Some(dir) = path.parent() {
            crate::private_dir(dir).map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
        }
        let file = open_append(path).map_err(|e| format!("cannot open instance log {}: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let rotating = Rotating { path: path.to_path_buf(), file, size, max: max_bytes.max(4096), at_line_start: true };
        Ok(InstanceLog { inner: Arc::new(Mutex::new(rotating)) })
    }

    /// A line of berth's own (start attempts).
    pub fn note(&self, line: &str) {
        self.write(format!("{line}\n").as_bytes());
    }

    /// Output of the instance's container, as it comes: each line stamped with its time.
    pub fn write(&self, bytes: &[u8]) {
        let mut log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            if log.at_line_start {
                log.append(stamp().as_bytes());
            }
            log.append(piece);
            log.at_line_start = piece.ends_with(b"\n");
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
    fn append(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.size >= self.max {
                self.rotate();
            }
            let room = usize::try_from(self.max - self.size).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(bytes.len().min(room));
            if self.file.write_all(now).is_err() {
                return;
            }
            self.size += now.len() as u64;
            bytes = rest;
        }
    }

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
        let events = read_events(&path);
        assert_eq!(events.last().unwrap().1, "line 0999 of output");
        assert!(events.windows(2).all(|w| w[0].0 <= w[1].0), "events are in time order");
    }

    #[test]
    fn lines_are_stamped_with_their_time_even_when_split_across_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("i.log");
        let log = InstanceLog::open(&path, 1 << 20).unwrap();
        let before = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - 1000;
        log.write(b"first ha");
        log.write(b"lf\nsecond\nthi");
        log.write(b"rd\n");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<(Option<i64>, &str)> = text.lines().map(parse_line).collect();
        assert_eq!(lines.iter().map(|l| l.1).collect::<Vec<_>>(), ["first half", "second", "third"]);
        assert!(lines.iter().all(|(t, _)| t.is_some_and(|t| t >= before)), "{text}");
        assert_eq!(parse_line("no stamp here"), (None, "no stamp here"));
        assert_eq!(parse_line("2026-13-06T10:00:00.000Z x").0, None, "not a time");
    }
}
