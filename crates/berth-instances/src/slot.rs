use crate::netns::NetNamespace;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;

/// Numbers slots for their lifetime, so that connections can be pooled per slot.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// What the router needs to know about an instance: where it listens, whether it is healthy,
/// and how many requests it is serving. All lock-free: read on every request.
#[derive(Debug)]
pub struct InstanceSlot {
    pub id: String,
    /// Unique among the slots of this server's life.
    serial: u64,
    /// Where the instance listens: loopback, or a pod's IP (which changes when its pod does).
    host: Mutex<IpAddr>,
    /// The network namespace the address is in, when not berth's own (a container's).
    netns: Mutex<Option<Arc<NetNamespace>>>,
    port: AtomicU16,
    /// The process id of the instance's main process (also its process group), 0 when none runs.
    pid: AtomicU32,
    healthy: AtomicBool,
    outstanding: AtomicUsize,
    /// Times the supervisor restarted this instance after a crash or failed health checks.
    restarts: AtomicU64,
    /// Processes of this instance the kernel killed for its memory limit.
    oom_kills: AtomicU64,
    /// Which of its model's containers the instance runs (0 for a model of one container).
    container: usize,
}

impl InstanceSlot {
    pub fn new(id: String) -> Self {
        InstanceSlot {
            id,
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            host: Mutex::new(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            netns: Mutex::new(None),
            port: AtomicU16::new(0),
            pid: AtomicU32::new(0),
            healthy: AtomicBool::new(false),
            outstanding: AtomicUsize::new(0),
            restarts: AtomicU64::new(0),
            oom_kills: AtomicU64::new(0),
            container: 0,
        }
    }

    /// The slot of an instance of a multi-container model's container `index`.
    pub fn for_container(mut self, index: usize) -> Self {
        self.container = index;
        self
    }

    pub fn container(&self) -> usize {
        self.container
    }

    /// The slot of an instance another server of the cluster runs on this machine, as that
    /// server published it: at `addr`, inside the network namespace of process `netns_pid` (a
    /// container's) when there is one. Its health is what the publisher said.
    pub fn elsewhere(id: String, container: usize, addr: SocketAddr, netns_pid: Option<u32>, healthy: bool) -> std::io::Result<Self> {
        let slot = InstanceSlot::new(id).for_container(container);
        slot.set_host(addr.ip());
        slot.set_port(addr.port());
        if let Some(pid) = netns_pid {
            slot.set_netns(Some(Arc::new(NetNamespace::of_process(pid)?)));
        }
        slot.set_healthy(healthy);
        Ok(slot)
    }

    /// Marks a slot made by [`InstanceSlot::elsewhere`] healthy or not, as its publisher says.
    pub fn set_published_health(&self, healthy: bool) {
        self.set_healthy(healthy);
    }

    /// A slot that is already healthy at `port`, for tests of the layers above that have no
    /// supervisor to make it so.
    #[cfg(feature = "test-support")]
    pub fn healthy_for_tests(id: &str, port: u16) -> Self {
        let slot = InstanceSlot::new(id.to_string());
        slot.set_port(port);
        slot.set_healthy(true);
        slot
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(*self.host.lock().unwrap_or_else(|e| e.into_inner()), self.port.load(Ordering::Acquire))
    }

    /// Points the slot at another address (a pod's IP), for backends whose instances listen
    /// beyond this machine's loopback.
    pub fn set_host(&self, host: IpAddr) {
        *self.host.lock().unwrap_or_else(|e| e.into_inner()) = host;
    }

    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Release);
    }

    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Points the slot into another network namespace (a container's), or back into berth's.
    pub(crate) fn set_netns(&self, netns: Option<Arc<NetNamespace>>) {
        *self.netns.lock().unwrap_or_else(|e| e.into_inner()) = netns;
    }

    /// Opens a connection to the instance (`TCP_NODELAY`), inside its network namespace if
    /// it has one of its own.
    pub async fn connect(&self) -> std::io::Result<TcpStream> {
        let addr = self.addr();
        let netns = self.netns.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let stream = match netns {
            Some(ns) => ns.connect(addr).await?,
            None => TcpStream::connect(addr).await?,
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// The process whose network namespace the instance listens in, when that is not berth's
    /// own (a container's main process), for another server on this machine to reach it.
    pub fn netns_pid(&self) -> Option<u32> {
        let has_own = self.netns.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        self.pid().filter(|_| has_own)
    }

    /// The instance's main process id (its process group leader), when one runs.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|&p| p != 0)
    }

    pub fn set_pid(&self, pid: Option<u32>) {
        self.pid.store(pid.unwrap_or(0), Ordering::Relaxed);
    }

    // `healthy` and `outstanding` use SeqCst: a request counts itself in flight and then
    // checks health, while retirement marks the instance unhealthy and then waits for the
    // count to reach zero; with one total order, at least one side sees the other.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub fn oom_kills(&self) -> u64 {
        self.oom_kills.load(Ordering::Relaxed)
    }

    pub fn set_oom_kills(&self, kills: u64) {
        self.oom_kills.store(kills, Ordering::Relaxed);
    }

    pub(crate) fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }

    /// Counts a request as in flight until the returned guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        InFlight { slot: self.clone() }
    }
}

/// A request in flight on an instance; dropping it ends the count.
pub struct InFlight {
    slot: Arc<InstanceSlot>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.slot.outstanding.fetch_sub(1, Ordering::SeqCst);
    }
}
