//! Per-variant model quality. Captured answers (data capture with Output) are indexed by event
//! id and inference id; labels (`ground_truth.rs`) submitted later are joined with them, and each
//! variant's quality is computed on the pairs: accuracy, precision, recall, F1 (binary, macro
//! and weighted), AUC and the confusion matrix for classification; MAE, RMSE and R² for
//! regression — each with a 95% interval.

use crate::{ControlError, Controller};
use berth_router::CaptureRecord;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn predictions_kind(endpoint: &str) -> String {
    format!("prediction:{}", endpoint.to_ascii_lowercase())
}

pub(crate) fn labels_kind(endpoint: &str) -> String {
    format!("label:{}", endpoint.to_ascii_lowercase())
}

/// A captured answer as a record to index: (event id, time, JSON body).
pub(crate) fn prediction_record(r: &CaptureRecord, event_id: &str) -> Option<(String, i64, String)> {
    let (content_type, body) = r.output.as_ref()?;
    let text = std::str::from_utf8(body).ok()?;
    let body = json!({
        "variant": r.variant, "event_id": event_id, "inference_id": r.inference_id,
        "time_ms": r.time_ms, "output": text, "content_type": content_type,
    });
    Some((event_id.to_string(), r.time_ms, body.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Classification,
    Regression,
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

impl Controller {
    pub(crate) async fn store_predictions(&self, endpoint: &str, rows: Vec<(String, i64, String)>) -> Result<(), ControlError> {
        let kind = predictions_kind(endpoint);
        self.db(move |s| s.put_records(&kind, &rows)).await
    }

    /// The captured answers that have labels, by variant, and how many have none.
    pub(crate) async fn labelled(&self, endpoint: &str) -> Result<(Pairs, BTreeMap<String, usize>), ControlError> {
        self.labelled_between(endpoint, i64::MIN, i64::MAX).await
    }

    /// The labelled answers of predictions made in `[from_ms, to_ms)`, and how many have no label.
    pub(crate) async fn labelled_between(
        &self,
        endpoint: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(Pairs, BTreeMap<String, usize>), ControlError> {
        self.describe_endpoint(endpoint).await?;
        let (pk, lk) = (predictions_kind(endpoint), labels_kind(endpoint));
        let (predictions, labels) = self.db(move |s| Ok((s.records(&pk)?, s.records(&lk)?))).await?;
        Ok(join(&predictions, &parse_labels(&labels), from_ms..to_ms))
    }

    /// Each variant's quality on the captured answers that have a label, for predictions made
    /// in `[from, to)` (epoch seconds; all when None).
    pub async fn quality(
        &self,
        endpoint: &str,
        problem: Problem,
        positive: Option<String>,
        window: (Option<u64>, Option<u64>),
    ) -> Result<Value, ControlError> {
        let from = window.0.map_or(i64::MIN, |s| s as i64 * 1000);
        let to = window.1.map_or(i64::MAX, |s| s as i64 * 1000);
        let (by_variant, unlabelled) = self.labelled_between(endpoint, from, to).await?;
        let variants: Vec<Value> = by_variant
            .iter()
            .map(|(variant, pairs)| {
                let mut v = match problem {
                    Problem::Classification => crate::stats::classification(pairs, positive.as_deref()),
                    Problem::Regression => crate::stats::regression(pairs),
                };
                v["variant"] = json!(variant);
                v["unlabelled"] = json!(unlabelled.get(variant).copied().unwrap_or(0));
                v
            })
            .collect();
        Ok(
            json!({ "endpoint": endpoint, "problem": if problem == Problem::Classification { "classification" } else { "regression" }, "variants": variants }),
        )
    }

    /// Whether variant `b` is better than `a` on `metric` (`accuracy`, higher is better, or
    /// `absolute_error`, lower is better), by the always-valid sequential test and the classical
    /// one, with a plain verdict.
    pub async fn significance(&self, endpoint: &str, metric: &str, a: &str, b: &str, alpha: f64) -> Result<Value, ControlError> {
        let (by_variant, _) = self.labelled(endpoint).await?;
        significance_of(&by_variant, metric, a, b, alpha)
    }
}

/// The A/B test between variants `a` and `b` on labelled answers already read.
pub(crate) fn significance_of(by_variant: &Pairs, metric: &str, a: &str, b: &str, alpha: f64) -> Result<Value, ControlError> {
    if !(alpha > 0.0 && alpha < 0.5) {
        return Err(ControlError::Validation("alpha must be between 0 and 0.5.".into()));
    }
    let outcomes = |variant: &str| -> Result<Vec<f64>, ControlError> {
        let pairs = by_variant.get(variant).map(Vec::as_slice).unwrap_or(&[]);
        match metric {
            "accuracy" => Ok(pairs.iter().map(|pair| f64::from(u8::from(correct(pair)))).collect()),
            "absolute_error" => Ok(pairs.iter().filter_map(absolute_error).collect()),
            other => Err(ControlError::Validation(format!("metric '{other}' is not accuracy or absolute_error."))),
        }
    };
    let (xa, xb) = (outcomes(a)?, outcomes(b)?);
    // The mixture's scale: a 5-point accuracy difference, or a tenth of the errors' spread.
    let tau = if metric == "accuracy" {
        0.05
    } else {
        let all: Vec<f64> = xa.iter().chain(&xb).copied().collect();
        let m = all.iter().sum::<f64>() / all.len().max(1) as f64;
        (all.iter().map(|v| (v - m).powi(2)).sum::<f64>() / all.len().max(1) as f64).sqrt().max(1e-9) * 0.1
    };
    let higher_better = metric == "accuracy";
    let Some(c) = crate::stats::compare(&xa, &xb, tau, alpha) else {
        return Ok(json!({
            "metric": metric, "a": a, "b": b, "n": [xa.len(), xb.len()], "decided": false,
            "verdict": format!("not decided yet: each variant needs at least 2 labels ({a}: {}, {b}: {})", xa.len(), xb.len()),
        }));
    };
    let decided = c.always_valid_p < alpha;
    let b_better = (c.difference > 0.0) == higher_better;
    let verdict = plain_verdict(metric, (a, b), &c, decided);
    Ok(json!({
        "metric": metric,
        "a": a,
        "b": b,
        "n": [c.n.0, c.n.1],
        "means": [c.means.0, c.means.1],
        "difference": c.difference,
        "ci95": [c.ci.0, c.ci.1],
        "fixed_horizon_p": c.fixed_p,
        "e_value": c.e_value,
        "always_valid_p": c.always_valid_p,
        "decided_after": c.decided_after,
        "alpha": alpha,
        "decided": decided,
        "winner": decided.then_some(if b_better { b } else { a }),
        "verdict": verdict,
    }))
}

/// The verdict in plain words: "Variant2 is better: accuracy +4.1 points, 95% interval +1.2 to
/// +7.0; decided after 1,840 labels", or "not decided yet: about 600 more labels per variant at
/// this effect".
fn plain_verdict(metric: &str, (a, b): (&str, &str), c: &crate::stats::Comparison, decided: bool) -> String {
    if !decided {
        return match c.more_needed {
            Some(more) if more > 0 => format!("not decided yet: about {} more labels per variant at this effect", thousands(more as u64)),
            Some(_) => "not decided yet: the difference is not yet sure enough".to_string(),
            None => "not decided yet: no difference observed so far".to_string(),
        };
    }
    // Winner minus loser; the interval is of b - a.
    let a_wins = if metric == "accuracy" { c.difference < 0.0 } else { c.difference > 0.0 };
    let (winner, sign) = if a_wins { (a, -1.0) } else { (b, 1.0) };
    let (diff, lo, hi) = (sign * c.difference, (sign * c.ci.0).min(sign * c.ci.1), (sign * c.ci.0).max(sign * c.ci.1));
    let labels = thousands(c.decided_after.unwrap_or(c.n.0 + c.n.1) as u64);
    if metric == "accuracy" {
        let points = |v: f64| format!("{:+.1}", v * 100.0);
        format!(
            "{winner} is better: accuracy {} points, 95% interval {} to {}; decided after {labels} labels",
            points(diff),
            points(lo),
            points(hi)
        )
    } else {
        format!("{winner} is better: absolute error {diff:+.4}, 95% interval {lo:+.4} to {hi:+.4}; decided after {labels} labels")
    }
}

/// 1840 → "1,840".
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl Controller {
    /// A short view for the dashboard: each variant's labelled count and accuracy, and the
    /// accuracy test between the first two production variants. Computed at most every
    /// [`SUMMARY_TTL`] per endpoint, however many dashboards ask every second.
    pub async fn quality_summary(&self, endpoint: &str) -> Result<Value, ControlError> {
        let key = endpoint.to_ascii_lowercase();
        if let Some((at, summary)) = self.quality_summaries.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            if at.elapsed() < SUMMARY_TTL {
                return Ok(summary.clone());
            }
        }
        let summary = self.compute_quality_summary(endpoint).await?;
        let mut cache = self.quality_summaries.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, (at, _)| at.elapsed() < SUMMARY_TTL);
        cache.insert(key, (std::time::Instant::now(), summary.clone()));
        Ok(summary)
    }

    async fn compute_quality_summary(&self, endpoint: &str) -> Result<Value, ControlError> {
        let (pairs, _) = self.labelled(endpoint).await?;
        let variants: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(v, p)| {
                let right = p.iter().filter(|pair| correct(pair)).count();
                let (lo, hi) = crate::stats::wilson(right, p.len());
                let accuracy = if p.is_empty() { 0.0 } else { right as f64 / p.len() as f64 };
                (v.clone(), json!({ "n": p.len(), "accuracy": accuracy, "ci95": [lo, hi] }))
            })
            .collect();
        let e = self.describe_endpoint(endpoint).await?;
        let production: Vec<&str> = e.variants.iter().filter(|v| !v.shadow).map(|v| v.name.as_str()).collect();
        let test = match production.as_slice() {
            [a, b, ..] if pairs.contains_key(*a) && pairs.contains_key(*b) => Some(significance_of(&pairs, "accuracy", a, b, 0.05)?),
            _ => None,
        };
        Ok(json!({ "variants": variants, "test": test }))
    }

    /// Publishes newly labelled answers as custom metrics `berth/ModelQuality` `Accuracy`
    /// (correct = 1) and, for numeric labels, `AbsoluteError`, by EndpointName and VariantName,
    /// so alarms (and deployments' auto-rollback) can watch model quality.
    ///
    /// Each label is published once, across restarts: a stored mark per endpoint says up to
    /// which label time they have been published, and a round reads only the labels after it
    /// (the captured answers only when there are some).
    pub async fn publish_quality_metrics(&self) -> Result<(), ControlError> {
        let now_ms = berth_domain::Timestamp::now().millis();
        let now = (now_ms / 1000) as u64;
        // Labels are stamped just before they are written: up to this time they are all in.
        let through = now_ms - 2_000;
        let marks: HashMap<String, i64> = self
            .db(|s| s.records(PUBLISHED_KIND))
            .await?
            .iter()
            .filter_map(|b| serde_json::from_str::<Value>(b).ok())
            .filter_map(|v| Some((v["endpoint"].as_str()?.to_string(), v["through_ms"].as_i64()?)))
            .collect();
        for e in self.all_endpoints().await?.into_iter().filter(|e| e.data_capture.is_some()) {
            let key = e.name.to_ascii_lowercase();
            let after = marks.get(&key).copied().unwrap_or(i64::MIN);
            let (pk, lk) = (predictions_kind(&e.name), labels_kind(&e.name));
            let fresh = self.db(move |s| s.records_created_in(&lk, after, through)).await?;
            if fresh.is_empty() {
                continue;
            }
            let predictions = self.db(move |s| s.records(&pk)).await?;
            let (pairs, _) = join(&predictions, &parse_labels(&fresh), i64::MIN..i64::MAX);
            let mut points = Vec::new();
            for (variant, fresh) in &pairs {
                let dims = crate::canonical_dimensions(&[("EndpointName".into(), e.name.clone()), ("VariantName".into(), variant.clone())]);
                let point = |name: &str, unit: &str, values: &[f64]| berth_store::CustomDatapoint {
                    namespace: QUALITY_NAMESPACE.into(),
                    metric_name: name.into(),
                    dimensions: dims.clone(),
                    ts: now,
                    unit: unit.into(),
                    sample_count: values.len() as f64,
                    sum: values.iter().sum(),
                    minimum: values.iter().copied().fold(f64::INFINITY, f64::min),
                    maximum: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                };
                let right: Vec<f64> = fresh.iter().map(|pair| f64::from(u8::from(correct(pair)))).collect();
                points.push(point("Accuracy", "None", &right));
                let errors: Vec<f64> = fresh.iter().filter_map(absolute_error).collect();
                if !errors.is_empty() {
                    points.push(point("AbsoluteError", "None", &errors));
                }
            }
            if !points.is_empty() {
                self.put_custom_datapoints(points).await?;
            }
            let mark = json!({ "endpoint": key, "through_ms": through }).to_string();
            self.db(move |s| s.put_records(PUBLISHED_KIND, &[(key, now_ms, mark)])).await?;
        }
        Ok(())
    }

    /// Forgets an endpoint's captured answers, labels and publishing mark (when it is deleted,
    /// and when one of its name is created, so a new endpoint never inherits an old one's).
    pub(crate) async fn forget_quality(&self, endpoint: &str) -> Result<(), ControlError> {
        let (pk, lk, key) = (predictions_kind(endpoint), labels_kind(endpoint), endpoint.to_ascii_lowercase());
        self.db(move |s| {
            s.delete_records(&pk)?;
            s.delete_records(&lk)?;
            s.delete_record(PUBLISHED_KIND, &key).map(|_| ())
        })
        .await
    }

    /// Drops captured answers and labels older than `before_ms` (the metrics retention).
    pub async fn prune_quality(&self, before_ms: i64) -> Result<(), ControlError> {
        self.db(move |s| {
            s.prune_record_kinds("prediction:", before_ms)?;
            s.prune_record_kinds("label:", before_ms).map(|_| ())
        })
        .await
    }
}

/// How long the dashboard's quality summary of an endpoint is reused.
const SUMMARY_TTL: std::time::Duration = std::time::Duration::from_secs(3);

/// Records of how far each endpoint's labels have been published as metrics.
const PUBLISHED_KIND: &str = "quality-published";

/// Stored labels by their key (`event:<id>` or `inference:<id>`).
fn parse_labels(bodies: &[String]) -> HashMap<String, Value> {
    bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter_map(|v| Some((v["key"].as_str()?.to_string(), v["label"].clone())))
        .collect()
}

/// Joins stored captured answers made in `window` with `labels`: the labelled (prediction,
/// label) pairs by variant, and how many answers of each variant have no label.
fn join(predictions: &[String], labels: &HashMap<String, Value>, window: std::ops::Range<i64>) -> (Pairs, BTreeMap<String, usize>) {
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

/// The custom namespace of model quality metrics.
pub const QUALITY_NAMESPACE: &str = "berth/ModelQuality";

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
