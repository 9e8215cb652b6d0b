//! Model Monitor for people watching endpoints (the `/ui` dashboard):
//! `GET /berth/v1/monitoring?endpoint=E` — each monitoring schedule (of endpoint `E`, when
//! given) with its status, its newest executions and what they found in violation, and a
//! chart of its figures over its last executions: each feature's drift distance for a
//! data-quality schedule (the most drifted), the main metrics for a model-quality one.

use crate::berth_api::json_ok;
use crate::error::{EdgeError, Service};
use crate::protocol::Protocol;
use crate::Edge;
use axum::extract::{Query, State};
use axum::response::Response;
use berth_domain::{MonitoringExecution, MonitoringSchedule, MonitoringType, NameKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Executions listed per schedule.
const LISTED: usize = 10;
/// Executions charted per schedule.
const CHARTED: usize = 50;
/// Lines a chart draws.
const LINES: usize = 5;
/// The model-quality metrics charted, where the execution has them, in this order.
const QUALITY_METRICS: [&str; 8] = ["accuracy", "f1", "auc", "weighted_f1", "precision", "recall", "rmse", "r2"];

#[derive(Deserialize)]
pub struct MonitoringQuery {
    endpoint: Option<String>,
}

#[derive(Serialize)]
struct MonitoringOut {
    schedules: Vec<ScheduleOut>,
}

#[derive(Serialize)]
struct ScheduleOut {
    name: String,
    endpoint: String,
    kind: &'static str,
    status: &'static str,
    expression: String,
    /// Newest first.
    executions: Vec<ExecutionOut>,
    /// The features or metrics the newest ended execution found in violation.
    violated: Vec<String>,
    chart: ChartOut,
}

#[derive(Serialize)]
struct ExecutionOut {
    scheduled: f64,
    status: &'static str,
    failure_reason: Option<String>,
    violations: Vec<String>,
}

/// One line per figure, one value per execution (null where an execution lacks it).
#[derive(Serialize)]
struct ChartOut {
    /// What the values are: `drift distance` or `metric value`.
    unit: &'static str,
    t: Vec<f64>,
    series: BTreeMap<String, Vec<Option<f64>>>,
}

pub async fn monitoring(State(edge): State<Edge>, Query(q): Query<MonitoringQuery>) -> Response {
    let c = &edge.controller;
    let answer = async {
        let wanted = q.endpoint.as_deref().map(NameKey::of);
        let mut schedules: Vec<MonitoringSchedule> = c
            .monitoring_schedules()
            .await?
            .into_iter()
            .filter(|s| wanted.as_ref().is_none_or(|w| NameKey::of(&s.endpoint_name) == *w))
            .collect();
        schedules.sort_by(|a, b| (&a.endpoint_name, &a.name).cmp(&(&b.endpoint_name, &b.name)));
        let executions = c.monitoring_executions().await?;
        Ok::<_, berth_control::ControlError>(schedules.iter().map(|s| schedule_out(s, &executions)).collect())
    };
    match answer.await {
        Ok(schedules) => json_ok(MonitoringOut { schedules }),
        Err(e) => Protocol::Berth.answer_error(EdgeError::control(e, Service::Berth)),
    }
}

fn schedule_out(s: &MonitoringSchedule, all: &[MonitoringExecution]) -> ScheduleOut {
    let key = NameKey::of(&s.name);
    let mut executions: Vec<&MonitoringExecution> = all.iter().filter(|e| NameKey::of(&e.schedule_name) == key).collect();
    executions.sort_by_key(|e| std::cmp::Reverse(e.scheduled.millis()));
    let violated = executions
        .iter()
        .find(|e| e.status.ended())
        .map(|e| e.violations.iter().map(|v| v.split(": ").next().unwrap_or(v).to_string()).collect())
        .unwrap_or_default();
    let charted: Vec<&MonitoringExecution> = executions.iter().take(CHARTED).rev().copied().collect();
    ScheduleOut {
        name: s.name.clone(),
        endpoint: s.endpoint_name.clone(),
        kind: s.kind.as_str(),
        status: s.status.as_str(),
        expression: s.config["ScheduleConfig"]["ScheduleExpression"].as_str().unwrap_or_default().to_string(),
        executions: executions
            .iter()
            .take(LISTED)
            .map(|e| ExecutionOut {
                scheduled: e.scheduled.as_secs_f64(),
                status: e.status.as_str(),
                failure_reason: e.failure_reason.clone(),
                violations: e.violations.clone(),
            })
            .collect(),
        violated,
        chart: chart(s.kind, &charted),
    }
}

/// The lines of a schedule's chart: for data quality the features most drifted in the newest
/// execution, for model quality its main metrics.
fn chart(kind: MonitoringType, executions: &[&MonitoringExecution]) -> ChartOut {
    let newest = executions.iter().rev().find(|e| !e.figures.is_empty()).map(|e| &e.figures);
    let names: Vec<String> = match (kind, newest) {
        (_, None) => Vec::new(),
        (MonitoringType::DataQuality, Some(figures)) => {
            let mut by_drift: Vec<(&String, &f64)> = figures.iter().collect();
            by_drift.sort_by(|a, b| b.1.total_cmp(a.1));
            by_drift.into_iter().take(LINES).map(|(n, _)| n.clone()).collect()
        }
        (MonitoringType::ModelQuality, Some(figures)) => {
            QUALITY_METRICS.iter().filter(|m| figures.contains_key(**m)).take(LINES).map(|m| m.to_string()).collect()
        }
    };
    let series = names.into_iter().map(|n| (n.clone(), executions.iter().map(|e| e.figures.get(&n).copied()).collect())).collect();
    ChartOut {
        unit: if kind == MonitoringType::DataQuality { "drift distance" } else { "metric value" },
        t: executions.iter().map(|e| e.scheduled.as_secs_f64()).collect(),
        series,
    }
}
