//! `GET /ui`: the dashboard, served from files compiled into the binary (no build step at run
//! time, nothing fetched from elsewhere when it is viewed). The page reads
//! `/berth/v1/overview` once a second. `GET /ui/recommendations` is the inference
//! recommendations report, from `/berth/v1/recommendations`; `GET /ui/registry` the model
//! registry, from `/berth/v1/registry`.

use axum::extract::Path;
use axum::http::header::{
    HeaderName, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../ui/index.html");
const RECOMMENDATIONS: &str = include_str!("../ui/recommendations.html");
const REGISTRY: &str = include_str!("../ui/registry.html");

/// (name, content type, body) of every asset under `/ui/assets/`.
const ASSETS: &[(&str, &str, &str)] = &[
    ("dashboard.js", "text/javascript; charset=utf-8", include_str!("../ui/dashboard.js")),
    ("dashboard.css", "text/css; charset=utf-8", include_str!("../ui/dashboard.css")),
    ("recommendations.js", "text/javascript; charset=utf-8", include_str!("../ui/recommendations.js")),
    ("registry.js", "text/javascript; charset=utf-8", include_str!("../ui/registry.js")),
    ("uPlot.iife.min.js", "text/javascript; charset=utf-8", include_str!("../ui/vendor/uplot-1.6.32/uPlot.iife.min.js")),
    ("uPlot.min.css", "text/css; charset=utf-8", include_str!("../ui/vendor/uplot-1.6.32/uPlot.min.css")),
];

/// No other site may frame the dashboard (a framed Promote or Roll back button can be clicked by
/// a trick), and the page loads nothing but berth's own files.
const PAGE_HEADERS: [(HeaderName, &str); 4] = [
    (X_FRAME_OPTIONS, "DENY"),
    (
        CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    ),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (REFERRER_POLICY, "no-referrer"),
];

pub async fn index() -> Response {
    (PAGE_HEADERS, [(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, "no-cache")], INDEX).into_response()
}

/// `GET /ui/recommendations`: the inference recommendations report (`?job=NAME`).
pub async fn recommendations() -> Response {
    (PAGE_HEADERS, [(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, "no-cache")], RECOMMENDATIONS).into_response()
}

/// `GET /ui/registry`: the model registry's groups and versions.
pub async fn registry() -> Response {
    (PAGE_HEADERS, [(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, "no-cache")], REGISTRY).into_response()
}

pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => {
            (PAGE_HEADERS, [(CONTENT_TYPE, *content_type), (CACHE_CONTROL, "no-cache")], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
