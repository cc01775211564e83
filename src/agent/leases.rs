//! Where the VMs on a shared bridge are: NetworkManager's dnsmasq lease file where this process
//! may read it (root: host names and expiry), joined with the kernel's neighbour table, which
//! everyone may read (a user on a stock Debian host: `/var/lib/NetworkManager` is root's, mode
//! 0700). A user sees what sits behind their own taps in the bridge's forwarding database.

use super::{Agent, AgentError};
use crate::host_neigh;
use crate::nm;
use crate::nm::leases::{lease_file, parse_leases, visible, Lease, Whose};
use crate::nm::neigh::{AF_BRIDGE, AF_INET};
use crate::nm::Scope;
use tracing::debug;

/// Most bytes of a lease file read (a /24 fills ~20 KB).
pub const LEASES_MAX: u64 = 1 << 20;

/// Why a lease file gave no leases.
#[derive(Debug, thiserror::Error)]
pub enum LeaseFileError {
    /// There is none (no lease given yet, or not NetworkManager's dnsmasq).
    #[error("no such file")]
    Missing,
    /// This process may not read it (a user on a stock host: the directory is root's, 0700).
    #[error("not readable: {0}")]
    Unreadable(std::io::Error),
    /// It is not what dnsmasq run by NetworkManager writes: a symlink, not a regular file (a
    /// FIFO, a device), not root's, writable by others, or larger than [`LEASES_MAX`].
    #[error("not trusted: {0}")]
    Untrusted(String),
}

/// Reads a lease file: never through a symlink, never waiting (O_NONBLOCK: a FIFO put in its
/// place opens at once and is then refused), only a regular file owned by root and writable
/// only by it, at most [`LEASES_MAX`] bytes.
pub fn read_lease_file(path: &str) -> Result<Vec<Lease>, LeaseFileError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let untrusted = |why: &str| LeaseFileError::Untrusted(why.to_string());
    let flags = libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let f = match std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LeaseFileError::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(untrusted("it is a symlink")),
        Err(e) => return Err(LeaseFileError::Unreadable(e)),
    };
    let meta = f.metadata().map_err(LeaseFileError::Unreadable)?;
    if !meta.is_file() {
        return Err(untrusted("not a regular file"));
    }
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(untrusted("not owned by root, or writable by others"));
    }
    let mut bytes = Vec::new();
    f.take(LEASES_MAX + 1).read_to_end(&mut bytes).map_err(LeaseFileError::Unreadable)?;
    if bytes.len() as u64 > LEASES_MAX {
        return Err(untrusted("larger than a lease file can be"));
    }
    Ok(parse_leases(&bytes))
}

impl Agent {
    /// This scope's NAT bridges for VMs (`share --nat`), each with its address and prefix
    /// (`10.42.0.1/24`; empty if it has none): the session service exports them as Share
    /// objects when it starts, so that a path a client was given outlives an idle exit.
    pub async fn vm_bridges(&self) -> Result<Vec<(String, String)>, AgentError> {
        let stored = self.nm.profiles().await?;
        let subnet = |p: &nm::Profile| -> Option<String> {
            let nm::Value::DictList(list) = p.get("ipv4", "address-data")? else { return None };
            let first = list.first()?;
            match (first.get("address")?, first.get("prefix")?) {
                (nm::Value::Str(a), nm::Value::U32(n)) => Some(format!("{a}/{n}")),
                _ => None,
            }
        };
        Ok(stored
            .iter()
            .map(|s| &s.profile)
            .filter(|p| {
                self.scope.owns(p)
                    && p.master().is_none()
                    && p.conn_type() == Some(nm::conn_type::BRIDGE)
                    && p.get("ipv4", "method").and_then(|v| v.as_str()) == Some("shared")
            })
            .filter_map(|p| Some((p.interface_name()?.to_string(), subnet(p).unwrap_or_default())))
            .collect())
    }

    /// The leases on this scope's shared bridge `bridge` that this caller may see: all of them
    /// for the system-wide scope, else those behind the caller's own taps. The lease file's
    /// entries first (where readable), then the neighbours it does not have.
    pub async fn leases(&self, bridge: &str) -> Result<Vec<Lease>, AgentError> {
        let found = self.find(bridge).await?;
        if found.main.profile.get("ipv4", "method").and_then(|v| v.as_str()) != Some("shared") {
            return Err(AgentError::NotAVmBridge(bridge.to_string()));
        }
        let whose = match self.scope {
            Scope::System => Whose::Everything,
            Scope::User(_) => Whose::BehindPorts(
                self.taps(Some(bridge))
                    .await?
                    .iter()
                    .filter_map(|s| host_neigh::ifindex(s.profile.interface_name().unwrap_or(&s.profile.id)))
                    .collect(),
            ),
        };
        let path = lease_file(bridge);
        let bridge = bridge.to_string();
        let read = tokio::task::spawn_blocking(move || {
            let file = match read_lease_file(&path) {
                Ok(l) => Some(l),
                // Expected for a user on a stock host, and before the first lease.
                Err(e @ (LeaseFileError::Missing | LeaseFileError::Unreadable(_))) => {
                    debug!("{path}: {e}; the neighbour table only");
                    None
                }
                Err(e @ LeaseFileError::Untrusted(_)) => {
                    debug!("{path}: {e}: skipped");
                    None
                }
            };
            let index = host_neigh::ifindex(&bridge).unwrap_or(-1);
            Ok::<_, host_neigh::NeighError>((file, host_neigh::dump(AF_INET)?, host_neigh::dump(AF_BRIDGE)?, index))
        });
        // The reads are bounded (O_NONBLOCK, receive timeouts): the task ends.
        let (file, neighbours, fdb, index) = match read.await {
            Ok(r) => r?,
            Err(e) => return Err(AgentError::Neighbours(host_neigh::NeighError::Io(std::io::Error::other(e)))),
        };
        Ok(visible(file.as_deref(), &neighbours, &fdb, index, &whose))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("nmiface-leases-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_fifo_in_place_of_the_file_returns_at_once() {
        let d = scratch("fifo");
        let fifo = d.join("dnsmasq-nat0.leases");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let t = Instant::now();
        let r = read_lease_file(fifo.to_str().unwrap());
        assert!(matches!(r, Err(LeaseFileError::Untrusted(_))), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(1), "took {:?}", t.elapsed());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn missing_symlinked_and_foreign_files() {
        let d = scratch("kinds");
        let missing = d.join("none.leases");
        assert!(matches!(read_lease_file(missing.to_str().unwrap()), Err(LeaseFileError::Missing)));
        let real = d.join("real.leases");
        std::fs::write(&real, b"1 52:54:00:00:00:01 10.42.0.2 a *\n1 52:54:00:00:00:02 10.42.0.\xff *\n").unwrap();
        let link = d.join("link.leases");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(read_lease_file(link.to_str().unwrap()), Err(LeaseFileError::Untrusted(_))));
        match crate::identity::current_uid() {
            // Root's own file in a 0755 scratch directory: read; a bad byte skips only its line.
            Some(0) => assert_eq!(read_lease_file(real.to_str().unwrap()).unwrap().len(), 1),
            // Not root's: refused.
            _ => assert!(matches!(read_lease_file(real.to_str().unwrap()), Err(LeaseFileError::Untrusted(_)))),
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
