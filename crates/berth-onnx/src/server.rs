//! The worker's HTTP side: SageMaker's container contract (`GET /ping`, `POST /invocations`).

use crate::codec::{self, InputError};
use crate::model::OnnxModel;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

pub fn app(model: Arc<OnnxModel>) -> axum::Router {
    axum::Router::new()
        .route("/ping", get(|| async { StatusCode::OK }))
        .route("/invocations", post(invoke))
        .layer(axum::extract::DefaultBodyLimit::max(6 * 1024 * 1024))
        .with_state(model)
}

async fn invoke(State(model): State<Arc<OnnxModel>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
    let result = (|| {
        let format = codec::output_format(header(ACCEPT))?;
        let rows = codec::parse(header(CONTENT_TYPE), &body)?;
        if let Some(expected) = model.features {
            if rows.n_features != expected {
                return Err(InputError::Malformed(format!(
                    "each row has {} features, but the model's input '{}' takes {expected}",
                    rows.n_features,
                    model.input_name()
                )));
            }
        }
        Ok((format, rows))
    })();
    let (format, rows) = match result {
        Ok(ok) => ok,
        Err(e @ InputError::ContentType(_)) => return (StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()).into_response(),
        Err(e @ InputError::Accept(_)) => return (StatusCode::NOT_ACCEPTABLE, e.to_string()).into_response(),
        Err(e @ InputError::Malformed(_)) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match model.predict(rows.values, rows.n_rows, rows.n_features) {
        Ok(prediction) => {
            let (body, content_type) = codec::render(&prediction, format);
            ([(CONTENT_TYPE, content_type)], body).into_response()
        }
        // The model rejected this input (shapes, values): the caller's to fix.
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}
