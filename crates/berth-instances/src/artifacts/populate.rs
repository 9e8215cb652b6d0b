//! Filling a model directory from its source on disk: a directory copied (links followed only
//! while they stay inside it), an archive unpacked under berth's rules, or a single file.

use super::{ArtifactError, ArtifactSource, COMPLETE_MARKER, PLAIN_FILE_SUFFIX};
use crate::extract::{inside, unpack_tar, Counted, ExtractLimits};
use std::fs;
use std::io::BufReader;
use std::path::Path;

/// Fills `dir/data` from the source; `dir/.complete` marks success so a crash half-way
/// through is redone on the next start.
pub(super) fn populate(source: &ArtifactSource, dir: &Path, limits: ExtractLimits) -> Result<(), ArtifactError> {
    let io = |what: &str, e: std::io::Error| ArtifactError::Io(format!("{what}: {e}"));
    let _ = fs::remove_dir_all(dir);
    let data = dir.join("data");
    fs::create_dir_all(&data).map_err(|e| io(&format!("cannot create {}", data.display()), e))?;
    match source {
        ArtifactSource::None => {}
        ArtifactSource::S3(at, _) | ArtifactSource::S3Prefix(at) => {
            return Err(ArtifactError::Io(format!("{at} must be downloaded before it is unpacked")))
        }
        ArtifactSource::File(path) => {
            let meta =
                fs::metadata(path).map_err(|e| ArtifactError::NotFound(format!("cannot read model data at {}: {e}", path.display())))?;
            if meta.is_dir() {
                // A directory that holds berth's own model store would be copied into itself.
                let (source, store) = (path.canonicalize().map_err(|e| io("cannot resolve the model directory", e))?, data.canonicalize());
                if store.is_ok_and(|store| store.starts_with(&source)) {
                    return Err(ArtifactError::Unsafe(format!(
                        "model directory {} holds berth's own data directory; point ModelDataUrl at a directory of model files only",
                        path.display()
                    )));
                }
                copy_tree(path, path, &data, limits, &mut 0)?;
            } else {
                let full_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let plain = full_name.strip_suffix(PLAIN_FILE_SUFFIX);
                let name = plain.unwrap_or(full_name);
                let file = fs::File::open(path).map_err(|e| io(&format!("cannot open {}", path.display()), e))?;
                let unpacked = if plain.is_some() {
                    None
                } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
                    let (compressed, count) = Counted::new(BufReader::new(file));
                    Some(unpack_tar(flate2::read::GzDecoder::new(compressed), &data, limits, Some(count)))
                } else if name.ends_with(".tar") {
                    Some(unpack_tar(BufReader::new(file), &data, limits, None))
                } else {
                    None
                };
                match unpacked {
                    Some(result) => result.map_err(|e| ArtifactError::Unsafe(format!("model archive {}: {e}", path.display())))?,
                    None => {
                        if meta.len() > limits.max_total_bytes {
                            return Err(ArtifactError::Unsafe(format!(
                                "model file {} is larger than {} bytes",
                                path.display(),
                                limits.max_total_bytes
                            )));
                        }
                        fs::copy(path, data.join(name)).map_err(|e| io(&format!("cannot copy {}", path.display()), e))?;
                    }
                }
            }
        }
    }
    fs::write(dir.join(COMPLETE_MARKER), b"").map_err(|e| io("cannot mark the model directory complete", e))?;
    Ok(())
}

/// Copies a model directory, following links only when they stay inside it.
fn copy_tree(root: &Path, from: &Path, to: &Path, limits: ExtractLimits, total: &mut u64) -> Result<(), ArtifactError> {
    let io = |p: &Path, e: std::io::Error| ArtifactError::Io(format!("cannot copy {}: {e}", p.display()));
    let canonical_root = root.canonicalize().map_err(|e| io(root, e))?;
    for entry in fs::read_dir(from).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        let src = entry.path();
        let resolved = src.canonicalize().map_err(|e| io(&src, e))?;
        let rel = resolved.strip_prefix(&canonical_root).ok().and_then(inside);
        if rel.is_none() {
            return Err(ArtifactError::Unsafe(format!("{} links outside the model directory {}", src.display(), root.display())));
        }
        let dst = to.join(entry.file_name());
        let meta = fs::metadata(&resolved).map_err(|e| io(&src, e))?;
        if meta.is_dir() {
            fs::create_dir_all(&dst).map_err(|e| io(&dst, e))?;
            copy_tree(root, &src, &dst, limits, total)?;
        } else if meta.is_file() {
            *total += meta.len();
            if *total > limits.max_total_bytes {
                return Err(ArtifactError::Unsafe(format!(
                    "model directory {} holds more than {} bytes",
                    root.display(),
                    limits.max_total_bytes
                )));
            }
            fs::copy(&resolved, &dst).map_err(|e| io(&src, e))?;
        }
    }
    Ok(())
}
