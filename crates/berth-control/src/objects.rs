//! The objects asynchronous requests and transform jobs read and write: in S3 (or an
//! S3-compatible store), or files under a `--file-root`. Reads are refused past a size limit
//! before they are buffered; writes land whole (a file by a rename).

use crate::Controller;
use bytes::Bytes;

impl Controller {
    /// The bytes of `uri` (`s3://bucket/key`, or `file:///path` under a `--file-root`, resolved
    /// so a link cannot lead outside), at most `max`.
    pub(crate) async fn read_object(&self, uri: &str, max: u64) -> Result<Bytes, String> {
        if uri.starts_with("s3://") {
            return self.s3.get(uri, max).await.map(Bytes::from);
        }
        let path = uri.strip_prefix("file://").ok_or_else(|| format!("cannot read {uri}: it is not s3:// or file://"))?;
        let path = self
            .settings
            .file_roots
            .resolve(std::path::Path::new(path))
            .map_err(|_| format!("cannot read {uri}: it is not under a directory berth may read (--file-root)"))?;
        let uri = uri.to_string();
        tokio::task::spawn_blocking(move || {
            let size = std::fs::metadata(&path).map_err(|e| format!("cannot read {uri}: {e}"))?.len();
            if size > max {
                return Err(format!("{uri} is {size} bytes, more than the {max} berth reads of it"));
            }
            std::fs::read(&path).map(Bytes::from).map_err(|e| format!("cannot read {uri}: {e}"))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Writes `body` to `uri`: `s3://...` (SSE-KMS with `kms_key_id`), or a file under a
    /// `--file-root`, whole (by a rename: a reader never sees half of it).
    pub(crate) async fn write_object(&self, uri: &str, body: Vec<u8>, kms_key_id: Option<&str>) -> Result<(), String> {
        if uri.starts_with("s3://") {
            return self.s3.put(uri, body, kms_key_id).await.map_err(|e| e.to_string());
        }
        let path = uri.strip_prefix("file://").ok_or_else(|| format!("cannot write {uri}"))?;
        let parent = std::path::Path::new(path).parent().ok_or_else(|| format!("cannot write {uri}"))?;
        let parent = parent.to_string_lossy().into_owned();
        let dir = self.writable_destination("S3OutputPath", &format!("file://{parent}")).map_err(|e| e.to_string())?;
        let name = std::path::Path::new(path).file_name().map(|n| n.to_os_string()).ok_or_else(|| format!("cannot write {uri}"))?;
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let dir = dir.ok_or("no directory")?;
            // Private, as captured data is: answers are the callers' data.
            berth_instances::private_dir(&dir).map_err(|e| e.to_string())?;
            let target = dir.join(&name);
            let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(|e| e.to_string())?;
            file.write_all(&body).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &target).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
