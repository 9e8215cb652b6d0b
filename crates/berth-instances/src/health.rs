use crate::InstanceSlot;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Calls a container's `GET /ping`: true when it answered 200 within `timeout`. Each call uses
/// a fresh connection, so that a half-dead keep-alive socket cannot make a dead container look
/// alive.
pub(crate) async fn ping(slot: &InstanceSlot, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, ping_once(slot)).await.unwrap_or(false)
}

async fn ping_once(slot: &InstanceSlot) -> bool {
    let Ok(stream) = slot.connect().await else { return false };
    let Ok((mut sender, conn)) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await else { return false };
    let connection = tokio::spawn(conn);
    let request = hyper::Request::get("/ping").header(hyper::header::HOST, slot.addr().to_string()).body(Empty::new());
    let ok = match request {
        Ok(request) => sender.send_request(request).await.is_ok_and(|resp| resp.status() == hyper::StatusCode::OK),
        Err(_) => false,
    };
    connection.abort();
    ok
}
