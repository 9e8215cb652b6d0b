//! Model quality statistics on (prediction, label) pairs, computed as scikit-learn does, with
//! 95% intervals: Wilson's for accuracy, a seeded percentile bootstrap (200 resamples) for the
//! others, so the same data always gives the same interval.

use crate::labels::{classes, label_number, truth, Predicted};
use serde_json::Value;

const BOOTSTRAP: usize = 200;

/// Wilson's 95% interval of a proportion.
pub(crate) fn wilson(successes: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, n, p) = (1.959_963_984_540_054_f64, n as f64, successes as f64 / n as f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt() / (1.0 + z * z / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The 2.5th and 97.5th percentiles of `metric` over bootstrap resamples of `n` items.
fn bootstrap(n: usize, metric: impl Fn(&[usize]) -> Option<f64>) -> Option<(f64, f64)> {
    if n < 2 {
        return None;
    }
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut values: Vec<f64> = (0..BOOTSTRAP)
        .filter_map(|_| {
            let sample: Vec<usize> = (0..n).map(|_| rng.usize(..n)).collect();
            metric(&sample).filter(|v| v.is_finite())
        })
        .collect();
    if values.len() < BOOTSTRAP / 2 {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

/// A measured value and its 95% interval, when one could be computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub ci95: Option<(f64, f64)>,
}

fn estimate(value: Option<f64>, ci95: Option<(f64, f64)>) -> Option<Estimate> {
    value.map(|value| Estimate { value, ci95 })
}

/// Precision, recall and F1, each with its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionRecallF1 {
    pub precision: Estimate,
    pub recall: Estimate,
    pub f1: Estimate,
}

/// One class taken as positive: its precision, recall and F1, and the AUC of the answers'
/// probabilities for it.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryQuality {
    pub positive: String,
    pub scores: PrecisionRecallF1,
    pub auc: Option<Estimate>,
}

/// A classifier's quality on labelled answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationQuality {
    pub n: usize,
    pub classes: Vec<String>,
    /// Rows are true classes, columns predicted ones, both in `classes` order.
    pub confusion_matrix: Vec<Vec<usize>>,
    pub accuracy: Estimate,
    pub macro_average: PrecisionRecallF1,
    pub weighted_average: PrecisionRecallF1,
    /// With two classes, or a positive class named.
    pub binary: Option<BinaryQuality>,
}

/// A regressor's quality on labelled answers (None where there is nothing to measure).
#[derive(Debug, Clone, PartialEq)]
pub struct RegressionQuality {
    pub n: usize,
    pub mae: Option<Estimate>,
    pub rmse: Option<Estimate>,
    pub r2: Option<Estimate>,
}

/// Precision, recall and F1 of one class over the items `idx`.
fn prf(truths: &[String], preds: &[String], idx: &[usize], class: &str) -> (f64, f64, f64, usize) {
    let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
    for &i in idx {
        match (preds[i] == class, truths[i] == class) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
            _ => {}
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (p, r) = (ratio(tp, tp + fp), ratio(tp, tp + fneg));
    let f = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
    (p, r, f, tp + fneg)
}

/// Macro and support-weighted averages of precision, recall and F1 over `classes`.
fn averages(truths: &[String], preds: &[String], idx: &[usize], classes: &[String]) -> ([f64; 3], [f64; 3]) {
    let per: Vec<(f64, f64, f64, usize)> = classes.iter().map(|c| prf(truths, preds, idx, c)).collect();
    let k = per.len().max(1) as f64;
    let support: usize = per.iter().map(|x| x.3).sum();
    let macro_avg =
        [per.iter().map(|x| x.0).sum::<f64>() / k, per.iter().map(|x| x.1).sum::<f64>() / k, per.iter().map(|x| x.2).sum::<f64>() / k];
    let w = |f: fn(&(f64, f64, f64, usize)) -> f64| per.iter().map(|x| f(x) * x.3 as f64).sum::<f64>() / support.max(1) as f64;
    (macro_avg, [w(|x| x.0), w(|x| x.1), w(|x| x.2)])
}

/// The area under the ROC curve (Mann–Whitney U, ties counted half).
fn auc(scores: &[f64], positive: &[bool], idx: &[usize]) -> Option<f64> {
    let mut items: Vec<(f64, bool)> = idx.iter().map(|&i| (scores[i], positive[i])).collect();
    let pos = items.iter().filter(|x| x.1).count();
    let neg = items.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        while j + 1 < items.len() && items[j + 1].0 == items[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += rank * items[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64)
}

pub(crate) fn classification(pairs: &[(Predicted, Value)], positive: Option<&str>) -> ClassificationQuality {
    let truths: Vec<String> = pairs.iter().map(|(_, l)| truth(l)).collect();
    let preds: Vec<String> = pairs.iter().map(|(p, _)| p.label.clone()).collect();
    let classes = classes(pairs);
    let n = pairs.len();
    let all: Vec<usize> = (0..n).collect();
    let correct = all.iter().filter(|&&i| truths[i] == preds[i]).count();
    let (lo, hi) = wilson(correct, n);
    let matrix: Vec<Vec<usize>> = classes
        .iter()
        .map(|t| classes.iter().map(|p| all.iter().filter(|&&i| truths[i] == *t && preds[i] == *p).count()).collect())
        .collect();
    let (macro_avg, weighted) = averages(&truths, &preds, &all, &classes);
    let ci = |k: usize, weighted_avg: bool| {
        bootstrap(n, |idx| {
            let (m, w) = averages(&truths, &preds, idx, &classes);
            Some(if weighted_avg { w[k] } else { m[k] })
        })
    };
    let averages_of = |values: [f64; 3], weighted_avg: bool| PrecisionRecallF1 {
        precision: Estimate { value: values[0], ci95: ci(0, weighted_avg) },
        recall: Estimate { value: values[1], ci95: ci(1, weighted_avg) },
        f1: Estimate { value: values[2], ci95: ci(2, weighted_avg) },
    };
    let mut out = ClassificationQuality {
        n,
        classes: classes.clone(),
        confusion_matrix: matrix,
        accuracy: Estimate { value: if n > 0 { correct as f64 / n as f64 } else { 0.0 }, ci95: Some((lo, hi)) },
        macro_average: averages_of(macro_avg, false),
        weighted_average: averages_of(weighted, true),
        binary: None,
    };
    if classes.len() == 2 || positive.is_some() {
        let pos = positive.map(str::to_string).unwrap_or_else(|| classes.last().cloned().unwrap_or_default());
        let (p, r, f, _) = prf(&truths, &preds, &all, &pos);
        let one = |k: usize| {
            bootstrap(n, |idx| {
                let (p, r, f, _) = prf(&truths, &preds, idx, &pos);
                Some([p, r, f][k])
            })
        };
        // Scores for AUC: the positive class's probability when the answer has one per class.
        let pos_index = classes.iter().position(|c| *c == pos);
        let scores: Vec<f64> = pairs
            .iter()
            .map(|(p, _)| match (&p.probabilities, pos_index) {
                (Some(probs), Some(i)) if probs.len() == classes.len() => probs[i],
                _ => f64::from(u8::from(p.label == pos)),
            })
            .collect();
        let is_pos: Vec<bool> = truths.iter().map(|t| *t == pos).collect();
        let area = auc(&scores, &is_pos, &all);
        out.binary = Some(BinaryQuality {
            scores: PrecisionRecallF1 {
                precision: Estimate { value: p, ci95: one(0) },
                recall: Estimate { value: r, ci95: one(1) },
                f1: Estimate { value: f, ci95: one(2) },
            },
            auc: estimate(area, bootstrap(n, |idx| auc(&scores, &is_pos, idx))),
            positive: pos,
        });
    }
    out
}

pub(crate) fn regression(pairs: &[(Predicted, Value)]) -> RegressionQuality {
    let xy: Vec<(f64, f64)> = pairs.iter().filter_map(|(p, l)| Some((p.number?, label_number(l)?))).collect();
    let n = xy.len();
    let metrics = |idx: &[usize]| -> Option<[f64; 3]> {
        if idx.is_empty() {
            return None;
        }
        let m = idx.len() as f64;
        let mae = idx.iter().map(|&i| (xy[i].0 - xy[i].1).abs()).sum::<f64>() / m;
        let sse = idx.iter().map(|&i| (xy[i].0 - xy[i].1).powi(2)).sum::<f64>();
        let mean = idx.iter().map(|&i| xy[i].1).sum::<f64>() / m;
        let sst = idx.iter().map(|&i| (xy[i].1 - mean).powi(2)).sum::<f64>();
        let r2 = if sst == 0.0 { f64::NAN } else { 1.0 - sse / sst };
        Some([mae, (sse / m).sqrt(), r2])
    };
    let all: Vec<usize> = (0..n).collect();
    let value = metrics(&all);
    let ci = |k: usize| bootstrap(n, |idx| metrics(idx).map(|m| m[k]));
    RegressionQuality {
        n,
        mae: estimate(value.map(|m| m[0]), ci(0)),
        rmse: estimate(value.map(|m| m[1]), ci(1)),
        r2: estimate(value.map(|m| m[2]).filter(|v| v.is_finite()), ci(2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(pred: &str, truth: &str) -> (Predicted, Value) {
        (Predicted { label: pred.into(), probabilities: None, number: pred.parse().ok() }, serde_json::json!(truth))
    }

    #[test]
    fn binary_metrics_match_hand_computed_values() {
        // truth: 1 1 1 0 0; predicted: 1 0 1 1 0 → tp 2, fn 1, fp 1, tn 1
        let pairs = vec![pair("1", "1"), pair("0", "1"), pair("1", "1"), pair("1", "0"), pair("0", "0")];
        let out = classification(&pairs, None);
        assert_eq!(out.accuracy.value, 0.6);
        let binary = out.binary.unwrap();
        assert_eq!(binary.positive, "1");
        assert!((binary.scores.precision.value - 2.0 / 3.0).abs() < 1e-12);
        assert!((binary.scores.recall.value - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(out.confusion_matrix, vec![vec![1, 1], vec![1, 2]]);
        let (lo, hi) = wilson(3, 5);
        assert!(lo < 0.6 && 0.6 < hi);
    }

    #[test]
    fn auc_counts_ties_half() {
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true], &[0, 1, 2, 3]), Some(0.75));
        assert_eq!(auc(&[0.5, 0.5], &[false, true], &[0, 1]), Some(0.5));
    }

    #[test]
    fn regression_metrics() {
        let pairs = vec![pair("2.5", "3"), pair("0", "-0.5"), pair("2", "2"), pair("8", "7")];
        let out = regression(&pairs);
        assert!((out.mae.unwrap().value - 0.5).abs() < 1e-12);
        assert!((out.rmse.unwrap().value - 0.612_372_435_695_794_5).abs() < 1e-12);
        assert!((out.r2.unwrap().value - 0.948_608_137_044_967_9).abs() < 1e-12);
    }
}

/// Two variants' per-request outcomes (1/0 for correct, or absolute errors) compared: the
/// difference B − A with the classical fixed-horizon test and an always-valid sequential test
/// (mSPRT with a normal mixture, Johari et al. 2017) that may be looked at after every request
/// without inflating false positives.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub n: (usize, usize),
    pub means: (f64, f64),
    pub difference: f64,
    pub ci: (f64, f64),
    pub fixed_p: f64,
    pub e_value: f64,
    pub always_valid_p: f64,
    /// Per variant, how many more observations a fixed-horizon test at 80% power would need
    /// for the observed difference (None when it is zero).
    pub more_needed: Option<usize>,
    /// Observations (both variants) at the first prefix whose always-valid p-value fell below
    /// `alpha`: when the test decided.
    pub decided_after: Option<usize>,
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = if x.len() > 1 { x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, v)
}

/// The standard normal distribution function (Abramowitz–Stegun 7.1.26, error < 1.5e-7).
pub(crate) fn normal_cdf(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs() / std::f64::consts::SQRT_2);
    let poly = t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(z * z) / 2.0).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// The mixture likelihood ratio of a difference `diff` with variance `var` (Johari et al.).
fn e_value(diff: f64, var: f64, tau: f64) -> f64 {
    let t2 = tau * tau;
    (var / (var + t2)).sqrt() * ((diff * diff * t2) / (2.0 * var * (var + t2))).exp()
}

/// The variance of a difference of two means from running sums (a floor keeps a run of
/// identical outcomes from looking infinitely sure).
fn diff_variance(sa: f64, qa: f64, na: f64, sb: f64, qb: f64, nb: f64) -> f64 {
    let va = ((qa - sa * sa / na) / (na - 1.0)).max(0.0);
    let vb = ((qb - sb * sb / nb) / (nb - 1.0)).max(0.0);
    (va / na + vb / nb).max(1e-12).max(0.25 / (na * nb))
}

/// Observations each variant needs before the sequential test may decide: below it the
/// variances the test plugs in are too rough (five right answers in a row look certain).
const MIN_PER_VARIANT: usize = 30;

/// Compares outcomes `a` and `b` (each in arrival order); `tau` is the mixture's scale (the
/// size of difference that matters, in the outcome's units). The always-valid p-value is the
/// smallest 1/e-value over the paired prefixes — the first k outcomes of each variant, from
/// `MIN_PER_VARIANT` on — which new outcomes only ever add to (never reorder), so the p-value
/// only goes down as data arrive and a decision, once reached, stays.
pub(crate) fn compare(a: &[f64], b: &[f64], tau: f64, alpha: f64) -> Option<Comparison> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (na, nb) = (a.len(), b.len());
    let (mut sa, mut qa, mut sb, mut qb) = (0.0, 0.0, 0.0, 0.0);
    let mut always_valid_p: f64 = 1.0;
    let mut last_e = 1.0;
    let mut decided_after = None;
    for k in 0..na.min(nb) {
        sa += a[k];
        qa += a[k] * a[k];
        sb += b[k];
        qb += b[k] * b[k];
        let n = k + 1;
        if n >= MIN_PER_VARIANT {
            let f = n as f64;
            let var = diff_variance(sa, qa, f, sb, qb, f);
            last_e = e_value(sb / f - sa / f, var, tau);
            always_valid_p = always_valid_p.min(1.0 / last_e);
            if always_valid_p < alpha && decided_after.is_none() {
                decided_after = Some(2 * n);
            }
        }
    }
    // The whole streams, for the estimate and its fixed-sample interval.
    let (sa, qa, sb, qb) =
        (a.iter().sum::<f64>(), a.iter().map(|v| v * v).sum::<f64>(), b.iter().sum::<f64>(), b.iter().map(|v| v * v).sum::<f64>());
    let ((ma, va), (mb, vb)) = (mean_var(a), mean_var(b));
    let diff = mb - ma;
    let se = diff_variance(sa, qa, na as f64, sb, qb, nb as f64).sqrt();
    let z = 1.959_963_984_540_054;
    let fixed_p = 2.0 * (1.0 - normal_cdf((diff / se).abs()));
    let more_needed = (diff != 0.0).then(|| {
        let per_arm_var = va.max(1e-12) + vb.max(1e-12);
        let n = (z + 0.841_621_233_572_914_3_f64).powi(2) * per_arm_var / (diff * diff);
        (n.ceil() as usize).saturating_sub(na.min(nb))
    });
    Some(Comparison {
        n: (na, nb),
        means: (ma, mb),
        difference: diff,
        ci: (diff - z * se, diff + z * se),
        fixed_p,
        e_value: last_e,
        always_valid_p: always_valid_p.min(1.0),
        more_needed,
        decided_after,
    })
}

#[cfg(test)]
mod sequential_tests {
    use super::*;

    fn bernoulli(rng: &mut fastrand::Rng, p: f64) -> f64 {
        f64::from(u8::from(rng.f64() < p))
    }

    /// A decision, once reached, stays as outcomes keep arriving, however unevenly between the
    /// variants (as when a bandit moves traffic); the p-value never goes up.
    #[test]
    fn a_decision_stays_as_outcomes_arrive_unevenly() {
        let mut rng = fastrand::Rng::with_seed(11);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut p_before, mut decided) = (1.0, false);
        for step in 0..3000 {
            // Three to one for B first, then one to three.
            if rng.f64() < if step < 1500 { 0.25 } else { 0.75 } {
                a.push(bernoulli(&mut rng, 0.88));
            } else {
                b.push(bernoulli(&mut rng, 0.72));
            }
            if let Some(c) = compare(&a, &b, 0.05, 0.05) {
                assert!(c.always_valid_p <= p_before, "the p-value went up at step {step}");
                p_before = c.always_valid_p;
                assert!(!decided || c.always_valid_p < 0.05, "an undecided test after a decision at step {step}");
                decided |= c.always_valid_p < 0.05;
            }
        }
        assert!(decided, "a 16-point difference is decided within 3,000 outcomes");
    }

    /// Looked at after every observation up to 2,000 per arm, two equal variants are declared
    /// different in at most about α of the runs (the fixed-horizon test, looked at every 50,
    /// is far above it).
    #[test]
    fn peeking_does_not_inflate_false_positives() {
        let mut rng = fastrand::Rng::with_seed(7);
        let runs = 300;
        let (mut sequential, mut naive) = (0, 0);
        for _ in 0..runs {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let mut naive_hit = false;
            while a.len() < 2000 {
                for _ in 0..10 {
                    a.push(bernoulli(&mut rng, 0.8));
                    b.push(bernoulli(&mut rng, 0.8));
                }
                if a.len() % 50 == 0 {
                    naive_hit |= compare(&a, &b, 0.05, 0.05).is_some_and(|c| c.fixed_p < 0.05);
                }
            }
            // The always-valid p-value is the minimum over every prefix: looking at any time.
            sequential += usize::from(compare(&a, &b, 0.05, 0.05).is_some_and(|c| c.always_valid_p < 0.05));
            naive += usize::from(naive_hit);
        }
        let rate = sequential as f64 / runs as f64;
        assert!(rate <= 0.07, "sequential false-positive rate {rate}");
        assert!(naive as f64 / runs as f64 > 0.2, "the naive test peeked at inflates: {naive}/{runs}");
    }

    #[test]
    fn a_real_difference_is_found() {
        let mut rng = fastrand::Rng::with_seed(11);
        let a: Vec<f64> = (0..1500).map(|_| bernoulli(&mut rng, 0.80)).collect();
        let b: Vec<f64> = (0..1500).map(|_| bernoulli(&mut rng, 0.88)).collect();
        let c = compare(&a, &b, 0.05, 0.05).unwrap();
        assert!(c.always_valid_p < 0.01 && c.difference > 0.04 && c.ci.0 > 0.0, "{c:?}");
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
    }
}
