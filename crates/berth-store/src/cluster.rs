//! What berth's servers sharing a PostgreSQL store need of it beyond state: one leader at a time
//! with a fencing number ([`Election`]), word of every change to a resource ([`Changes`]), and
//! who is in the cluster ([`nodes`](crate::PostgresStore::nodes)).
//!
//! Each runs on a session of its own, on a thread of its own (the synchronous client blocks),
//! and reports through a callback. Neither trusts any server's clock: leadership is PostgreSQL's
//! advisory lock, heartbeats are stamped with the database's `now()`. A session whose network
//! is cut is ended by PostgreSQL within seconds (the session asks for short TCP keepalives and a
//! user timeout), so its lock passes to another server.

use crate::postgres_url::parse_url;
use crate::StoreError;
use postgres::fallible_iterator::FallibleIterator;
use postgres::NoTls;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The advisory lock key the leader holds ("berth" and 3).
const LEADER_LOCK: i64 = 0x6265_7274_6800_0003;
/// How often a session checks the lock, beats and looks for a stop.
const TICK: Duration = Duration::from_millis(500);
/// The channel resource changes are announced on (by a trigger on `resources`).
pub(crate) const CHANNEL: &str = "berth_changes";

/// A session of its own to `url` named `name` (its `application_name`), with keepalives short
/// enough that either side notices a cut network within seconds.
fn session(url: &str, name: &str) -> Result<postgres::Client, StoreError> {
    let mut config = parse_url(url)?;
    config
        .application_name(name)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(2))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(5));
    let mut client = config.connect(NoTls)?;
    // The server's side of the same: a cut session's locks go within seconds, not hours.
    client.batch_execute(
        "SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 5000",
    )?;
    Ok(client)
}

/// A thread that runs until its handle drops.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(name: &str, run: impl FnOnce(&AtomicBool) + Send + 'static) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || run(&flag)).expect("spawning a store thread");
        Worker { stop, thread: Some(thread) }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sleeps `d` in ticks, unless told to stop; false once told.
fn pause(stop: &AtomicBool, d: Duration) -> bool {
    let mut left = d;
    while !left.is_zero() {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let step = left.min(Duration::from_millis(100));
        std::thread::sleep(step);
        left -= step;
    }
    !stop.load(Ordering::SeqCst)
}

/// Where this server stands in the cluster, as its election last learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// It holds the leader's lock; the epoch is one more than the last leader's, written to
    /// `leadership` before this is said.
    Leading(u64),
    /// It is connected, and another server holds the lock (named when the store says who).
    Following(Option<String>),
    /// Its session to PostgreSQL is gone: it cannot know (a leader's lock went with it).
    Unknown,
}

/// This server's part in electing the cluster's leader: it joins `nodes`, beats, and asks for
/// the leader's lock until it gets it, then holds it until it stops or loses its session.
/// `on_change` hears each change of [`Leadership`]. Dropping the election gives the lead up.
pub struct Election {
    address: Arc<std::sync::Mutex<String>>,
    _worker: Worker,
}

impl Election {
    pub fn start(url: &str, node: &str, address: &str, on_change: impl Fn(Leadership) + Send + 'static) -> Election {
        let (url, node) = (url.to_string(), node.to_string());
        let address = Arc::new(std::sync::Mutex::new(address.to_string()));
        let announced = address.clone();
        let worker = Worker::spawn("berth-election", move |stop| {
            let mut said = None;
            let mut tell = |now: Leadership| {
                if said.as_ref() != Some(&now) {
                    said = Some(now.clone());
                    on_change(now);
                }
            };
            while !stop.load(Ordering::SeqCst) {
                let result = session(&url, &format!("berth-election/{node}"))
                    .and_then(|mut client| campaign(&mut client, &node, &announced, stop, &mut tell));
                if let Err(e) = result {
                    tracing::warn!(error = %e, node, "the election's session to PostgreSQL failed; trying again");
                }
                tell(Leadership::Unknown);
                pause(stop, Duration::from_secs(1));
            }
        });
        Election { address, _worker: worker }
    }

    /// Where this server serves, for `nodes` (known once it listens).
    pub fn set_address(&self, address: &str) {
        *self.address.lock().unwrap_or_else(|e| e.into_inner()) = address.to_string();
    }
}

/// One session's campaign: beats, asks for the lock, and once held keeps it until the session
/// fails or the election stops.
fn campaign(
    client: &mut postgres::Client,
    node: &str,
    address: &std::sync::Mutex<String>,
    stop: &AtomicBool,
    tell: &mut impl FnMut(Leadership),
) -> Result<(), StoreError> {
    let current = || address.lock().unwrap_or_else(|e| e.into_inner()).clone();
    client.execute(
        "INSERT INTO nodes (name, address, started, heartbeat) VALUES ($1, $2, now(), now()) \
         ON CONFLICT (name) DO UPDATE SET address = $2, started = now(), heartbeat = now()",
        &[&node, &current()],
    )?;
    let mut leading = false;
    while !stop.load(Ordering::SeqCst) {
        client.execute("UPDATE nodes SET heartbeat = now(), address = $2 WHERE name = $1", &[&node, &current()])?;
        if !leading {
            if client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])?.get::<_, bool>(0) {
                let epoch: i64 = client
                    .query_one(
                        "INSERT INTO leadership (id, epoch, node, since) VALUES (1, 1, $1, now()) \
                         ON CONFLICT (id) DO UPDATE SET epoch = leadership.epoch + 1, node = $1, since = now() RETURNING epoch",
                        &[&node],
                    )?
                    .get(0);
                tracing::info!(node, epoch, "this server leads the cluster");
                leading = true;
                tell(Leadership::Leading(epoch as u64));
            } else {
                let leader = client.query_opt("SELECT node FROM leadership WHERE id = 1", &[])?.map(|r| r.get(0));
                tell(Leadership::Following(leader));
            }
        }
        std::thread::sleep(TICK);
    }
    Ok(())
}

/// A change to a stored resource, as announced by PostgreSQL on commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A resource was written (`deleted` false) or deleted; its row's `version` after the
    /// change. Re-read it to learn what it is now.
    Resource { kind: String, name: String, version: i64, deleted: bool },
    /// The listening session was (re)established: changes made before may have been missed, so
    /// everything is read again.
    Resync,
}

/// Word of every change to a resource, from a session listening on the store's channel: it
/// hears [`Change::Resync`] first and after every reconnection, then each change as committed.
/// Dropping it stops listening.
pub struct Changes {
    _worker: Worker,
}

impl Changes {
    pub fn start(url: &str, on_change: impl Fn(Change) + Send + 'static) -> Changes {
        let url = url.to_string();
        let worker = Worker::spawn("berth-changes", move |stop| {
            while !stop.load(Ordering::SeqCst) {
                if let Err(e) = session(&url, "berth-changes").and_then(|mut client| listen(&mut client, stop, &on_change)) {
                    tracing::warn!(error = %e, "listening for changes in PostgreSQL failed; trying again");
                }
                pause(stop, Duration::from_millis(500));
            }
        });
        Changes { _worker: worker }
    }
}

fn listen(client: &mut postgres::Client, stop: &AtomicBool, on_change: &impl Fn(Change)) -> Result<(), StoreError> {
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    on_change(Change::Resync);
    while !stop.load(Ordering::SeqCst) {
        {
            let mut notifications = client.notifications();
            let mut waiting = notifications.timeout_iter(TICK);
            while let Some(note) = waiting.next()? {
                match parse_change(note.payload()) {
                    Some(change) => on_change(change),
                    None => tracing::warn!(payload = note.payload(), "a change notice berth cannot read"),
                }
            }
        }
        // A quiet channel or a dead session: a round trip tells which.
        client.batch_execute("SELECT 1")?;
    }
    Ok(())
}

/// A notice's payload, `{"kind": …, "name": …, "version": …, "deleted": …}`.
fn parse_change(payload: &str) -> Option<Change> {
    #[derive(serde::Deserialize)]
    struct Notice {
        kind: String,
        name: String,
        version: i64,
        deleted: bool,
    }
    let n: Notice = serde_json::from_str(payload).ok()?;
    Some(Change::Resource { kind: n.kind, name: n.name, version: n.version, deleted: n.deleted })
}

/// A server of the cluster as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    /// Where it serves, as it announced.
    pub address: String,
    /// Milliseconds since the epoch, by the database's clock.
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub silent_ms: i64,
    /// Whether it holds the leader's lock now.
    pub leader: bool,
    /// Whether its election's session is open now: a server that runs (whether it leads or
    /// stands by), not one that stopped or lost its store.
    pub connected: bool,
}

impl Node {
    /// `leader`; `standby` (it runs and does not lead); or `gone` (its election's session is
    /// closed: it stopped or lost its store).
    pub fn role(&self) -> &'static str {
        match (self.leader, self.connected) {
            (true, _) => "leader",
            (false, true) => "standby",
            (false, false) => "gone",
        }
    }
}

/// The nodes of the cluster on the store at `url`, read over a session of its own (for tools).
pub fn nodes_at(url: &str) -> Result<Vec<Node>, StoreError> {
    nodes(&mut session(url, "berth-nodes")?)
}

/// Every server that has joined, with whether it leads: the one named in `leadership` while a
/// session holds the leader's lock.
pub(crate) fn nodes(client: &mut postgres::Client) -> Result<Vec<Node>, StoreError> {
    let held: bool = client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = ($1::bigint & 4294967295)::oid AND classid = ($1::bigint >> 32)::oid)", &[&LEADER_LOCK])?
        .get(0);
    let rows = client.query(
        "SELECT n.name, n.address, (extract(epoch FROM n.started) * 1000)::bigint, (extract(epoch FROM n.heartbeat) * 1000)::bigint, \
         (extract(epoch FROM now() - n.heartbeat) * 1000)::bigint, coalesce(l.node = n.name, false), \
         EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = current_database() AND a.application_name = 'berth-election/' || n.name) \
         FROM nodes n LEFT JOIN leadership l ON l.id = 1 ORDER BY n.name",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| Node {
            name: r.get(0),
            address: r.get(1),
            started_ms: r.get(2),
            heartbeat_ms: r.get(3),
            silent_ms: r.get(4),
            leader: held && r.get::<_, bool>(5),
            connected: r.get(6),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_notices_are_read_and_junk_is_not() {
        assert_eq!(
            parse_change(r#"{"kind":"endpoint","name":"ep","version":3,"deleted":false}"#),
            Some(Change::Resource { kind: "endpoint".into(), name: "ep".into(), version: 3, deleted: false })
        );
        assert_eq!(parse_change("not json"), None);
        assert_eq!(parse_change(r#"{"kind":"endpoint"}"#), None);
    }
}
