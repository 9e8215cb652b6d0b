//! Serverless variants on the request path: requests above `MaxConcurrency` are throttled, and a
//! request that finds no instance asks the controller for one (a cold start) and waits for it,
//! queued rather than failed.

use berth_domain::NameKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, Notify};

/// The live state of one serverless variant, shared by its routes over time.
#[derive(Debug)]
pub struct ServerlessState {
    max_concurrency: AtomicU32,
    in_flight: AtomicU32,
    /// Instances started because a request found none.
    pub cold_starts: AtomicU64,
    /// Requests refused above MaxConcurrency.
    pub throttled: AtomicU64,
    /// When the last request arrived (ms since the state was made).
    last_request_ms: AtomicU64,
    born: Instant,
    /// Woken whenever the variant's route is published (an instance came or went).
    pub(crate) ready: Notify,
    /// The latest failed cold start and why.
    failure: Mutex<Option<(Instant, String)>>,
}

impl ServerlessState {
    pub fn new(max_concurrency: u32) -> Self {
        ServerlessState {
            max_concurrency: AtomicU32::new(max_concurrency),
            in_flight: AtomicU32::new(0),
            cold_starts: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            last_request_ms: AtomicU64::new(0),
            born: Instant::now(),
            ready: Notify::new(),
            failure: Mutex::new(None),
        }
    }

    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Seconds since the last request (or since the state was made).
    pub fn idle_secs(&self) -> u64 {
        let now = self.born.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_request_ms.load(Ordering::Relaxed)) / 1000
    }

    /// Admits a request unless MaxConcurrency requests are in flight already.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Admitted> {
        self.last_request_ms.store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
        let max = self.max_concurrency();
        let admitted = self.in_flight.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1)).is_ok();
        if !admitted {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        admitted.then(|| Admitted { state: self.clone() })
    }

    /// Records that a cold start failed, so waiting requests fail with the reason.
    pub fn cold_start_failed(&self, reason: String) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), reason));
        self.ready.notify_waiters();
    }

    pub(crate) fn failure_since(&self, since: Instant) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).as_ref().filter(|(at, _)| *at >= since).map(|(_, r)| r.clone())
    }
}

/// A request counted against MaxConcurrency until dropped.
pub(crate) struct Admitted {
    state: Arc<ServerlessState>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every serverless variant's state, and the channel on which requests ask for cold starts.
#[derive(Debug)]
pub struct ServerlessRegistry {
    states: Mutex<HashMap<(NameKey, String), Arc<ServerlessState>>>,
    demand: mpsc::UnboundedSender<(String, String)>,
    demand_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, String)>>>,
}

impl Default for ServerlessRegistry {
    fn default() -> Self {
        let (demand, rx) = mpsc::unbounded_channel();
        ServerlessRegistry { states: Mutex::new(HashMap::new()), demand, demand_rx: Arc::new(tokio::sync::Mutex::new(rx)) }
    }
}

impl ServerlessRegistry {
    /// The state of a serverless variant, created on first use, with its current MaxConcurrency.
    pub fn state(&self, endpoint: &str, variant: &str, max_concurrency: u32) -> Arc<ServerlessState> {
        let key = (NameKey::of(endpoint), variant.to_string());
        let state = self
            .states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert_with(|| Arc::new(ServerlessState::new(max_concurrency)))
            .clone();
        state.max_concurrency.store(max_concurrency, Ordering::Relaxed);
        state
    }

    /// The existing state of a variant, if it is serverless.
    pub fn get(&self, endpoint: &str, variant: &str) -> Option<Arc<ServerlessState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner()).get(&(NameKey::of(endpoint), variant.to_string())).cloned()
    }

    /// Asks the controller's serverless task for an instance of the variant.
    pub fn ask_for_instance(&self, endpoint: &str, variant: &str) {
        let _ = self.demand.send((endpoint.to_string(), variant.to_string()));
    }

    /// The requests' cold-start demands (endpoint, variant), for the one task that serves them.
    /// Held by that task while it runs; one restarted after a panic takes it up again.
    pub fn demand(&self) -> Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, String)>>> {
        self.demand_rx.clone()
    }

    pub fn remove(&self, endpoint: &str) {
        let key = NameKey::of(endpoint);
        self.states.lock().unwrap_or_else(|e| e.into_inner()).retain(|(e, _), _| *e != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_stops_at_max_concurrency() {
        let s = Arc::new(ServerlessState::new(2));
        let first = s.admit().unwrap();
        let _second = s.admit().unwrap();
        assert!(s.admit().is_none());
        assert_eq!(s.throttled.load(Ordering::Relaxed), 1);
        drop(first);
        assert!(s.admit().is_some(), "a finished request frees its slot");
        assert_eq!(s.idle_secs(), 0);
    }

    #[test]
    fn the_registry_keeps_one_state_per_variant() {
        let r = ServerlessRegistry::default();
        let a = r.state("Ep", "V", 3);
        let b = r.state("ep", "V", 5);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.max_concurrency(), 5, "the latest config's MaxConcurrency");
        r.ask_for_instance("ep", "V");
        let demand = r.demand();
        let mut held = demand.try_lock().expect("the one consumer");
        assert_eq!(held.try_recv().unwrap(), ("ep".to_string(), "V".to_string()));
        assert!(r.demand().try_lock().is_err(), "one consumer at a time");
    }
}
