//! The model registry for people (the `/ui/registry` page): `GET /berth/v1/registry` — every
//! group with its versions, newest first: approval and its description, when registered, the
//! model metrics' sources and the customer metadata.

use crate::berth_api::json_ok;
use crate::error::{EdgeError, Service};
use crate::protocol::Protocol;
use crate::Edge;
use axum::extract::State;
use axum::response::Response;
use berth_domain::NameKey;
use serde_json::{json, Value};

pub async fn registry(State(edge): State<Edge>) -> Response {
    let c = &edge.controller;
    let answer = async {
        let mut groups = c.model_package_groups().await?;
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        let packages = c.model_packages().await?;
        let out: Vec<Value> = groups
            .iter()
            .map(|g| {
                let key = NameKey::of(&g.name);
                let mut versions: Vec<_> = packages.iter().filter(|p| p.group.as_deref().map(NameKey::of) == Some(key.clone())).collect();
                versions.sort_by_key(|p| std::cmp::Reverse(p.version));
                json!({
                    "name": g.name, "description": g.description, "created": g.created.as_secs_f64(),
                    "versions": versions.iter().map(|p| json!({
                        "version": p.version, "arn": p.arn, "approval": p.approval.as_str(),
                        "approval_description": p.approval_description, "description": p.description,
                        "created": p.created.as_secs_f64(), "modified": p.modified.as_secs_f64(),
                        "images": p.containers.iter().map(|c| c.image.clone()).collect::<Vec<_>>(),
                        "model_metrics": p.echoed.get("ModelMetrics"), "customer_metadata": p.customer_metadata,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok::<_, berth_control::ControlError>(out)
    };
    match answer.await {
        Ok(groups) => json_ok(json!({ "groups": groups })),
        Err(e) => Protocol::Berth.answer_error(EdgeError::control(e, Service::Berth)),
    }
}
