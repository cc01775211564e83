//! `/org/nmiface/Interfaces1/share/BRIDGE`, `org.nmiface.Interfaces1.Share`: a user's NAT bridge
//! for VMs, its user-owned taps and the leases NetworkManager's dnsmasq gave them.

use super::args::tap_options;
use super::state::Service;
use super::ServiceError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

/// Where share objects live.
pub const SHARE_PATH: &str = "/org/nmiface/Interfaces1/share";

/// How often the exported shares' leases are read again without a neighbour event. Events
/// carry the news (a lease answered to the VM puts it in the kernel's neighbour table); this
/// slow read is for what they can miss: a lease only in the lease file (its answer went out as
/// a broadcast, and the VM has not spoken IP to the host since), and events the kernel dropped
/// when the socket's buffer overflowed on a busy host.
pub(super) const LEASE_FALLBACK: Duration = Duration::from_secs(2);

/// A share's object path: the bridge's name, each byte a path cannot hold (and `_` itself) as
/// `_XX`. Bytes, not characters: `_XX` with a character's number made `ā` (U+0101) and U+0010
/// followed by `1` the same path.
pub(super) fn share_path(bridge: &str) -> OwnedObjectPath {
    let safe: String = bridge
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("_{b:02x}") })
        .collect();
    OwnedObjectPath::try_from(format!("{SHARE_PATH}/{safe}")).expect("alphanumerics and _ make a valid path")
}

/// The object of one NAT bridge.
pub(super) struct ShareObject {
    pub svc: Arc<Service>,
    pub bridge: String,
    pub subnet: String,
}

/// Reads the exported shares' leases again and announces those not seen before. The leases
/// are computed with no lock held, and the signals sent after the lock is released.
pub(super) async fn announce_leases(svc: &Arc<Service>) {
    let Ok(ctx) = svc.contexts() else { return };
    let bridges: Vec<String> = svc.leases_seen.lock().await.keys().cloned().collect();
    for bridge in bridges {
        let leases = match ctx.user.leases(&bridge).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!("leases of {bridge}: {e}");
                continue;
            }
        };
        let new: Vec<(String, String)> = {
            let mut seen = svc.leases_seen.lock().await;
            let Some(known) = seen.get_mut(&bridge) else { continue };
            leases.into_iter().map(|l| (l.mac, l.ip)).filter(|k| known.insert(k.clone())).collect()
        };
        for (mac, ip) in new {
            if let Ok(e) = SignalEmitter::new(&svc.session, share_path(&bridge)) {
                let _ = ShareObject::lease_added(&e, &mac, &ip).await;
            }
        }
    }
}

#[zbus::interface(name = "org.nmiface.Interfaces1.Share")]
impl ShareObject {
    /// Makes a tap owned by the caller a port of this bridge. Options: `name` (s; default the
    /// first free vtapN), `multi_queue` (b). Returns the tap and the libvirt `<interface>` for
    /// the domain (`ifname=TAP,script=no,downscript=no` for plain qemu).
    ///
    /// Errors: InvalidArgs, InUse.
    async fn add_tap(
        &self,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(String, String), ServiceError> {
        let r = tap_options(&self.bridge, &options)?;
        let out = self.svc.call(&hdr, 0, true, &[], async |c| c.tap_add(&r).await).await?;
        Ok((out.tap, out.domain_xml))
    }

    /// Removes one of the caller's taps.
    ///
    /// Errors: NotFound.
    async fn remove_tap(&self, tap: String, #[zbus(header)] hdr: Header<'_>) -> Result<(), ServiceError> {
        self.svc.call(&hdr, 0, true, &[], async |c| c.tap_remove(&tap).await).await
    }

    /// The caller's VMs on this bridge: (MAC, IP, host name, expiry in seconds since the epoch,
    /// 0: never, -1: unknown). From NetworkManager's dnsmasq lease file where the service may
    /// read it (host name and expiry), else from the kernel's neighbour table: the addresses of
    /// what sits behind the caller's taps (no host name, expiry -1).
    async fn get_leases(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<(String, String, String, i64)>, ServiceError> {
        let _busy = self.svc.admit(&hdr).await?;
        let ctx = self.svc.contexts()?;
        let leases = ctx.user.leases(&self.bridge).await?;
        Ok(leases.into_iter().map(|l| (l.mac, l.ip, l.hostname, l.expiry.unwrap_or(-1))).collect())
    }

    /// The bridge.
    #[zbus(property)]
    fn bridge(&self) -> String {
        self.bridge.clone()
    }

    /// The bridge's address and prefix (its subnet).
    #[zbus(property)]
    fn subnet(&self) -> String {
        self.subnet.clone()
    }

    /// A VM got an address on this bridge.
    #[zbus(signal)]
    async fn lease_added(emitter: &SignalEmitter<'_>, mac: &str, ip: &str) -> zbus::Result<()>;
}

impl Service {
    /// Exports the share object of the user's NAT bridge `bridge` (once), its current leases
    /// counted as seen; returns its path.
    pub async fn export_share(self: &Arc<Self>, bridge: &str, subnet: String) -> Result<OwnedObjectPath, ServiceError> {
        let path = share_path(bridge);
        if self.leases_seen.lock().await.contains_key(bridge) {
            return Ok(path);
        }
        // Read before the lock: the lock is not held across NetworkManager calls.
        let leases = self.contexts()?.user.leases(bridge).await.unwrap_or_default();
        let mut seen = self.leases_seen.lock().await;
        if !seen.contains_key(bridge) {
            let object = ShareObject { svc: self.clone(), bridge: bridge.to_string(), subnet };
            self.session.object_server().at(path.as_str(), object).await?;
            seen.insert(bridge.to_string(), leases.into_iter().map(|l| (l.mac, l.ip)).collect());
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::share_path;

    /// Different names never share a path.
    #[test]
    fn share_paths_are_one_to_one() {
        let names = ["virbr1", "v_1", "v\u{101}", "v\u{10}1", "br-0", "br_2d0", "\u{1F600}", "_"];
        let paths: std::collections::BTreeSet<String> = names.iter().map(|n| share_path(n).to_string()).collect();
        assert_eq!(paths.len(), names.len(), "{paths:?}");
        assert_eq!(share_path("v\u{101}").as_str(), "/org/nmiface/Interfaces1/share/v_c4_81");
    }
}
