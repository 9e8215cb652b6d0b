//! Model artifacts: from a `ModelDataUrl` to a directory of model files on disk.

use crate::extract::{inside, unpack_tar, ExtractLimits};
use crate::s3::{S3Location, S3Source};
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ArtifactError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unsafe(String),
    #[error("{0}")]
    Io(String),
}

/// Where a model's data is, as its container definition says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelData<'a> {
    None,
    /// `ModelDataUrl`: a directory, an archive or a single file, told apart by its name.
    Url(&'a str),
    /// `ModelDataSource.S3DataSource` with `S3DataType: S3Prefix`: every object under a prefix.
    S3Prefix(&'a str),
    /// `S3DataType: S3Object`: a gzipped tar (`CompressionType: Gzip`) or a plain file.
    S3Object {
        uri: &'a str,
        gzip: bool,
    },
}

impl ModelData<'_> {
    /// What the cache key is made of (with the S3 version added).
    fn identity(&self) -> String {
        match self {
            ModelData::None => String::new(),
            ModelData::Url(u) => u.to_string(),
            ModelData::S3Prefix(u) => format!("{u}|prefix"),
            ModelData::S3Object { uri, gzip } => format!("{uri}|object|{gzip}"),
        }
    }
}

/// How a downloaded S3 object is laid out in the model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectLayout {
    /// By the key's name, as for `ModelDataUrl`.
    ByName,
    Archive,
    File,
}

/// Where model data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ArtifactSource {
    None,
    File(PathBuf),
    S3(S3Location, ObjectLayout),
    S3Prefix(S3Location),
}

impl ArtifactSource {
    fn from_data(data: ModelData<'_>) -> Result<Self, ArtifactError> {
        let s3 = |uri: &str| match S3Location::parse(uri) {
            Some(Ok(at)) => Ok(at),
            Some(Err(e)) => Err(ArtifactError::Unsupported(e)),
            None => Err(ArtifactError::Unsupported(format!("S3Uri '{uri}' must start with s3://"))),
        };
        match data {
            ModelData::None => Ok(ArtifactSource::None),
            ModelData::Url(url) => Self::parse(Some(url)),
            ModelData::S3Prefix(uri) => Ok(ArtifactSource::S3Prefix(s3(uri)?)),
            ModelData::S3Object { uri, gzip } => {
                Ok(ArtifactSource::S3(s3(uri)?, if gzip { ObjectLayout::Archive } else { ObjectLayout::File }))
            }
        }
    }

    fn parse(url: Option<&str>) -> Result<Self, ArtifactError> {
        let Some(url) = url else { return Ok(ArtifactSource::None) };
        if let Some(path) = url.strip_prefix("file://") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(ArtifactError::Unsupported(format!(
                    "ModelDataUrl '{url}' must be an absolute path: file:///path/to/model.tar.gz"
                )));
            }
            return Ok(ArtifactSource::File(path));
        }
        if let Some(location) = S3Location::parse(url) {
            return location.map(|at| ArtifactSource::S3(at, ObjectLayout::ByName)).map_err(ArtifactError::Unsupported);
        }
        Err(ArtifactError::Unsupported(format!(
            "ModelDataUrl '{url}' cannot be read: berth reads s3:// and file:// URLs (a .tar.gz, a .tar, a single file or a directory)"
        )))
    }
}

/// Prepares per-model directories under a root, once per model and data URL; instances of the
/// same model share the directory, which they must treat as read-only.
pub struct ModelArtifacts {
    root: PathBuf,
    limits: ExtractLimits,
    // Serialises preparation so two variants of one model do not unpack it twice at once.
    lock: Arc<tokio::sync::Mutex<()>>,
    s3: S3Source,
}

impl ModelArtifacts {
    pub fn new(root: PathBuf, limits: ExtractLimits) -> Self {
        ModelArtifacts { root, limits, lock: Arc::new(tokio::sync::Mutex::new(())), s3: S3Source::default() }
    }

    /// Checks that a `ModelDataUrl` is one berth can read, without reading it.
    pub fn check_url(url: &str) -> Result<(), ArtifactError> {
        ArtifactSource::parse(Some(url)).map(|_| ())
    }

    /// The model directory for `model_name` with the data at `url`, unpacked if needed. S3
    /// objects are cached by ETag: a changed object is fetched again, an unchanged one is not.
    pub async fn prepare(&self, model_name: &str, data: ModelData<'_>) -> Result<PathBuf, ArtifactError> {
        let source = ArtifactSource::from_data(data)?;
        let version = match &source {
            ArtifactSource::S3(at, _) => self.s3.etag(at).await?,
            ArtifactSource::S3Prefix(at) => self.s3.listing(at).await?.iter().map(|(k, etag, _)| format!("{k}={etag};")).collect(),
            _ => String::new(),
        };
        let key = format!("{}-{:016x}", model_name.to_ascii_lowercase(), stable_hash(&format!("{}\n{version}", data.identity())));
        let dir = self.root.join(&key);
        let _guard = self.lock.lock().await;
        if dir.join(COMPLETE_MARKER).exists() {
            return Ok(dir.join("data"));
        }
        // Remote data is first streamed to a local file beside the model directory.
        let download_dir = self.root.join(format!("{key}.download"));
        let fresh_download_dir = || async {
            let _ = tokio::fs::remove_dir_all(&download_dir).await;
            tokio::fs::create_dir_all(&download_dir)
                .await
                .map_err(|e| ArtifactError::Io(format!("cannot create {}: {e}", download_dir.display())))
        };
        let local = match &source {
            ArtifactSource::S3(at, layout) => {
                fresh_download_dir().await?;
                let name = at.key.rsplit('/').next().filter(|n| !n.is_empty() && *n != "." && *n != "..").unwrap_or("model");
                let name = match layout {
                    ObjectLayout::Archive => "model.tar.gz".to_string(),
                    // A plain object keeps its name, marked so that it is copied, never unpacked.
                    ObjectLayout::File => format!("{name}{PLAIN_FILE_SUFFIX}"),
                    ObjectLayout::ByName => name.to_string(),
                };
                let file = download_dir.join(name);
                self.s3.download(at, &file, self.limits.max_total_bytes).await?;
                ArtifactSource::File(file)
            }
            ArtifactSource::S3Prefix(at) => {
                fresh_download_dir().await?;
                let tree = download_dir.join("tree");
                self.download_prefix(at, &tree).await?;
                ArtifactSource::File(tree)
            }
            other => other.clone(),
        };
        let limits = self.limits;
        let work = dir.clone();
        let result = tokio::task::spawn_blocking(move || populate(&local, &work, limits))
            .await
            .map_err(|e| ArtifactError::Io(format!("model preparation panicked: {e}")));
        let _ = tokio::fs::remove_dir_all(&download_dir).await;
        result??;
        Ok(dir.join("data"))
    }
}

const COMPLETE_MARKER: &str = ".complete";
/// Appended to a downloaded plain S3 object's name so that `populate` copies it as a file
/// (without the suffix) even when its name looks like an archive.
const PLAIN_FILE_SUFFIX: &str = ".berth-plain";

impl ModelArtifacts {
    /// Downloads every object under a prefix into `dest`, keeping the paths below the prefix;
    /// keys that would land outside `dest` (`..`) are refused.
    async fn download_prefix(&self, at: &S3Location, dest: &Path) -> Result<(), ArtifactError> {
        let objects = self.s3.listing(at).await?;
        if objects.is_empty() {
            return Err(ArtifactError::NotFound(format!("model data {at} was not found (no objects under the prefix)")));
        }
        if objects.len() as u64 > self.limits.max_entries {
            return Err(ArtifactError::Unsafe(format!("model data {at} holds more than {} objects", self.limits.max_entries)));
        }
        let mut total = 0u64;
        for (key, _, size) in objects {
            let rel = key.strip_prefix(&at.key).unwrap_or(&key).trim_start_matches('/');
            let Some(rel) = inside(Path::new(rel)).filter(|r| !r.as_os_str().is_empty()) else {
                if key.ends_with('/') {
                    continue; // a "directory" placeholder object
                }
                return Err(ArtifactError::Unsafe(format!("object key '{key}' would land outside the model directory")));
            };
            total += size;
            if total > self.limits.max_total_bytes {
                return Err(ArtifactError::Unsafe(format!("model data {at} holds more than {} bytes", self.limits.max_total_bytes)));
            }
            let file = dest.join(rel);
            if let Some(parent) = file.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| ArtifactError::Io(format!("cannot create {}: {e}", parent.display())))?;
            }
            let object = S3Location { bucket: at.bucket.clone(), key };
            self.s3.download(&object, &file, self.limits.max_total_bytes).await?;
        }
        Ok(())
    }
}

/// Fills `dir/data` from the source; `dir/.complete` marks success so a crash half-way
/// through is redone on the next start.
fn populate(source: &ArtifactSource, dir: &Path, limits: ExtractLimits) -> Result<(), ArtifactError> {
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
                copy_tree(path, path, &data, limits, &mut 0)?;
            } else {
                let full_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let plain = full_name.strip_suffix(PLAIN_FILE_SUFFIX);
                let name = plain.unwrap_or(full_name);
                let file = fs::File::open(path).map_err(|e| io(&format!("cannot open {}", path.display()), e))?;
                let reader = BufReader::new(file);
                let unpacked = if plain.is_some() {
                    None
                } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
                    Some(unpack_tar(flate2::read::GzDecoder::new(reader), &data, limits))
                } else if name.ends_with(".tar") {
                    Some(unpack_tar(reader, &data, limits))
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

/// FNV-1a: stable across builds, unlike std's hasher, so cached directories keep their names.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_other_than_file_are_refused_with_a_reason() {
        assert!(ModelArtifacts::check_url("file:///tmp/m.tar.gz").is_ok());
        assert!(ModelArtifacts::check_url("s3://bucket/m.tar.gz").is_ok());
        assert!(ModelArtifacts::check_url("s3://bucket").is_err());
        let e = ModelArtifacts::check_url("https://example.com/m.tar.gz").unwrap_err();
        assert!(e.to_string().contains("file://"));
        assert!(ModelArtifacts::check_url("file://relative/m.tar.gz").is_err());
    }

    #[tokio::test]
    async fn directory_and_single_file_models_are_prepared_once() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/w.bin"), b"w").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", src.join("escape")).unwrap();
        let artifacts = ModelArtifacts::new(tmp.path().join("models"), ExtractLimits::default());
        let url = format!("file://{}", src.display());
        let err = artifacts.prepare("m", ModelData::Url(&url)).await.unwrap_err();
        assert!(err.to_string().contains("links outside"), "{err}");
        fs::remove_file(src.join("escape")).unwrap();
        let dir = artifacts.prepare("m", ModelData::Url(&url)).await.unwrap();
        assert_eq!(fs::read(dir.join("sub/w.bin")).unwrap(), b"w");
        let file_url = format!("file://{}", src.join("sub/w.bin").display());
        let dir2 = artifacts.prepare("m", ModelData::Url(&file_url)).await.unwrap();
        assert_eq!(fs::read(dir2.join("w.bin")).unwrap(), b"w");
        assert_ne!(dir, dir2);
    }
}
