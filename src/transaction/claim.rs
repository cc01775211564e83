//! The host-wide claim: one nmiface change at a time across every party (root and each user),
//! so that two parties cannot both find a name, a device or a subnet free and both take it
//! (each party's own lock, in its runtime directory, serialises only its own changes).
//!
//! An abstract UNIX socket name, keyed by the system bus: no file anyone could write or
//! replace, and the kernel releases it when its holder exits, however it exits. It is
//! advisory and bounded: a holder that keeps it long (an activation waiting on DHCP, an
//! `apply --confirm` waiting for its answer, or a party holding it on purpose) delays the
//! others by at most [`CLAIM_WAIT`]; then they go on without it, and say so. Abstract names
//! live in a network namespace: every party on a host shares the host's.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::time::{Duration, Instant};

/// How long a change waits for another party's claim before going on without it.
pub const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// The claim, held while a change runs; dropping it (or exiting) lets the next party go.
#[derive(Debug)]
pub struct Claim {
    _socket: Option<UnixListener>,
}

/// Takes the claim for the bus keyed `key`, waiting at most `max_wait` (telling `on_wait` once
/// when it has to wait, and again if it goes on without it).
pub async fn claim(key: &str, max_wait: Duration, on_wait: &(dyn Fn(&str) + Send + Sync)) -> Claim {
    let Ok(addr) = SocketAddr::from_abstract_name(format!("nmiface/claim/{key}").as_bytes()) else {
        return Claim { _socket: None };
    };
    let started = Instant::now();
    let mut told = false;
    loop {
        match UnixListener::bind_addr(&addr) {
            Ok(s) => return Claim { _socket: Some(s) },
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if started.elapsed() >= max_wait {
                    on_wait(&format!(
                        "another party's nmiface has been changing the network for {} s; going on without waiting longer",
                        started.elapsed().as_secs()
                    ));
                    return Claim { _socket: None };
                }
                if !told {
                    on_wait("another party's nmiface (root's or another user's) is changing the network; waiting");
                    told = true;
                }
                // Changes take tens of milliseconds: poll often.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // No abstract sockets here (not Linux, or forbidden): nothing to coordinate with.
            Err(_) => return Claim { _socket: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn one_holder_at_a_time_and_a_bounded_wait() {
        let key = format!("test-{}", std::process::id());
        let first = claim(&key, Duration::ZERO, &|_| {}).await;
        assert!(first._socket.is_some());
        let said = std::sync::Mutex::new(Vec::new());
        let second = claim(&key, Duration::from_millis(50), &|w| said.lock().unwrap().push(w.to_string())).await;
        assert!(second._socket.is_none(), "a second holder while the first holds it");
        assert_eq!(said.lock().unwrap().len(), 2, "{said:?}");
        drop(first);
        assert!(claim(&key, Duration::ZERO, &|_| {}).await._socket.is_some());
    }
}
