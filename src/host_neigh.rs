//! The host's neighbour table and bridge forwarding databases, read over rtnetlink: where a
//! user's VMs are when NetworkManager's lease files are root's (mode 0700 on Debian). Dumps
//! and events need no privileges. The socket I/O only; the bytes are parsed by
//! [`crate::nm::neigh`].
//!
//! Every wait is bounded: each read has a receive timeout, a dump has a deadline and a limit
//! on what it keeps, and the event thread checks at every timeout whether anyone still listens.

use crate::nm::neigh::{dump_request, parse, Neighbour, RTMGRP_NEIGH};
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// How long one read waits.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a whole dump may take.
const DUMP_DEADLINE: Duration = Duration::from_secs(3);
/// Most entries a dump keeps (a host with more neighbours than this is not a laptop).
const DUMP_MAX: usize = 65536;
/// One read: the kernel sends dumps in buffers of up to ~32 KiB.
const BUF: usize = 64 * 1024;

/// Why the neighbour table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NeighError {
    /// The socket calls failed.
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused the dump (its errno).
    #[error("the kernel refused the neighbour dump: {}", std::io::Error::from_raw_os_error(*.0))]
    Refused(i32),
    /// The dump did not end in time, or was too large.
    #[error("the neighbour dump did not end within {DUMP_DEADLINE:?} and {DUMP_MAX} entries")]
    Unbounded,
}

fn socket(groups: u32) -> Result<OwnedFd, NeighError> {
    let io = |e: rustix::io::Errno| NeighError::Io(e.into());
    let fd =
        rustix::net::socket_with(AddressFamily::NETLINK, SocketType::RAW, SocketFlags::CLOEXEC, None).map_err(io)?;
    rustix::net::bind(&fd, &SocketAddrNetlink::new(0, groups)).map_err(io)?;
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, Some(READ_TIMEOUT))
        .map_err(io)?;
    Ok(fd)
}

/// Every entry of `family` (`AF_INET`: neighbours; `AF_BRIDGE`: FDB entries) in this network
/// namespace.
pub fn dump(family: u8) -> Result<Vec<Neighbour>, NeighError> {
    let fd = socket(0)?;
    let io = |e: rustix::io::Errno| NeighError::Io(e.into());
    rustix::net::sendto(&fd, &dump_request(family, 1), SendFlags::empty(), &SocketAddrNetlink::new(0, 0))
        .map_err(io)?;
    let deadline = Instant::now() + DUMP_DEADLINE;
    let mut buf = vec![0u8; BUF];
    let mut out = Vec::new();
    while Instant::now() < deadline && out.len() < DUMP_MAX {
        let (n, _) = match rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty()) {
            Ok(r) => r,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Err(NeighError::Unbounded),
            Err(e) => return Err(io(e)),
        };
        let batch = parse(&buf[..n]);
        if let Some(e) = batch.error {
            return Err(NeighError::Refused(e));
        }
        out.extend(batch.entries);
        if batch.done {
            return Ok(out);
        }
    }
    Err(NeighError::Unbounded)
}

/// The index of interface `name` in this network namespace (from sysfs, which every user may
/// read); none for a name that is not an interface's.
pub fn ifindex(name: &str) -> Option<i32> {
    // An interface name is at most 15 bytes, without '/' or whitespace, and not "." or "..".
    let ok = !name.is_empty() && name.len() <= 15 && name != "." && name != "..";
    if !ok || name.chars().any(|c| c == '/' || c.is_whitespace() || c.is_control()) {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex")).ok()?.trim().parse().ok()
}

/// What the event thread saw.
#[derive(Debug)]
pub enum Change {
    /// Entries added, changed or deleted (both families).
    Entries(Vec<Neighbour>),
    /// The kernel dropped events (the socket's buffer overflowed): read everything again.
    Lost,
}

/// Follows neighbour and FDB events (the `RTNLGRP_NEIGH` group, open to every user) on a thread
/// of its own, so a blocking read never holds an async runtime: `on_change` gets each
/// [`Change`] and returns false to stop. It is also called, with no entries, at every read
/// timeout (1 s), so the thread ends within a second of nobody listening; a socket error ends
/// it too. The socket is opened here, so its errors are the caller's.
pub fn watch(mut on_change: impl FnMut(Change) -> bool + Send + 'static) -> Result<(), NeighError> {
    let fd = socket(RTMGRP_NEIGH)?;
    let thread = std::thread::Builder::new().name("nmiface-neigh".into()).spawn(move || {
        let mut buf = vec![0u8; BUF];
        loop {
            let change = match rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty()) {
                Ok((n, _)) => Change::Entries(parse(&buf[..n]).entries),
                Err(rustix::io::Errno::NOBUFS) => Change::Lost,
                // The timeout: ask whether anyone still listens.
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Change::Entries(Vec::new()),
                Err(e) => {
                    tracing::warn!("neighbour events: {e}");
                    return;
                }
            };
            if !on_change(change) {
                return;
            }
        }
    });
    thread.map(|_| ()).map_err(NeighError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nm::neigh::{AF_BRIDGE, AF_INET};

    /// The real kernel answers both dumps to anyone, and ends them.
    #[test]
    fn the_kernel_answers_both_dumps() {
        for family in [AF_INET, AF_BRIDGE] {
            let entries = dump(family).unwrap_or_else(|e| panic!("family {family}: {e}"));
            assert!(entries.iter().all(|n| n.family == family), "family {family}: {entries:?}");
        }
    }

    #[test]
    fn interface_indexes() {
        assert_eq!(ifindex("lo"), Some(1));
        for bad in ["", ".", "..", "../lo", "a b", "waytoolongname0123"] {
            assert_eq!(ifindex(bad), None, "{bad:?}");
        }
    }
}
