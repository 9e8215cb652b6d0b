//! Reaching a server inside another network namespace (a container's): a socket belongs to the
//! namespace it was created in, so one made by a thread that entered the container's namespace
//! connects to the container's own loopback, and keeps doing so wherever it is used afterwards.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::net::{TcpSocket, TcpStream};

/// A network namespace, held open by a file descriptor (it lives as long as the descriptor).
#[derive(Debug)]
pub struct NetNamespace {
    fd: OwnedFd,
}

/// What makes an instance's address mean the same to two servers: the same running kernel
/// (its boot id) and the same network namespace. Servers that tell the same reach each other's
/// instances on their loopback addresses and in their containers' namespaces.
pub fn this_host() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let net = std::fs::read_link("/proc/self/ns/net").map(|p| p.display().to_string()).unwrap_or_default();
    format!("{}/{net}", boot.trim())
}

impl NetNamespace {
    /// The network namespace of process `pid` (`/proc/<pid>/ns/net`).
    pub fn of_process(pid: u32) -> io::Result<Self> {
        let file = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        Ok(NetNamespace { fd: file.into() })
    }

    /// Connects to `addr` as seen from inside the namespace.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = self.tcp_socket(addr.is_ipv4())?;
        TcpSocket::from_std_stream(socket.into()).connect(addr).await
    }

    /// A non-blocking TCP socket created inside the namespace, by a short-lived thread that
    /// enters it (`setns` changes only the calling thread's namespace; the thread then ends, so
    /// no thread of berth's is left in the container's namespace).
    fn tcp_socket(&self, ipv4: bool) -> io::Result<OwnedFd> {
        let ns = self.fd.as_raw_fd();
        let family = if ipv4 { libc::AF_INET } else { libc::AF_INET6 };
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns and socket take plain integers; the namespace descriptor is
                    // open for the whole scope, and the new descriptor is owned at once.
                    unsafe {
                        if libc::setns(ns, libc::CLONE_NEWNET) != 0 {
                            return Err(io::Error::last_os_error());
                        }
                        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
                        if fd < 0 {
                            return Err(io::Error::last_os_error());
                        }
                        Ok(OwnedFd::from_raw_fd(fd))
                    }
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the thread entering the network namespace panicked")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_within_its_own_namespace() {
        // Our own namespace: a listener on loopback is reached through it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ns = NetNamespace::of_process(std::process::id()).unwrap();
        let (client, accepted) = tokio::join!(ns.connect(addr), listener.accept());
        assert_eq!(client.unwrap().peer_addr().unwrap(), addr);
        accepted.unwrap();
        assert!(NetNamespace::of_process(u32::MAX).is_err());
    }
}
