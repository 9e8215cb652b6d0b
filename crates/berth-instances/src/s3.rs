//! Model data from S3 or any S3-compatible store, through the AWS SDK's standard configuration:
//! the credentials chain, the region, and `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`.

use crate::error::{ArtifactError, HostError};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use std::path::Path;
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

/// An `s3://bucket/key` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Location {
    pub bucket: String,
    pub key: String,
}

impl S3Location {
    pub(crate) fn parse(url: &str) -> Option<Result<S3Location, String>> {
        let rest = url.strip_prefix("s3://")?;
        Some(match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(S3Location { bucket: bucket.into(), key: key.into() }),
            _ => Err(format!("ModelDataUrl '{url}' must name a bucket and a key: s3://bucket/path/to/model.tar.gz")),
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// The S3 client, made on first use (loading AWS configuration reads files and environment).
#[derive(Default)]
pub(crate) struct S3Source {
    client: OnceCell<Client>,
}

impl S3Source {
    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                // S3-compatible stores behind a custom endpoint rarely resolve bucket subdomains.
                let custom_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().any(|v| std::env::var_os(v).is_some());
                let config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(custom_endpoint).build();
                Client::from_conf(config)
            })
            .await
    }

    /// The object's ETag: the version the local copy is cached under.
    pub(crate) async fn etag(&self, at: &S3Location) -> Result<String, ArtifactError> {
        let head = self.client().await.head_object().bucket(&at.bucket).key(&at.key).send().await.map_err(|e| describe(at, e))?;
        Ok(head.e_tag().unwrap_or_default().trim_matches('"').to_string())
    }

    /// Every object under a prefix: key, ETag and size, in key order.
    pub(crate) async fn listing(&self, at: &S3Location) -> Result<Vec<(String, String, u64)>, ArtifactError> {
        let client = self.client().await;
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(&at.bucket)
                .prefix(&at.key)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| describe(at, e))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    let etag = object.e_tag().unwrap_or_default().trim_matches('"').to_string();
                    out.push((key.to_string(), etag, object.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0)));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    /// Streams the object to `dest` (never whole in memory) and checks that all of it arrived.
    pub(crate) async fn download(&self, at: &S3Location, dest: &Path, max_bytes: u64) -> Result<u64, ArtifactError> {
        let object = self.client().await.get_object().bucket(&at.bucket).key(&at.key).send().await.map_err(|e| describe(at, e))?;
        let expected = object.content_length().and_then(|n| u64::try_from(n).ok());
        if expected.is_some_and(|n| n > max_bytes) {
            return Err(ArtifactError::Unsafe(format!("model data {at} is larger than the {max_bytes}-byte limit")));
        }
        let io = |e: std::io::Error| ArtifactError::Io(format!("cannot write {}: {e}", dest.display()));
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut body = object.body;
        let mut received: u64 = 0;
        loop {
            let chunk = match body.try_next().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    return Err(ArtifactError::Io(format!("download of {at} failed after {received} bytes: {}", DisplayErrorContext(&e))))
                }
            };
            received += chunk.len() as u64;
            if received > max_bytes {
                return Err(ArtifactError::Unsafe(format!("model data {at} is larger than the {max_bytes}-byte limit")));
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        if let Some(n) = expected.filter(|&n| n != received) {
            return Err(ArtifactError::Io(format!("download of {at} was truncated: {received} of {n} bytes arrived")));
        }
        Ok(received)
    }
}

/// A failure a person can act on: missing object or bucket, denied access, or the SDK's words.
fn describe<E>(at: &S3Location, e: SdkError<E, HttpResponse>) -> ArtifactError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    match (e.code(), status) {
        (Some("NoSuchKey" | "NotFound" | "NoSuchBucket"), _) | (_, Some(404)) => {
            ArtifactError::NotFound(format!("model data {at} was not found (no such object or bucket)"))
        }
        (Some("AccessDenied" | "Forbidden"), _) | (_, Some(403)) => {
            ArtifactError::NotFound(format!("access to model data {at} was denied: check the credentials berth runs with"))
        }
        _ => ArtifactError::Io(format!("cannot read model data {at}: {}", DisplayErrorContext(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key() {
        assert_eq!(S3Location::parse("s3://b/m/model.tar.gz"), Some(Ok(S3Location { bucket: "b".into(), key: "m/model.tar.gz".into() })));
        assert!(S3Location::parse("s3://bucket-only").unwrap().is_err());
        assert!(S3Location::parse("s3:///key").unwrap().is_err());
        assert_eq!(S3Location::parse("file:///x"), None);
    }
}

/// Writes objects to S3 (captured data), configured like model data's client.
#[derive(Default)]
pub struct S3Writer {
    source: S3Source,
}

impl S3Writer {
    /// Puts `body` at `s3://bucket/key`.
    /// Writes an object; with `kms_key_id`, encrypted with that KMS key (SSE-KMS).
    pub async fn put(&self, uri: &str, body: Vec<u8>, kms_key_id: Option<&str>) -> Result<(), HostError> {
        self.put_object(uri, body, kms_key_id).await.map_err(HostError)
    }

    async fn put_object(&self, uri: &str, body: Vec<u8>, kms_key_id: Option<&str>) -> Result<(), String> {
        let at = match S3Location::parse(uri) {
            Some(Ok(at)) => at,
            Some(Err(e)) => return Err(e),
            None => return Err(format!("'{uri}' is not an s3:// URI")),
        };
        self.source
            .client()
            .await
            .put_object()
            .bucket(&at.bucket)
            .key(&at.key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .set_server_side_encryption(kms_key_id.map(|_| aws_sdk_s3::types::ServerSideEncryption::AwsKms))
            .set_ssekms_key_id(kms_key_id.map(str::to_string))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot write {at}: {}", DisplayErrorContext(&e)))
    }
}

impl S3Writer {
    /// The keys under `s3://bucket/prefix`, in key order.
    pub async fn list(&self, uri: &str) -> Result<Vec<String>, String> {
        let at = match S3Location::parse(&format!("{}/", uri.trim_end_matches('/'))) {
            Some(Ok(at)) => at,
            _ => match uri.strip_prefix("s3://").and_then(|r| r.split_once('/').map(|(b, _)| b).or(Some(r))) {
                Some(bucket) => S3Location { bucket: bucket.to_string(), key: String::new() },
                None => return Err(format!("'{uri}' is not an s3:// URI")),
            },
        };
        let listed = self.source.listing(&at).await.map_err(|e| e.to_string())?;
        Ok(listed.into_iter().map(|(key, _, _)| format!("s3://{}/{key}", at.bucket)).collect())
    }

    /// The bytes of `s3://bucket/key`, refused past `max` bytes: by the size the store
    /// announces before anything is read, and by what arrives while it is read.
    pub async fn get(&self, uri: &str, max: u64) -> Result<Vec<u8>, String> {
        let at = match S3Location::parse(uri) {
            Some(Ok(at)) => at,
            Some(Err(e)) => return Err(e),
            None => return Err(format!("'{uri}' is not an s3:// URI")),
        };
        let too_large = |n: u64| format!("{at} is {n} bytes, more than the {max} berth reads of it");
        let mut object = self
            .source
            .client()
            .await
            .get_object()
            .bucket(&at.bucket)
            .key(&at.key)
            .send()
            .await
            .map_err(|e| format!("cannot read {at}: {}", DisplayErrorContext(&e)))?;
        let announced = object.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        if announced > max {
            return Err(too_large(announced));
        }
        let mut bytes = Vec::with_capacity(announced as usize);
        while let Some(chunk) = object.body.next().await {
            let chunk = chunk.map_err(|e| format!("cannot read {at}: {e}"))?;
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(too_large((bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}
