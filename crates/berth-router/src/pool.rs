//! Keep-alive HTTP/1 connections to instances, pooled per instance (its slot's serial: several
//! containers may all listen on 127.0.0.1:8080, each in its own network namespace).
//!
//! Built on hyper's connection-level client rather than its pooled `Client`: that client spawns
//! a task per HTTP/1 request to return the connection to its pool, and on a multi-threaded
//! runtime each spawn wakes a parked worker thread — two futex calls per request, which cost
//! more than the rest of berth's hop. Here a connection's task is spawned once, when it opens,
//! and the request's own task puts the connection back once the response body is read.

use berth_instances::InstanceSlot;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::Mutex;

pub(crate) type Connection = SendRequest<Full<Bytes>>;

/// Idle connections by instance (slot serial). The lock is held only to push or pop, never
/// across I/O.
pub(crate) struct ConnectionPool {
    idle: Mutex<HashMap<u64, Vec<Connection>>>,
    max_idle_per_instance: usize,
}

impl ConnectionPool {
    pub(crate) fn new(max_idle_per_instance: usize) -> Self {
        ConnectionPool { idle: Mutex::new(HashMap::new()), max_idle_per_instance }
    }

    /// An idle connection that is still open, if there is one.
    pub(crate) fn take(&self, instance: u64) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.get_mut(&instance)?;
        while let Some(conn) = conns.pop() {
            if !conn.is_closed() {
                return Some(conn);
            }
        }
        idle.remove(&instance);
        None
    }

    /// Returns a connection whose response has been read completely.
    pub(crate) fn put(&self, instance: u64, conn: Connection) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.entry(instance).or_default();
        if conns.len() < self.max_idle_per_instance {
            conns.push(conn);
        }
    }

    /// Opens a new connection; its I/O runs in a task of its own until either side closes it.
    pub(crate) async fn connect(slot: &InstanceSlot) -> Result<Connection, String> {
        let addr = slot.addr();
        let stream = slot.connect().await.map_err(|e| format!("connect to {addr}: {e}"))?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake with {addr}: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "instance connection closed");
            }
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-connection HTTP server that answers each request with a fixed response.
    async fn server(responses: usize) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            for _ in 0..responses {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0);
                sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
            }
        });
        addr
    }

    async fn call(conn: &mut Connection) -> Bytes {
        use http_body_util::BodyExt;
        let req = http::Request::post("/invocations").body(Full::new(Bytes::from_static(b"x"))).unwrap();
        let resp = conn.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn reuses_an_open_connection_and_drops_a_closed_one() {
        // The server answers two requests on one connection, then closes it.
        let slot = InstanceSlot::healthy_for_tests("i", server(2).await.port());
        let key = slot.serial();
        let pool = ConnectionPool::new(4);
        assert!(pool.take(key).is_none());
        let mut conn = ConnectionPool::connect(&slot).await.unwrap();
        assert_eq!(call(&mut conn).await, "ok");
        pool.put(key, conn);
        let mut conn = pool.take(key).expect("the connection was pooled");
        assert_eq!(call(&mut conn).await, "ok");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !conn.is_closed() {
            assert!(std::time::Instant::now() < deadline, "closed connection not detected");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        pool.put(key, conn);
        assert!(pool.take(key).is_none());
    }

    #[tokio::test]
    async fn refused_connection_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let slot = InstanceSlot::healthy_for_tests("i", listener.local_addr().unwrap().port());
        drop(listener);
        assert!(ConnectionPool::connect(&slot).await.unwrap_err().contains("connect to"));
    }
}
