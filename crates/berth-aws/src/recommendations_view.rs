//! Inference recommendations for people (the `/ui/recommendations` report page):
//! `GET /berth/v1/recommendations` lists the jobs, newest first; `GET
//! /berth/v1/recommendations/{job}` gives one job's candidates, each with its measured
//! latency-against-throughput curve, whether it kept the thresholds, and which one is the
//! recommendation (the cheapest per inference of those that did).

use crate::berth_api::json_ok;
use crate::error::{EdgeError, Service};
use crate::protocol::Protocol;
use crate::Edge;
use axum::extract::{Path, State};
use axum::response::Response;
use berth_domain::{Benchmark, RecommendationJob};
use serde_json::{json, Value};

pub async fn jobs(State(edge): State<Edge>) -> Response {
    match edge.controller.recommendation_jobs().await {
        Ok(mut jobs) => {
            jobs.sort_by_key(|j| std::cmp::Reverse(j.created.millis()));
            let jobs: Vec<Value> = jobs
                .iter()
                .map(|j| {
                    json!({
                        "name": j.name, "status": j.status.as_str(), "type": j.job_type.as_str(), "model": j.model_name,
                        "created": j.created.as_secs_f64(), "candidates": j.benchmarks.len(),
                        "recommended": j.benchmarks.iter().filter(|b| b.recommended).count(),
                    })
                })
                .collect();
            json_ok(json!({ "jobs": jobs }))
        }
        Err(e) => Protocol::Berth.answer_error(EdgeError::control(e, Service::Berth)),
    }
}

pub async fn job(State(edge): State<Edge>, Path(name): Path<String>) -> Response {
    match edge.controller.describe_recommendation_job(&name).await {
        Ok(job) => json_ok(report(&job)),
        Err(e) => Protocol::Berth.answer_error(EdgeError::control(e, Service::Berth)),
    }
}

fn report(job: &RecommendationJob) -> Value {
    let cost = |b: &Benchmark| b.metrics.as_ref().map_or(f64::MAX, |m| m.cost_per_inference);
    let top = job
        .benchmarks
        .iter()
        .enumerate()
        .filter(|(_, b)| b.recommended && !b.existing_endpoint)
        .min_by(|a, b| cost(a.1).total_cmp(&cost(b.1)))
        .map(|(i, _)| i);
    let candidates: Vec<Value> = job
        .benchmarks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({
                "instance_type": b.candidate.instance_type, "instance_count": b.candidate.instance_count,
                "environment": b.candidate.environment, "status": b.status.as_str(), "recommended": b.recommended,
                "top": top == Some(i), "failure_reason": b.failure_reason,
                "metrics": b.metrics.as_ref().map(|m| json!({
                    "max_invocations": m.max_invocations, "model_latency_ms": m.model_latency, "cost_per_hour": m.cost_per_hour,
                    "cost_per_inference": m.cost_per_inference, "cpu_utilization": m.cpu_utilization,
                    "memory_utilization": m.memory_utilization, "model_setup_time_s": m.model_setup_time,
                })),
                "curve": b.curve.iter().map(|p| json!({
                    "target_rate": p.target_rate, "achieved_rate": p.achieved_rate, "p50_ms": finite(p.p50_ms),
                    "p95_ms": finite(p.p95_ms), "p99_ms": finite(p.p99_ms), "errors": p.errors, "dropped": p.dropped, "kept": p.kept,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "name": job.name, "status": job.status.as_str(), "type": job.job_type.as_str(), "model": job.model_name,
        "failure_reason": job.failure_reason,
        "thresholds": job.thresholds.iter().map(|t| json!({"percentile": t.percentile, "ms": t.milliseconds})).collect::<Vec<_>>(),
        "candidates": candidates,
    })
}

/// A latency of a step with no answer is infinite; JSON has no infinity.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
