//! Model quality as SageMaker's analyzer computes it (`analysis_type` `MODEL_QUALITY`): records
//! that each carry a prediction (or a probability) and its ground-truth label — a baseline
//! dataset's rows, or an endpoint's captured answers joined with the labels that arrived for
//! them — become `statistics.json` with the problem type's metrics
//! (`binary_classification_metrics`, `multiclass_classification_metrics`, `regression_metrics`);
//! a baseline's statistics suggest `constraints.json` (a threshold per metric), and an
//! execution's metrics are checked against it (`constraint_violations.json`, one violation per
//! metric past its threshold).
//!
//! Where a record's values are is said as the SDK says it: `inference_attribute`,
//! `probability_attribute` and `ground_truth_attribute` are a CSV header's column name, a
//! 0-based column index, a JSON member name or a JSONPath (`$.a.b[0]`); a captured answer that
//! is one value needs none.

use crate::dataset::DatasetFormat;
use crate::quality_metrics::{metrics, Pairs, Shape};
use berth_domain::JsonPath;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Most records a model-quality analysis holds (each pair is kept, to sample deviations).
const MAX_RECORDS: usize = 20_000_000;

/// `problem_type` / `ModelQualityAppSpecification.ProblemType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    BinaryClassification,
    MulticlassClassification,
    Regression,
}

impl ProblemType {
    pub fn parse(text: &str) -> Result<ProblemType, String> {
        match text {
            "BinaryClassification" => Ok(ProblemType::BinaryClassification),
            "MulticlassClassification" => Ok(ProblemType::MulticlassClassification),
            "Regression" => Ok(ProblemType::Regression),
            other => Err(format!("problem type {other} is not one of BinaryClassification, MulticlassClassification, Regression")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProblemType::BinaryClassification => "BinaryClassification",
            ProblemType::MulticlassClassification => "MulticlassClassification",
            ProblemType::Regression => "Regression",
        }
    }

    fn section(self) -> &'static str {
        match self {
            ProblemType::BinaryClassification => "binary_classification",
            ProblemType::MulticlassClassification => "multiclass_classification",
            ProblemType::Regression => "regression",
        }
    }

    /// The metrics a baseline suggests constraints on, each with the direction that is worse.
    fn constrained(self) -> &'static [(&'static str, &'static str)] {
        const LOWER: &str = "LessThanThreshold";
        const HIGHER: &str = "GreaterThanThreshold";
        match self {
            ProblemType::BinaryClassification => &[
                ("recall", LOWER),
                ("precision", LOWER),
                ("accuracy", LOWER),
                ("true_positive_rate", LOWER),
                ("true_negative_rate", LOWER),
                ("false_positive_rate", HIGHER),
                ("false_negative_rate", HIGHER),
                ("auc", LOWER),
                ("f0_5", LOWER),
                ("f1", LOWER),
                ("f2", LOWER),
            ],
            ProblemType::MulticlassClassification => &[
                ("accuracy", LOWER),
                ("weighted_recall", LOWER),
                ("weighted_precision", LOWER),
                ("weighted_f0_5", LOWER),
                ("weighted_f1", LOWER),
                ("weighted_f2", LOWER),
            ],
            ProblemType::Regression => &[("mae", HIGHER), ("mse", HIGHER), ("rmse", HIGHER), ("r2", LOWER)],
        }
    }
}

/// Where a value is in a record.
#[derive(Debug, Clone, PartialEq)]
enum Attribute {
    Index(usize),
    Name(String),
    Path(JsonPath),
}

impl Attribute {
    fn parse(what: &str, text: &str) -> Result<Attribute, String> {
        let text = text.trim();
        if text.starts_with('$') {
            return JsonPath::parse(text).map(Attribute::Path).map_err(|e| format!("{what}: {e}"));
        }
        if let Ok(i) = text.parse::<usize>() {
            return Ok(Attribute::Index(i));
        }
        if text.is_empty() {
            return Err(format!("{what} is empty"));
        }
        Ok(Attribute::Name(text.to_string()))
    }

    fn find(&self, record: &Record<'_>) -> Option<Value> {
        match (self, record) {
            (Attribute::Index(i), Record::Csv(fields, _)) => fields.get(*i).map(|f| Value::String(f.to_string())),
            (Attribute::Index(i), Record::Json(v)) => v.as_array()?.get(*i).cloned(),
            (Attribute::Name(n), Record::Csv(fields, header)) => {
                let at = match header {
                    Some(h) => h.iter().position(|c| c == n)?,
                    None => n.strip_prefix("_c")?.parse().ok()?,
                };
                fields.get(at).map(|f| Value::String(f.to_string()))
            }
            (Attribute::Name(n), Record::Json(v)) => v.get(n).cloned(),
            (Attribute::Path(p), Record::Json(v)) => p.apply(v),
            (Attribute::Path(p), Record::Csv(fields, _)) => {
                p.apply(&Value::Array(fields.iter().map(|f| Value::String(f.to_string())).collect()))
            }
        }
    }
}

/// A record: CSV fields (with the dataset's header, if it has one), or a JSON value.
enum Record<'a> {
    Csv(&'a [&'a str], Option<&'a [String]>),
    Json(&'a Value),
}

impl Record<'_> {
    /// The record as one value, when it is one.
    fn whole(&self) -> Option<Value> {
        match self {
            Record::Csv([one], _) => Some(Value::String(one.to_string())),
            Record::Json(v) if !v.is_object() && !v.is_array() => Some((*v).clone()),
            Record::Json(Value::Array(items)) if items.len() == 1 => Some(items[0].clone()),
            _ => None,
        }
    }
}

/// Where the analysis finds predictions, probabilities and labels, as the SDK names them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    pub inference: Option<String>,
    pub probability: Option<String>,
    pub ground_truth: Option<String>,
    /// A probability at or above it predicts the positive class (0.5 when not given).
    pub probability_threshold: Option<f64>,
}

/// Reads records into (label, prediction) pairs and computes their metrics.
#[derive(Debug)]
pub struct ModelQualityAnalyzer {
    problem: ProblemType,
    inference: Option<Attribute>,
    probability: Option<Attribute>,
    ground_truth: Option<Attribute>,
    threshold: f64,
    pairs: Pairs,
    header: Option<Vec<String>>,
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok().filter(|x: &f64| x.is_finite()),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// A class as text: numbers without a needless fraction (`1.0` is `1`), text trimmed.
fn class(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            Some(match s.parse::<f64>() {
                Ok(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
                _ => s.to_string(),
            })
        }
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        Value::Number(_) => class(&Value::String(v.to_string())),
        _ => None,
    }
}

fn positive(v: &Value, what: &str) -> Result<bool, String> {
    let c = class(v).ok_or_else(|| format!("the {what} {v} is not a class"))?;
    match c.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(format!("the {what} '{c}' is not 0 or 1, as a BinaryClassification {what} must be")),
    }
}

impl ModelQualityAnalyzer {
    pub fn new(problem: ProblemType, attributes: &Attributes) -> Result<Self, String> {
        let parse = |what: &str, a: &Option<String>| a.as_deref().map(|t| Attribute::parse(what, t)).transpose();
        let inference = parse("inference_attribute", &attributes.inference)?;
        let probability = parse("probability_attribute", &attributes.probability)?;
        if problem != ProblemType::BinaryClassification && inference.is_none() && probability.is_some() {
            return Err(format!(
                "{} needs inference_attribute: probabilities make predictions for BinaryClassification only",
                problem.as_str()
            ));
        }
        let threshold = attributes.probability_threshold.unwrap_or(0.5);
        if !threshold.is_finite() {
            return Err("probability_threshold_attribute is not a number".into());
        }
        let pairs = match problem {
            ProblemType::BinaryClassification => Pairs::Binary(Vec::new()),
            ProblemType::MulticlassClassification => Pairs::Multiclass(Vec::new()),
            ProblemType::Regression => Pairs::Regression(Vec::new()),
        };
        Ok(ModelQualityAnalyzer {
            problem,
            inference,
            probability,
            ground_truth: parse("ground_truth_attribute", &attributes.ground_truth)?,
            threshold,
            pairs,
            header: None,
        })
    }

    pub fn problem(&self) -> ProblemType {
        self.problem
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// A baseline dataset's object, whose records hold the prediction and the label.
    pub fn add_dataset_object(&mut self, format: &DatasetFormat, name: &str, data: &[u8]) -> Result<(), String> {
        if self.inference.is_none() && self.probability.is_none() {
            return Err("a baseline dataset needs inference_attribute or probability_attribute: which column is the prediction".into());
        }
        let Some(truth) = self.ground_truth.clone() else {
            return Err("a baseline dataset needs ground_truth_attribute: which column is the label".into());
        };
        let record = |this: &mut Self, n: usize, r: Record<'_>| -> Result<(), String> {
            let label = truth.find(&r).ok_or_else(|| format!("{name} record {n}: no ground_truth_attribute value"))?;
            this.add(&r, &label).map_err(|e| format!("{name} record {n}: {e}"))
        };
        match format {
            DatasetFormat::Csv { header } => {
                let mut reader = csv::ReaderBuilder::new().has_headers(*header).flexible(true).from_reader(data);
                if *header {
                    let found: Vec<String> =
                        reader.headers().map_err(|e| format!("{name}: {e}"))?.iter().map(|h| h.trim().to_string()).collect();
                    match &self.header {
                        Some(h) if *h != found => return Err(format!("{name}: its header differs from the dataset's first object's")),
                        _ => self.header = Some(found),
                    }
                }
                let header = self.header.clone();
                for (n, row) in reader.records().enumerate() {
                    let row = row.map_err(|e| format!("{name} record {}: {e}", n + 1))?;
                    let fields: Vec<&str> = row.iter().collect();
                    record(self, n + 1, Record::Csv(&fields, header.as_deref()))?;
                }
            }
            DatasetFormat::Json { lines } => {
                let values: Vec<Value> = if *lines {
                    data.split(|b| *b == b'\n')
                        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                        .enumerate()
                        .map(|(n, l)| serde_json::from_slice(l).map_err(|e| format!("{name} line {}: not JSON: {e}", n + 1)))
                        .collect::<Result<_, _>>()?
                } else {
                    match serde_json::from_slice(data).map_err(|e| format!("{name}: not JSON: {e}"))? {
                        Value::Array(records) => records,
                        one => vec![one],
                    }
                };
                for (n, v) in values.iter().enumerate() {
                    record(self, n + 1, Record::Json(v))?;
                }
            }
            DatasetFormat::CaptureJson => return Err("a model-quality baseline is a CSV or JSON dataset, not captured data".into()),
        }
        Ok(())
    }

    /// An endpoint's captured answer (its body and content type) and the label it was given.
    pub fn add_answer(&mut self, output: &[u8], content_type: &str, label: &Value) -> Result<(), String> {
        let label = match (&self.ground_truth, label) {
            (Some(a), Value::Object(_) | Value::Array(_)) => {
                a.find(&Record::Json(label)).ok_or("the ground truth has no ground_truth_attribute value")?
            }
            _ => label.clone(),
        };
        if content_type.to_ascii_lowercase().contains("json") {
            let value: Value = serde_json::from_slice(output).map_err(|e| format!("the answer is not JSON: {e}"))?;
            self.add(&Record::Json(&value), &label)
        } else {
            let text = std::str::from_utf8(output).map_err(|_| "the answer is not UTF-8 text")?;
            let line = text.lines().next().ok_or("the answer is empty")?;
            if !line.contains('"') {
                // Plain fields (most answers): no CSV reader to make for each.
                let fields: Vec<&str> = line.split(',').collect();
                return self.add(&Record::Csv(&fields, None), &label);
            }
            let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(output);
            let row = reader.records().next().ok_or("the answer is empty")?.map_err(|e| format!("the answer is not CSV: {e}"))?;
            let fields: Vec<&str> = row.iter().collect();
            self.add(&Record::Csv(&fields, None), &label)
        }
    }

    fn add(&mut self, record: &Record<'_>, label: &Value) -> Result<(), String> {
        if self.pairs.len() >= MAX_RECORDS {
            return Err(format!("more than {MAX_RECORDS} records"));
        }
        let value = |a: &Option<Attribute>, what: &str| -> Result<Option<Value>, String> {
            match a {
                Some(a) => a.find(record).map(Some).ok_or_else(|| format!("no {what} value")),
                None => Ok(None),
            }
        };
        let inference = value(&self.inference, "inference_attribute")?;
        let probability = value(&self.probability, "probability_attribute")?;
        let prediction = match (inference, &probability) {
            (Some(v), _) => v,
            (None, Some(_)) => Value::Null,
            (None, None) => record.whole().ok_or("the answer is more than one value: say which is the prediction (inference_attribute)")?,
        };
        match &mut self.pairs {
            Pairs::Binary(pairs) => {
                let score = probability.as_ref().map(|p| number(p).ok_or(format!("the probability {p} is not a number"))).transpose()?;
                let predicted = match (&prediction, score) {
                    (Value::Null, Some(p)) => p >= self.threshold,
                    (v, _) => positive(v, "prediction")?,
                };
                let score = score.unwrap_or(if predicted { 1.0 } else { 0.0 });
                pairs.push((positive(label, "label")?, predicted, score));
            }
            Pairs::Multiclass(pairs) => {
                let c = |v: &Value, what: &str| class(v).ok_or_else(|| format!("the {what} {v} is not a class"));
                pairs.push((c(label, "label")?, c(&prediction, "prediction")?));
            }
            Pairs::Regression(pairs) => {
                let n = |v: &Value, what: &str| number(v).ok_or_else(|| format!("the {what} {v} is not a number"));
                pairs.push((n(label, "label")?, n(&prediction, "prediction")?));
            }
        }
        Ok(())
    }

    /// `statistics.json`; an error when no record was added, in the analyzer's words.
    pub fn statistics(&self, evaluation_time: String) -> Result<ModelQualityStatistics, String> {
        if self.pairs.is_empty() {
            return Err("Job inputs had no data".into());
        }
        let (scalars, shapes) = metrics(&self.pairs);
        let mut section = Map::new();
        for (name, (value, deviation)) in scalars {
            section.insert(name, json!({ "value": nan_as_text(value), "standard_deviation": nan_as_text(deviation) }));
        }
        for shape in shapes {
            let (name, value) = match shape {
                Shape::ConfusionMatrix(m) => ("confusion_matrix", json!(m)),
                Shape::Roc(fpr, tpr) => {
                    ("receiver_operating_characteristic_curve", json!({ "false_positive_rates": fpr, "true_positive_rates": tpr }))
                }
                Shape::PrecisionRecall(p, r) => ("precision_recall_curve", json!({ "precisions": p, "recalls": r })),
            };
            section.insert(name.into(), value);
        }
        Ok(ModelQualityStatistics {
            version: 0.0,
            dataset: QualityDataset { item_count: self.pairs.len() as u64, evaluation_time },
            metrics: BTreeMap::from([(format!("{}_metrics", self.problem.section()), Value::Object(section))]),
        })
    }
}

/// NaN as the analyzer writes it: the string `"NaN"` (JSON has no NaN).
fn nan_as_text(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!("NaN")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityDataset {
    pub item_count: u64,
    #[serde(default)]
    pub evaluation_time: String,
}

/// A model-quality `statistics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelQualityStatistics {
    pub version: f64,
    pub dataset: QualityDataset,
    /// `<problem>_metrics`: each metric's `value` and `standard_deviation`, and the confusion
    /// matrix and curves.
    #[serde(flatten)]
    pub metrics: BTreeMap<String, Value>,
}

impl ModelQualityStatistics {
    pub fn problem(&self) -> Option<ProblemType> {
        [ProblemType::BinaryClassification, ProblemType::MulticlassClassification, ProblemType::Regression]
            .into_iter()
            .find(|p| self.metrics.contains_key(&format!("{}_metrics", p.section())))
    }

    /// Each scalar metric's (value, standard deviation); NaN where undefined.
    pub fn scalars(&self) -> BTreeMap<String, (f64, f64)> {
        let as_f64 = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        self.metrics
            .values()
            .filter_map(Value::as_object)
            .flat_map(|section| section.iter())
            .filter_map(|(name, m)| Some((name.clone(), (as_f64(m.get("value")?), m.get("standard_deviation").map_or(f64::NAN, as_f64)))))
            .collect()
    }
}

/// One metric's constraint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricConstraint {
    pub threshold: f64,
    pub comparison_operator: String,
}

/// A model-quality `constraints.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelQualityConstraints {
    pub version: f64,
    /// `<problem>_constraints`: metric name → constraint.
    #[serde(flatten)]
    pub sections: BTreeMap<String, BTreeMap<String, MetricConstraint>>,
}

/// The baseline's constraints: each metric the problem type constrains, its threshold the
/// baseline's value, to be flagged when an execution does worse.
pub fn suggest_model_quality_constraints(statistics: &ModelQualityStatistics) -> ModelQualityConstraints {
    let problem = statistics.problem().unwrap_or(ProblemType::Regression);
    let scalars = statistics.scalars();
    let section = problem
        .constrained()
        .iter()
        .filter_map(|(name, operator)| {
            let (value, _) = scalars.get(*name).filter(|(v, _)| v.is_finite())?;
            Some((name.to_string(), MetricConstraint { threshold: *value, comparison_operator: operator.to_string() }))
        })
        .collect();
    ModelQualityConstraints { version: 0.0, sections: BTreeMap::from([(format!("{}_constraints", problem.section()), section)]) }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricViolation {
    pub constraint_check_type: String,
    pub description: String,
    pub metric_name: String,
}

/// A model-quality `constraint_violations.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricViolations {
    pub violations: Vec<MetricViolation>,
}

/// Checks an execution's metrics against the baseline's constraints. An error when the
/// constraints are of another problem type or name an operator there is not.
pub fn evaluate_model_quality(
    statistics: &ModelQualityStatistics,
    constraints: &ModelQualityConstraints,
) -> Result<MetricViolations, String> {
    let problem = statistics.problem().ok_or("the statistics name no problem type")?;
    let key = format!("{}_constraints", problem.section());
    let Some(section) = constraints.sections.get(&key) else {
        let found: Vec<&str> = constraints.sections.keys().map(String::as_str).collect();
        return Err(format!(
            "the baseline constraints have no {key} (they have {}): a {} schedule needs them",
            found.join(", "),
            problem.as_str()
        ));
    };
    let scalars = statistics.scalars();
    let mut violations = Vec::new();
    for (name, c) in section {
        let violated = |value: f64| match c.comparison_operator.as_str() {
            "LessThanThreshold" => Ok(value < c.threshold),
            "LessThanOrEqualToThreshold" => Ok(value <= c.threshold),
            "GreaterThanThreshold" => Ok(value > c.threshold),
            "GreaterThanOrEqualToThreshold" => Ok(value >= c.threshold),
            other => Err(format!("metric {name}: comparison_operator {other} is not LessThanThreshold or GreaterThanThreshold")),
        };
        let Some((value, deviation)) = scalars.get(name).filter(|(v, _)| v.is_finite()) else { continue };
        if violated(*value)? {
            let deviation = if deviation.is_finite() { deviation.to_string() } else { "NaN".into() };
            violations.push(MetricViolation {
                constraint_check_type: c.comparison_operator.clone(),
                description: format!("Metric {name} with {value} +/- {deviation} was {} '{}'", c.comparison_operator, c.threshold),
                metric_name: name.clone(),
            });
        }
    }
    Ok(MetricViolations { violations })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(attributes: Attributes) -> ModelQualityAnalyzer {
        ModelQualityAnalyzer::new(ProblemType::BinaryClassification, &attributes).unwrap()
    }

    #[test]
    fn a_baseline_csv_names_its_columns_and_suggests_constraints() {
        let mut a = binary(Attributes {
            inference: Some("prediction".into()),
            probability: Some("probability".into()),
            ground_truth: Some("label".into()),
            ..Default::default()
        });
        let csv = "probability,prediction,label\n0.9,1,1\n0.2,0,0\n0.7,1,0\n0.4,0,1\n";
        a.add_dataset_object(&DatasetFormat::Csv { header: true }, "d.csv", csv.as_bytes()).unwrap();
        let s = a.statistics("2026-12-06T10:00:00Z".into()).unwrap();
        let body = serde_json::to_value(&s).unwrap();
        assert_eq!(body["dataset"]["item_count"], 4);
        assert_eq!(body["binary_classification_metrics"]["accuracy"]["value"], 0.5);
        assert_eq!(body["binary_classification_metrics"]["accuracy"]["standard_deviation"], "NaN");
        assert_eq!(body["binary_classification_metrics"]["auc"]["value"], 0.75);
        let c = suggest_model_quality_constraints(&s);
        let section = &c.sections["binary_classification_constraints"];
        assert_eq!(section["accuracy"], MetricConstraint { threshold: 0.5, comparison_operator: "LessThanThreshold".into() });
        assert_eq!(section["false_positive_rate"].comparison_operator, "GreaterThanThreshold");
        // Round trip through the files' text.
        let c: ModelQualityConstraints = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        let s2: ModelQualityStatistics = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert!(evaluate_model_quality(&s2, &c).unwrap().violations.is_empty());
    }

    #[test]
    fn captured_answers_are_joined_with_labels_and_checked() {
        let mut a = binary(Attributes { probability: Some("0".into()), probability_threshold: Some(0.6), ..Default::default() });
        for (answer, label) in [("0.9", "1"), ("0.65", "0"), ("0.1", "0"), ("0.55", "1")] {
            a.add_answer(answer.as_bytes(), "text/csv", &json!(label)).unwrap();
        }
        let s = a.statistics(String::new()).unwrap();
        let scalars = s.scalars();
        // Predictions at 0.6: 1, 1, 0, 0.
        assert_eq!(scalars["accuracy"].0, 0.5);
        let c = ModelQualityConstraints {
            version: 0.0,
            sections: BTreeMap::from([(
                "binary_classification_constraints".into(),
                BTreeMap::from([
                    ("accuracy".to_string(), MetricConstraint { threshold: 0.8, comparison_operator: "LessThanThreshold".into() }),
                    ("recall".to_string(), MetricConstraint { threshold: 0.4, comparison_operator: "LessThanThreshold".into() }),
                ]),
            )]),
        };
        let v = evaluate_model_quality(&s, &c).unwrap();
        assert_eq!(v.violations.len(), 1);
        assert_eq!(v.violations[0].metric_name, "accuracy");
        assert!(v.violations[0].description.starts_with("Metric accuracy with 0.5 +/- NaN was LessThanThreshold '0.8'"), "{v:?}");
        let regression =
            ModelQualityConstraints { version: 0.0, sections: BTreeMap::from([("regression_constraints".into(), BTreeMap::new())]) };
        assert!(evaluate_model_quality(&s, &regression).unwrap_err().contains("no binary_classification_constraints"));
    }

    #[test]
    fn json_answers_use_member_names_and_paths() {
        let mut a = ModelQualityAnalyzer::new(
            ProblemType::MulticlassClassification,
            &Attributes { inference: Some("$.predictions[0].label".into()), ..Default::default() },
        )
        .unwrap();
        a.add_answer(br#"{"predictions": [{"label": "cat"}]}"#, "application/json", &json!("cat")).unwrap();
        a.add_answer(br#"{"predictions": [{"label": 2.0}]}"#, "application/json", &json!(2)).unwrap();
        assert_eq!(a.statistics(String::new()).unwrap().scalars()["accuracy"].0, 1.0);
        let mut r = ModelQualityAnalyzer::new(ProblemType::Regression, &Attributes::default()).unwrap();
        r.add_answer(b"3.5", "text/csv", &json!("3")).unwrap();
        r.add_answer(b"[2.0]", "application/json", &json!(2.5)).unwrap();
        assert_eq!(r.statistics(String::new()).unwrap().scalars()["mae"].0, 0.5);
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        let mut a = binary(Attributes { inference: Some("prediction".into()), ground_truth: Some("label".into()), ..Default::default() });
        let csv = DatasetFormat::Csv { header: true };
        assert!(a.add_dataset_object(&csv, "d", b"prediction,label\n1,cat\n").unwrap_err().contains("not 0 or 1"));
        assert!(a.add_dataset_object(&csv, "d", b"prediction,other\n1,1\n").unwrap_err().contains("header differs"));
        let mut fresh =
            binary(Attributes { inference: Some("prediction".into()), ground_truth: Some("label".into()), ..Default::default() });
        assert!(fresh.add_dataset_object(&csv, "d", b"prediction,other\n1,1\n").unwrap_err().contains("no ground_truth_attribute"));
        assert!(
            a.add_answer(b"1,0", "text/csv", &json!("1")).unwrap_err().contains("no inference_attribute"),
            "a name finds nothing without a header"
        );
        let mut b = binary(Attributes::default());
        assert!(b.add_answer(b"1,0", "text/csv", &json!("1")).unwrap_err().contains("more than one value"));
        assert!(b.add_answer(b"{", "application/json", &json!("1")).unwrap_err().contains("not JSON"));
        assert!(b.statistics(String::new()).unwrap_err().contains("no data"));
        assert!(ModelQualityAnalyzer::new(ProblemType::Regression, &Attributes { probability: Some("0".into()), ..Default::default() })
            .is_err());
        assert!(ProblemType::parse("Ranking").is_err());
    }
}
