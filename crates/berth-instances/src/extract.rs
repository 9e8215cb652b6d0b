//! Safe extraction of model archives: every entry lands inside the destination, however the
//! archive combines paths and links.
//!
//! Links may only point down: a symbolic link whose target is absolute or holds a `..` is
//! refused, so no link in a model directory can lead out of it, whoever follows it later (the
//! worker included). No entry is written through a link already on disk: an entry whose parent
//! path holds a link is refused, and files are created with `O_NOFOLLOW | O_EXCL`. Sizes, entry
//! counts, the expansion ratio of compressed archives and the time taken are bounded.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Bounds on what an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct ExtractLimits {
    pub max_total_bytes: u64,
    pub max_entries: u64,
    /// Most bytes a compressed archive may unpack to per compressed byte, once it unpacks to
    /// more than [`RATIO_FLOOR`].
    pub max_ratio: u64,
    /// When unpacking must be over (the variant's model download timeout).
    pub deadline: Option<Instant>,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits { max_total_bytes: 20 * 1024 * 1024 * 1024, max_entries: 100_000, max_ratio: 200, deadline: None }
    }
}

/// Below this many unpacked bytes the expansion ratio is not checked (small archives of
/// repetitive files compress very well and are harmless).
pub const RATIO_FLOOR: u64 = 64 * 1024 * 1024;

/// Counts the bytes read through it (the compressed side of an archive).
pub struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> Counted<R> {
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (Counted { inner, count: count.clone() }, count)
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Unpacks a tar stream into `dest` (an empty directory), refusing absolute paths, `..`, links
/// that could lead out, entries under links, device files, and archives over the limits.
/// `compressed` counts the bytes of the compressed file the stream is read from, if any. The
/// message names the offending entry. On error the caller removes what was written.
pub(crate) fn unpack_tar<R: Read>(reader: R, dest: &Path, limits: ExtractLimits, compressed: Option<Arc<AtomicU64>>) -> Result<(), String> {
    let (stream, unpacked) = Counted::new(reader);
    let budget = Budget { limits, compressed, unpacked };
    let mut archive = tar::Archive::new(stream);
    let mut total: u64 = 0;
    let mut count: u64 = 0;
    for entry in archive.entries().map_err(|e| format!("cannot read the archive: {e}"))? {
        let mut entry = entry.map_err(|e| format!("cannot read the archive: {e}"))?;
        count += 1;
        if count > limits.max_entries {
            return Err(format!("the archive has more than {} entries", limits.max_entries));
        }
        budget.check()?;
        let raw = entry.path().map_err(|e| format!("archive entry with an unreadable path: {e}"))?.into_owned();
        // The archive's root itself: "./", or "/" as the SageMaker SDK's repacked archives
        // (tarfile with arcname "/") have it. Nothing to write.
        if entry.header().entry_type() == tar::EntryType::Directory
            && raw.components().all(|c| matches!(c, Component::RootDir | Component::CurDir))
        {
            continue;
        }
        let rel = inside(&raw).ok_or_else(|| format!("archive entry '{}' would be written outside the model directory", raw.display()))?;
        if rel.as_os_str().is_empty() {
            continue; // "a/.."
        }
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) {
            return Err(format!(
                "archive entry '{}' is a device or pipe; model archives may hold only files, directories and links",
                raw.display()
            ));
        }
        if !matches!(
            kind,
            tar::EntryType::Directory
                | tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse
                | tar::EntryType::Symlink
                | tar::EntryType::Link
        ) {
            continue; // pax/GNU metadata entries carry no file
        }
        let target = dest.join(&rel);
        make_parents(dest, &rel).map_err(|e| entry_error(&raw, e))?;
        match kind {
            tar::EntryType::Directory => make_dir(&target).map_err(|e| entry_error(&raw, e))?,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| format!("archive entry '{}' has an unreadable link: {e}", raw.display()))?
                    .ok_or_else(|| format!("archive entry '{}' is a link without a target", raw.display()))?
                    .into_owned();
                let escapes = || {
                    format!("archive entry '{}' links to '{}', which could lead outside the model directory (links may not be absolute or hold '..')", raw.display(), link.display())
                };
                if link.is_absolute() || link.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
                    return Err(escapes());
                }
                remove_existing(&target).map_err(|e| entry_error(&raw, e))?;
                if kind == tar::EntryType::Symlink {
                    std::os::unix::fs::symlink(&link, &target).map_err(|e| entry_error(&raw, e))?;
                } else {
                    // Hard links name another entry from the archive's root.
                    let source = inside(&link).filter(|l| !l.as_os_str().is_empty()).ok_or_else(escapes)?;
                    make_parents(dest, &source).map_err(|e| entry_error(&raw, e))?;
                    let meta = fs::symlink_metadata(dest.join(&source)).map_err(|e| entry_error(&raw, e))?;
                    if !meta.is_file() {
                        return Err(format!(
                            "archive entry '{}' is a hard link to '{}', which is not a file",
                            raw.display(),
                            link.display()
                        ));
                    }
                    fs::hard_link(dest.join(&source), &target).map_err(|e| entry_error(&raw, e))?;
                }
            }
            _ => {
                let remaining = limits.max_total_bytes.saturating_sub(total);
                if entry.header().size().unwrap_or(0) > remaining {
                    return Err(too_big(limits));
                }
                remove_existing(&target).map_err(|e| entry_error(&raw, e))?;
                let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(|e| entry_error(&raw, e))?;
                total += copy_bounded(&mut entry, &mut file, remaining, &budget).map_err(|e| match e {
                    CopyError::Limit(m) => m,
                    CopyError::Io(e) => entry_error(&raw, e),
                })?;
            }
        }
    }
    budget.check()?;
    Ok(())
}

/// What unpacking has used so far, against its limits.
struct Budget {
    limits: ExtractLimits,
    compressed: Option<Arc<AtomicU64>>,
    unpacked: Arc<AtomicU64>,
}

impl Budget {
    fn check(&self) -> Result<(), String> {
        if self.limits.deadline.is_some_and(|d| Instant::now() > d) {
            return Err("unpacking the model data took longer than the variant's ModelDataDownloadTimeoutInSeconds".into());
        }
        let unpacked = self.unpacked.load(Ordering::Relaxed);
        if let Some(compressed) = &self.compressed {
            let compressed = compressed.load(Ordering::Relaxed).max(1);
            if unpacked > RATIO_FLOOR && unpacked / compressed > self.limits.max_ratio {
                return Err(format!(
                    "the archive expands more than {}-fold ({unpacked} bytes from {compressed}); raise --max-model-expansion if it is genuine",
                    self.limits.max_ratio
                ));
            }
        }
        Ok(())
    }
}

enum CopyError {
    Limit(String),
    Io(io::Error),
}

fn copy_bounded(from: &mut impl Read, to: &mut fs::File, remaining: u64, budget: &Budget) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = from.read(&mut buf).map_err(CopyError::Io)?;
        if n == 0 {
            return Ok(written);
        }
        written += n as u64;
        if written > remaining {
            return Err(CopyError::Limit(too_big(budget.limits)));
        }
        to.write_all(&buf[..n]).map_err(CopyError::Io)?;
        budget.check().map_err(CopyError::Limit)?;
    }
}

/// Creates the directories above `rel` under `dest`, refusing to go through a link.
fn make_parents(dest: &Path, rel: &Path) -> io::Result<()> {
    let mut at = dest.to_path_buf();
    let Some(parent) = rel.parent() else { return Ok(()) };
    for c in parent.components() {
        at.push(c);
        make_dir(&at)?;
    }
    Ok(())
}

/// A directory at `path`: created if missing; an existing link or file there is an error.
fn make_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => {
            Err(io::Error::other("a link is in the way; archive entries may not be written under links"))
        }
        Ok(_) => Err(io::Error::other("a file is in the way of a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(path),
        Err(e) => Err(e),
    }
}

/// Removes a file or link at `path` (a later entry replaces an earlier one), never a directory.
fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(io::Error::other("a directory is in the way")),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The path with `.` removed, if it stays inside its root (no root, prefix or escaping `..`).
pub(crate) fn inside(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn entry_error(entry: &Path, e: io::Error) -> String {
    format!("cannot unpack archive entry '{}': {e}", entry.display())
}

fn too_big(limits: ExtractLimits) -> String {
    format!("the archive unpacks to more than {} bytes", limits.max_total_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    /// Writes a raw path into a header, bypassing the tar crate's own checks, like an attacker would.
    fn raw_path(h: &mut tar::Header, path: &str) {
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = header(tar::EntryType::Regular, data.len() as u64);
        raw_path(&mut h, path);
        b.append(&h, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
        let mut h = header(kind, 0);
        h.set_link_name(target).unwrap();
        raw_path(&mut h, path);
        b.append(&h, io::empty()).unwrap();
    }

    fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<(), String>) {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model");
        fs::create_dir(&dest).unwrap();
        let r = unpack_tar(bytes, &dest, ExtractLimits { max_total_bytes: 1000, max_entries: 10, ..Default::default() }, None);
        (dir, r)
    }

    #[test]
    fn plain_archive_unpacks() {
        let bytes = archive(|b| {
            file(b, "model.bin", b"weights");
            file(b, "code/inference.py", b"print()");
            link(b, tar::EntryType::Symlink, "latest", "code/inference.py");
            link(b, tar::EntryType::Link, "code/hard.bin", "model.bin");
        });
        let (dir, r) = unpack(&bytes);
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("model/model.bin")).unwrap(), b"weights");
        assert_eq!(fs::read(dir.path().join("model/latest")).unwrap(), b"print()");
        assert_eq!(fs::read(dir.path().join("model/code/hard.bin")).unwrap(), b"weights");
    }

    #[test]
    fn parent_dir_escape_is_refused() {
        let (dir, r) = unpack(&archive(|b| file(b, "../evil.txt", b"x")));
        assert!(r.unwrap_err().contains("'../evil.txt' would be written outside"));
        assert!(!dir.path().join("evil.txt").exists());
    }

    #[test]
    fn absolute_path_is_refused() {
        let (_dir, r) = unpack(&archive(|b| file(b, "/tmp/berth-evil.txt", b"x")));
        assert!(r.unwrap_err().contains("outside the model directory"));
        assert!(!Path::new("/tmp/berth-evil.txt").exists());
    }

    #[test]
    fn the_root_directory_entry_is_skipped_but_an_absolute_file_is_not() {
        // The SDK's repacked model.tar.gz starts with a directory entry named "/".
        let bytes = archive(|b| {
            let mut h = header(tar::EntryType::Directory, 0);
            raw_path(&mut h, "/");
            b.append(&h, io::empty()).unwrap();
            file(b, "code/inference.py", b"print()");
        });
        let (dir, r) = unpack(&bytes);
        r.unwrap();
        assert!(dir.path().join("model/code/inference.py").is_file());
        let (_dir, r) = unpack(&archive(|b| file(b, "/", b"x")));
        assert!(r.unwrap_err().contains("outside the model directory"));
    }

    #[test]
    fn symlink_out_is_refused_and_not_followed() {
        let bytes = archive(|b| {
            link(b, tar::EntryType::Symlink, "out", "../../etc");
            file(b, "out/passwd", b"x");
        });
        let (_dir, r) = unpack(&bytes);
        assert!(r.unwrap_err().contains("links to '../../etc', which could lead outside"));
        let (_dir, r) = unpack(&archive(|b| link(b, tar::EntryType::Symlink, "abs", "/etc/passwd")));
        assert!(r.is_err());
        let (_dir, r) = unpack(&archive(|b| link(b, tar::EntryType::Link, "hard", "../secret")));
        assert!(r.is_err());
    }

    #[test]
    fn devices_are_refused() {
        let (_dir, r) = unpack(&archive(|b| {
            let mut h = header(tar::EntryType::Char, 0);
            raw_path(&mut h, "dev");
            b.append(&h, io::empty()).unwrap();
        }));
        assert!(r.unwrap_err().contains("device"));
    }

    #[test]
    fn size_and_count_limits_hold() {
        let (_dir, r) = unpack(&archive(|b| file(b, "big", &[0u8; 1001])));
        assert!(r.unwrap_err().contains("more than 1000 bytes"));
        let (_dir, r) = unpack(&archive(|b| (0..11).for_each(|i| file(b, &format!("f{i}"), b""))));
        assert!(r.unwrap_err().contains("more than 10 entries"));
    }

    /// The chain that defeats textual checks: `s -> .`, then `d -> s/s/s/../..`, then a file
    /// under `d`. Every step is refused or harmless; nothing lands outside.
    #[test]
    fn link_chains_cannot_leave_the_directory() {
        let bytes = archive(|b| {
            link(b, tar::EntryType::Symlink, "s", ".");
            link(b, tar::EntryType::Symlink, "d", "s/s/s/../..");
            file(b, "d/escaped.txt", b"x");
        });
        let (dir, r) = unpack(&bytes);
        assert!(r.unwrap_err().contains("links to 's/s/s/../..'"));
        assert!(!dir.path().join("escaped.txt").exists());

        // A harmless link, then an entry written through it: refused, not followed.
        let bytes = archive(|b| {
            link(b, tar::EntryType::Symlink, "sub", "real");
            file(b, "real/x", b"1");
            file(b, "sub/y", b"2");
        });
        let (dir, r) = unpack(&bytes);
        assert!(r.unwrap_err().contains("under links"));
        assert!(!dir.path().join("model/real/y").exists());

        // A file replacing a link is written as a new file, not through the link.
        let bytes = archive(|b| {
            file(b, "a", b"1");
            link(b, tar::EntryType::Symlink, "b", "a");
            file(b, "b", b"2");
        });
        let (dir, r) = unpack(&bytes);
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("model/a")).unwrap(), b"1");
        assert_eq!(fs::read(dir.path().join("model/b")).unwrap(), b"2");
    }

    #[test]
    fn compressed_archives_may_not_expand_past_the_ratio() {
        let tmp = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        {
            let mut b = tar::Builder::new(&mut gz);
            let zeros = vec![0u8; 80 * 1024 * 1024];
            let mut h = header(tar::EntryType::Regular, zeros.len() as u64);
            raw_path(&mut h, "zeros.bin");
            b.append(&h, &zeros[..]).unwrap();
            b.finish().unwrap();
        }
        let bytes = gz.finish().unwrap();
        let (reader, compressed) = Counted::new(&bytes[..]);
        let limits = ExtractLimits { max_ratio: 100, ..Default::default() };
        let r = unpack_tar(flate2::read::GzDecoder::new(reader), tmp.path(), limits, Some(compressed));
        assert!(r.unwrap_err().contains("expands more than 100-fold"));
    }

    #[test]
    fn a_passed_deadline_stops_unpacking() {
        let bytes = archive(|b| file(b, "a", b"1"));
        let tmp = tempfile::tempdir().unwrap();
        let limits = ExtractLimits { deadline: Some(Instant::now() - std::time::Duration::from_secs(1)), ..Default::default() };
        assert!(unpack_tar(&bytes[..], tmp.path(), limits, None).unwrap_err().contains("ModelDataDownloadTimeoutInSeconds"));
    }
}
