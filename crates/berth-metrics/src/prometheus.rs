//! Prometheus text exposition (format 0.0.4) of the per-variant metrics.

use crate::{HistogramSnapshot, VariantKey, VariantSnapshot, BUCKET_BOUNDS_US};
use std::fmt::Write;

/// Instances of a variant right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceCounts {
    pub healthy: usize,
    pub total: usize,
    /// Restarts of the current instances after a crash or failed health checks.
    pub restarts: u64,
    /// Processes of the current instances the kernel killed for their memory limit.
    pub oom_kills: u64,
}
/// A counter family: name, help text, and how to read it from a snapshot.
type CounterFamily = (&'static str, &'static str, fn(&VariantSnapshot) -> u64);
/// A histogram family: name, help text, and which histogram of a snapshot it is.
type HistogramFamily = (&'static str, &'static str, fn(&VariantSnapshot) -> &HistogramSnapshot);

/// `body` (an exposition) with the label `name="value"` on every sample: what a server of a
/// cluster adds (`node`) so that each server's series stay apart when all are scraped.
pub fn with_label(body: &str, name: &str, value: &str) -> String {
    let label = format!("{name}=\"{}\"", escape_label(value));
    let mut out = String::with_capacity(body.len() + body.len() / 4);
    for line in body.lines() {
        let metric_end = line.find([' ', '{']);
        match metric_end.map(|i| (i, &line[i..i + 1])) {
            _ if line.is_empty() || line.starts_with('#') => out.push_str(line),
            Some((i, "{")) if line[i + 1..].starts_with('}') => {
                let _ = write!(out, "{}{{{label}{}", &line[..i], &line[i + 1..]);
            }
            Some((i, "{")) => {
                let _ = write!(out, "{}{{{label},{}", &line[..i], &line[i + 1..]);
            }
            Some((i, _)) => {
                let _ = write!(out, "{}{{{label}}}{}", &line[..i], &line[i..]);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

pub fn render_prometheus(variants: &[(VariantKey, VariantSnapshot)], instances: &[(VariantKey, InstanceCounts)]) -> String {
    let mut out = String::new();
    let counters: [CounterFamily; 6] = [
        ("berth_invocations_total", "Invocations routed to the variant (SageMaker's Invocations).", |s| s.invocations),
        ("berth_invocation_4xx_errors_total", "Invocations the model answered with a 4xx status.", |s| s.errors_4xx),
        ("berth_invocation_5xx_errors_total", "Invocations that ended in a 5xx: the model's or berth's.", |s| s.errors_5xx),
        ("berth_invocation_model_errors_total", "Invocations the model did not answer with 2xx.", |s| s.model_errors),
        ("berth_model_cache_lookups_total", "Calls of a multi-model variant (the TargetModel looked up on an instance).", |s| {
            s.model_cache_lookups
        }),
        ("berth_model_cache_hits_total", "Calls of a multi-model variant whose model was loaded already (ModelCacheHit).", |s| {
            s.model_cache_hits
        }),
    ];
    for (name, help, get) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (key, snap) in variants {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(key), get(snap));
        }
    }
    let histograms: [HistogramFamily; 7] = [
        ("berth_model_latency_seconds", "Time the container took to answer (SageMaker's ModelLatency).", |s| &s.model_latency_us),
        ("berth_overhead_latency_seconds", "Time berth added to each invocation (SageMaker's OverheadLatency).", |s| {
            &s.overhead_latency_us
        }),
        ("berth_model_setup_seconds", "Time from asking for an instance to its first passing /ping (SageMaker's ModelSetupTime).", |s| {
            &s.model_setup_us
        }),
        ("berth_model_loading_wait_seconds", "Time a multi-model call waited for its model to be fetched and loaded.", |s| {
            &s.model_loading_wait_us
        }),
        ("berth_model_downloading_seconds", "Time fetching a multi-model variant's model archive took.", |s| &s.model_downloading_us),
        ("berth_model_loading_seconds", "Time a container took to load a model (multi-model).", |s| &s.model_loading_us),
        ("berth_model_unloading_seconds", "Time a container took to unload a model (multi-model).", |s| &s.model_unloading_us),
    ];
    for (name, help, get) in histograms {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (key, snap) in variants {
            let h = get(snap);
            let mut cumulative = 0;
            for (i, bound) in BUCKET_BOUNDS_US.iter().enumerate() {
                cumulative += h.buckets.get(i).copied().unwrap_or(0);
                let _ = writeln!(out, "{name}_bucket{{{},le=\"{}\"}} {cumulative}", labels(key), *bound as f64 / 1e6);
            }
            let _ = writeln!(out, "{name}_bucket{{{},le=\"+Inf\"}} {}", labels(key), h.count);
            let _ = writeln!(out, "{name}_sum{{{}}} {}", labels(key), h.sum as f64 / 1e6);
            let _ = writeln!(out, "{name}_count{{{}}} {}", labels(key), h.count);
        }
    }
    let _ = writeln!(out, "# HELP berth_variant_instances Instances of the variant, by health.\n# TYPE berth_variant_instances gauge");
    for (key, c) in instances {
        let _ = writeln!(out, "berth_variant_instances{{{},state=\"healthy\"}} {}", labels(key), c.healthy);
        let _ = writeln!(out, "berth_variant_instances{{{},state=\"unhealthy\"}} {}", labels(key), c.total.saturating_sub(c.healthy));
    }
    let _ = writeln!(
        out,
        "# HELP berth_instance_restarts_total Restarts of the variant's current instances after a crash or failed health checks.\n# TYPE berth_instance_restarts_total counter"
    );
    for (key, c) in instances {
        let _ = writeln!(out, "berth_instance_restarts_total{{{}}} {}", labels(key), c.restarts);
    }
    let _ = writeln!(
        out,
        "# HELP berth_instance_oom_kills_total Processes of the variant's current instances killed by the kernel for going past their memory limit.\n# TYPE berth_instance_oom_kills_total counter"
    );
    for (key, c) in instances {
        let _ = writeln!(out, "berth_instance_oom_kills_total{{{}}} {}", labels(key), c.oom_kills);
    }
    out
}

fn labels(key: &VariantKey) -> String {
    if let Some(component) = key.component_name() {
        return format!("endpoint=\"{}\",inference_component=\"{}\"", escape_label(&key.endpoint), escape_label(component));
    }
    match key.variant_and_container() {
        (variant, None) => format!("endpoint=\"{}\",variant=\"{}\"", escape_label(&key.endpoint), escape_label(variant)),
        (variant, Some(container)) => {
            format!(
                "endpoint=\"{}\",variant=\"{}\",container=\"{}\"",
                escape_label(&key.endpoint),
                escape_label(variant),
                escape_label(container)
            )
        }
    }
}

/// A label value as Prometheus's text format writes it.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outcome, VariantMetrics};

    #[test]
    fn a_label_goes_on_every_sample_and_on_no_comment() {
        let body = "# HELP x_total X.\n# TYPE x_total counter\nx_total{endpoint=\"e\",variant=\"A\"} 3\nup 1\nempty{} 2\n";
        assert_eq!(
            with_label(body, "node", "n\"1"),
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{node=\"n\\\"1\",endpoint=\"e\",variant=\"A\"} 3\nup{node=\"n\\\"1\"} 1\nempty{node=\"n\\\"1\"} 2\n"
        );
    }

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = VariantMetrics::default();
        m.record(Outcome::Success, Some(120), 30);
        m.record(Outcome::ModelClientError, Some(80), 30);
        let key = VariantKey { endpoint: "ep".into(), variant: "V1".into() };
        let text =
            render_prometheus(&[(key.clone(), m.snapshot())], &[(key, InstanceCounts { healthy: 2, total: 3, restarts: 4, oom_kills: 1 })]);
        assert!(text.contains("berth_invocations_total{endpoint=\"ep\",variant=\"V1\"} 2\n"));
        assert!(text.contains("berth_invocation_4xx_errors_total{endpoint=\"ep\",variant=\"V1\"} 1\n"));
        assert!(text.contains("berth_model_latency_seconds_bucket{endpoint=\"ep\",variant=\"V1\",le=\"0.0001\"} 1\n"));
        assert!(text.contains("berth_model_latency_seconds_bucket{endpoint=\"ep\",variant=\"V1\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("berth_model_latency_seconds_sum{endpoint=\"ep\",variant=\"V1\"} 0.0002\n"));
        assert!(text.contains("berth_variant_instances{endpoint=\"ep\",variant=\"V1\",state=\"unhealthy\"} 1\n"));
        assert!(text.contains("berth_instance_restarts_total{endpoint=\"ep\",variant=\"V1\"} 4\n"));
        assert!(text.contains("berth_instance_oom_kills_total{endpoint=\"ep\",variant=\"V1\"} 1\n"));
    }
}
