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

/// How often the lease files of exported shares are read for `LeaseAdded`.
pub(super) const LEASE_POLL: Duration = Duration::from_millis(200);

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

/// Reads the lease files of the exported shares and announces new leases.
pub(super) async fn poll_leases(svc: &Arc<Service>) {
    let bridges: Vec<String> = svc.leases_seen.lock().await.keys().cloned().collect();
    for bridge in bridges {
        let Ok(leases) = crate::agent::read_leases(&crate::nm::leases::lease_file(&bridge)) else { continue };
        let mut seen = svc.leases_seen.lock().await;
        let Some(known) = seen.get_mut(&bridge) else { continue };
        for l in leases {
            if known.insert((l.mac.clone(), l.ip.clone())) {
                if let Ok(e) = SignalEmitter::new(&svc.session, share_path(&bridge)) {
                    let _ = ShareObject::lease_added(&e, &l.mac, &l.ip).await;
                }
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

    /// The leases NetworkManager's dnsmasq gave out on this bridge: (MAC, IP, host name,
    /// expiry in seconds since the epoch, 0: never).
    async fn get_leases(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<(String, String, String, i64)>, ServiceError> {
        let _busy = self.svc.admit(&hdr).await?;
        let ctx = self.svc.contexts()?;
        let leases = ctx.user.leases(&self.bridge).await?;
        Ok(leases.into_iter().map(|l| (l.mac, l.ip, l.hostname, l.expiry)).collect())
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
        let mut seen = self.leases_seen.lock().await;
        if !seen.contains_key(bridge) {
            let leases = crate::agent::read_leases(&crate::nm::leases::lease_file(bridge)).unwrap_or_default();
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
