//! Labels and predictions, pure: reading what a model answered, a label's text or number,
//! joining stored captured answers with stored labels, and what each labelled pair says
//! (right or wrong, how far off). `quality.rs` stores and reads; `stats.rs` computes.

use berth_domain::NameKey;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The kind of an endpoint's stored labels (records keyed by inference id).
pub(crate) fn labels_kind(endpoint: &str) -> String {
    format!("label:{}", NameKey::of(endpoint))
}

/// The kind of the records of the ground-truth files read for an endpoint, and their size then.
pub(crate) fn read_files_kind(endpoint: &str) -> String {
    format!("ground-truth-read:{}", NameKey::of(endpoint))
}

/// What a model answered, read from its output: a label, and a score when there is one (the
/// probability of the positive class, or the regression value).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Predicted {
    pub label: String,
    pub probabilities: Option<Vec<f64>>,
    pub number: Option<f64>,
}

/// Reads the first prediction of an answer: berth/onnx's `{"predictions": [{"label", "probabilities"}]}`
/// or `[{"score"}]`, a JSON number, string, object with `label`/`predicted_label`/`prediction`/`score`,
/// or a CSV line (its first field).
pub(crate) fn predicted(output: &str) -> Option<Predicted> {
    fn from_json(v: &Value) -> Option<Predicted> {
        match v {
            Value::Number(n) => Some(Predicted { label: n.to_string(), probabilities: None, number: n.as_f64() }),
            Value::String(s) => Some(Predicted { label: s.clone(), probabilities: None, number: s.parse().ok() }),
            Value::Array(items) => items.first().and_then(from_json),
            Value::Object(o) => {
                if let Some(first) = o.get("predictions").and_then(|p| p.as_array()).and_then(|p| p.first()) {
                    return from_json(first);
                }
                let label = ["label", "predicted_label", "prediction", "score"].iter().find_map(|k| o.get(*k))?;
                let mut p = from_json(label)?;
                p.probabilities = o.get("probabilities").and_then(|p| p.as_array()).map(|a| a.iter().filter_map(Value::as_f64).collect());
                Some(p)
            }
            _ => None,
        }
    }
    let trimmed = output.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return from_json(&v);
    }
    let first = trimmed.lines().next()?.split(',').next()?.trim().trim_matches('"');
    (!first.is_empty()).then(|| Predicted { label: first.to_string(), probabilities: None, number: first.parse().ok() })
}

/// A label as text, the way predictions' labels are compared with it.
pub(crate) fn truth(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Stored labels by their key (`event:<id>` or `inference:<id>`).
pub(crate) fn parse_labels(bodies: &[String]) -> HashMap<String, Value> {
    bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter_map(|v| Some((v["key"].as_str()?.to_string(), v["label"].clone())))
        .collect()
}

/// Joins stored captured answers made in `window` with `labels`: the labelled (prediction,
/// label) pairs by variant, and how many answers of each variant have no label.
pub(crate) fn join(
    predictions: &[String],
    labels: &HashMap<String, Value>,
    window: std::ops::Range<i64>,
) -> (Pairs, BTreeMap<String, usize>) {
    let mut by_variant: Pairs = BTreeMap::new();
    let mut unlabelled: BTreeMap<String, usize> = BTreeMap::new();
    for p in predictions.iter().filter_map(|b| serde_json::from_str::<Value>(b).ok()) {
        if !window.contains(&p["time_ms"].as_i64().unwrap_or(0)) {
            continue;
        }
        let variant = p["variant"].as_str().unwrap_or_default().to_string();
        let by_event = p["event_id"].as_str().and_then(|e| labels.get(&format!("event:{e}")));
        let by_inference = p["inference_id"].as_str().and_then(|i| labels.get(&format!("inference:{i}")));
        match (by_event.or(by_inference), p["output"].as_str().and_then(predicted)) {
            (Some(label), Some(pred)) => by_variant.entry(variant).or_default().push((pred, label.clone())),
            _ => *unlabelled.entry(variant).or_default() += 1,
        }
    }
    (by_variant, unlabelled)
}

/// Labelled answers by variant.
pub(crate) type Pairs = BTreeMap<String, Vec<(Predicted, Value)>>;

/// A label as a number (a JSON number or numeric text), for regression.
pub(crate) fn label_number(l: &Value) -> Option<f64> {
    l.as_f64().or_else(|| l.as_str()?.parse().ok())
}

/// Whether an answer's label is the true one.
pub(crate) fn correct((p, l): &(Predicted, Value)) -> bool {
    p.label == truth(l)
}

/// How far a numeric answer is from the true value.
pub(crate) fn absolute_error((p, l): &(Predicted, Value)) -> Option<f64> {
    Some((p.number? - label_number(l)?).abs())
}

/// The distinct labels of some pairs, in order.
pub(crate) fn classes(pairs: &[(Predicted, Value)]) -> Vec<String> {
    let set: BTreeSet<String> = pairs.iter().flat_map(|(p, l)| [p.label.clone(), truth(l)]).collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_are_read_from_common_answers() {
        let onnx = predicted(r#"{"predictions": [{"label": 2, "probabilities": [0.1, 0.2, 0.7]}]}"#).unwrap();
        assert_eq!((onnx.label.as_str(), onnx.probabilities.unwrap().len()), ("2", 3));
        assert_eq!(predicted("1,0.93\n").unwrap().label, "1");
        assert_eq!(predicted(r#"{"predicted_label": "cat"}"#).unwrap().label, "cat");
        assert_eq!(predicted("3.5").unwrap().number, Some(3.5));
        assert_eq!(predicted(r#"{"predictions": [{"score": 12.5}]}"#).unwrap().number, Some(12.5));
        assert!(predicted("").is_none());
    }
}
