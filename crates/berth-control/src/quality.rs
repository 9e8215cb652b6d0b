//! Per-variant model quality. Captured answers (data capture with Output) are indexed by event
//! id and inference id; labels (`ground_truth.rs`) submitted later are joined with them, and each
//! variant's quality is computed on the pairs: accuracy, precision, recall, F1 (binary, macro
//! and weighted), AUC and the confusion matrix for classification; MAE, RMSE and R² for
//! regression — each with a 95% interval.

use crate::labels::{absolute_error, correct, join, labels_kind, parse_labels, read_files_kind, Pairs};
use crate::stats::{ClassificationQuality, Comparison, RegressionQuality};
use crate::{ControlError, Controller};
use berth_domain::NameKey;
use berth_router::CaptureRecord;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

fn predictions_kind(endpoint: &str) -> String {
    format!("prediction:{}", NameKey::of(endpoint))
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

/// One variant's quality on its labelled answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Quality {
    Classification(Box<ClassificationQuality>),
    Regression(RegressionQuality),
}

#[derive(Debug, Clone, PartialEq)]
pub struct VariantQuality {
    pub variant: String,
    /// Captured answers of the variant (in the window) that have no label yet.
    pub unlabelled: usize,
    pub quality: Quality,
}

/// Every variant's quality on an endpoint's labelled answers.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointQuality {
    pub endpoint: String,
    pub problem: Problem,
    pub variants: Vec<VariantQuality>,
}

/// What an A/B test compares per labelled answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Right (1) or wrong (0): higher is better.
    Accuracy,
    /// How far a numeric answer is from the label: lower is better.
    AbsoluteError,
}

impl Metric {
    pub fn parse(name: &str) -> Result<Metric, ControlError> {
        match name {
            "accuracy" => Ok(Metric::Accuracy),
            "absolute_error" => Ok(Metric::AbsoluteError),
            other => Err(ControlError::Validation(format!("metric '{other}' is not accuracy or absolute_error."))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::AbsoluteError => "absolute_error",
        }
    }
}

/// The A/B test between two variants.
#[derive(Debug, Clone, PartialEq)]
pub struct Significance {
    pub metric: Metric,
    pub a: String,
    pub b: String,
    /// Labelled answers of `a` and `b`.
    pub n: (usize, usize),
    pub alpha: f64,
    /// The comparison, once each variant has at least two labelled answers.
    pub comparison: Option<Comparison>,
    pub decided: bool,
    /// The better variant, once decided.
    pub winner: Option<String>,
    /// The verdict in plain words.
    pub verdict: String,
}

/// A variant's labelled accuracy, for the dashboard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VariantAccuracy {
    pub n: usize,
    pub accuracy: f64,
    pub ci95: (f64, f64),
}

/// The dashboard's short view of an endpoint's quality: each variant's labelled accuracy, and
/// the accuracy test between its first two production variants when both have labels.
#[derive(Debug, Clone, PartialEq)]
pub struct QualitySummary {
    pub variants: BTreeMap<String, VariantAccuracy>,
    pub test: Option<Significance>,
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
    ) -> Result<EndpointQuality, ControlError> {
        let from = window.0.map_or(i64::MIN, |s| s as i64 * 1000);
        let to = window.1.map_or(i64::MAX, |s| s as i64 * 1000);
        let (by_variant, unlabelled) = self.labelled_between(endpoint, from, to).await?;
        let variants = by_variant
            .iter()
            .map(|(variant, pairs)| VariantQuality {
                variant: variant.clone(),
                unlabelled: unlabelled.get(variant).copied().unwrap_or(0),
                quality: match problem {
                    Problem::Classification => Quality::Classification(Box::new(crate::stats::classification(pairs, positive.as_deref()))),
                    Problem::Regression => Quality::Regression(crate::stats::regression(pairs)),
                },
            })
            .collect();
        Ok(EndpointQuality { endpoint: endpoint.to_string(), problem, variants })
    }

    /// Whether variant `b` is better than `a` on `metric` (accuracy, higher is better, or
    /// absolute error, lower is better), by the always-valid sequential test and the classical
    /// one, with a plain verdict.
    pub async fn significance(&self, endpoint: &str, metric: Metric, a: &str, b: &str, alpha: f64) -> Result<Significance, ControlError> {
        let (by_variant, _) = self.labelled(endpoint).await?;
        significance_of(&by_variant, metric, a, b, alpha)
    }
}

/// The A/B test between variants `a` and `b` on labelled answers already read.
pub(crate) fn significance_of(by_variant: &Pairs, metric: Metric, a: &str, b: &str, alpha: f64) -> Result<Significance, ControlError> {
    if !(alpha > 0.0 && alpha < 0.5) {
        return Err(ControlError::Validation("alpha must be between 0 and 0.5.".into()));
    }
    let outcomes = |variant: &str| -> Vec<f64> {
        let pairs = by_variant.get(variant).map(Vec::as_slice).unwrap_or(&[]);
        match metric {
            Metric::Accuracy => pairs.iter().map(|pair| f64::from(u8::from(correct(pair)))).collect(),
            Metric::AbsoluteError => pairs.iter().filter_map(absolute_error).collect(),
        }
    };
    let (xa, xb) = (outcomes(a), outcomes(b));
    // The mixture's scale: a 5-point accuracy difference, or a tenth of the errors' spread.
    let tau = match metric {
        Metric::Accuracy => 0.05,
        Metric::AbsoluteError => {
            let all: Vec<f64> = xa.iter().chain(&xb).copied().collect();
            let m = all.iter().sum::<f64>() / all.len().max(1) as f64;
            (all.iter().map(|v| (v - m).powi(2)).sum::<f64>() / all.len().max(1) as f64).sqrt().max(1e-9) * 0.1
        }
    };
    let (a, b) = (a.to_string(), b.to_string());
    let Some(c) = crate::stats::compare(&xa, &xb, tau, alpha) else {
        let verdict = format!("not decided yet: each variant needs at least 2 labels ({a}: {}, {b}: {})", xa.len(), xb.len());
        return Ok(Significance { metric, n: (xa.len(), xb.len()), a, b, alpha, comparison: None, decided: false, winner: None, verdict });
    };
    let decided = c.always_valid_p < alpha;
    let b_better = (c.difference > 0.0) == (metric == Metric::Accuracy);
    let verdict = plain_verdict(metric, (&a, &b), &c, decided);
    let winner = decided.then(|| if b_better { b.clone() } else { a.clone() });
    Ok(Significance { metric, n: c.n, a, b, alpha, comparison: Some(c), decided, winner, verdict })
}

/// The verdict in plain words: "Variant2 is better: accuracy +4.1 points, 95% interval +1.2 to
/// +7.0; decided after 1,840 labels", or "not decided yet: about 600 more labels per variant at
/// this effect".
fn plain_verdict(metric: Metric, (a, b): (&str, &str), c: &Comparison, decided: bool) -> String {
    if !decided {
        return match c.more_needed {
            Some(more) if more > 0 => format!("not decided yet: about {} more labels per variant at this effect", thousands(more as u64)),
            Some(_) => "not decided yet: the difference is not yet sure enough".to_string(),
            None => "not decided yet: no difference observed so far".to_string(),
        };
    }
    // Winner minus loser; the interval is of b - a.
    let a_wins = if metric == Metric::Accuracy { c.difference < 0.0 } else { c.difference > 0.0 };
    let (winner, sign) = if a_wins { (a, -1.0) } else { (b, 1.0) };
    let (diff, lo, hi) = (sign * c.difference, (sign * c.ci.0).min(sign * c.ci.1), (sign * c.ci.0).max(sign * c.ci.1));
    let labels = thousands(c.decided_after.unwrap_or(c.n.0 + c.n.1) as u64);
    if metric == Metric::Accuracy {
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
    pub async fn quality_summary(&self, endpoint: &str) -> Result<QualitySummary, ControlError> {
        let key = NameKey::of(endpoint);
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

    async fn compute_quality_summary(&self, endpoint: &str) -> Result<QualitySummary, ControlError> {
        let (pairs, _) = self.labelled(endpoint).await?;
        let variants = pairs
            .iter()
            .map(|(v, p)| {
                let right = p.iter().filter(|pair| correct(pair)).count();
                let accuracy = if p.is_empty() { 0.0 } else { right as f64 / p.len() as f64 };
                (v.clone(), VariantAccuracy { n: p.len(), accuracy, ci95: crate::stats::wilson(right, p.len()) })
            })
            .collect();
        let e = self.describe_endpoint(endpoint).await?;
        // An endpoint of inference components compares its first two components.
        let components: Vec<String> = match e.hosts_components() {
            true => self.components_of(endpoint).await?.into_iter().map(|c| c.name).collect(),
            false => Vec::new(),
        };
        let production: Vec<&str> = match e.hosts_components() {
            true => components.iter().map(String::as_str).collect(),
            false => e.variants.iter().filter(|v| !v.shadow).map(|v| v.name.as_str()).collect(),
        };
        let test = match production.as_slice() {
            [a, b, ..] if pairs.contains_key(*a) && pairs.contains_key(*b) => Some(significance_of(&pairs, Metric::Accuracy, a, b, 0.05)?),
            _ => None,
        };
        Ok(QualitySummary { variants, test })
    }

    /// Publishes newly labelled answers as custom metrics `berth/ModelQuality` `Accuracy`
    /// (correct = 1) and, for numeric labels, `AbsoluteError`, by EndpointName and VariantName,
    /// so alarms (and deployments' auto-rollback) can watch model quality.
    ///
    /// Each label is published once, across restarts: a stored mark per endpoint says up to
    /// which label time they have been published, and a round reads only the labels after it
    /// (the captured answers only when there are some).
    pub async fn publish_quality_metrics(&self) -> Result<(), ControlError> {
        let now_ms = self.now().millis();
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
            let key = NameKey::of(&e.name);
            let after = marks.get(key.as_str()).copied().unwrap_or(i64::MIN);
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
            let mark = json!({ "endpoint": key.as_str(), "through_ms": through }).to_string();
            self.db(move |s| s.put_records(PUBLISHED_KIND, &[(key.to_string(), now_ms, mark)])).await?;
        }
        Ok(())
    }

    /// Forgets an endpoint's captured answers, labels and publishing mark (when it is deleted,
    /// and when one of its name is created, so a new endpoint never inherits an old one's).
    pub(crate) async fn forget_quality(&self, endpoint: &str) -> Result<(), ControlError> {
        let (pk, lk, key) = (predictions_kind(endpoint), labels_kind(endpoint), NameKey::of(endpoint));
        let rk = read_files_kind(endpoint);
        self.db(move |s| {
            s.delete_records(&pk)?;
            s.delete_records(&lk)?;
            s.delete_records(&rk)?;
            s.delete_record(PUBLISHED_KIND, key.as_str()).map(|_| ())
        })
        .await
    }

    /// Drops captured answers and labels older than `before_ms` (the metrics retention).
    pub async fn prune_quality(&self, before_ms: i64) -> Result<(), ControlError> {
        self.db(move |s| {
            s.prune_record_kinds("prediction:", before_ms)?;
            s.prune_record_kinds("ground-truth-read:", before_ms)?;
            s.prune_record_kinds("label:", before_ms).map(|_| ())
        })
        .await
    }
}

/// How long the dashboard's quality summary of an endpoint is reused.
const SUMMARY_TTL: std::time::Duration = std::time::Duration::from_secs(3);

/// Records of how far each endpoint's labels have been published as metrics.
const PUBLISHED_KIND: &str = "quality-published";

/// The custom namespace of model quality metrics.
pub const QUALITY_NAMESPACE: &str = "berth/ModelQuality";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Predicted;

    fn answers(right: usize, wrong: usize) -> Vec<(Predicted, Value)> {
        let answer = |label: &str| (Predicted { label: label.into(), probabilities: None, number: None }, json!("1"));
        (0..right).map(|_| answer("1")).chain((0..wrong).map(|_| answer("0"))).collect()
    }

    /// The bandit promotes `winner`: a clear difference must name it (a typo in a JSON key
    /// once could have hidden it).
    #[test]
    fn a_clear_difference_names_the_winner() {
        let mut pairs = Pairs::new();
        pairs.insert("A".into(), answers(120, 80));
        pairs.insert("B".into(), answers(190, 10));
        let test = significance_of(&pairs, Metric::Accuracy, "A", "B", 0.05).unwrap();
        assert!(test.decided);
        assert_eq!(test.winner.as_deref(), Some("B"));
        assert!(test.verdict.starts_with("B is better: accuracy +"), "{}", test.verdict);
        let few = significance_of(&Pairs::new(), Metric::Accuracy, "A", "B", 0.05).unwrap();
        assert!(!few.decided && few.winner.is_none() && few.comparison.is_none());
        assert!(Metric::parse("acuracy").is_err());
    }
}
