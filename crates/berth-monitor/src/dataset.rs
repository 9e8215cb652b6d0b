//! Datasets as SageMaker's analyzer reads them (its `dataset_format` environment): CSV with or
//! without a header (features `_c0`, `_c1`, … by position without one), JSON (one document of
//! records, or JSON Lines), and SageMaker's capture files (`sagemakerCaptureJson`: each line a
//! captured request, whose CSV or JSON input is the record).

use crate::statistics::{Cell, ColumnAccumulator, DatasetStatistics, Statistics};
use base64::Engine;
use serde_json::Value;

/// Most features a dataset may have.
const MAX_FEATURES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetFormat {
    Csv { header: bool },
    Json { lines: bool },
    CaptureJson,
}

impl DatasetFormat {
    /// `dataset_format` as the SageMaker SDK sends it: `{"csv": {"header": true}}`,
    /// `{"json": {"lines": true}}` or `{"sagemakerCaptureJson": {...}}`.
    pub fn parse(text: &str) -> Result<DatasetFormat, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("dataset_format is not JSON: {e}"))?;
        let object =
            value.as_object().filter(|o| o.len() == 1).ok_or("dataset_format must name one format: csv, json or sagemakerCaptureJson")?;
        let (kind, options) = object.iter().next().ok_or("dataset_format is empty")?;
        let flag = |name: &str, default: bool| options.get(name).and_then(Value::as_bool).unwrap_or(default);
        match kind.as_str() {
            "csv" => Ok(DatasetFormat::Csv { header: flag("header", true) }),
            "json" => Ok(DatasetFormat::Json { lines: flag("lines", true) }),
            "sagemakerCaptureJson" => Ok(DatasetFormat::CaptureJson),
            other => Err(format!("dataset_format {other} is not one berth reads: csv, json or sagemakerCaptureJson")),
        }
    }
}

/// Reads a dataset's objects, one after another, into per-feature statistics.
#[derive(Debug)]
pub struct DatasetAnalyzer {
    format: DatasetFormat,
    names: Vec<String>,
    columns: Vec<ColumnAccumulator>,
    rows: u64,
    /// Capture files: only requests whose `eventMetadata.inferenceTime` is in [from, to).
    window: Option<(String, String)>,
}

impl DatasetAnalyzer {
    pub fn new(format: DatasetFormat) -> Self {
        DatasetAnalyzer { format, names: Vec::new(), columns: Vec::new(), rows: 0, window: None }
    }

    /// Reads only captured requests made in [from, to) (times as capture files write them,
    /// `YYYY-MM-DDTHH:MM:SSZ`; a request without one is read).
    pub fn within(mut self, from: String, to: String) -> Self {
        self.window = Some((from, to));
        self
    }

    /// Adds the records of one object (`name` says which, in errors).
    pub fn add_object(&mut self, name: &str, data: &[u8]) -> Result<(), String> {
        match self.format.clone() {
            DatasetFormat::Csv { header } => self.add_csv(name, data, header),
            DatasetFormat::Json { lines: true } => {
                for (n, line) in data.split(|b| *b == b'\n').enumerate() {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let record: Value = serde_json::from_slice(line).map_err(|e| format!("{name} line {}: not JSON: {e}", n + 1))?;
                    self.add_json_record(name, &record)?;
                }
                Ok(())
            }
            DatasetFormat::Json { lines: false } => {
                let document: Value = serde_json::from_slice(data).map_err(|e| format!("{name}: not JSON: {e}"))?;
                match document {
                    Value::Array(records) => records.iter().try_for_each(|r| self.add_json_record(name, r)),
                    record => self.add_json_record(name, &record),
                }
            }
            DatasetFormat::CaptureJson => self.add_capture(name, data),
        }
    }

    fn column(&mut self, index: usize, name: impl FnOnce() -> String) -> Result<&mut ColumnAccumulator, String> {
        if index >= MAX_FEATURES {
            return Err(format!("the dataset has more than {MAX_FEATURES} features"));
        }
        while self.columns.len() <= index {
            self.columns.push(ColumnAccumulator::default());
            // A feature first seen now was missing from every earlier record.
            let rows = self.rows;
            let last = self.columns.len() - 1;
            for _ in 0..rows {
                self.columns[last].add(Cell::Missing);
            }
        }
        if self.names.len() <= index {
            self.names.resize(index + 1, String::new());
            self.names[index] = name();
        }
        Ok(&mut self.columns[index])
    }

    /// Ends a record of which `seen` features had a value: the others are missing.
    fn end_record(&mut self, seen: &[bool]) {
        for (i, column) in self.columns.iter_mut().enumerate() {
            if !seen.get(i).copied().unwrap_or(false) {
                column.add(Cell::Missing);
            }
        }
        self.rows += 1;
    }

    fn add_csv(&mut self, name: &str, data: &[u8], header: bool) -> Result<(), String> {
        let mut reader = csv::ReaderBuilder::new().has_headers(header).flexible(true).from_reader(data);
        if header {
            let found: Vec<String> = reader.headers().map_err(|e| format!("{name}: {e}"))?.iter().map(|h| h.trim().to_string()).collect();
            if self.names.is_empty() {
                if found.iter().any(String::is_empty) {
                    return Err(format!("{name}: the header names an empty feature"));
                }
                for (i, feature) in found.iter().enumerate() {
                    self.column(i, || feature.clone())?;
                }
            } else if found != self.names {
                return Err(format!("{name}: its header ({}) differs from the dataset's ({})", found.join(","), self.names.join(",")));
            }
        }
        for (n, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("{name} record {}: {e}", n + 1))?;
            if header && record.len() > self.names.len() {
                return Err(format!(
                    "{name} record {}: {} values, but the header names {} features",
                    n + 1,
                    record.len(),
                    self.names.len()
                ));
            }
            self.add_fields(record.iter())?;
        }
        Ok(())
    }

    /// A record of CSV fields, features by position.
    fn add_fields<'a>(&mut self, fields: impl Iterator<Item = &'a str>) -> Result<(), String> {
        let mut seen = Vec::new();
        for (i, field) in fields.enumerate() {
            self.column(i, || format!("_c{i}"))?.add(Cell::of_text(field));
            seen.push(true);
        }
        self.end_record(&seen);
        Ok(())
    }

    fn add_json_record(&mut self, name: &str, record: &Value) -> Result<(), String> {
        let Value::Object(fields) = record else {
            return Err(format!("{name}: a record is not a JSON object"));
        };
        let mut seen = vec![false; self.columns.len()];
        for (key, value) in fields {
            let index = match self.names.iter().position(|n| n == key) {
                Some(i) => i,
                None => self.names.len(),
            };
            let text;
            let cell = match value {
                Value::Null => Cell::Missing,
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    text = n.to_string();
                    Cell::Integral(n.as_f64().unwrap_or_default(), &text)
                }
                Value::Number(n) => {
                    text = n.to_string();
                    Cell::Fractional(n.as_f64().unwrap_or_default(), &text)
                }
                Value::String(s) => Cell::Text(s),
                other => {
                    text = other.to_string();
                    Cell::Text(&text)
                }
            };
            self.column(index, || key.clone())?.add(cell);
            if seen.len() <= index {
                seen.resize(index + 1, false);
            }
            seen[index] = true;
        }
        self.end_record(&seen);
        Ok(())
    }

    /// Capture files: each line's `captureData.endpointInput` is a record (CSV: each of its
    /// lines one record; JSON: an object, or a list of them). The CSV inputs of an object are
    /// read together, by one CSV reader (making one per request costs more than the rest).
    fn add_capture(&mut self, name: &str, data: &[u8]) -> Result<(), String> {
        let mut csv_inputs = Vec::new();
        for event in captured_events(name, data) {
            let event = event?;
            if let Some((from, to)) = &self.window {
                if !event.within(from, to) {
                    continue;
                }
            }
            let (decoded, content_type) = event.data("endpointInput")?;
            if content_type.contains("json") {
                let value: Value = serde_json::from_slice(&decoded).map_err(|e| format!("{}: the input is not JSON: {e}", event.source))?;
                match value {
                    Value::Array(records) => records.iter().try_for_each(|r| self.add_json_record(name, r))?,
                    record => self.add_json_record(name, &record)?,
                }
            } else {
                if decoded.iter().filter(|b| **b == b'"').count() % 2 == 1 {
                    return Err(format!("{}: the input is not CSV: a quote is not closed", event.source));
                }
                csv_inputs.extend_from_slice(&decoded);
                if !decoded.ends_with(b"\n") {
                    csv_inputs.push(b'\n');
                }
            }
        }
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&csv_inputs[..]);
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => self.add_fields(record.iter())?,
                Ok(false) => return Ok(()),
                Err(e) => return Err(format!("{name}: a captured input is not CSV: {e}")),
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The statistics of everything added; an error when there was no record, in the words
    /// SageMaker's analyzer fails with.
    pub fn statistics(&self) -> Result<Statistics, String> {
        if self.rows == 0 {
            return Err("Job inputs had no data".into());
        }
        let features = self.names.iter().zip(&self.columns).map(|(name, column)| column.statistics(name)).collect();
        Ok(Statistics { version: 0.0, dataset: DatasetStatistics { item_count: self.rows }, features })
    }

    /// Features whose distinct values were too many to count them all.
    pub fn approximate_features(&self) -> Vec<&str> {
        self.names.iter().zip(&self.columns).filter(|(_, c)| c.overflowed()).map(|(n, _)| n.as_str()).collect()
    }
}

/// One line of a capture file: a captured request and its answer.
#[derive(Debug)]
pub struct CapturedEvent {
    /// Where it was read (`<object> line <n>`), for errors.
    pub source: String,
    pub event_id: Option<String>,
    pub inference_id: Option<String>,
    pub inference_time: Option<String>,
    event: Value,
}

impl CapturedEvent {
    /// Whether it was made in [from, to) (times as capture files write them,
    /// `YYYY-MM-DDTHH:MM:SSZ`); one without a time is.
    pub fn within(&self, from: &str, to: &str) -> bool {
        self.inference_time.as_deref().is_none_or(|at| at >= from && at < to)
    }

    /// `captureData.<which>` (`endpointInput` or `endpointOutput`): its body, decoded, and its
    /// content type in lower case.
    pub fn data(&self, which: &str) -> Result<(Vec<u8>, String), String> {
        let part = &self.event["captureData"][which];
        let data = part["data"].as_str().ok_or_else(|| format!("{}: no captureData.{which}.data", self.source))?;
        let decoded = match part["encoding"].as_str() {
            Some("BASE64") => base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| format!("{}: captureData.{which} is not base64: {e}", self.source))?,
            _ => data.as_bytes().to_vec(),
        };
        Ok((decoded, part["observedContentType"].as_str().unwrap_or("").to_ascii_lowercase()))
    }
}

/// The events of a capture file (`name` says which, in errors); a line that is not JSON is an
/// error.
pub fn captured_events<'a>(name: &'a str, data: &'a [u8]) -> impl Iterator<Item = Result<CapturedEvent, String>> + 'a {
    data.split(|b| *b == b'\n').enumerate().filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace)).map(move |(n, line)| {
        let source = format!("{name} line {}", n + 1);
        let event: Value = serde_json::from_slice(line).map_err(|e| format!("{source}: not JSON: {e}"))?;
        let text = |v: &Value| v.as_str().map(str::to_string);
        let metadata = &event["eventMetadata"];
        Ok(CapturedEvent {
            event_id: text(&metadata["eventId"]),
            inference_id: text(&metadata["inferenceId"]),
            inference_time: text(&metadata["inferenceTime"]),
            source,
            event,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statistics::InferredType;

    #[test]
    fn formats_are_read_as_the_sdk_sends_them() {
        assert_eq!(
            DatasetFormat::parse(r#"{"csv": {"header": true, "output_columns_position": "START"}}"#),
            Ok(DatasetFormat::Csv { header: true })
        );
        assert_eq!(DatasetFormat::parse(r#"{"csv": {"header": false}}"#), Ok(DatasetFormat::Csv { header: false }));
        assert_eq!(DatasetFormat::parse(r#"{"json": {"lines": true}}"#), Ok(DatasetFormat::Json { lines: true }));
        assert_eq!(DatasetFormat::parse(r#"{"sagemakerCaptureJson": {}}"#), Ok(DatasetFormat::CaptureJson));
        for bad in ["", "[]", "{}", r#"{"parquet": {}}"#, r#"{"csv": {}, "json": {}}"#] {
            assert!(DatasetFormat::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_csv_with_a_header_names_its_features_and_objects_must_agree() {
        let mut a = DatasetAnalyzer::new(DatasetFormat::Csv { header: true });
        a.add_object("one.csv", b"x,label\n1,cat\n2.5,dog\n,cat\n").unwrap();
        a.add_object("two.csv", b"x,label\n4,cat\n").unwrap();
        let s = a.statistics().unwrap();
        assert_eq!(s.dataset.item_count, 4);
        assert_eq!(s.features[0].name, "x");
        assert_eq!(s.features[0].inferred_type, InferredType::Fractional);
        assert_eq!(s.features[0].common().num_missing, 1);
        assert_eq!(s.features[1].inferred_type, InferredType::String);
        assert!(a.add_object("three.csv", b"y,label\n1,cat\n").unwrap_err().contains("differs from the dataset's (x,label)"));
        assert!(a.add_object("four.csv", b"x,label\n1,cat,extra\n").unwrap_err().contains("2 features"));
    }

    #[test]
    fn a_csv_without_a_header_names_features_by_position() {
        let mut a = DatasetAnalyzer::new(DatasetFormat::Csv { header: false });
        a.add_object("d.csv", b"1,2\n3,4,5\n").unwrap();
        let s = a.statistics().unwrap();
        let names: Vec<&str> = s.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["_c0", "_c1", "_c2"]);
        assert_eq!(s.features[2].common().num_missing, 1, "a record shorter than others misses its last features");
    }

    #[test]
    fn json_lines_and_capture_files_are_records_too() {
        let mut a = DatasetAnalyzer::new(DatasetFormat::Json { lines: true });
        a.add_object("d.jsonl", b"{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2.5}\n{\"c\": null}\n").unwrap();
        let s = a.statistics().unwrap();
        assert_eq!(s.dataset.item_count, 3);
        assert_eq!((s.features[0].inferred_type, s.features[0].common().num_missing), (InferredType::Fractional, 1));
        assert_eq!(s.features[1].common().num_missing, 2);
        assert_eq!(s.features[2].inferred_type, InferredType::Unknown);

        let mut c = DatasetAnalyzer::new(DatasetFormat::CaptureJson);
        let line = |data: &str, encoding: &str| {
            serde_json::json!({"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": data, "encoding": encoding}}})
                .to_string()
        };
        let body = format!("{}\n{}\n", line("1,2\n3,4", "CSV"), line(&base64::engine::general_purpose::STANDARD.encode("5,6"), "BASE64"));
        c.add_object("capture.jsonl", body.as_bytes()).unwrap();
        let s = c.statistics().unwrap();
        assert_eq!(s.dataset.item_count, 3);
        assert_eq!(s.features[0].numerical_statistics.as_ref().unwrap().sum, 9.0);

        let at = |time: &str, data: &str| {
            serde_json::json!({"captureData": {"endpointInput": {"observedContentType": "text/csv", "data": data, "encoding": "CSV"}}, "eventMetadata": {"inferenceTime": time}})
                .to_string()
        };
        let body = [
            at("2026-12-06T09:59:59Z", "1"),
            at("2026-12-06T10:00:00Z", "2"),
            at("2026-12-06T10:59:59Z", "3"),
            at("2026-12-06T11:00:00Z", "4"),
        ]
        .join("\n");
        let mut w = DatasetAnalyzer::new(DatasetFormat::CaptureJson).within("2026-12-06T10:00:00Z".into(), "2026-12-06T11:00:00Z".into());
        w.add_object("capture.jsonl", body.as_bytes()).unwrap();
        assert_eq!(w.statistics().unwrap().features[0].numerical_statistics.as_ref().unwrap().sum, 5.0, "only the hour's requests");
    }

    #[test]
    fn no_records_is_no_data_and_hostile_input_is_an_error_not_a_panic() {
        let a = DatasetAnalyzer::new(DatasetFormat::Csv { header: true });
        assert_eq!(a.statistics().unwrap_err(), "Job inputs had no data");
        let mut a = DatasetAnalyzer::new(DatasetFormat::Csv { header: true });
        a.add_object("h.csv", b"x\n").unwrap();
        assert_eq!(a.statistics().unwrap_err(), "Job inputs had no data", "a header alone is no data");
        let mut j = DatasetAnalyzer::new(DatasetFormat::Json { lines: true });
        assert!(j.add_object("j", b"[1, 2]\n").unwrap_err().contains("not a JSON object"));
        assert!(j.add_object("j", b"{\"a\": \n").unwrap_err().contains("not JSON"));
        let mut wide = DatasetAnalyzer::new(DatasetFormat::Csv { header: false });
        let row = vec!["1"; MAX_FEATURES + 1].join(",");
        assert!(wide.add_object("w", row.as_bytes()).unwrap_err().contains("more than"));
        let mut cap = DatasetAnalyzer::new(DatasetFormat::CaptureJson);
        assert!(cap.add_object("c", b"{\"captureData\": {}}\n").unwrap_err().contains("no captureData.endpointInput.data"));
        let mut bad = DatasetAnalyzer::new(DatasetFormat::Csv { header: true });
        assert!(bad.add_object("b", b",x\n1,2\n").unwrap_err().contains("empty feature"));
        // The CSV inputs of a capture file are read together: a quoted comma stays in its field,
        // and an unclosed quote is the error of its own line, not a swallower of the next.
        let event = |data: &str| {
            format!(
                "{}\n",
                serde_json::json!({"captureData": {"endpointInput": {"observedContentType": "text/csv", "data": data, "encoding": "CSV"}}})
            )
        };
        let mut quoted = DatasetAnalyzer::new(DatasetFormat::CaptureJson);
        quoted.add_object("q", (event("\"a,b\",1") + &event("c,2\n")).as_bytes()).unwrap();
        let s = quoted.statistics().unwrap();
        assert_eq!((s.dataset.item_count, s.features.len()), (2, 2));
        let mut unclosed = DatasetAnalyzer::new(DatasetFormat::CaptureJson);
        let err = unclosed.add_object("u", (event("c,2") + &event("\"a,1")).as_bytes()).unwrap_err();
        assert!(err.contains("u line 2") && err.contains("quote is not closed"), "{err}");
    }
}
