//! Batch transform jobs (`CreateTransformJob`): a model run over every object under an input
//! prefix, each object's answers written to an object of the same name under the output path.

use crate::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

wire_enum!(
    /// SageMaker's transform job statuses.
    TransformJobStatus { InProgress, Completed, Failed, Stopping, Stopped }
);

impl TransformJobStatus {
    pub fn ended(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Stopped)
    }
}

/// How records are grouped into requests (`BatchStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchStrategy {
    /// As many records as fit in `MaxPayloadInMB`.
    MultiRecord,
    SingleRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformJob {
    pub name: String,
    pub arn: String,
    pub model_name: String,
    pub status: TransformJobStatus,
    pub failure_reason: Option<String>,
    pub created: Timestamp,
    pub modified: Timestamp,
    pub started: Option<Timestamp>,
    pub ended: Option<Timestamp>,
    /// `s3://bucket/prefix` (or a `file://` path under a root): every object under it; or,
    /// with `manifest`, a manifest file naming the objects.
    pub input_uri: String,
    /// `S3DataType: ManifestFile`: `input_uri` is a JSON list, `{"prefix": ...}` then keys.
    #[serde(default)]
    pub manifest: bool,
    pub content_type: Option<String>,
    /// `SplitType: Line`: each line is a record; otherwise a whole object is one request.
    pub split_lines: bool,
    pub output_path: String,
    pub accept: Option<String>,
    /// `AssembleWith: Line`: answers joined by newlines; otherwise concatenated.
    pub assemble_lines: bool,
    pub output_kms_key_id: Option<String>,
    pub instance_type: String,
    pub instance_count: u32,
    pub max_concurrent_transforms: Option<u32>,
    pub max_payload_mb: Option<u32>,
    pub batch_strategy: Option<BatchStrategy>,
    pub environment: BTreeMap<String, String>,
    pub invocation_timeout_secs: Option<u32>,
    pub max_retries: Option<u32>,
    /// `DataProcessing.InputFilter`, `OutputFilter` (JSONPath, `$` when unset) and
    /// `JoinSource: Input`.
    #[serde(default)]
    pub input_filter: Option<String>,
    #[serde(default)]
    pub output_filter: Option<String>,
    #[serde(default)]
    pub join_input: bool,
}

impl TransformJob {
    /// A job `InProgress` of `count` instances of `instance_type` running `model` over the
    /// objects under `input_uri` into `output_path`, with what CreateTransformJob leaves unset as
    /// SageMaker leaves it: each object one request (no `SplitType`, no `BatchStrategy`),
    /// answers joined by line, no content types, filters, environment or client settings. Its
    /// ARN and times are set when it is created.
    pub fn new(name: &str, model: &str, input_uri: &str, output_path: &str, instance_type: &str, count: u32) -> Self {
        let zero = Timestamp::from_millis(0);
        TransformJob {
            name: name.into(),
            arn: String::new(),
            model_name: model.into(),
            status: TransformJobStatus::InProgress,
            failure_reason: None,
            created: zero,
            modified: zero,
            started: None,
            ended: None,
            input_uri: input_uri.into(),
            manifest: false,
            content_type: None,
            split_lines: false,
            output_path: output_path.into(),
            accept: None,
            assemble_lines: true,
            output_kms_key_id: None,
            instance_type: instance_type.into(),
            instance_count: count,
            max_concurrent_transforms: None,
            max_payload_mb: None,
            batch_strategy: None,
            environment: BTreeMap::new(),
            invocation_timeout_secs: None,
            max_retries: None,
            input_filter: None,
            output_filter: None,
            join_input: false,
        }
    }

    /// SageMaker's default payload limit, in MB.
    pub const DEFAULT_MAX_PAYLOAD_MB: u32 = 6;
    pub const DEFAULT_TIMEOUT_SECS: u32 = 600;
    pub const DEFAULT_RETRIES: u32 = 3;

    /// Whether records go through `DataProcessing` (filters or a join): then each record is
    /// a request of its own, so its answer can be joined to it.
    pub fn processes_records(&self) -> bool {
        let whole = |f: &Option<String>| f.as_deref().is_none_or(|f| f.trim() == "$");
        self.join_input || !whole(&self.input_filter) || !whole(&self.output_filter)
    }

    /// Requests in flight at once: as set, else one per instance.
    pub fn concurrency(&self) -> usize {
        match self.max_concurrent_transforms {
            Some(n) if n > 0 => n as usize,
            _ => self.instance_count.max(1) as usize,
        }
    }

    pub fn max_payload_bytes(&self) -> usize {
        let mb = match self.max_payload_mb {
            Some(0) | None => Self::DEFAULT_MAX_PAYLOAD_MB,
            Some(n) => n,
        };
        mb as usize * 1024 * 1024
    }

    /// The requests of one object: the whole object, or its lines grouped by the batch
    /// strategy under the payload limit (a single line past the limit is its own request).
    pub fn requests(&self, object: &[u8]) -> Vec<std::ops::Range<usize>> {
        if !self.split_lines {
            return std::iter::once(0..object.len()).collect();
        }
        let mut lines = Vec::new();
        let mut start = 0;
        for (i, b) in object.iter().enumerate() {
            if *b == b'\n' {
                if i > start {
                    lines.push(start..i + 1);
                }
                start = i + 1;
            }
        }
        if start < object.len() {
            lines.push(start..object.len());
        }
        if self.batch_strategy != Some(BatchStrategy::MultiRecord) || self.processes_records() {
            return lines;
        }
        let limit = self.max_payload_bytes();
        let mut out: Vec<std::ops::Range<usize>> = Vec::new();
        for line in lines {
            match out.last_mut() {
                Some(last) if line.end - last.start <= limit => last.end = line.end,
                _ => out.push(line),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(split_lines: bool, batch: Option<BatchStrategy>, mb: Option<u32>) -> TransformJob {
        let job = TransformJob::new("j", "m", "s3://b/in", "s3://b/out", "ml.m5.large", 1);
        TransformJob { split_lines, batch_strategy: batch, max_payload_mb: mb, ..job }
    }

    #[test]
    fn objects_split_into_requests_by_line_and_batch_strategy() {
        let data = b"a,1\nb,2\n\nc,3";
        let whole = std::iter::once(0..data.len()).collect::<Vec<_>>();
        assert_eq!(job(false, None, None).requests(data), whole);
        let single: Vec<&[u8]> = job(true, Some(BatchStrategy::SingleRecord), None).requests(data).into_iter().map(|r| &data[r]).collect();
        assert_eq!(single, vec![&b"a,1\n"[..], b"b,2\n", b"c,3"], "blank lines are no records");
        let multi = job(true, Some(BatchStrategy::MultiRecord), None).requests(data);
        assert_eq!(multi, whole, "all in one payload under 6 MB");
        let big = vec![b'x'; 700 * 1024];
        let mut lines = Vec::new();
        for _ in 0..3 {
            lines.extend_from_slice(&big);
            lines.push(b'\n');
        }
        assert_eq!(job(true, Some(BatchStrategy::MultiRecord), Some(1)).requests(&lines).len(), 3, "one 700 KB line per 1 MB payload");
    }
}
