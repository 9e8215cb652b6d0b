//! A transform job's records under `DataProcessing`: `InputFilter` before the model,
//! `JoinSource: Input` and `OutputFilter` after it, for JSON documents and CSV rows (arrays of
//! columns), as SageMaker documents them.

use berth_domain::TransformJob;
use bytes::Bytes;

/// How a record reads for `DataProcessing`: a JSON document, or CSV (an array of columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordFormat {
    Json,
    Csv,
}

impl RecordFormat {
    pub(crate) fn of(job: &TransformJob) -> Self {
        if job.content_type.as_deref().is_some_and(|t| t.contains("json")) {
            RecordFormat::Json
        } else {
            RecordFormat::Csv
        }
    }

    fn parse(self, text: &[u8]) -> Result<serde_json::Value, String> {
        let text = std::str::from_utf8(text).map_err(|_| "a record is not UTF-8 text".to_string())?.trim_end_matches(['\r', '\n']);
        match self {
            RecordFormat::Json => serde_json::from_str(text).map_err(|e| format!("a record is not JSON ({e}): {text}")),
            RecordFormat::Csv => Ok(serde_json::Value::Array(text.split(',').map(|c| serde_json::Value::String(c.to_string())).collect())),
        }
    }

    fn write(self, value: &serde_json::Value) -> Vec<u8> {
        let cell = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match (self, value) {
            (RecordFormat::Json, v) => v.to_string().into_bytes(),
            (RecordFormat::Csv, serde_json::Value::Array(items)) => items.iter().map(cell).collect::<Vec<_>>().join(",").into_bytes(),
            (RecordFormat::Csv, v) => cell(v).into_bytes(),
        }
    }

    /// The record as sent: its `InputFilter` selection.
    pub(crate) fn filter_input(self, job: &TransformJob, record: &[u8]) -> Result<Bytes, String> {
        let Some(filter) = job.input_filter.as_deref().filter(|f| f.trim() != "$") else { return Ok(Bytes::copy_from_slice(record)) };
        let path = berth_domain::JsonPath::parse(filter).map_err(|e| e.to_string())?;
        let value = self.parse(record)?;
        let selected = path.apply(&value).ok_or_else(|| format!("InputFilter {filter} selects nothing of a record"))?;
        Ok(Bytes::from(self.write(&selected)))
    }

    /// The record's output line: the answer, joined with the input record when `JoinSource`
    /// is `Input`, then its `OutputFilter` selection.
    pub(crate) fn output(self, job: &TransformJob, record: &[u8], answer: &[u8]) -> Result<Bytes, String> {
        let answer_text = String::from_utf8_lossy(answer).trim_end_matches(['\r', '\n']).to_string();
        let answer_value =
            serde_json::from_str::<serde_json::Value>(&answer_text).unwrap_or(serde_json::Value::String(answer_text.clone()));
        let joined = if job.join_input {
            match self.parse(record)? {
                serde_json::Value::Object(mut members) => {
                    members.insert("SageMakerOutput".into(), answer_value);
                    serde_json::Value::Object(members)
                }
                serde_json::Value::Array(mut items) => {
                    match (self, answer_value) {
                        (RecordFormat::Csv, _) => items.extend(answer_text.split(',').map(|c| serde_json::Value::String(c.to_string()))),
                        (RecordFormat::Json, v) => items.push(v),
                    }
                    serde_json::Value::Array(items)
                }
                other => serde_json::Value::Array(vec![other, answer_value]),
            }
        } else if self == RecordFormat::Csv {
            serde_json::Value::Array(answer_text.split(',').map(|c| serde_json::Value::String(c.to_string())).collect())
        } else {
            answer_value
        };
        let out = match job.output_filter.as_deref().filter(|f| f.trim() != "$") {
            None => joined,
            Some(filter) => berth_domain::JsonPath::parse(filter)
                .map_err(|e| e.to_string())?
                .apply(&joined)
                .ok_or_else(|| format!("OutputFilter {filter} selects nothing of an output record"))?,
        };
        Ok(Bytes::from(self.write(&out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(content_type: &str, input: Option<&str>, output: Option<&str>, join: bool) -> TransformJob {
        TransformJob {
            content_type: Some(content_type.into()),
            split_lines: true,
            input_filter: input.map(str::to_string),
            output_filter: output.map(str::to_string),
            join_input: join,
            ..TransformJob::new("j", "m", "s3://b/i", "s3://b/o", "ml.m5.large", 1)
        }
    }

    #[test]
    fn csv_records_drop_their_id_for_the_model_and_keep_it_beside_the_answer() {
        let j = job("text/csv", Some("$[1:]"), Some("$[0,-1]"), true);
        let f = RecordFormat::of(&j);
        assert_eq!(f.filter_input(&j, b"id-1,5.1,3.5\n").unwrap(), "5.1,3.5");
        assert_eq!(f.output(&j, b"id-1,5.1,3.5\n", b"0.97\n").unwrap(), "id-1,0.97");
    }

    #[test]
    fn json_records_are_filtered_and_joined_as_sagemaker_documents() {
        let j = job("application/json", Some("$.features"), None, true);
        let f = RecordFormat::of(&j);
        assert_eq!(f.filter_input(&j, br#"{"id": 1, "features": [1, 2]}"#).unwrap(), "[1,2]");
        let out: serde_json::Value = serde_json::from_slice(&f.output(&j, br#"{"id": 1, "features": [1, 2]}"#, b"[0.5]").unwrap()).unwrap();
        assert_eq!(out, serde_json::json!({"id": 1, "features": [1, 2], "SageMakerOutput": [0.5]}));
        let selecting = job("application/json", None, Some("$.SageMakerOutput"), true);
        assert_eq!(f.output(&selecting, br#"{"id": 1}"#, b"7").unwrap(), "7");
        assert!(f.filter_input(&job("application/json", Some("$.missing"), None, false), br#"{"id": 1}"#).is_err());
    }
}
