//! `start` and `stop` of a defined interface.

use super::{Agent, AgentError, StoredInterface};
use crate::model::{Interface, Kind};
use crate::nm::conn_type;
use crate::nm_client::{ActivationFailure, Awaited, NmError, Progress};
use std::time::Duration;
use tracing::instrument;

impl Agent {
    /// Activates an interface and waits until it and its ports are ACTIVATED.
    #[instrument(skip_all, fields(interface = %s.name))]
    pub async fn start(
        &self,
        s: &StoredInterface,
        timeout: Duration,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), AgentError> {
        let port_names: Vec<String> =
            s.ports.iter().filter_map(|p| p.profile.interface_name().map(str::to_string)).collect();
        // Ethernet devices must exist already; software devices are created by the activation.
        let ethernet: Vec<String> = s
            .profiles()
            .filter(|p| p.profile.conn_type() == Some(conn_type::ETHERNET))
            .filter_map(|p| p.profile.interface_name().map(str::to_string))
            .collect();
        let iface = s.model()?.interfaces.into_iter().next();
        let early = iface.as_ref().is_some_and(waits_for_ports);
        let awaited = Awaited { main: &s.name, ports: &port_names, ethernet: &ethernet, ready_at_ip_config: early };
        self.nm.activate_and_wait(&s.main.path, awaited, timeout, progress).await.map_err(|failure| {
            let hint = hint_for(&failure, s.main.profile.conn_type());
            AgentError::Activation { interface: s.name.clone(), failure: Box::new(failure), hint }
        })?;
        match (early, &iface) {
            // Counted as up at IP configuration: up means its addresses are there.
            (true, Some(iface)) => self.verify(iface, EARLY_PATIENCE).await,
            _ => Ok(()),
        }
    }

    /// Checks that a started interface has every static address it was given, looking again
    /// for up to `patience` (addresses land moments after a controller reaches IP config).
    pub(super) async fn verify(&self, iface: &Interface, patience: Duration) -> Result<(), AgentError> {
        let mut want: Vec<(String, u32)> = Vec::new();
        if let Some(v4) = &iface.ipv4 {
            want.extend(v4.addresses.iter().map(|a| (a.address.to_string(), u32::from(a.prefix))));
        }
        if let Some(v6) = &iface.ipv6 {
            want.extend(v6.addresses.iter().map(|a| (a.address.to_string(), u32::from(a.prefix))));
        }
        if want.is_empty() {
            return Ok(());
        }
        let until = std::time::Instant::now() + patience;
        loop {
            let dev = self.nm.device(iface.name.as_str()).await?;
            let mut have = Vec::new();
            if let Some(c) = &dev.ip4_config {
                have.extend(self.nm.addresses(c, false).await?);
            }
            if let Some(c) = &dev.ip6_config {
                have.extend(self.nm.addresses(c, true).await?);
            }
            let missing: Vec<String> =
                want.iter().filter(|w| !have.contains(w)).map(|(a, p)| format!("{a}/{p}")).collect();
            if missing.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() >= until {
                return Err(AgentError::AddressMissing { interface: iface.name.to_string(), missing });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether the interface's own profile is active now.
    pub async fn is_running(&self, s: &StoredInterface) -> Result<bool, AgentError> {
        Ok(self.nm.active_profiles().await?.iter().any(|(_, p)| p == s.main.path.as_str()))
    }

    /// Deactivates an interface (and so its ports).
    #[instrument(skip_all, fields(interface = %s.name))]
    pub async fn stop(&self, s: &StoredInterface, timeout: Duration) -> Result<(), AgentError> {
        let active = self.nm.active_profiles().await?;
        let main = s.main.path.as_str();
        let Some((ac, _)) = active.iter().find(|(_, p)| p == main) else {
            return Err(AgentError::NotActive(s.name.clone()));
        };
        self.nm.deactivate_and_wait(ac, timeout).await?;
        Ok(())
    }
}

/// How long a controller counted as up at IP configuration may take to show its addresses: the
/// time NetworkManager itself would have held it in IP configuration.
const EARLY_PATIENCE: Duration = Duration::from_secs(3);

/// Whether NetworkManager would hold the interface in IP configuration only because a
/// controller with no ports has no carrier: a bridge or bond without ports whose addresses are
/// all static (DHCP or autoconfiguration would need the carrier, so those wait for ACTIVATED).
/// nmcli reports such a controller as activated at the same point ("waiting for ports"). A NAT
/// bridge (shared method) with its address given counts too: when it enters IP configuration
/// its address, NetworkManager's dnsmasq and the masquerade table are in place already (seen
/// polling every 20 ms: all three at the first look, ~57 ms in; ACTIVATED came 2 s later), so
/// `share --nat` need not wait the 2 s for a carrier no VM has brought yet.
fn waits_for_ports(iface: &Interface) -> bool {
    let no_ports = match &iface.kind {
        Kind::Bridge(b) => b.ports.is_empty(),
        Kind::Bond(b) => b.ports.is_empty(),
        _ => false,
    };
    let static_v4 = iface.ipv4.as_ref().is_some_and(|v| v.dhcp.is_none() && !v.addresses.is_empty());
    let v6_needs_nothing = iface.ipv6.as_ref().is_none_or(|v| !v.autoconf && v.dhcp.is_none());
    no_ports && static_v4 && v6_needs_nothing
}

/// A one-line explanation of an activation failure, where the cause is known.
fn hint_for(f: &ActivationFailure, kind: Option<&str>) -> Option<String> {
    match f {
        ActivationFailure::Refused(NmError::CreationFailed { kind: k, .. }) => Some(match k.as_str() {
            "bond" => {
                "this kernel has no bonding support: the 'bonding' module is neither built in nor loadable".into()
            }
            "vlan" => {
                "this kernel has no 802.1Q VLAN support: the '8021q' module is neither built in nor loadable".into()
            }
            other => format!("this kernel cannot create {other} devices"),
        }),
        ActivationFailure::Deactivated { realize_failed: true, .. } => {
            Some(format!("the kernel could not create the {} device", kind.unwrap_or("software")))
        }
        ActivationFailure::NoDevice(d) => Some(format!("is {d} plugged in? `ip link` lists the host's devices")),
        _ => None,
    }
}
