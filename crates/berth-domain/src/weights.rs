/// Picks an index with probability proportional to its weight.
///
/// `r` is a uniform sample in `[0, 1)`. Zero weights are never picked unless every weight
/// is zero, in which case there is nothing to pick and `None` is returned.
pub fn pick_weighted(weights: impl Iterator<Item = f64> + Clone, r: f64) -> Option<usize> {
    let usable = |w: &f64| w.is_finite() && *w > 0.0;
    let mut total: f64 = weights.clone().filter(usable).sum();
    if total <= 0.0 {
        return None;
    }
    // Weights so large that their sum overflows are picked on a scaled copy.
    let scale = if total.is_finite() { 1.0 } else { weights.clone().filter(usable).fold(0.0, f64::max) };
    if scale != 1.0 {
        total = weights.clone().filter(usable).map(|w| w / scale).sum();
    }
    let mut target = r * total;
    let mut last_positive = None;
    for (i, w) in weights.enumerate() {
        if !usable(&w) {
            continue;
        }
        let w = w / scale;
        last_positive = Some(i);
        if target < w {
            return Some(i);
        }
        target -= w;
    }
    // Floating-point rounding can leave `target` a hair above the last weight.
    last_positive
}

#[cfg(test)]
mod tests {
    use super::pick_weighted;

    fn pick(ws: &[f64], r: f64) -> Option<usize> {
        pick_weighted(ws.iter().copied(), r)
    }

    #[test]
    fn splits_by_weight() {
        assert_eq!(pick(&[1.0, 3.0], 0.0), Some(0));
        assert_eq!(pick(&[1.0, 3.0], 0.249), Some(0));
        assert_eq!(pick(&[1.0, 3.0], 0.25), Some(1));
        assert_eq!(pick(&[1.0, 3.0], 0.999_999), Some(1));
    }

    #[test]
    fn zero_weight_is_never_picked() {
        for i in 0..100 {
            assert_eq!(pick(&[0.0, 1.0, 0.0], i as f64 / 100.0), Some(1));
        }
    }

    #[test]
    fn huge_weights_still_split_by_weight() {
        assert_eq!(pick(&[1e308, 1e308], 0.25), Some(0));
        assert_eq!(pick(&[1e308, 1e308], 0.75), Some(1));
        assert_eq!(pick(&[f64::NAN, 1.0], 0.1), Some(1));
        assert_eq!(pick(&[f64::INFINITY, 1.0], 0.1), Some(1));
    }

    #[test]
    fn all_zero_picks_nothing() {
        assert_eq!(pick(&[0.0, 0.0], 0.5), None);
        assert_eq!(pick(&[], 0.5), None);
    }

    #[test]
    fn distribution_matches_weights() {
        let mut counts = [0usize; 3];
        let n = 100_000;
        for i in 0..n {
            let r = (i as f64 + 0.5) / n as f64;
            counts[pick(&[1.0, 1.0, 2.0], r).unwrap()] += 1;
        }
        assert_eq!(counts, [25_000, 25_000, 50_000]);
    }
}
