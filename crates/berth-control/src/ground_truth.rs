//! Ground truth: labels for captured inferences, sent through berth's API (berth's JSON or
//! SageMaker's ground-truth JSON Lines) or read from `*.jsonl` files under the location an
//! endpoint's `berth:ground-truth` tag names, stored by the event or inference id they label.

use crate::labels::{labels_kind, read_files_kind};
use crate::{ControlError, Controller};
use serde_json::{json, Value};

/// The largest ground-truth file berth reads (in S3 or under a root); past it the file is
/// skipped with a warning, never buffered.
const MAX_GROUND_TRUTH_FILE: u64 = 1024 * 1024 * 1024;

/// A label for one captured inference, found by its event id or inference id.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    pub event_id: Option<String>,
    pub inference_id: Option<String>,
    pub label: Value,
}

/// One line of SageMaker's ground-truth JSON Lines: its label (CSV data as text, JSON data
/// parsed) and the event it labels.
pub fn ground_truth_line(line: &str) -> Result<GroundTruth, ControlError> {
    let invalid = |message: String| ControlError::Validation(message);
    let v: Value = serde_json::from_str(line).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let data = &v["groundTruthData"];
    let raw = data["data"].as_str().ok_or_else(|| invalid("groundTruthData.data is missing".into()))?;
    let label = match data["encoding"].as_str().unwrap_or("CSV") {
        "JSON" => serde_json::from_str(raw).map_err(|e| invalid(format!("groundTruthData.data is not JSON: {e}")))?,
        _ => Value::String(raw.trim().to_string()),
    };
    let event_id = v["eventMetadata"]["eventId"].as_str().map(str::to_string);
    let inference_id = v["eventMetadata"]["inferenceId"].as_str().map(str::to_string);
    if event_id.is_none() && inference_id.is_none() {
        return Err(invalid("eventMetadata.eventId is missing".into()));
    }
    Ok(GroundTruth { event_id, inference_id, label })
}

impl Controller {
    /// Stores labels; returns how many were stored.
    pub async fn add_ground_truth(&self, endpoint: &str, labels: Vec<GroundTruth>) -> Result<usize, ControlError> {
        self.describe_endpoint(endpoint).await?;
        let now = self.now().millis();
        let mut rows = Vec::with_capacity(labels.len());
        for (i, l) in labels.into_iter().enumerate() {
            let key = match (&l.event_id, &l.inference_id) {
                (Some(e), _) => format!("event:{e}"),
                (None, Some(i)) => format!("inference:{i}"),
                (None, None) => {
                    return Err(ControlError::Validation(format!("Label {} names neither an eventId nor an inferenceId.", i + 1)))
                }
            };
            rows.push((key.clone(), now, json!({ "key": key, "label": l.label }).to_string()));
        }
        let n = rows.len();
        let kind = labels_kind(endpoint);
        self.db(move |s| s.put_records(&kind, &rows)).await?;
        Ok(n)
    }

    /// Reads SageMaker ground-truth JSON Lines files (`*.jsonl`) that appeared under the location
    /// an endpoint's `berth:ground-truth` tag names (`file:///dir` or `s3://bucket/prefix`).
    pub async fn ingest_ground_truth(&self) -> Result<(), ControlError> {
        for e in self.all_endpoints().await? {
            let tags = self.list_tags(&e.arn).await?;
            let Some((_, location)) = tags.iter().find(|(k, _)| k == "berth:ground-truth") else { continue };
            let files: Vec<String> = match location.strip_prefix("file://") {
                Some(dir) => {
                    // Only under a --file-root: a tag is anyone's to set.
                    let Ok(dir) = self.settings.file_roots.resolve(std::path::Path::new(dir)) else {
                        tracing::warn!(endpoint = %e.name, %location, "ground truth not read: the location is not under a --file-root");
                        continue;
                    };
                    let roots = self.settings.file_roots.clone();
                    tokio::task::spawn_blocking(move || jsonl_files(&dir, &roots)).await.unwrap_or_default()
                }
                None => self.s3.list(location).await.unwrap_or_default().into_iter().filter(|k| k.ends_with(".jsonl")).collect(),
            };
            // What was read before (and at what size), kept in the store: a restart reads nothing
            // twice, and a file is marked only once it is read and its labels stored.
            let kind = read_files_kind(&e.name);
            let read_kind = kind.clone();
            let read: std::collections::HashMap<String, u64> = self
                .db(move |s| s.records(&read_kind))
                .await?
                .iter()
                .filter_map(|b| serde_json::from_str::<Value>(b).ok())
                .filter_map(|v| Some((v["file"].as_str()?.to_string(), v["size"].as_u64()?)))
                .collect();
            for file in files {
                let bytes = match file.strip_prefix("file://") {
                    Some(path) => {
                        // A local file still being written grows: read it again when it has.
                        let size = tokio::fs::metadata(path).await.map(|m| m.len()).unwrap_or(0);
                        if read.get(&file) == Some(&size) {
                            continue;
                        }
                        if size > MAX_GROUND_TRUTH_FILE {
                            Err(format!("{file} is {size} bytes, more than the {MAX_GROUND_TRUTH_FILE} berth reads of it"))
                        } else {
                            tokio::fs::read(path).await.map_err(|e| e.to_string())
                        }
                    }
                    // An S3 object is whole once it can be listed.
                    None if read.contains_key(&file) => continue,
                    None => self.s3.get(&file, MAX_GROUND_TRUTH_FILE).await,
                };
                let (text, size) = match bytes {
                    Ok(b) => (String::from_utf8_lossy(&b).into_owned(), b.len()),
                    Err(err) => {
                        tracing::warn!(file = %file, error = %err, "cannot read ground truth; trying again next round");
                        continue;
                    }
                };
                let labels: Vec<GroundTruth> =
                    text.lines().filter(|l| !l.trim().is_empty()).filter_map(|l| ground_truth_line(l).ok()).collect();
                let n = self.add_ground_truth(&e.name, labels).await?;
                let mark = json!({ "file": file, "size": size }).to_string();
                let (k, f, now) = (kind.clone(), file.clone(), self.now().millis());
                self.db(move |s| s.put_records(&k, &[(f, now, mark)])).await?;
                tracing::info!(endpoint = %e.name, file = %file, labels = n, "ground truth read");
            }
        }
        Ok(())
    }
}

/// Every `*.jsonl` file under `dir`, as `file://` URIs, in path order; links are followed only
/// where they stay under the file roots.
fn jsonl_files(dir: &std::path::Path, roots: &berth_instances::AllowedRoots) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        if !seen.insert(d.clone()) {
            continue; // a link back up the tree
        }
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(path) = roots.resolve(&entry.path()) else { continue };
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "jsonl") {
                out.push(format!("file://{}", path.display()));
            }
        }
    }
    out.sort();
    out
}
