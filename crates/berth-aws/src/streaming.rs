//! `POST /endpoints/{name}/invocations-response-stream`: SageMaker's
//! InvokeEndpointWithResponseStream. The container answers with a chunked body; each piece it
//! sends goes to the caller as it arrives, as a `PayloadPart` event of AWS's event stream. A
//! container that fails mid-answer ends the stream with a `ModelStreamError` event (its
//! `ErrorCode` `StreamBroken`, or `ModelInvocationTimeExceeded` past the invocation timeout).
//! A failure before the answer starts is an ordinary runtime error (`ModelError` and the rest).

use crate::error::EdgeError;
use crate::event_stream;
use crate::protocol::Protocol;
use crate::runtime::{invoke_request, CUSTOM_ATTRIBUTES, INVOKED_VARIANT};
use crate::{Edge, MAX_INVOCATION_BYTES};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_router::{StreamError, StreamParts};
use bytes::Bytes;
use serde_json::json;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Where the streaming operation takes `Accept` (InvokeEndpoint takes the standard header).
const ACCEPT: HeaderName = HeaderName::from_static("x-amzn-sagemaker-accept");
/// Where it answers the container's content type (its body is the event stream).
const CONTENT_TYPE: HeaderName = HeaderName::from_static("x-amzn-sagemaker-content-type");
/// Events buffered between the container and a slow caller; past them the container is read
/// no faster than the caller reads.
const BUFFERED_EVENTS: usize = 16;

pub async fn invoke_stream(State(edge): State<Edge>, Path(endpoint): Path<String>, headers: HeaderMap, body: Body) -> Response {
    // The gate bounded and timed the body (or read it whole, for a signed request).
    let body = match axum::body::to_bytes(body, MAX_INVOCATION_BYTES).await {
        Ok(b) => b,
        Err(e) => return crate::bodies::unread_body(Protocol::Runtime, &e),
    };
    let req = match invoke_request(&headers, body, &ACCEPT) {
        // TargetModel is not a member of InvokeEndpointWithResponseStream.
        Ok(mut r) => {
            r.target.model = None;
            r
        }
        Err(e) => return Protocol::Runtime.answer_error(e),
    };
    let stream = match edge.router.invoke_stream(&endpoint, req).await {
        Ok(s) => s,
        Err(e) => {
            let account = &edge.controller.account().account_id;
            return Protocol::Runtime.answer_error(EdgeError::invoke(e, &endpoint, account));
        }
    };
    let mut resp = (StatusCode::OK, Body::new(EventBody::start(stream.parts))).into_response();
    let h = resp.headers_mut();
    h.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(event_stream::CONTENT_TYPE));
    if let Some(v) = stream.content_type {
        h.insert(CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&stream.variant) {
        h.insert(INVOKED_VARIANT, v);
    }
    if let Some(v) = stream.custom_attributes {
        h.insert(CUSTOM_ATTRIBUTES, v);
    }
    resp
}

/// The answer's body: events from a task that reads the container's pieces. When the caller
/// goes away the body is dropped, the task's next send fails and it stops reading.
struct EventBody {
    events: mpsc::Receiver<Bytes>,
}

impl EventBody {
    fn start(mut parts: StreamParts) -> Self {
        let (tx, events) = mpsc::channel(BUFFERED_EVENTS);
        tokio::spawn(async move {
            loop {
                let event = match parts.next_part().await {
                    None => return,
                    Some(Ok(bytes)) => event_stream::payload_part(&bytes),
                    // botocore shows an exception event's Code and Message only: the Message names
                    // the ErrorCode too.
                    Some(Err(StreamError::Broken(message))) => event_stream::exception(
                        "ModelStreamError",
                        &json!({
                            "Message": format!("StreamBroken: the connection to the model broke in the middle of its answer ({message})."),
                            "ErrorCode": "StreamBroken",
                        }),
                    ),
                    Some(Err(StreamError::TimedOut(seconds))) => event_stream::exception(
                        "ModelStreamError",
                        &json!({
                            "Message": format!("ModelInvocationTimeExceeded: the model did not finish its answer within the invocation timeout of {seconds} seconds."),
                            "ErrorCode": "ModelInvocationTimeExceeded",
                        }),
                    ),
                    Some(Err(StreamError::TooLarge(limit))) => event_stream::exception(
                        "InternalStreamFailure",
                        &json!({ "Message": format!("The model's answer is longer than berth streams ({limit} bytes).") }),
                    ),
                };
                // After an error event the stream has ended: `next_part` answers `None`.
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        EventBody { events }
    }
}

impl http_body::Body for EventBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.events.poll_recv(cx).map(|event| event.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}
