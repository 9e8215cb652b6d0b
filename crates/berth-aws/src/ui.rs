//! `GET /ui`: the dashboard, served from files compiled into the binary (no build step at run
//! time, nothing fetched from elsewhere when it is viewed). The page reads
//! `/berth/v1/overview` once a second.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../ui/index.html");

/// (name, content type, body) of every asset under `/ui/assets/`.
const ASSETS: &[(&str, &str, &str)] = &[
    ("dashboard.js", "text/javascript; charset=utf-8", include_str!("../ui/dashboard.js")),
    ("dashboard.css", "text/css; charset=utf-8", include_str!("../ui/dashboard.css")),
    ("uPlot.iife.min.js", "text/javascript; charset=utf-8", include_str!("../ui/vendor/uplot-1.6.32/uPlot.iife.min.js")),
    ("uPlot.min.css", "text/css; charset=utf-8", include_str!("../ui/vendor/uplot-1.6.32/uPlot.min.css")),
];

pub async fn index() -> Response {
    ([(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, "no-cache")], INDEX).into_response()
}

pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => ([(CONTENT_TYPE, *content_type), (CACHE_CONTROL, "no-cache")], *body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
