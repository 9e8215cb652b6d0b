//! Keep-alive HTTP/1.1 connections to instances, pooled per instance (its slot's serial:
//! several containers may all listen on 127.0.0.1:8080, each in its own network namespace).
//! A connection is used by one request's task at a time and read by that task only (`h1.rs`):
//! no connection task, no channel, no wake between tasks per request. Each thread takes back
//! only the connections it opened: a socket belongs to the poller of the runtime that opened it,
//! and a request on another I/O thread would be woken across threads through it.

use crate::h1::Conn;
use berth_instances::InstanceSlot;
use std::collections::HashMap;
use std::sync::Mutex;

/// Idle connections by thread and instance (slot serial). The lock is held only to push or
/// pop, never across I/O.
pub(crate) struct ConnectionPool {
    idle: Mutex<HashMap<(u32, u64), Vec<Conn>, foldhash::fast::RandomState>>,
    max_idle_per_instance: usize,
}

/// A small number for the calling thread, the same for its whole life.
fn thread_number() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    thread_local! {
        static NUMBER: u32 = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

impl ConnectionPool {
    pub(crate) fn new(max_idle_per_instance: usize) -> Self {
        ConnectionPool { idle: Mutex::new(HashMap::default()), max_idle_per_instance }
    }

    /// An idle connection that is still open, if there is one.
    pub(crate) fn take(&self, instance: u64) -> Option<Conn> {
        let key = (thread_number(), instance);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.get_mut(&key)?;
        while let Some(conn) = conns.pop() {
            if conn.is_reusable() {
                return Some(conn);
            }
        }
        idle.remove(&key);
        None
    }

    /// Returns a connection whose answer has been read completely.
    pub(crate) fn put(&self, instance: u64, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.entry((thread_number(), instance)).or_default();
        if conns.len() < self.max_idle_per_instance {
            conns.push(conn);
        }
    }

    /// Opens a new connection to the instance.
    pub(crate) async fn connect(slot: &InstanceSlot) -> Result<Conn, String> {
        let addr = slot.addr();
        let stream = slot.connect().await.map_err(|e| format!("connect to {addr}: {e}"))?;
        Ok(Conn::new(stream, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::RequestHeaders;
    use bytes::Bytes;
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

    async fn call(conn: &mut Conn) -> Bytes {
        let headers = RequestHeaders { content_type: None, accept: None, custom_attributes: None, inference_id: None };
        conn.send("/invocations", &headers, b"x").await.unwrap();
        let head = conn.read_head().await.unwrap();
        assert_eq!(head.status, 200);
        conn.read_body(&head, 100).await.unwrap()
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
        pool.put(key, conn);
        // The server has closed it; once the close has arrived the pool drops it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            match pool.take(key) {
                None => break,
                Some(conn) => pool.put(key, conn),
            }
            assert!(std::time::Instant::now() < deadline, "closed connection not detected");
        }
    }

    #[tokio::test]
    async fn refused_connection_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let slot = InstanceSlot::healthy_for_tests("i", listener.local_addr().unwrap().port());
        drop(listener);
        assert!(ConnectionPool::connect(&slot).await.unwrap_err().contains("connect to"));
    }
}
