//! The metrics SageMaker's model-quality analyzer reports, from (label, prediction) pairs:
//! binary classification (confusion matrix, accuracy, precision, recall, the true/false
//! positive/negative rates, F0.5/F1/F2, AUC with its ROC and precision-recall curves, and the
//! same for the best constant classifier, which always answers the positive class), multiclass
//! classification (accuracy and support-weighted recall, precision and F-scores, against the
//! constant classifier that answers the most frequent class) and regression (MAE, MSE, RMSE, R²).
//! Each scalar metric's standard deviation is the analyzer's: over five random 80% samples, when
//! there are at least 200 pairs.

use std::collections::{BTreeMap, BTreeSet};

/// Fewest pairs for a standard deviation.
const MIN_FOR_DEVIATION: usize = 200;
/// Most points a ROC or precision-recall curve keeps.
const MAX_CURVE_POINTS: usize = 100;

/// The pairs of one problem type.
#[derive(Debug, Clone, PartialEq)]
pub enum Pairs {
    /// Labels and predictions as `true` for the positive class, with each prediction's score
    /// (its probability, or the prediction itself as 0 or 1).
    Binary(Vec<(bool, bool, f64)>),
    Multiclass(Vec<(String, String)>),
    Regression(Vec<(f64, f64)>),
}

impl Pairs {
    pub fn len(&self) -> usize {
        match self {
            Pairs::Binary(p) => p.len(),
            Pairs::Multiclass(p) => p.len(),
            Pairs::Regression(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pairs at `indices`.
    fn sample(&self, indices: &[usize]) -> Pairs {
        match self {
            Pairs::Binary(p) => Pairs::Binary(indices.iter().map(|&i| p[i]).collect()),
            Pairs::Multiclass(p) => Pairs::Multiclass(indices.iter().map(|&i| p[i].clone()).collect()),
            Pairs::Regression(p) => Pairs::Regression(indices.iter().map(|&i| p[i]).collect()),
        }
    }
}

/// Scalar metrics by name (NaN where a metric is undefined, as AUC with one class).
pub type Scalars = BTreeMap<String, f64>;

/// A curve or matrix that has no standard deviation.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `confusion_matrix[actual][predicted]`.
    ConfusionMatrix(BTreeMap<String, BTreeMap<String, u64>>),
    /// `(false positive rates, true positive rates)`.
    Roc(Vec<f64>, Vec<f64>),
    /// `(precisions, recalls)`.
    PrecisionRecall(Vec<f64>, Vec<f64>),
}

/// Every metric of the pairs, with the scalars' standard deviations (NaN below 200 pairs).
pub fn metrics(pairs: &Pairs) -> (BTreeMap<String, (f64, f64)>, Vec<Shape>) {
    let values = scalars(pairs);
    let mut deviations: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    if pairs.len() >= MIN_FOR_DEVIATION {
        // Seeded: the same data gives the same file.
        let mut rng = fastrand::Rng::with_seed(0x006d_6f6e_6974_6f72);
        let take = pairs.len() * 4 / 5;
        let mut indices: Vec<usize> = (0..pairs.len()).collect();
        for _ in 0..5 {
            rng.shuffle(&mut indices);
            for (name, v) in scalars(&pairs.sample(&indices[..take])) {
                deviations.entry(name).or_default().push(v);
            }
        }
    }
    let with_deviation =
        values.into_iter().map(|(name, v)| (name.clone(), (v, deviations.get(&name).map_or(f64::NAN, |s| deviation(s))))).collect();
    (with_deviation, shapes(pairs))
}

/// The sample standard deviation.
fn deviation(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

fn f_beta(beta: f64, precision: f64, recall: f64) -> f64 {
    let b2 = beta * beta;
    ratio((1.0 + b2) * precision * recall, b2 * precision + recall)
}

const BETAS: [(&str, f64); 3] = [("f0_5", 0.5), ("f1", 1.0), ("f2", 2.0)];

pub fn scalars(pairs: &Pairs) -> Scalars {
    let mut m = Scalars::new();
    let n = pairs.len() as f64;
    match pairs {
        Pairs::Binary(p) => {
            let count = |label: bool, predicted: bool| p.iter().filter(|(l, q, _)| *l == label && *q == predicted).count() as f64;
            let (tp, fp, tn, fn_) = (count(true, true), count(false, true), count(false, false), count(true, false));
            let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
            m.insert("accuracy".into(), ratio(tp + tn, n));
            m.insert("precision".into(), precision);
            m.insert("recall".into(), recall);
            m.insert("true_positive_rate".into(), recall);
            m.insert("true_negative_rate".into(), ratio(tn, tn + fp));
            m.insert("false_positive_rate".into(), ratio(fp, fp + tn));
            m.insert("false_negative_rate".into(), ratio(fn_, fn_ + tp));
            m.insert("auc".into(), auc(p));
            // Always the positive class.
            let prevalence = ratio(tp + fn_, n);
            let constant_recall = if tp + fn_ > 0.0 { 1.0 } else { 0.0 };
            m.insert("accuracy_best_constant_classifier".into(), prevalence);
            m.insert("precision_best_constant_classifier".into(), prevalence);
            m.insert("recall_best_constant_classifier".into(), constant_recall);
            for (name, beta) in BETAS {
                m.insert(name.into(), f_beta(beta, precision, recall));
                m.insert(format!("{name}_best_constant_classifier"), f_beta(beta, prevalence, constant_recall));
            }
        }
        Pairs::Multiclass(p) => {
            let mut support: BTreeMap<&str, f64> = BTreeMap::new();
            let mut predicted: BTreeMap<&str, f64> = BTreeMap::new();
            let mut right: BTreeMap<&str, f64> = BTreeMap::new();
            for (label, prediction) in p {
                *support.entry(label).or_default() += 1.0;
                *predicted.entry(prediction).or_default() += 1.0;
                if label == prediction {
                    *right.entry(label).or_default() += 1.0;
                }
            }
            let get = |map: &BTreeMap<&str, f64>, c: &str| map.get(c).copied().unwrap_or(0.0);
            m.insert("accuracy".into(), ratio(right.values().sum(), n));
            let weighted = |metric: &dyn Fn(&str) -> f64| support.iter().map(|(c, s)| s / n * metric(c)).sum::<f64>();
            let precision = |c: &str| ratio(get(&right, c), get(&predicted, c));
            let recall = |c: &str| ratio(get(&right, c), get(&support, c));
            m.insert("weighted_precision".into(), weighted(&precision));
            m.insert("weighted_recall".into(), weighted(&recall));
            // Always the most frequent class (the first by name among equals).
            let top = support.iter().fold(0.0_f64, |best, (_, s)| best.max(*s)) / n.max(1.0);
            m.insert("accuracy_best_constant_classifier".into(), top);
            m.insert("weighted_recall_best_constant_classifier".into(), top);
            m.insert("weighted_precision_best_constant_classifier".into(), top * top);
            for (name, beta) in BETAS {
                m.insert(format!("weighted_{name}"), weighted(&|c| f_beta(beta, precision(c), recall(c))));
                m.insert(format!("weighted_{name}_best_constant_classifier"), top * f_beta(beta, top, 1.0));
            }
        }
        Pairs::Regression(p) => {
            let mse = p.iter().map(|(l, q)| (l - q).powi(2)).sum::<f64>() / n;
            let mean = p.iter().map(|(l, _)| l).sum::<f64>() / n;
            let total = p.iter().map(|(l, _)| (l - mean).powi(2)).sum::<f64>();
            m.insert("mae".into(), p.iter().map(|(l, q)| (l - q).abs()).sum::<f64>() / n);
            m.insert("mse".into(), mse);
            m.insert("rmse".into(), mse.sqrt());
            m.insert("r2".into(), if total == 0.0 { f64::NAN } else { 1.0 - mse * n / total });
        }
    }
    m
}

/// The area under the ROC curve: the chance a positive scores above a negative (ties count
/// half), as scikit-learn's `roc_auc_score`; NaN with one class only.
fn auc(p: &[(bool, bool, f64)]) -> f64 {
    let mut scored: Vec<(f64, bool)> = p.iter().map(|(l, _, s)| (*s, *l)).collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = scored.iter().filter(|(_, l)| *l).count() as f64;
    let negatives = scored.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    // Mann–Whitney U from mid-ranks.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        while j < scored.len() && scored[j].0 == scored[i].0 {
            j += 1;
        }
        let mid_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mid_rank * scored[i..j].iter().filter(|(_, l)| *l).count() as f64;
        i = j;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

fn shapes(pairs: &Pairs) -> Vec<Shape> {
    let mut matrix: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut add = |label: String, predicted: String, classes: &BTreeSet<String>| {
        let row = matrix.entry(label).or_insert_with(|| classes.iter().map(|c| (c.clone(), 0)).collect());
        *row.entry(predicted).or_default() += 1;
    };
    match pairs {
        Pairs::Binary(p) => {
            let class = |b: bool| if b { "1".to_string() } else { "0".to_string() };
            let classes: BTreeSet<String> = p.iter().flat_map(|(l, q, _)| [class(*l), class(*q)]).collect();
            for (l, q, _) in p {
                add(class(*l), class(*q), &classes);
            }
            let (roc, pr) = curves(p);
            vec![Shape::ConfusionMatrix(matrix), roc, pr]
        }
        Pairs::Multiclass(p) => {
            let classes: BTreeSet<String> = p.iter().flat_map(|(l, q)| [l.clone(), q.clone()]).collect();
            for (l, q) in p {
                add(l.clone(), q.clone(), &classes);
            }
            vec![Shape::ConfusionMatrix(matrix)]
        }
        Pairs::Regression(_) => Vec::new(),
    }
}

/// The ROC and precision-recall curves: a point per score threshold, from the highest score
/// down (at most 100 of them, evenly spaced), the ROC curve from (0, 0) to (1, 1).
fn curves(p: &[(bool, bool, f64)]) -> (Shape, Shape) {
    let mut scored: Vec<(f64, bool)> = p.iter().map(|(l, _, s)| (*s, *l)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = scored.iter().filter(|(_, l)| *l).count() as f64;
    let negatives = scored.len() as f64 - positives;
    // (true positives, false positives) at each distinct threshold.
    let mut steps = Vec::new();
    let (mut tp, mut fp) = (0.0, 0.0);
    for (i, (score, label)) in scored.iter().enumerate() {
        if *label {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        if scored.get(i + 1).is_none_or(|next| next.0 != *score) {
            steps.push((tp, fp));
        }
    }
    if steps.len() > MAX_CURVE_POINTS {
        let last = steps.len() - 1;
        steps = (0..MAX_CURVE_POINTS).map(|k| steps[k * last / (MAX_CURVE_POINTS - 1)]).collect();
    }
    let (mut fpr, mut tpr) = (vec![0.0], vec![0.0]);
    let (mut precisions, mut recalls) = (Vec::new(), Vec::new());
    for (tp, fp) in &steps {
        fpr.push(ratio(*fp, negatives));
        tpr.push(ratio(*tp, positives));
        precisions.push(ratio(*tp, tp + fp));
        recalls.push(ratio(*tp, positives));
    }
    if fpr.last() != Some(&1.0) || tpr.last() != Some(&1.0) {
        fpr.push(1.0);
        tpr.push(1.0);
    }
    if let Some(first) = precisions.first().copied() {
        precisions.insert(0, first);
        recalls.insert(0, 0.0);
    }
    (Shape::Roc(fpr, tpr), Shape::PrecisionRecall(precisions, recalls))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn binary_metrics_are_the_documented_ones() {
        // SageMaker's documented example: one positive of four, all predicted positive but one
        // negative: recall 1, precision 1/3, accuracy 1/2.
        let p = Pairs::Binary(vec![(true, true, 1.0), (false, true, 1.0), (false, true, 1.0), (false, false, 0.0)]);
        let m = scalars(&p);
        assert!(close(m["recall"], 1.0) && close(m["precision"], 1.0 / 3.0) && close(m["accuracy"], 0.5));
        assert!(close(m["f0_5"], 0.3846153846153846) && close(m["f1"], 0.5) && close(m["f2"], 0.7142857142857143));
        assert!(close(m["precision_best_constant_classifier"], 0.25) && close(m["f1_best_constant_classifier"], 0.4));
        assert!(close(m["f0_5_best_constant_classifier"], 0.29411764705882354) && close(m["f2_best_constant_classifier"], 0.625));
        assert!(close(m["true_negative_rate"], 1.0 / 3.0) && close(m["false_positive_rate"], 2.0 / 3.0));
        assert!(close(m["auc"], 2.0 / 3.0), "{}", m["auc"]);
        let (with_deviation, shapes) = metrics(&p);
        assert!(with_deviation["accuracy"].1.is_nan(), "no deviation under 200 pairs");
        let Shape::ConfusionMatrix(cm) = &shapes[0] else { panic!() };
        assert_eq!((cm["0"]["0"], cm["0"]["1"], cm["1"]["0"], cm["1"]["1"]), (1, 2, 0, 1));
    }

    #[test]
    fn auc_counts_ties_half_and_is_undefined_with_one_class() {
        let p = vec![(true, true, 0.8), (false, true, 0.8), (true, false, 0.3), (false, false, 0.1)];
        assert!(close(auc(&p), 0.625));
        assert!(auc(&[(true, true, 0.2), (true, true, 0.9)]).is_nan());
        let (Shape::Roc(fpr, tpr), Shape::PrecisionRecall(precision, recall)) = curves(&p) else { panic!() };
        assert_eq!((fpr, tpr), (vec![0.0, 0.5, 0.5, 1.0], vec![0.0, 0.5, 1.0, 1.0]));
        assert_eq!((precision.len(), recall[0]), (4, 0.0));
    }

    #[test]
    fn multiclass_and_regression_metrics() {
        let pairs = [("a", "a"), ("a", "b"), ("b", "b"), ("c", "c"), ("a", "a")];
        let m = scalars(&Pairs::Multiclass(pairs.iter().map(|(l, q)| (l.to_string(), q.to_string())).collect()));
        assert!(close(m["accuracy"], 0.8));
        // a: precision 1, recall 2/3; b: precision 1/2, recall 1; c: 1, 1.
        assert!(close(m["weighted_recall"], 0.6 * 2.0 / 3.0 + 0.2 + 0.2));
        assert!(close(m["weighted_precision"], 0.6 + 0.2 * 0.5 + 0.2));
        assert!(close(m["accuracy_best_constant_classifier"], 0.6));
        let m = scalars(&Pairs::Regression(vec![(1.0, 2.0), (2.0, 2.0), (3.0, 5.0)]));
        assert!(close(m["mae"], 1.0) && close(m["mse"], 5.0 / 3.0) && close(m["rmse"], (5.0_f64 / 3.0).sqrt()));
        assert!(close(m["r2"], 1.0 - 5.0 / 2.0));
    }

    #[test]
    fn deviations_come_from_five_samples_of_four_fifths() {
        let p = Pairs::Regression((0..400).map(|i| (i as f64, i as f64 + (i % 7) as f64)).collect());
        let (a, _) = metrics(&p);
        let (b, _) = metrics(&p);
        assert!(a["mae"].1 > 0.0 && a["mae"].1 < 0.5, "{:?}", a["mae"]);
        assert_eq!(a["mae"].1, b["mae"].1, "the same data gives the same deviation");
    }
}
