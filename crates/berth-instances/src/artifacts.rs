//! Model artifacts: from a `ModelDataUrl` to a directory of model files on disk.

mod populate;

use crate::error::ArtifactError;
use crate::extract::{inside, ExtractLimits};
use crate::roots::{AllowedRoots, RootError};
use crate::s3::{S3Location, S3Source};
use populate::populate;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Where a model's data is, owned: for backends whose instances fetch it themselves (a pod's
/// init container runs `berth fetch-model` with it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ModelSource {
    #[default]
    None,
    Url(String),
    S3Prefix(String),
    S3Object {
        uri: String,
        gzip: bool,
    },
    /// A multi-model container's `ModelDataUrl`: the prefix its models are fetched from as
    /// they are called, none at start.
    MultiModel(String),
}

impl ModelSource {
    pub fn of(data: ModelData<'_>) -> Self {
        match data {
            ModelData::None => ModelSource::None,
            ModelData::Url(u) => ModelSource::Url(u.to_string()),
            ModelData::S3Prefix(u) => ModelSource::S3Prefix(u.to_string()),
            ModelData::S3Object { uri, gzip } => ModelSource::S3Object { uri: uri.to_string(), gzip },
        }
    }

    pub fn as_data(&self) -> ModelData<'_> {
        match self {
            ModelSource::None | ModelSource::MultiModel(_) => ModelData::None,
            ModelSource::Url(u) => ModelData::Url(u),
            ModelSource::S3Prefix(u) => ModelData::S3Prefix(u),
            ModelSource::S3Object { uri, gzip } => ModelData::S3Object { uri, gzip: *gzip },
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

/// Prepares model directories under a root, one per model data source and version, shared by
/// every instance (of any model) that serves that data and removed when the last of them lets
/// go of it. Instances must treat the directory as read-only.
#[derive(Clone)]
pub struct ModelArtifacts {
    shared: Arc<Shared>,
}

struct Shared {
    root: PathBuf,
    limits: ExtractLimits,
    /// Where `file://` model data may be read from.
    file_roots: AllowedRoots,
    s3: S3Source,
    /// Each directory's preparation lock and lease count, by directory name.
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

#[derive(Default)]
struct Entry {
    /// Held while the directory is prepared or removed, so neither happens twice at once.
    lock: tokio::sync::Mutex<()>,
    leases: std::sync::atomic::AtomicUsize,
}

/// A prepared model directory, held by the instances that serve it. Clones share one lease;
/// when the last clone is dropped the directory is removed (unless a new lease took it meanwhile).
#[derive(Clone)]
pub struct ModelDir {
    lease: Arc<Lease>,
}

struct Lease {
    path: PathBuf,
    key: String,
    shared: Arc<Shared>,
}

impl ModelDir {
    /// The directory of model files (`SM_MODEL_DIR`).
    pub fn path(&self) -> &Path {
        &self.lease.path
    }

    /// What names the data (its source and version), the same on every server that prepares it.
    pub fn key(&self) -> &str {
        &self.lease.key
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let entry = self.shared.entry(&self.key);
        if entry.leases.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) != 1 {
            return;
        }
        let (shared, key) = (self.shared.clone(), self.key.clone());
        let remove = async move {
            let _guard = entry.lock.lock().await;
            if entry.leases.load(std::sync::atomic::Ordering::Acquire) > 0 {
                return; // taken again meanwhile
            }
            let dir = shared.root.join(&key);
            let removed = tokio::task::spawn_blocking(move || fs::remove_dir_all(&dir)).await;
            tracing::debug!(dir = %key, ?removed, "model directory removed: no instance serves it");
            drop(_guard);
            shared.forget(&key, &entry);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(remove);
            }
            Err(_) => {
                let _ = fs::remove_dir_all(self.shared.root.join(&self.key));
            }
        }
    }
}

impl Shared {
    fn entry(&self, key: &str) -> Arc<Entry> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).entry(key.to_string()).or_default().clone()
    }

    /// Drops an entry nobody uses, so the map does not grow with every model ever served.
    fn forget(&self, key: &str, entry: &Arc<Entry>) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) && Arc::strong_count(entry) <= 2 {
            map.remove(key);
        }
    }
}

impl ModelArtifacts {
    /// Model directories live under `root`, which is emptied first: nothing holds a lease on
    /// what an earlier server left there.
    pub fn new(root: PathBuf, limits: ExtractLimits, file_roots: AllowedRoots) -> Self {
        if root.exists() {
            if let Err(e) = fs::remove_dir_all(&root) {
                tracing::warn!(dir = %root.display(), error = %e, "cannot clear old model directories");
            }
        }
        if let Err(e) = crate::private_dir(&root) {
            tracing::warn!(dir = %root.display(), error = %e, "cannot create the model directory root");
        }
        let shared = Shared { root, limits, file_roots, s3: S3Source::default(), entries: Mutex::default() };
        ModelArtifacts { shared: Arc::new(shared) }
    }

    /// Checks that a `ModelDataUrl` is one berth can read: an `s3://` URL, or a `file://` path
    /// under a `--file-root` that exists. A path outside the roots is refused without looking
    /// at it, so the answer never tells whether it exists.
    pub fn check_url(&self, url: &str) -> Result<(), ArtifactError> {
        match ArtifactSource::parse(Some(url))? {
            ArtifactSource::File(path) => self.shared.resolve_file(url, &path).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The model directory for the data, unpacked if needed, within `timeout` (the variant's
    /// ModelDataDownloadTimeoutInSeconds). S3 objects are versioned by ETag: a changed object
    /// is fetched again. Concurrent calls for the same data prepare it once.
    pub async fn prepare(&self, data: ModelData<'_>, timeout: Duration) -> Result<ModelDir, ArtifactError> {
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout(timeout, self.prepare_by(data, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(ArtifactError::Timeout(format!(
                "the model data was not downloaded and unpacked within {} seconds (the variant's ModelDataDownloadTimeoutInSeconds)",
                timeout.as_secs()
            ))),
        }
    }

    async fn prepare_by(&self, data: ModelData<'_>, deadline: Instant) -> Result<ModelDir, ArtifactError> {
        let shared = &self.shared;
        let mut source = ArtifactSource::from_data(data)?;
        if let ArtifactSource::File(path) = &source {
            let url = format!("file://{}", path.display());
            source = ArtifactSource::File(shared.resolve_file(&url, path)?);
        }
        let version = match &source {
            ArtifactSource::S3(at, _) => shared.s3.etag(at).await?,
            ArtifactSource::S3Prefix(at) => shared.s3.listing(at).await?.iter().map(|(k, etag, _)| format!("{k}={etag};")).collect(),
            _ => String::new(),
        };
        let key = format!("{:016x}", crate::stable_hash(&format!("{}\n{version}", data.identity())));
        let dir = shared.root.join(&key);
        let entry = shared.entry(&key);
        let guard = entry.lock.lock().await;
        let lease = || {
            entry.leases.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            ModelDir { lease: Arc::new(Lease { path: dir.join("data"), key: key.clone(), shared: shared.clone() }) }
        };
        if dir.join(COMPLETE_MARKER).exists() {
            return Ok(lease());
        }
        // Remote data is first streamed to a local file beside the model directory.
        let download_dir = shared.root.join(format!("{key}.download"));
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
                shared.s3.download(at, &file, shared.limits.max_total_bytes).await?;
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
        let limits = ExtractLimits { deadline: Some(deadline), ..shared.limits };
        let work = dir.clone();
        let result = tokio::task::spawn_blocking(move || {
            let result = populate(&local, &work, limits);
            if result.is_err() {
                let _ = fs::remove_dir_all(&work); // nothing of a refused archive stays
            }
            result
        })
        .await
        .map_err(|e| ArtifactError::Io(format!("model preparation panicked: {e}")));
        let _ = tokio::fs::remove_dir_all(&download_dir).await;
        result??;
        let dir = lease();
        drop(guard);
        Ok(dir)
    }
}

impl Shared {
    /// A `file://` path resolved under the file roots, or the reason it may not be read.
    fn resolve_file(&self, url: &str, path: &Path) -> Result<PathBuf, ArtifactError> {
        self.file_roots.resolve(path).map_err(|e| match e {
            RootError::NoRoots => ArtifactError::Forbidden(format!(
                "ModelDataUrl {url} cannot be read: file:// model data is off. Start berth with --file-root DIR to serve model files from DIR, or use s3://"
            )),
            RootError::Outside => ArtifactError::Forbidden(format!(
                "ModelDataUrl {url} is not under a directory berth may read model data from (--file-root)"
            )),
            RootError::NotFound(_) => ArtifactError::NotFound(format!("Could not find model data at {url}.")),
        })
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
        let (s3, limits) = (&self.shared.s3, self.shared.limits);
        let objects = s3.listing(at).await?;
        if objects.is_empty() {
            return Err(ArtifactError::NotFound(format!("model data {at} was not found (no objects under the prefix)")));
        }
        if objects.len() as u64 > limits.max_entries {
            return Err(ArtifactError::Unsafe(format!("model data {at} holds more than {} objects", limits.max_entries)));
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
            if total > limits.max_total_bytes {
                return Err(ArtifactError::Unsafe(format!("model data {at} holds more than {} bytes", limits.max_total_bytes)));
            }
            let file = dest.join(rel);
            if let Some(parent) = file.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| ArtifactError::Io(format!("cannot create {}: {e}", parent.display())))?;
            }
            let object = S3Location { bucket: at.bucket.clone(), key };
            s3.download(&object, &file, limits.max_total_bytes).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifacts(tmp: &Path, roots: &[PathBuf]) -> ModelArtifacts {
        ModelArtifacts::new(tmp.join("models"), ExtractLimits::default(), AllowedRoots::new(roots, "--file-root").unwrap())
    }

    #[test]
    fn urls_berth_cannot_or_may_not_read_are_refused_with_a_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("m.tar.gz"), b"").unwrap();
        let a = artifacts(tmp.path(), std::slice::from_ref(&src));
        assert!(a.check_url(&format!("file://{}/m.tar.gz", src.display())).is_ok());
        assert!(a.check_url("s3://bucket/m.tar.gz").is_ok());
        assert!(a.check_url("s3://bucket").is_err());
        assert!(a.check_url("https://example.com/m.tar.gz").unwrap_err().to_string().contains("file://"));
        assert!(a.check_url("file://relative/m.tar.gz").is_err());
        assert!(a.check_url(&format!("file://{}/absent", src.display())).unwrap_err().to_string().contains("Could not find"));
        // Outside the roots: the same answer whether the file exists or not.
        let shadow = a.check_url("file:///etc/shadow").unwrap_err().to_string();
        let absent = a.check_url("file:///etc/no-such-file").unwrap_err().to_string();
        assert_eq!(shadow.replace("shadow", "X"), absent.replace("no-such-file", "X"));
        assert!(shadow.contains("--file-root"), "{shadow}");
        let off = artifacts(tmp.path(), &[]);
        assert!(off.check_url(&format!("file://{}/m.tar.gz", src.display())).unwrap_err().to_string().contains("--file-root DIR"));
    }

    #[tokio::test]
    async fn directories_are_shared_while_leased_and_removed_after() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/w.bin"), b"w").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", src.join("escape")).unwrap();
        let artifacts = artifacts(tmp.path(), std::slice::from_ref(&src));
        let url = format!("file://{}", src.display());
        let minute = Duration::from_secs(60);
        let err = artifacts.prepare(ModelData::Url(&url), minute).await.err().unwrap();
        assert!(err.to_string().contains("links outside"), "{err}");
        assert_eq!(fs::read_dir(tmp.path().join("models")).unwrap().count(), 0, "a refused source leaves nothing behind");
        fs::remove_file(src.join("escape")).unwrap();
        let dir = artifacts.prepare(ModelData::Url(&url), minute).await.unwrap();
        let again = artifacts.prepare(ModelData::Url(&url), minute).await.unwrap();
        assert_eq!(dir.path(), again.path(), "the same data is prepared once");
        assert_eq!(fs::read(dir.path().join("sub/w.bin")).unwrap(), b"w");
        let file_url = format!("file://{}", src.join("sub/w.bin").display());
        let single = artifacts.prepare(ModelData::Url(&file_url), minute).await.unwrap();
        assert_eq!(fs::read(single.path().join("w.bin")).unwrap(), b"w");
        assert_ne!(dir.path(), single.path());

        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(path.exists(), "still leased by the second instance");
        drop(again);
        let deadline = Instant::now() + Duration::from_secs(5);
        while path.exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!path.exists(), "removed once no instance holds it");
    }

    #[tokio::test]
    async fn a_directory_holding_the_model_store_is_refused_not_copied_into_itself() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("model.txt"), b"m").unwrap();
        let artifacts = artifacts(tmp.path(), &[tmp.path().to_path_buf()]);
        let url = format!("file://{}", tmp.path().display());
        let err = artifacts.prepare(ModelData::Url(&url), Duration::from_secs(60)).await.err().unwrap();
        assert!(err.to_string().contains("holds berth's own data directory"), "{err}");
    }

    #[tokio::test]
    async fn preparation_past_the_download_timeout_fails_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let archive = src.join("m.tar");
        let mut b = tar::Builder::new(fs::File::create(&archive).unwrap());
        let data = vec![7u8; 1 << 20];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "w.bin", &data[..]).unwrap();
        b.finish().unwrap();
        let artifacts = artifacts(tmp.path(), std::slice::from_ref(&src));
        let url = format!("file://{}", archive.display());
        let err = artifacts.prepare(ModelData::Url(&url), Duration::ZERO).await.err().unwrap();
        assert!(err.to_string().contains("ModelDataDownloadTimeoutInSeconds"), "{err}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::read_dir(tmp.path().join("models")).unwrap().count() > 0 {
            assert!(Instant::now() < deadline, "a preparation past its deadline left files behind");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
