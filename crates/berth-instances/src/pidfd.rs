//! Process handles that cannot point at a reused process id (Linux `pidfd`, kernel 5.3+).
//!
//! A pid names a process only until it is reaped; after that the kernel may give the number to
//! another process, and a signal sent by number would reach it. A pidfd stays bound to the
//! process it was opened for: once that process is gone, signals through it fail with `ESRCH`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// A handle on one process.
pub(crate) struct Pidfd(OwnedFd);

impl Pidfd {
    /// Opens a handle on process `pid`. For a child not yet reaped this is race-free; for any
    /// other process, check that the handle names the expected process after opening it (its
    /// `/proc` entry then belongs to the process the handle holds, or is gone).
    pub(crate) fn open(pid: u32) -> io::Result<Pidfd> {
        // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just returned by the kernel and nothing else owns it.
        Ok(Pidfd(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }))
    }

    /// Sends `signal` to the process, if it still runs (`ESRCH` once it has exited).
    pub(crate) fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: pidfd_send_signal takes a descriptor we own, a signal number, a null info
        // pointer (the kernel then fills in the sender) and no flags.
        let r = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, self.0.as_raw_fd(), signal, std::ptr::null::<libc::siginfo_t>(), 0 as libc::c_uint)
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Resolves once the process has exited. It is not reaped: while it is a zombie its pid,
    /// and the process group it leads, cannot be given to another process.
    pub(crate) async fn exited(self) -> io::Result<()> {
        // A pidfd polls readable when its process exits.
        // SAFETY: the AsyncFd takes the OwnedFd, which stays open and returns the same
        // descriptor until the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register_with_interest(self.0, tokio::io::Interest::READABLE) }.map_err(io::Error::from)?;
        let _ready = fd.readable().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_handle_outlives_its_process_without_reaching_another() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let handle = Pidfd::open(child.id()).unwrap();
        let watch = Pidfd::open(child.id()).unwrap();
        handle.signal(libc::SIGKILL).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.exited()).await.expect("exit is seen").unwrap();
        assert!(!child.wait().unwrap().success());
        // Reaped: the pid may now be anyone's, and the handle refuses to signal.
        assert_eq!(handle.signal(libc::SIGKILL).unwrap_err().raw_os_error(), Some(libc::ESRCH));
    }
}
