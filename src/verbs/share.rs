//! Sharing the host's network with VMs: `bridge`, `unbridge` (libvirt's iface-bridge and
//! iface-unbridge) and `share --nat`.

use super::{gate, safety, Context, GapLine, Protection, VerbError};
use crate::agent::{Agent, BridgeOptions, Safety, Wanted};
use crate::finding::Finding;
use crate::model::Ipv4Net;
use crate::nm_client::Progress;
use crate::xml::Document;
use std::time::Duration;

/// `bridge NIC BRIDGE`.
#[derive(Debug, Clone)]
pub struct BridgeRequest {
    /// The NIC to share.
    pub nic: String,
    /// The bridge to create.
    pub bridge: String,
    /// STP and forward delay.
    pub options: BridgeOptions,
    /// Activate after defining.
    pub start: bool,
    /// How long to wait for activation.
    pub timeout: Duration,
    /// Seconds NetworkManager waits for a keep-alive before rolling back by itself.
    pub rollback_timeout: u32,
    /// Go on despite capability gaps.
    pub force: bool,
}

/// `share --nat`.
#[derive(Debug, Clone)]
pub struct ShareRequest {
    /// The VMs' bridge.
    pub bridge: String,
    /// The bridge's address and prefix; `None`: the bridge's own if it exists, else the first
    /// 10.42.N.0/24 free of the host's networks.
    pub subnet: Option<Ipv4Net>,
    /// Comes up by itself: at boot (system-wide) or at each login (a user's). A user's share
    /// without it lives with this login only (NetworkManager takes it down at logout and it
    /// does not come back). System-wide shares always persist.
    pub persist: bool,
    /// Activate after defining.
    pub start: bool,
    /// How long to wait for activation.
    pub timeout: Duration,
    /// Seconds NetworkManager waits for a keep-alive before rolling back by itself.
    pub rollback_timeout: u32,
    /// Go on despite capability gaps.
    pub force: bool,
}

impl ShareRequest {
    /// A NAT share of `bridge` with every default: a free subnet, this login only, started,
    /// [`super::defaults`]' waits.
    pub fn nat(bridge: impl Into<String>) -> Self {
        ShareRequest {
            bridge: bridge.into(),
            subnet: None,
            persist: false,
            start: true,
            timeout: super::defaults::ACTIVATION_TIMEOUT,
            rollback_timeout: super::defaults::ROLLBACK_TIMEOUT,
            force: false,
        }
    }
}

/// What `bridge` or `share` did.
#[derive(Debug)]
pub struct ShareOutcome {
    /// What making the model approximated (a rounded delay).
    pub findings: Vec<Finding>,
    /// Gaps a forced change went on despite.
    pub forced: Vec<GapLine>,
    /// How the host was protected.
    pub protection: Protection,
    /// Whether anything changed (`false`: it was in place and running already).
    pub changed: bool,
    /// `share --nat`: the subnet in force, and whether nmiface chose it.
    pub subnet: Option<(Ipv4Net, bool)>,
}

impl Context {
    /// Shares a NIC with VMs: a new bridge takes over its configuration and MAC, the NIC
    /// becomes its port, in one step; the NIC's own profile is kept for `unbridge`.
    pub async fn bridge(
        &self,
        r: &BridgeRequest,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<ShareOutcome, VerbError> {
        let _lock = self.lock(format!("bridge {} {}", r.nic, r.bridge)).await?;
        // The same bridge again: nothing to do (started, if it was asked and is not running; its
        // NIC put back, if another profile took it out since).
        if let Some(found) = self.agent.bridged_already(&r.nic, &r.bridge, &r.options).await? {
            let running = self.agent.is_running(&found).await?;
            let detached = match running {
                true => self.agent.detached_ports(&found).await?,
                false => Vec::new(),
            };
            if r.start && !running {
                self.agent.start(&found, r.timeout, &mut |p| progress(&r.bridge, p)).await?;
            }
            if r.start && !detached.is_empty() {
                self.agent.reattach(&detached, r.timeout).await?;
            }
            let changed = r.start && (!running || !detached.is_empty());
            return Ok(ShareOutcome {
                findings: Vec::new(),
                forced: Vec::new(),
                protection: Protection::None,
                changed,
                subnet: None,
            });
        }
        let doc = self.agent.bridge_model(&r.nic, &r.bridge, &r.options).await?;
        self.define_or_apply(&doc, "bridge", r.start, r.timeout, r.rollback_timeout, r.force, progress).await
    }

    /// Undoes `bridge`: the bridge goes, the NIC gets its configuration back. Returns the NIC.
    pub async fn unbridge(
        &self,
        bridge: &str,
        start: bool,
        timeout: Duration,
        rollback_timeout: u32,
    ) -> Result<String, VerbError> {
        let allowed = self.checkpoints_allowed().await?;
        let store = self.store()?;
        self.changing(format!("unbridge {bridge}"), async |j| {
            let found = self.agent.find(bridge).await?;
            let (s, _) = safety(j, store, true, allowed, rollback_timeout);
            self.agent.unbridge(&found, start, timeout, s).await
        })
        .await
    }

    /// A VM bridge behind NAT to whatever uplink is active (NetworkManager's shared method).
    pub async fn share(
        &self,
        r: &ShareRequest,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<ShareOutcome, VerbError> {
        let _lock = self.lock(format!("share --nat {}", r.bridge)).await?;
        // Asked meanwhile (and kept): for a user, NetworkManager asks polkit about every action.
        let (subnet, allowed) = tokio::join!(self.agent.nat_subnet(&r.bridge, r.subnet), self.checkpoints_allowed());
        let ((net, chosen, previous), _) = (subnet?, allowed?);
        let persist = r.persist || *self.agent.scope() == crate::nm::Scope::System;
        let doc = Agent::nat_model(&r.bridge, Some(net), persist)?;
        let mut out =
            self.define_or_apply(&doc, "share", r.start, r.timeout, r.rollback_timeout, r.force, progress).await?;
        if let Some(p) = previous {
            out.findings.push(Finding::at(
                crate::finding::Severity::Info,
                r.bridge.clone(),
                None,
                format!(
                    "re-addressed from {}/{} to {}/{}: VMs on it need new leases (restart their networking)",
                    p.address, p.prefix, net.address, net.prefix
                ),
            ));
        }
        out.subnet = Some((net, chosen));
        Ok(out)
    }

    /// The model of `bridge`/`share`, gated, then defined, or applied as one step. The caller
    /// holds the lock.
    #[allow(clippy::too_many_arguments)]
    async fn define_or_apply(
        &self,
        doc: &Document,
        verb: &'static str,
        start: bool,
        timeout: Duration,
        rollback_timeout: u32,
        force: bool,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<ShareOutcome, VerbError> {
        let (mut findings, profiles) = self.translate(doc);
        let (report, allowed) = tokio::join!(self.agent.check(&doc.host, &findings, start), self.checkpoints_allowed());
        let forced = gate(&report?, start, force, verb)?;
        let allowed = allowed?;
        let mut journal = self.open_journal().await?;
        let (s, protection) = safety(journal.as_mut(), self.store()?, true, allowed, rollback_timeout);
        let r = if start {
            self.agent.apply(Wanted { doc, profiles }, false, timeout, s, progress).await.and_then(
                |(defined, started)| match started.into_iter().find_map(|(_, r)| r.err()) {
                    Some(e) => Err(e),
                    None => Ok(defined),
                },
            )
        } else {
            let j = match s {
                Safety::Transaction(j) => Some(j),
                _ => None,
            };
            self.agent.define(Wanted { doc, profiles }, false, j).await.map(|(defined, _)| defined)
        };
        if let Some(j) = &journal {
            j.sync()?;
        }
        let defined = r.map_err(VerbError::from)?;
        findings.extend(super::takeover_findings(&defined));
        Ok(ShareOutcome { findings, forced, protection, changed: true, subnet: None })
    }
}
