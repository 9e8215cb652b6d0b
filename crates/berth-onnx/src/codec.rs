//! Request and response bodies in the formats of SageMaker's built-in algorithms.
//!
//! In: `text/csv` (one row per line, no header), `application/json` (`{"instances": rows}`,
//! `{"inputs": rows}` or a bare list of rows; a single flat row is one row). Out: `text/csv`
//! (a label or the scores per line) or `application/json`
//! (`{"predictions": [{"label": .., "probabilities": [..]}, ..]}` or `{"predictions": [{"score": ..}]}`).

use crate::model::{Label, Prediction};
use serde_json::Value;

/// A client error: the body or its headers are not something the model can take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("unsupported content type '{0}': berth/onnx accepts text/csv, application/json and application/x-npy")]
    ContentType(String),
    #[error("unsupported accept type '{0}': berth/onnx answers text/csv or application/json")]
    Accept(String),
    #[error("{0}")]
    Malformed(String),
}

/// Rows parsed from a body: row-major values, `n_features` per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub values: Vec<f64>,
    pub n_rows: usize,
    pub n_features: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputFormat {
    Csv,
    Json,
}

fn media_type(header: &str) -> String {
    header.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Parses a body of `content_type` (absent: CSV, as SageMaker's built-in algorithms assume).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Rows, InputError> {
    if content_type.map(media_type).as_deref() == Some("application/x-npy") {
        return parse_npy(body);
    }
    let text = std::str::from_utf8(body).map_err(|_| InputError::Malformed("the body is not UTF-8 text".into()))?;
    match content_type.map(media_type).as_deref() {
        None | Some("") | Some("text/csv") => parse_csv(text),
        Some("application/json") => parse_json(text),
        Some("application/jsonlines") | Some("application/x-jsonlines") => parse_json_lines(text),
        Some(other) => Err(InputError::ContentType(other.to_string())),
    }
}

/// A NumPy `.npy` array (format 1.0–3.0): little-endian float32, float64 or int64, C order,
/// one row (`(m,)`) or rows (`(n, m)`).
fn parse_npy(body: &[u8]) -> Result<Rows, InputError> {
    let bad = |m: &str| InputError::Malformed(format!("the body is not a NumPy .npy array this worker reads: {m}"));
    if body.len() < 10 || &body[..6] != b"\x93NUMPY" {
        return Err(bad("no .npy magic"));
    }
    let (header_len, start) = match body[6] {
        1 => (u16::from_le_bytes([body[8], body[9]]) as usize, 10),
        2 | 3 if body.len() >= 12 => (u32::from_le_bytes([body[8], body[9], body[10], body[11]]) as usize, 12),
        v => return Err(bad(&format!("format version {v}"))),
    };
    let header = body.get(start..start + header_len).and_then(|h| std::str::from_utf8(h).ok()).ok_or_else(|| bad("truncated header"))?;
    let field = |name: &str| {
        let at = header.find(&format!("'{name}':"))? + name.len() + 3;
        Some(header[at..].trim_start())
    };
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad("Fortran order; send a C-ordered array"));
    }
    let descr = field("descr").and_then(|v| v.strip_prefix('\'')).and_then(|v| v.split('\'').next()).ok_or_else(|| bad("no descr"))?;
    let shape_text = field("shape").and_then(|v| v.strip_prefix('(')).and_then(|v| v.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| bad("shape")))
        .collect::<Result<_, _>>()?;
    let (n_rows, n_features) = match dims.as_slice() {
        [m] => (1, *m),
        [n, m] => (*n, *m),
        _ => return Err(bad(&format!("{} dimensions; send rows of features (1 or 2 dimensions)", dims.len()))),
    };
    let data = &body[start + header_len..];
    let values: Vec<f64> = match descr {
        "<f4" => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
        "<f8" => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default())).collect(),
        "<i8" => data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()) as f64).collect(),
        other => return Err(bad(&format!("element type {other}; send <f4, <f8 or <i8"))),
    };
    if values.len() != n_rows * n_features || n_rows * n_features == 0 {
        return Err(bad(&format!("{} values for shape {dims:?}", values.len())));
    }
    Ok(Rows { values, n_rows, n_features })
}

/// Chooses the answer's format from `Accept` (absent or `*/*`: JSON).
pub fn output_format(accept: Option<&str>) -> Result<OutputFormat, InputError> {
    let Some(accept) = accept else { return Ok(OutputFormat::Json) };
    for part in accept.split(',') {
        match media_type(part).as_str() {
            "application/json" | "*/*" | "application/*" | "" => return Ok(OutputFormat::Json),
            "text/csv" | "text/*" => return Ok(OutputFormat::Csv),
            _ => {}
        }
    }
    Err(InputError::Accept(accept.to_string()))
}

/// JSON Lines: each non-empty line a JSON document of the forms `application/json` takes (a
/// row, rows, or an object holding them); the rows of all lines, in order.
fn parse_json_lines(text: &str) -> Result<Rows, InputError> {
    let mut out: Option<Rows> = None;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let rows = parse_json(line).map_err(|e| match e {
            InputError::Malformed(m) => InputError::Malformed(format!("line {}: {m}", i + 1)),
            other => other,
        })?;
        match &mut out {
            None => out = Some(rows),
            Some(all) if all.n_features == rows.n_features => {
                all.values.extend(rows.values);
                all.n_rows += rows.n_rows;
            }
            Some(all) => {
                return Err(InputError::Malformed(format!(
                    "line {}: {} features, where the lines before have {}",
                    i + 1,
                    rows.n_features,
                    all.n_features
                )))
            }
        }
    }
    out.ok_or_else(|| InputError::Malformed("the body holds no JSON lines".into()))
}

fn parse_csv(text: &str) -> Result<Rows, InputError> {
    let mut rows = Builder::default();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut row = Vec::new();
        for (j, field) in line.split(',').enumerate() {
            let field = field.trim();
            let v = field
                .parse::<f64>()
                .map_err(|_| InputError::Malformed(format!("line {}, field {}: '{field}' is not a number", i + 1, j + 1)))?;
            row.push(v);
        }
        rows.push(row, || format!("line {}", i + 1))?;
    }
    rows.finish()
}

fn parse_json(text: &str) -> Result<Rows, InputError> {
    let value: Value = serde_json::from_str(text).map_err(|e| InputError::Malformed(format!("the body is not valid JSON: {e}")))?;
    let rows = match &value {
        Value::Object(o) => o.get("instances").or_else(|| o.get("inputs")).ok_or_else(|| {
            InputError::Malformed("a JSON object body needs an \"instances\" or \"inputs\" member holding the rows".into())
        })?,
        other => other,
    };
    let Value::Array(items) = rows else {
        return Err(InputError::Malformed("the rows must be a JSON array of arrays of numbers".into()));
    };
    let mut out = Builder::default();
    if items.iter().all(Value::is_number) && !items.is_empty() {
        out.push(numbers(items, 0)?, || "row 1".into())?;
        return out.finish();
    }
    for (i, item) in items.iter().enumerate() {
        let row = match item {
            Value::Array(fields) => numbers(fields, i)?,
            Value::Object(o) => match o.get("features") {
                Some(Value::Array(fields)) => numbers(fields, i)?,
                _ => return Err(InputError::Malformed(format!("row {} is an object without a \"features\" array", i + 1))),
            },
            _ => return Err(InputError::Malformed(format!("row {} is not an array of numbers", i + 1))),
        };
        out.push(row, || format!("row {}", i + 1))?;
    }
    out.finish()
}

fn numbers(fields: &[Value], row: usize) -> Result<Vec<f64>, InputError> {
    fields
        .iter()
        .enumerate()
        .map(|(j, v)| v.as_f64().ok_or_else(|| InputError::Malformed(format!("row {}, field {}: {v} is not a number", row + 1, j + 1))))
        .collect()
}

#[derive(Default)]
struct Builder {
    values: Vec<f64>,
    n_rows: usize,
    n_features: Option<usize>,
}

impl Builder {
    fn push(&mut self, row: Vec<f64>, where_: impl Fn() -> String) -> Result<(), InputError> {
        match self.n_features {
            Some(n) if n != row.len() => {
                return Err(InputError::Malformed(format!("{} has {} fields, but the first row has {n}", where_(), row.len())));
            }
            _ => self.n_features = Some(row.len()),
        }
        self.values.extend(row);
        self.n_rows += 1;
        Ok(())
    }

    fn finish(self) -> Result<Rows, InputError> {
        match self.n_features {
            Some(n) if n > 0 => Ok(Rows { values: self.values, n_rows: self.n_rows, n_features: n }),
            _ => Err(InputError::Malformed("the body holds no rows".into())),
        }
    }
}

/// Writes a prediction in `format`; returns the body and its content type.
pub fn render(prediction: &Prediction, format: OutputFormat) -> (Vec<u8>, &'static str) {
    match format {
        OutputFormat::Csv => {
            let mut out = String::new();
            match prediction {
                Prediction::Classes { labels, .. } => {
                    for l in labels {
                        out.push_str(&label_text(l));
                        out.push('\n');
                    }
                }
                Prediction::Scores(rows) => {
                    for r in rows {
                        out.push_str(&r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
                        out.push('\n');
                    }
                }
            }
            (out.into_bytes(), "text/csv")
        }
        OutputFormat::Json => {
            // Serialized from f32 directly, so numbers print as f32's shortest form.
            let predictions: Vec<JsonPrediction> = match prediction {
                Prediction::Classes { labels, probabilities } => labels
                    .iter()
                    .enumerate()
                    .map(|(i, label)| JsonPrediction {
                        label: Some(label),
                        probabilities: probabilities.as_ref().and_then(|p| p.get(i)).map(Vec::as_slice),
                        ..Default::default()
                    })
                    .collect(),
                Prediction::Scores(rows) => rows
                    .iter()
                    .map(|r| match r.as_slice() {
                        [one] => JsonPrediction { score: Some(*one), ..Default::default() },
                        many => JsonPrediction { scores: Some(many), ..Default::default() },
                    })
                    .collect(),
            };
            let body = serde_json::to_vec(&JsonAnswer { predictions }).unwrap_or_default();
            (body, "application/json")
        }
    }
}

#[derive(serde::Serialize)]
struct JsonAnswer<'a> {
    predictions: Vec<JsonPrediction<'a>>,
}

#[derive(serde::Serialize, Default)]
struct JsonPrediction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probabilities: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scores: Option<&'a [f32]>,
}

fn label_text(l: &Label) -> String {
    match l {
        Label::Int(v) => v.to_string(),
        Label::Text(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows() {
        let r = parse(Some("text/csv"), b"5.1,3.5,1.4,0.2\n6.2, 2.9,4.3,1.3\n").unwrap();
        assert_eq!((r.n_rows, r.n_features), (2, 4));
        assert_eq!(r.values[5], 2.9);
        assert_eq!(parse(None, b"1,2").unwrap().n_rows, 1);
    }

    #[test]
    fn json_lines_are_a_document_per_line() {
        let body = b"[5.1, 3.5, 1.4, 0.2]\n\n{\"instances\": [[6.2, 2.9, 4.3, 1.3], [1, 2, 3, 4]]}\n";
        let r = parse(Some("application/jsonlines"), body).unwrap();
        assert_eq!((r.n_rows, r.n_features), (3, 4));
        assert_eq!(r.values[4], 6.2);
        let mixed = parse(Some("application/jsonlines; charset=utf-8"), b"[1, 2]\n[1, 2, 3]\n").unwrap_err().to_string();
        assert_eq!(mixed, "line 2: 3 features, where the lines before have 2");
        assert!(parse(Some("application/jsonlines"), b"[1, 2]\n[1,\n").unwrap_err().to_string().starts_with("line 2: "));
        assert!(parse(Some("application/jsonlines"), b"\n").is_err());
    }

    #[test]
    fn csv_errors_name_the_place() {
        assert_eq!(parse(Some("text/csv"), b"1,2\n3,x\n").unwrap_err().to_string(), "line 2, field 2: 'x' is not a number");
        assert_eq!(parse(Some("text/csv"), b"1,2\n3\n").unwrap_err().to_string(), "line 2 has 1 fields, but the first row has 2");
        assert!(parse(Some("text/csv"), b"\n").is_err());
    }

    #[test]
    fn json_shapes() {
        for body in [
            r#"{"instances": [[1,2],[3,4]]}"#,
            r#"{"inputs": [[1,2],[3,4]]}"#,
            "[[1,2],[3,4]]",
            r#"[{"features":[1,2]},{"features":[3,4]}]"#,
        ] {
            let r = parse(Some("application/json; charset=utf-8"), body.as_bytes()).unwrap();
            assert_eq!((r.n_rows, r.n_features, r.values.clone()), (2, 2, vec![1.0, 2.0, 3.0, 4.0]), "{body}");
        }
        assert_eq!(parse(Some("application/json"), b"[1,2,3]").unwrap().n_rows, 1);
        assert!(parse(Some("application/json"), br#"{"rows": []}"#).unwrap_err().to_string().contains("instances"));
        assert!(parse(Some("application/json"), br#"[[1,"a"]]"#).unwrap_err().to_string().contains("row 1, field 2"));
    }

    #[test]
    fn npy_arrays() {
        // numpy.save of np.array([[1, 2], [3, 4]], dtype=np.float32)
        let mut body = b"\x93NUMPY\x01\x00".to_vec();
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
        let padded = format!("{header:<117}\n");
        body.extend_from_slice(&(padded.len() as u16).to_le_bytes());
        body.extend_from_slice(padded.as_bytes());
        for v in [1f32, 2.0, 3.0, 4.0] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        let r = parse(Some("application/x-npy"), &body).unwrap();
        assert_eq!((r.n_rows, r.n_features, r.values), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
        assert!(parse(Some("application/x-npy"), &body[..body.len() - 4]).unwrap_err().to_string().contains("3 values"));
        assert!(parse(Some("application/x-npy"), b"not npy at all").is_err());
    }

    #[test]
    fn content_and_accept_types() {
        assert_eq!(parse(Some("image/png"), b"").unwrap_err(), InputError::ContentType("image/png".into()));
        assert_eq!(output_format(None).unwrap(), OutputFormat::Json);
        assert_eq!(output_format(Some("text/csv")).unwrap(), OutputFormat::Csv);
        assert_eq!(output_format(Some("application/xml, */*")).unwrap(), OutputFormat::Json);
        assert!(output_format(Some("application/xml")).is_err());
    }

    #[test]
    fn rendering() {
        let p =
            Prediction::Classes { labels: vec![Label::Int(0), Label::Int(2)], probabilities: Some(vec![vec![0.9, 0.1], vec![0.2, 0.8]]) };
        assert_eq!(render(&p, OutputFormat::Csv).0, b"0\n2\n");
        let (body, ct) = render(&p, OutputFormat::Json);
        assert_eq!(ct, "application/json");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["predictions"][1]["label"], 2);
        assert!((v["predictions"][1]["probabilities"][1].as_f64().unwrap() - 0.8).abs() < 1e-6);
        let s = Prediction::Scores(vec![vec![1.5], vec![2.5]]);
        assert_eq!(render(&s, OutputFormat::Csv).0, b"1.5\n2.5\n");
    }
}
