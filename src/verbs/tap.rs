//! VMs on a user's bridge: `tap add`, `tap remove`, `leases`.

use super::{Context, VerbError};
use crate::agent::TapAdded;
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

impl Context {
    /// Makes a tap owned by the caller a port of `r.bridge`, up and ready for a VM.
    pub async fn tap_add(&self, r: &TapRequest) -> Result<TapOutcome, VerbError> {
        let owner = crate::identity::current_uid().ok_or_else(|| {
            VerbError::Agent(crate::agent::AgentError::InvalidName("cannot tell this process's uid".into()))
        })?;
        let store = self.store()?;
        let TapAdded { name, bridge, system_bridge } = self
            .changing(format!("tap add {}", r.bridge), async |j| {
                // The open transaction, else a journal of its own (no checkpoint: a tap is one
                // profile, and its journal removes it).
                let (s, _) = super::safety(j, store, true, false, 0);
                self.agent.tap_add(&r.bridge, r.name.as_deref(), owner, r.multi_queue, r.timeout, s).await
            })
            .await?;
        Ok(TapOutcome {
            domain_xml: crate::nm::tap::libvirt_interface(&name, None),
            qemu: crate::nm::tap::qemu_words(&name, r.multi_queue),
            tap: name,
            bridge,
            system_bridge,
            owner,
        })
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
}
