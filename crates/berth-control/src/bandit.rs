//! Bandit routing and automatic promotion, switched on per endpoint by tags:
//!
//! - `berth:routing` = `thompson` or `epsilon-greedy`: weights follow each variant's reward
//!   instead of staying fixed, never below `berth:exploration` (default 0.05) per variant.
//! - `berth:reward` = `accuracy` (from ground truth joined with captured answers; the default),
//!   `success` (requests answered without an error) or `latency` (model latency within
//!   `berth:latency-target-ms`, default 100, counted on the latency histogram's bucket bounds).
//! - `berth:auto-promote` = `true`: once the always-valid test decides between two variants on
//!   accuracy, traffic moves to the winner in steps of 25 points, one per round, each recorded
//!   with the reason as an event.
//!
//! Weights change through UpdateEndpointWeightsAndCapacities' path, so DescribeEndpoint shows
//! the effective weights.

use crate::labels::{correct, Pairs};
use crate::quality::{significance_of, Metric};
use crate::{Controller, DesiredWeightAndCapacity};
use berth_domain::{EndpointStatus, EventKind};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Draws from Gamma(shape, 1) (Marsaglia and Tsang), for Beta draws.
fn gamma(rng: &mut fastrand::Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        return gamma(rng, shape + 1.0) * rng.f64().powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        // A standard normal by Box–Muller.
        let x = (-2.0 * (1.0 - rng.f64()).ln()).sqrt() * (2.0 * std::f64::consts::PI * rng.f64()).cos();
        let v = (1.0 + c * x).powi(3);
        if v > 0.0 && (1.0 - rng.f64()).ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

fn beta(rng: &mut fastrand::Rng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    x / (x + gamma(rng, b))
}

/// Thompson sampling's weights: each variant's chance of being the best under Beta(1 + wins,
/// 1 + losses), by Monte Carlo, with `floor` as every variant's least share.
pub(crate) fn thompson(counts: &[(f64, f64)], floor: f64, rng: &mut fastrand::Rng) -> Vec<f64> {
    let draws = 2000;
    let mut best = vec![0usize; counts.len()];
    for _ in 0..draws {
        let i =
            counts.iter().map(|(w, l)| beta(rng, 1.0 + w, 1.0 + l)).enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).map_or(0, |(i, _)| i);
        best[i] += 1;
    }
    with_floor(best.iter().map(|&b| b as f64 / draws as f64).collect(), floor)
}

/// ε-greedy's weights: the best observed rate gets what the others' floors leave.
pub(crate) fn epsilon_greedy(counts: &[(f64, f64)], floor: f64) -> Vec<f64> {
    let rate = |(w, l): &(f64, f64)| (1.0 + w) / (2.0 + w + l);
    let best = counts.iter().enumerate().max_by(|a, b| rate(a.1).total_cmp(&rate(b.1))).map_or(0, |(i, _)| i);
    with_floor((0..counts.len()).map(|i| f64::from(u8::from(i == best))).collect(), floor)
}

fn with_floor(shares: Vec<f64>, floor: f64) -> Vec<f64> {
    let k = shares.len() as f64;
    let floor = floor.clamp(0.0, 1.0 / k);
    shares.iter().map(|s| floor + s * (1.0 - floor * k)).collect()
}

impl Controller {
    /// One round for every endpoint with bandit routing or automatic promotion.
    pub async fn run_bandits(self: &Arc<Self>) -> Result<(), crate::ControlError> {
        for e in self.all_endpoints().await?.into_iter().filter(|e| e.status == EndpointStatus::InService) {
            let tags: BTreeMap<String, String> = self.list_tags(&e.arn).await?.into_iter().collect();
            let routing = tags.get("berth:routing").map(String::as_str);
            let promote = tags.get("berth:auto-promote").is_some_and(|v| v == "true");
            if routing.is_none() && !promote {
                continue;
            }
            let production: Vec<String> = e.variants.iter().filter(|v| !v.shadow).map(|v| v.name.clone()).collect();
            if production.len() < 2 {
                continue;
            }
            let reward = tags.get("berth:reward").map_or("accuracy", String::as_str);
            // The labelled answers, read once for the promotion test and the accuracy reward.
            let pairs =
                if promote || (routing.is_some() && reward == "accuracy") { self.labelled(&e.name).await?.0 } else { Default::default() };
            if promote && self.promote_if_decided(&e.name, &production, &pairs).await? == Some(true) {
                continue;
            }
            let Some(kind) = routing else { continue };
            let floor = tags.get("berth:exploration").and_then(|v| v.parse().ok()).unwrap_or(0.05);
            let counts: Vec<(f64, f64)> = match reward {
                "latency" => {
                    let target_us = tags.get("berth:latency-target-ms").and_then(|v| v.parse::<f64>().ok()).unwrap_or(100.0) * 1000.0;
                    production
                        .iter()
                        .map(|v| {
                            let s = self
                                .routing
                                .metrics()
                                .snapshot_of(&berth_metrics::VariantKey { endpoint: e.name.clone(), variant: v.clone() });
                            s.map_or((0.0, 0.0), |s| {
                                let h = &s.model_latency_us;
                                let fast: u64 = berth_metrics::BUCKET_BOUNDS_US
                                    .iter()
                                    .zip(&h.buckets)
                                    .filter(|(bound, _)| **bound as f64 <= target_us)
                                    .map(|(_, n)| n)
                                    .sum();
                                (fast as f64, h.count.saturating_sub(fast) as f64)
                            })
                        })
                        .collect()
                }
                "success" => production
                    .iter()
                    .map(|v| {
                        let s =
                            self.routing.metrics().snapshot_of(&berth_metrics::VariantKey { endpoint: e.name.clone(), variant: v.clone() });
                        s.map_or((0.0, 0.0), |s| {
                            ((s.invocations - s.errors_5xx - s.errors_4xx) as f64, (s.errors_5xx + s.errors_4xx) as f64)
                        })
                    })
                    .collect(),
                _ => production
                    .iter()
                    .map(|v| {
                        let p = pairs.get(v).map(Vec::as_slice).unwrap_or(&[]);
                        let right = p.iter().filter(|pair| correct(pair)).count() as f64;
                        (right, p.len() as f64 - right)
                    })
                    .collect(),
            };
            let weights = match kind {
                "epsilon-greedy" => epsilon_greedy(&counts, floor),
                _ => thompson(&counts, floor, &mut fastrand::Rng::new()),
            };
            let total: f64 = e.variants.iter().filter(|v| !v.shadow).map(|v| v.current_weight).sum::<f64>().max(1e-9);
            let moved = production.iter().zip(&weights).any(|(name, w)| {
                let current = e.variant(name).map_or(0.0, |v| v.current_weight) / total;
                (current - w).abs() > 0.02
            });
            if moved {
                let desired = production
                    .iter()
                    .zip(&weights)
                    .map(|(v, w)| DesiredWeightAndCapacity {
                        variant: v.clone(),
                        weight: Some((w * 1000.0).round() / 1000.0),
                        instance_count: None,
                        serverless: None,
                    })
                    .collect();
                self.update_weights_and_capacities(&e.name, desired).await?;
            }
        }
        Ok(())
    }

    /// With two production variants and a decided test on accuracy: 25 more points of traffic
    /// to the winner each round until it has all of it. Returns Some(true) while promoting.
    async fn promote_if_decided(
        self: &Arc<Self>,
        endpoint: &str,
        production: &[String],
        pairs: &Pairs,
    ) -> Result<Option<bool>, crate::ControlError> {
        let [a, b] = production else { return Ok(None) };
        let test = significance_of(pairs, Metric::Accuracy, a, b, 0.05)?;
        let Some(winner) = test.winner.as_deref() else { return Ok(Some(false)) };
        let e = self.describe_endpoint(endpoint).await?;
        let total: f64 = e.variants.iter().filter(|v| !v.shadow).map(|v| v.current_weight).sum::<f64>().max(1e-9);
        let share = e.variant(winner).map_or(0.0, |v| v.current_weight) / total;
        if share >= 1.0 - 1e-9 {
            return Ok(Some(true)); // promoted already
        }
        let next = ((share * 4.0).floor() / 4.0 + 0.25).min(1.0);
        let desired = production
            .iter()
            .map(|v| {
                let w = if v == winner { next } else { 1.0 - next };
                DesiredWeightAndCapacity { variant: v.clone(), weight: Some(w), instance_count: None, serverless: None }
            })
            .collect();
        self.update_weights_and_capacities(endpoint, desired).await?;
        let verdict = &test.verdict;
        let message = if next >= 1.0 {
            format!("Automatic promotion: all traffic to {winner}. {verdict}")
        } else {
            format!("Automatic promotion: {:.0}% of traffic to {winner}. {verdict}", next * 100.0)
        };
        self.record_event(endpoint, Some(winner), EventKind::WeightsChanged, message);
        tracing::info!(endpoint, winner, share = next, verdict, "promoting the winning variant");
        Ok(Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thompson_favours_the_better_arm_and_keeps_the_floor() {
        let mut rng = fastrand::Rng::with_seed(3);
        let w = thompson(&[(60.0, 40.0), (90.0, 10.0)], 0.05, &mut rng);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(w[1] > 0.9 && w[0] >= 0.05, "{w:?}");
        let even = thompson(&[(0.0, 0.0), (0.0, 0.0)], 0.05, &mut rng);
        assert!((even[0] - 0.5).abs() < 0.1, "no data: about even, {even:?}");
    }

    #[test]
    fn epsilon_greedy_gives_the_rest_to_the_best() {
        let w = epsilon_greedy(&[(1.0, 9.0), (9.0, 1.0), (5.0, 5.0)], 0.1);
        for (got, want) in w.iter().zip([0.1, 0.8, 0.1]) {
            assert!((got - want).abs() < 1e-12, "{w:?}");
        }
    }

    #[test]
    fn beta_draws_have_the_right_mean() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mean = (0..20_000).map(|_| beta(&mut rng, 3.0, 7.0)).sum::<f64>() / 20_000.0;
        assert!((mean - 0.3).abs() < 0.01, "{mean}");
        let small = (0..20_000).map(|_| beta(&mut rng, 0.5, 0.5)).sum::<f64>() / 20_000.0;
        assert!((small - 0.5).abs() < 0.02, "{small}");
    }

    /// A simulated test of the loop: two arms of known success rates, weights updated by
    /// Thompson sampling every 50 requests drawn by those weights; most traffic ends on the
    /// better arm and the worse one keeps its floor.
    #[test]
    fn simulated_thompson_routing_finds_the_better_arm() {
        let mut rng = fastrand::Rng::with_seed(21);
        let rates = [0.70, 0.80];
        let mut counts = [(0.0, 0.0); 2];
        let mut weights = vec![0.5, 0.5];
        for _ in 0..60 {
            for _ in 0..50 {
                let arm = usize::from(rng.f64() >= weights[0]);
                if rng.f64() < rates[arm] {
                    counts[arm].0 += 1.0;
                } else {
                    counts[arm].1 += 1.0;
                }
            }
            weights = thompson(&counts, 0.05, &mut rng);
        }
        assert!(weights[1] > 0.8 && weights[0] >= 0.05 - 1e-12, "{weights:?}");
        assert!(counts[1].0 + counts[1].1 > 2.0 * (counts[0].0 + counts[0].1), "most pulls went to the better arm: {counts:?}");
    }
}
