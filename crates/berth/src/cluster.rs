//! berth's servers on one PostgreSQL store: each joins the cluster's election; the one that
//! leads runs the endpoints' instances, the reconcilers and the background work, and answers the
//! API; the others stand by, answering on their own addresses by forwarding to the leader, and
//! take over when it dies or its session to PostgreSQL is cut. The leader's store is fenced with
//! its epoch, so that once another leads, its late writes are refused; a leader that learns
//! another leads stops its endpoints and stands by again.

use anyhow::bail;
use berth_store::{Election, Leadership, PostgresStore, StateStore};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// How long a server waits for its first election's outcome before it listens anyway.
const FIRST_ELECTION: Duration = Duration::from_secs(10);

pub struct Cluster {
    pub node: String,
    /// The store's URL, for the sessions of a standby's own.
    url: String,
    /// The cluster's own name, from its store.
    pub name: String,
    /// Where this server serves, once it listens.
    own: Arc<std::sync::Mutex<Option<String>>>,
    store: Arc<PostgresStore>,
    election: Election,
    leadership: watch::Receiver<Leadership>,
}

impl Cluster {
    /// Joins the cluster on `store` as `node` (unless a live server already has that name).
    pub async fn join(url: &str, store: Arc<PostgresStore>, node: &str) -> anyhow::Result<Cluster> {
        let (nodes, name) = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || Ok::<_, berth_store::StoreError>((store.nodes()?, store.cluster_name()?))).await??
        };
        if let Some(live) = nodes.iter().find(|n| n.name == node && n.connected) {
            bail!(
                "a berth server named {node} is in the cluster (connected, last heard {} ms ago, at {}): give each server its own --node-name",
                live.silent_ms,
                live.address
            );
        }
        let (tell, mut leadership) = watch::channel(Leadership::Unknown);
        let election = Election::start(url, node, "standing by", move |now| {
            tell.send_replace(now);
        });
        // The first election's outcome, so that a server that is to lead does so before it
        // says it listens (and one that stands by knows whom it forwards to).
        if tokio::time::timeout(FIRST_ELECTION, leadership.wait_for(|l| *l != Leadership::Unknown)).await.is_err() {
            warn!(node, "no outcome of the cluster's election yet; listening meanwhile");
        }
        Ok(Cluster { node: node.to_string(), url: url.to_string(), name, own: Default::default(), store, election, leadership })
    }

    /// Waits until this server leads and fences the store with its epoch; `None` when `stop`
    /// comes first. Says once on stdout that it stands by (for scripts and tests).
    pub async fn lead(&mut self, stop: &mut (impl Future<Output = ()> + Unpin)) -> Option<u64> {
        let mut said = false;
        loop {
            let now = self.leadership.borrow_and_update().clone();
            match now {
                Leadership::Leading(epoch) => {
                    self.store.fence(epoch);
                    info!(node = %self.node, epoch, "this server leads the cluster: serving");
                    return Some(epoch);
                }
                Leadership::Following(leader) if !said => {
                    said = true;
                    let leader = leader.unwrap_or_else(|| "another server".into());
                    info!(node = %self.node, %leader, "standing by: another server leads the cluster");
                    println!("berth standing by as {} ({leader} leads)", self.node);
                }
                _ => {}
            }
            tokio::select! {
                changed = self.leadership.changed() => if changed.is_err() { return None },
                _ = &mut *stop => return None,
            }
        }
    }

    /// While this server stands by, routes the invocations of the endpoints whose routes the
    /// leader published itself and forwards everything else `listener` accepts to the leader
    /// (see [`crate::replication`] and [`crate::forwarding`]) until this server leads (its
    /// epoch) or `stop` comes (`None`).
    pub async fn lead_forwarding(
        &mut self,
        listener: &tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        limits: &crate::forwarding::Limits,
        standby: &StandbySettings,
        stop: &mut (impl Future<Output = ()> + Unpin),
    ) -> anyhow::Result<Option<u64>> {
        let replica = crate::replication::Standby::start(&self.url, self.store.clone(), &self.node, standby.invocation_timeout);
        let local = berth_aws::StandbyApp::new(berth_aws::StandbyEdge {
            router: replica.router().clone(),
            security: standby.security.clone(),
            account_id: standby.account_id.clone(),
            node: self.node.clone(),
            store: self.store.clone(),
        });
        let forwarder = crate::forwarding::Forwarder::new(self.leader_url(), &self.node, Some(local))?;
        let mut outcome = None;
        let until = async { outcome = self.lead(stop).await };
        forwarder.serve_until(listener, tls, limits, until).await;
        // Its session to the store is closed off the runtime.
        drop(forwarder);
        tokio::task::spawn_blocking(move || drop(replica)).await?;
        Ok(outcome)
    }

    /// The leader's URL as the store has it, kept as the leadership changes: the last known
    /// one while this server cannot tell (its own session lost), its own while it leads.
    fn leader_url(&self) -> watch::Receiver<Option<String>> {
        let (tell, url) = watch::channel(None);
        let (mut leadership, store, own) = (self.leadership.clone(), self.store.clone(), self.own.clone());
        tokio::spawn(async move {
            'changes: loop {
                let now = leadership.borrow_and_update().clone();
                match now {
                    Leadership::Following(Some(leader)) => {
                        // Until the leader has announced where it serves.
                        loop {
                            let store = store.clone();
                            let nodes = tokio::task::spawn_blocking(move || store.nodes()).await;
                            let address = nodes.ok().and_then(Result::ok).and_then(|nodes| {
                                nodes.into_iter().find(|n| n.name == leader && n.address.starts_with("http")).map(|n| n.address)
                            });
                            if let Some(address) = address {
                                tell.send_replace(Some(address));
                                break;
                            }
                            tokio::select! {
                                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                                changed = leadership.changed() => if changed.is_err() { return } else { continue 'changes },
                            }
                        }
                    }
                    // A request a forwarded connection still carries goes to this server's edge.
                    Leadership::Leading(_) => {
                        tell.send_replace(own.lock().unwrap_or_else(|e| e.into_inner()).clone());
                    }
                    Leadership::Following(None) | Leadership::Unknown => {}
                }
                if tell.is_closed() || leadership.changed().await.is_err() {
                    return;
                }
            }
        });
        url
    }

    /// Where this server serves, for `berth nodes`.
    pub fn serving_at(&self, address: &str) {
        *self.own.lock().unwrap_or_else(|e| e.into_inner()) = Some(address.to_string());
        self.election.set_address(address);
    }

    /// Resolves with the leader's name once another server leads. Meanwhile it fences the store
    /// with each epoch this server leads in again (after its election's session came back).
    pub fn deposed(&self) -> impl Future<Output = String> + Send + 'static {
        let (mut leadership, store, node) = (self.leadership.clone(), self.store.clone(), self.node.clone());
        async move {
            loop {
                if leadership.changed().await.is_err() {
                    return std::future::pending().await;
                }
                let now = leadership.borrow_and_update().clone();
                match now {
                    Leadership::Leading(epoch) => {
                        store.fence(epoch);
                        info!(node, epoch, "this server leads the cluster again");
                    }
                    Leadership::Unknown => {
                        warn!(node, "lost the election's session to PostgreSQL: serving on; writes wait for the store")
                    }
                    Leadership::Following(leader) => return leader.unwrap_or_else(|| "another server".into()),
                }
            }
        }
    }
}

/// What a standby needs to answer invocations itself.
pub struct StandbySettings {
    pub security: Arc<berth_aws::Security>,
    pub account_id: String,
    pub invocation_timeout: Duration,
}

/// This machine's host name, the default node name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "berth".into())
}
