//! Safe extraction of model archives: every entry must land inside the destination.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// Bounds on what an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct ExtractLimits {
    pub max_total_bytes: u64,
    pub max_entries: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits { max_total_bytes: 20 * 1024 * 1024 * 1024, max_entries: 100_000 }
    }
}

/// Unpacks a tar stream into `dest`, refusing absolute paths, `..`, links that point out of
/// `dest`, device files, and archives over the limits. The message names the offending entry.
pub fn unpack_tar<R: Read>(reader: R, dest: &Path, limits: ExtractLimits) -> Result<(), String> {
    let mut archive = tar::Archive::new(reader);
    let mut total: u64 = 0;
    let mut count: u64 = 0;
    for entry in archive.entries().map_err(|e| format!("cannot read the archive: {e}"))? {
        let mut entry = entry.map_err(|e| format!("cannot read the archive: {e}"))?;
        count += 1;
        if count > limits.max_entries {
            return Err(format!("the archive has more than {} entries", limits.max_entries));
        }
        let raw = entry.path().map_err(|e| format!("archive entry with an unreadable path: {e}"))?.into_owned();
        let rel = inside(&raw).ok_or_else(|| format!("archive entry '{}' would be written outside the model directory", raw.display()))?;
        if rel.as_os_str().is_empty() {
            continue; // "./"
        }
        let target = dest.join(&rel);
        let kind = entry.header().entry_type();
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| io_msg(&raw, e))?;
        }
        match kind {
            tar::EntryType::Directory => fs::create_dir_all(&target).map_err(|e| io_msg(&raw, e))?,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let remaining = limits.max_total_bytes.saturating_sub(total);
                if entry.header().size().unwrap_or(0) > remaining {
                    return Err(too_big(limits));
                }
                let _ = fs::remove_file(&target); // never write through an existing link
                let mut file = fs::File::create(&target).map_err(|e| io_msg(&raw, e))?;
                let written = io::copy(&mut (&mut entry).take(remaining + 1), &mut file).map_err(|e| io_msg(&raw, e))?;
                if written > remaining {
                    return Err(too_big(limits));
                }
                total += written;
                if let Ok(mode) = entry.header().mode() {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = fs::set_permissions(&target, fs::Permissions::from_mode(mode & 0o755));
                }
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| format!("archive entry '{}' has an unreadable link: {e}", raw.display()))?
                    .ok_or_else(|| format!("archive entry '{}' is a link without a target", raw.display()))?
                    .into_owned();
                // Symlinks resolve from their own directory, hard links from the archive root.
                let base = if kind == tar::EntryType::Symlink { rel.parent().unwrap_or(Path::new("")).join(&link) } else { link.clone() };
                let resolved = if link.is_absolute() { None } else { inside(&base) };
                let Some(resolved) = resolved else {
                    return Err(format!("archive entry '{}' links to '{}', outside the model directory", raw.display(), link.display()));
                };
                let _ = fs::remove_file(&target);
                if kind == tar::EntryType::Symlink {
                    std::os::unix::fs::symlink(&link, &target).map_err(|e| io_msg(&raw, e))?;
                } else {
                    fs::hard_link(dest.join(resolved), &target).map_err(|e| io_msg(&raw, e))?;
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(format!(
                    "archive entry '{}' is a device or pipe; model archives may hold only files, directories and links",
                    raw.display()
                ));
            }
            _ => {} // pax/GNU metadata entries carry no file
        }
    }
    Ok(())
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

fn io_msg(entry: &Path, e: io::Error) -> String {
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
        let r = unpack_tar(bytes, &dest, ExtractLimits { max_total_bytes: 1000, max_entries: 10 });
        (dir, r)
    }

    #[test]
    fn plain_archive_unpacks() {
        let bytes = archive(|b| {
            file(b, "model.bin", b"weights");
            file(b, "code/inference.py", b"print()");
            link(b, tar::EntryType::Symlink, "code/latest", "../model.bin");
        });
        let (dir, r) = unpack(&bytes);
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("model/model.bin")).unwrap(), b"weights");
        assert_eq!(fs::read(dir.path().join("model/code/latest")).unwrap(), b"weights");
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
    fn symlink_out_is_refused_and_not_followed() {
        let bytes = archive(|b| {
            link(b, tar::EntryType::Symlink, "out", "../../etc");
            file(b, "out/passwd", b"x");
        });
        let (_dir, r) = unpack(&bytes);
        assert!(r.unwrap_err().contains("links to '../../etc', outside"));
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
}
