//! VMs on a user's bridge: `tap add`, `tap remove`, `leases`.

use super::{Context, VerbError};
use crate::agent::{AgentError, TapAdded, TapLife, TapOrder};
use crate::nm::leases::Lease;
use std::time::Duration;

/// `tap add BRIDGE`.
#[derive(Debug, Clone)]
pub struct TapRequest {
    /// The bridge the tap becomes a port of.
    pub bridge: String,
    /// The tap's name (default: the first free `vtapN`).
    pub name: Option<String>,
    /// One queue per vCPU.
    pub multi_queue: bool,
    /// How long to wait for the tap to come up.
    pub timeout: Duration,
}

impl TapRequest {
    /// A tap on `bridge` with every default: the first free name, one queue,
    /// [`super::defaults::TAP_TIMEOUT`].
    pub fn new(bridge: impl Into<String>) -> Self {
        TapRequest { bridge: bridge.into(), name: None, multi_queue: false, timeout: super::defaults::TAP_TIMEOUT }
    }
}

/// What `tap add` made, and what a VM needs to use it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TapOutcome {
    /// The tap.
    pub tap: String,
    /// Its bridge.
    pub bridge: String,
    /// The bridge is system-wide (a NIC's, made by `nmiface bridge`): the VM is on the LAN.
    pub system_bridge: bool,
    /// The uid that may open it.
    pub owner: u32,
    /// The libvirt `<interface>` for the domain.
    pub domain_xml: String,
    /// The qemu options.
    pub qemu: String,
}

/// A tap opened for a VM by [`Context::open_tap`].
#[derive(Debug)]
pub struct OpenedTap {
    /// The open tap: hand it to the VM and close it here.
    pub fd: std::os::fd::OwnedFd,
    /// The tap's name.
    pub tap: String,
    /// Its bridge.
    pub bridge: String,
    /// The bridge is system-wide (a NIC's): the VM is on the LAN.
    pub system_bridge: bool,
}

impl Context {
    /// Makes a tap owned by the caller a port of `r.bridge`, up and ready for a VM.
    pub async fn tap_add(&self, r: &TapRequest) -> Result<TapOutcome, VerbError> {
        let (added, owner) = self.make_tap(r, TapLife::Kept).await?;
        let TapAdded { name, bridge, system_bridge, .. } = added;
        Ok(TapOutcome {
            domain_xml: crate::nm::tap::libvirt_interface(&name, None),
            qemu: crate::nm::tap::qemu_words(&name, r.multi_queue),
            tap: name,
            bridge,
            system_bridge,
            owner,
        })
    }

    /// Makes a tap as [`Context::tap_add`] does and opens it for a VM: the bridge helper's
    /// work (`nmiface bridge-helper`, the service's `OpenTap`). The tap and its profile live as
    /// long as the returned descriptor and its copies (the VM's): when the VM stops, is
    /// destroyed or crashes, NetworkManager deletes both; nothing is on disk.
    pub async fn open_tap(&self, r: &TapRequest, vnet_hdr: bool) -> Result<OpenedTap, VerbError> {
        let (added, _) = self.make_tap(r, TapLife::Handed { vnet_hdr }).await?;
        let TapAdded { name, bridge, system_bridge, fd } = added;
        // Always there for a handed tap (the agent opens it or fails).
        let fd = fd.ok_or_else(|| VerbError::Agent(AgentError::NoSuchTap(name.clone())))?;
        Ok(OpenedTap { fd, tap: name, bridge, system_bridge })
    }

    async fn make_tap(&self, r: &TapRequest, life: TapLife) -> Result<(TapAdded, u32), VerbError> {
        let owner = crate::identity::current_uid()
            .ok_or_else(|| VerbError::Agent(AgentError::InvalidName("cannot tell this process's uid".into())))?;
        // A name Linux cannot have is refused before anything is looked up.
        crate::model::IfName::new(&r.bridge).map_err(AgentError::InvalidName)?;
        let store = self.store()?;
        let order = TapOrder {
            bridge: &r.bridge,
            name: r.name.as_deref(),
            owner,
            multi_queue: r.multi_queue,
            timeout: r.timeout,
            life,
        };
        let added = self
            .changing(format!("tap add {}", r.bridge), async |j| {
                // The open transaction, else a journal of its own (no checkpoint: a tap is one
                // profile, and its journal removes it).
                let (s, _) = super::safety(j, store, true, false, 0);
                self.agent.tap_add(order, s).await
            })
            .await?;
        Ok((added, owner))
    }

    /// Removes the caller's tap `name`.
    pub async fn tap_remove(&self, name: &str) -> Result<(), VerbError> {
        let _lock = self.lock(format!("tap remove {name}")).await?;
        self.finish_leftover().await?;
        Ok(self.agent.tap_remove(name).await?)
    }

    /// The caller's taps (on `bridge`, or all) by name.
    pub async fn taps(&self, bridge: Option<&str>) -> Result<Vec<String>, VerbError> {
        Ok(self.agent.taps(bridge).await?.into_iter().map(|s| s.profile.id).collect())
    }

    /// The caller's taps with the bridge each is a port of, as (tap, bridge), by tap name.
    pub async fn taps_with_bridges(&self, bridge: Option<&str>) -> Result<Vec<(String, String)>, VerbError> {
        let mut rows: Vec<(String, String)> = self
            .agent
            .taps(bridge)
            .await?
            .into_iter()
            .map(|s| {
                let of = s.profile.user_data(crate::nm::tap::TAP_OF).unwrap_or_default().to_string();
                (s.profile.id, of)
            })
            .collect();
        rows.sort();
        Ok(rows)
    }

    /// The leases NetworkManager's dnsmasq gave out on the caller's NAT bridge `bridge`.
    pub async fn leases(&self, bridge: &str) -> Result<Vec<Lease>, VerbError> {
        Ok(self.agent.leases(bridge).await?)
    }

    /// The caller's NAT bridges for VMs, each with its address and prefix.
    pub async fn vm_bridges(&self) -> Result<Vec<(String, String)>, VerbError> {
        Ok(self.agent.vm_bridges().await?)
    }
}
