//! The interface lifecycle of libvirt's `virsh iface-*` verbs on NetworkManager: fetch, plan
//! (pure, in [`crate::plan`]), execute. The only module that mixes the pure core with D-Bus.

use crate::model::IfName;
use crate::nm::{self, conn_type, profile_uuid, user_key, NmVersion, Profile, Target};
use crate::nm_client::{
    bounded, ActivationFailure, NmClient, NmError, Progress, StoredProfile, BLOCK_AUTOCONNECT, TO_DISK,
};
use crate::plan::{self, NotOwned};
use crate::transaction::{Journal, Store, TxError};
use crate::xml::{self, Document, LiveLink, LiveState};
use futures_util::future::try_join_all;
use std::time::Duration;
use tracing::instrument;

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Talking to NetworkManager failed.
    #[error(transparent)]
    Nm(#[from] NmError),
    /// A profile in the way is not nmiface's.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// No interface of that name was defined by nmiface.
    #[error("no interface '{name}' is defined by nmiface{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    NotDefined {
        /// The name asked for.
        name: String,
        /// What exists instead, if anything.
        hint: Option<String>,
    },
    /// The interface is not active.
    #[error("interface '{0}' is not active")]
    NotActive(String),
    /// Activation did not reach ACTIVATED.
    #[error("starting {interface}: {failure}{}", hint.as_ref().map(|h| format!("\n  {h}")).unwrap_or_default())]
    Activation {
        /// The interface.
        interface: String,
        /// What happened.
        failure: ActivationFailure,
        /// What it likely means.
        hint: Option<String>,
    },
    /// A stored profile could not be read back.
    #[error(transparent)]
    Reverse(#[from] nm::ReverseError),
    /// No device has that MAC (or several do).
    #[error("{0}")]
    Lookup(String),
    /// The transaction file or lock.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// `begin` while a transaction is open.
    #[error("there is another transaction running (checkpoint {checkpoint}, begun {age} s ago); commit or rollback it first")]
    TransactionRunning {
        /// Its checkpoint.
        checkpoint: String,
        /// Seconds since it began.
        age: u64,
    },
    /// `commit`/`rollback` with no transaction open.
    #[error("no transaction running, nothing to {what}{}", leftover_hint(leftovers))]
    NoTransaction {
        /// `commit` or `rollback`.
        what: &'static str,
        /// Checkpoints NetworkManager has that no nmiface transaction records.
        leftovers: Vec<String>,
    },
    /// NetworkManager has checkpoints nmiface did not record (a crashed run, another tool).
    #[error("NetworkManager already has a checkpoint{}", leftover_hint(.0))]
    LeftoverCheckpoints(Vec<String>),
    /// The transaction's checkpoint no longer exists.
    #[error("the transaction's checkpoint {0} is gone: NetworkManager rolled it back when its timeout passed")]
    CheckpointGone(String),
    /// A started interface does not have what was asked.
    #[error("{0}")]
    Verify(String),
    /// An atomic change failed and the host was put back.
    #[error("{cause}\n  {}", restored_text(problems))]
    RolledBack {
        /// What failed.
        cause: Box<AgentError>,
        /// What the rollback could not restore (empty: everything was).
        problems: Vec<String>,
    },
}

fn leftover_hint(l: &[String]) -> String {
    match l {
        [] => String::new(),
        _ => format!(
            " (NetworkManager has checkpoint {}: left by a crashed run? `nmiface rollback --checkpoint PATH` restores it, `nmiface commit --checkpoint PATH` drops it)",
            l.join(", ")
        ),
    }
}

fn restored_text(problems: &[String]) -> String {
    if problems.is_empty() {
        "the host was restored to its state before the change (checkpoint rolled back, changed profiles restored)"
            .to_string()
    } else {
        format!("rolled back, but not everything was restored: {}", problems.join("; "))
    }
}

/// How a change protects the host.
pub enum Safety<'j> {
    /// Own checkpoint: any failure rolls everything back; NetworkManager rolls back by itself
    /// if nmiface dies (after this many seconds without a keep-alive).
    Checkpoint {
        /// Seconds NetworkManager waits for a keep-alive before rolling back.
        rollback_timeout: u32,
    },
    /// Inside the user's transaction: changes are journalled; the user commits or rolls back.
    Transaction(&'j mut Journal),
    /// No protection (`--no-checkpoint`).
    Unprotected,
}

/// What `define` did for one interface.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Defined {
    /// The interface.
    pub interface: String,
    /// Profiles added.
    pub added: usize,
    /// Profiles updated in place.
    pub updated: usize,
    /// Profiles deleted (ports no longer wanted).
    pub deleted: usize,
}

/// One interface's start in `apply`: its name and how long it took, or why it failed.
pub type Started = (String, Result<Duration, AgentError>);

/// One line of `list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    /// Interface name.
    pub name: String,
    /// `ethernet`, `bridge`, `bond` or `vlan`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether its profile is active.
    pub active: bool,
    /// Current MAC of the device, else the configured one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// An interface's profiles as stored: its own first, then its ports.
#[derive(Clone)]
struct Owned {
    main: StoredProfile,
    ports: Vec<StoredProfile>,
}

/// A defined interface ready to start.
pub struct Startable {
    name: String,
    owned: Owned,
    /// Its model, read back from its profiles.
    pub host: crate::model::Host,
}

/// One atomic change's checkpoint, kept alive until released or undone.
pub(crate) struct Guard {
    /// What the change touched, for undoing it.
    pub(crate) journal: Journal,
    keepalive: tokio::task::JoinHandle<()>,
}

impl Guard {
    /// The change worked: drop the checkpoint.
    pub(crate) async fn release(self, agent: &Agent) -> Result<(), AgentError> {
        self.keepalive.abort();
        agent.nm.checkpoint_destroy(&self.journal.checkpoint).await?;
        Ok(())
    }

    /// The change failed: roll back and restore; returns what could not be restored.
    pub(crate) async fn undo(self, agent: &Agent) -> Vec<String> {
        self.keepalive.abort();
        agent.undo(&self.journal).await
    }
}

/// The lifecycle over one NetworkManager client.
pub struct Agent {
    nm: NmClient,
    version: NmVersion,
}

impl Agent {
    /// An agent over `nm`; reads the daemon's version once (which also proves it runs).
    pub async fn new(nm: NmClient) -> Result<Self, AgentError> {
        let version = nm.version().await?;
        Ok(Self { nm, version })
    }

    /// The client.
    pub fn client(&self) -> &NmClient {
        &self.nm
    }

    /// The daemon's version.
    pub fn version(&self) -> NmVersion {
        self.version
    }

    /// The translation target for this daemon.
    pub fn target(&self) -> Target {
        Target { nm: self.version }
    }

    /// Creates or updates (in place, never duplicating) the profiles of every interface in `doc`.
    #[instrument(skip_all)]
    pub async fn define(
        &self,
        doc: &Document,
        adopt: bool,
        journal: Option<&mut Journal>,
    ) -> Result<Vec<Defined>, AgentError> {
        Ok(self.define_stored(doc, adopt, journal).await?.0)
    }

    /// `define`, also returning each interface's profiles as now stored (for `apply`, which
    /// then activates them without looking them up again).
    async fn define_stored(
        &self,
        doc: &Document,
        adopt: bool,
        journal: Option<&mut Journal>,
    ) -> Result<(Vec<Defined>, Vec<Owned>), AgentError> {
        let t = nm::translate(&doc.host, &doc.sources, &self.target());
        let desired: Vec<Profile> = t.profiles().cloned().collect();
        let stored = self.nm.profiles().await?;
        let existing: Vec<Profile> = stored.iter().map(|s| s.profile.clone()).collect();
        let plan = plan::define(&desired, &existing, adopt)?;
        if let Some(j) = journal {
            for i in plan.update.iter().map(|(i, _)| *i).chain(plan.delete.iter().copied()) {
                j.remember(&existing[i]);
            }
        }
        let mut report: Vec<Defined> =
            t.interfaces.iter().map(|i| Defined { interface: i.interface.to_string(), ..Defined::default() }).collect();
        let count = |report: &mut Vec<Defined>, p: &Profile, f: fn(&mut Defined)| {
            if let Some(d) = report.iter_mut().find(|d| Some(d.interface.as_str()) == p.user_data(user_key::INTERFACE))
            {
                f(d);
            }
        };
        for p in &plan.add {
            count(&mut report, p, |d| d.added += 1);
        }
        for (_, p) in &plan.update {
            count(&mut report, p, |d| d.updated += 1);
        }
        for &i in &plan.delete {
            count(&mut report, &existing[i], |d| d.deleted += 1);
        }
        // Ports name their controller by UUID, which NM accepts before the controller exists,
        // so every change can be in flight at once.
        let flags = TO_DISK | BLOCK_AUTOCONNECT;
        let added = bounded(&plan.add, |p| self.nm.add(p, flags)).await;
        let updated: Result<Vec<()>, NmError> =
            bounded(&plan.update, |(i, p)| self.nm.update(&stored[*i].path, p, flags)).await.into_iter().collect();
        let failed = added.iter().find_map(|r| r.as_ref().err().map(|e| e.to_string()));
        if let Some(first) = failed.or_else(|| updated.as_ref().err().map(|e| e.to_string())) {
            // Do not leave half an interface behind: remove what this define added. (Updates
            // are undone by transactions, which restore whole profiles.)
            let made: Vec<_> = added.iter().filter_map(|r| r.as_ref().ok()).collect();
            let _ = bounded(made, |p| self.nm.delete(p)).await;
            if let Err(e) = updated {
                return Err(e.into());
            }
            return Err(added
                .into_iter()
                .find_map(Result::err)
                .map(AgentError::from)
                .unwrap_or(AgentError::Lookup(first)));
        }
        bounded(&plan.delete, |&i| self.nm.delete(&stored[i].path))
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()?;
        let now: Vec<StoredProfile> = plan
            .add
            .into_iter()
            .zip(added.into_iter().flatten())
            .map(|(profile, path)| StoredProfile { path, profile })
            .chain(plan.update.into_iter().map(|(i, profile)| StoredProfile { path: stored[i].path.clone(), profile }))
            .collect();
        let mut owned = Vec::new();
        for d in &report {
            let mine: Vec<&StoredProfile> =
                now.iter().filter(|s| s.profile.user_data(user_key::INTERFACE) == Some(d.interface.as_str())).collect();
            if let Some(main) = mine.iter().find(|s| s.profile.master().is_none()) {
                let ports = mine.iter().filter(|s| s.profile.master().is_some()).map(|s| (*s).clone()).collect();
                owned.push(Owned { main: (*main).clone(), ports });
            }
        }
        Ok((report, owned))
    }

    /// Defines everything in `doc`, then starts each interface (VLAN parents first) and checks
    /// its addresses. With [`Safety::Checkpoint`] it is one step for the host: any failure rolls
    /// everything back. Starting uses the profiles just stored, with no lookup.
    #[instrument(skip_all)]
    pub async fn apply(
        &self,
        doc: &Document,
        adopt: bool,
        timeout: Duration,
        safety: Safety<'_>,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<(Vec<Defined>, Vec<Started>), AgentError> {
        match safety {
            Safety::Unprotected => self.apply_steps(doc, adopt, timeout, None, progress).await,
            Safety::Transaction(j) => self.apply_steps(doc, adopt, timeout, Some(j), progress).await,
            Safety::Checkpoint { rollback_timeout } => {
                let mut guard = self.guard(rollback_timeout).await?;
                let r = self.apply_steps(doc, adopt, timeout, Some(&mut guard.journal), progress).await;
                let failed = match &r {
                    Ok((_, started)) => started.iter().find_map(|(_, r)| r.as_ref().err()).map(|e| e.to_string()),
                    Err(e) => Some(e.to_string()),
                };
                match failed {
                    None => {
                        guard.release(self).await?;
                        r
                    }
                    Some(_) => {
                        let problems = guard.undo(self).await;
                        let cause = match r {
                            Err(e) => e,
                            Ok((_, started)) => started.into_iter().find_map(|(_, r)| r.err()).expect("a start failed"),
                        };
                        Err(AgentError::RolledBack { cause: Box::new(cause), problems })
                    }
                }
            }
        }
    }

    async fn apply_steps(
        &self,
        doc: &Document,
        adopt: bool,
        timeout: Duration,
        journal: Option<&mut Journal>,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<(Vec<Defined>, Vec<Started>), AgentError> {
        let (report, owned) = self.define_stored(doc, adopt, journal).await?;
        let mut results = Vec::new();
        for iface in doc.host.dependency_order() {
            let name = iface.name.as_str();
            let Some(o) = owned.iter().find(|o| o.main.profile.user_data(user_key::INTERFACE) == Some(name)) else {
                continue; // not translated (an unsupported finding says why)
            };
            let t0 = std::time::Instant::now();
            let mut r = self.start_owned(o, name, timeout, &mut |p| progress(name, p)).await;
            if r.is_ok() {
                r = self.verify(iface).await;
            }
            results.push((name.to_string(), r.map(|()| t0.elapsed())));
        }
        Ok((report, results))
    }

    /// Checks that an ACTIVATED interface has every static address it was given.
    async fn verify(&self, iface: &crate::model::Interface) -> Result<(), AgentError> {
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
        let dev = self.nm.device(iface.name.as_str()).await?;
        let mut have = Vec::new();
        if let Some(c) = &dev.ip4_config {
            have.extend(self.nm.addresses(c, false).await?);
        }
        if let Some(c) = &dev.ip6_config {
            have.extend(self.nm.addresses(c, true).await?);
        }
        let missing: Vec<String> = want.iter().filter(|w| !have.contains(w)).map(|(a, p)| format!("{a}/{p}")).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(AgentError::Verify(format!("{} is up but lacks {}", iface.name, missing.join(", "))))
        }
    }

    /// Creates a checkpoint for one atomic change and keeps it alive while the change runs.
    pub(crate) async fn guard(&self, rollback_timeout: u32) -> Result<Guard, AgentError> {
        let existing = self.nm.checkpoints().await?;
        if !existing.is_empty() {
            return Err(AgentError::LeftoverCheckpoints(existing));
        }
        let checkpoint = self.nm.checkpoint_create(rollback_timeout).await?;
        // Extend the timeout while work goes on, so a short timeout still covers a slow
        // activation, and a crash leaves the host to NM's rollback within seconds.
        let nm = self.nm.clone();
        let cp = checkpoint.clone();
        let period = Duration::from_millis(u64::from(rollback_timeout.max(3)) * 1000 / 3);
        let keepalive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if nm.checkpoint_extend(&cp, rollback_timeout).await.is_err() {
                    return;
                }
            }
        });
        Ok(Guard { journal: Journal::new(checkpoint, rollback_timeout, None), keepalive })
    }

    /// Rolls back to the journal's checkpoint, then restores the profiles it saved. Returns
    /// what could not be restored.
    pub async fn undo(&self, j: &Journal) -> Vec<String> {
        let mut problems = Vec::new();
        match self.nm.checkpoint_rollback(&j.checkpoint).await {
            Ok(failed) => problems.extend(failed.into_iter().map(|f| format!("device {}: {}", f.device, f.reason))),
            // Gone: NetworkManager already rolled back when the timeout passed.
            Err(e) if e.dbus_name().is_some_and(|n| n.ends_with("InvalidArguments")) => {}
            Err(e) => problems.push(format!("checkpoint rollback: {e}")),
        }
        let restored = bounded(&j.saved, |p| async move {
            let found =
                self.nm.profile_by_uuid(&p.uuid.to_string()).await.map_err(|e| format!("profile '{}': {e}", p.id))?;
            let r = match found {
                Some(s) => self.nm.update(&s.path, p, TO_DISK | BLOCK_AUTOCONNECT).await,
                None => self.nm.add(p, TO_DISK | BLOCK_AUTOCONNECT).await.map(|_| ()),
            };
            r.map_err(|e| format!("profile '{}': {e}", p.id))
        })
        .await;
        problems.extend(restored.into_iter().filter_map(Result::err));
        problems
    }

    /// Opens a transaction (`virsh iface-begin`): a checkpoint over all devices, recorded where
    /// the next nmiface finds it.
    pub async fn begin(&self, store: &Store, rollback_timeout: u32) -> Result<Journal, AgentError> {
        let existing = self.nm.checkpoints().await?;
        if let Some(j) = store.load()? {
            if existing.contains(&j.checkpoint) {
                let now = Journal::new(String::new(), 0, None).begun;
                return Err(AgentError::TransactionRunning {
                    checkpoint: j.checkpoint,
                    age: now.saturating_sub(j.begun),
                });
            }
            store.clear()?; // stale: its checkpoint was rolled back or destroyed
        }
        if !existing.is_empty() {
            return Err(AgentError::LeftoverCheckpoints(existing));
        }
        let checkpoint = self.nm.checkpoint_create(rollback_timeout).await?;
        let known = self.nm.profiles().await?.into_iter().map(|s| s.profile.uuid).collect();
        let j = Journal::new(checkpoint, rollback_timeout, Some(known));
        store.save(&j)?;
        Ok(j)
    }

    /// Keeps the transaction's changes (`virsh iface-commit`); `checkpoint` names a leftover one.
    pub async fn commit(&self, store: &Store, checkpoint: Option<&str>) -> Result<String, AgentError> {
        if let Some(cp) = checkpoint {
            self.nm.checkpoint_destroy(cp).await?;
            return Ok(cp.to_string());
        }
        let Some(j) = store.load()? else {
            return Err(AgentError::NoTransaction { what: "commit", leftovers: self.nm.checkpoints().await? });
        };
        store.clear()?;
        match self.nm.checkpoint_destroy(&j.checkpoint).await {
            Ok(()) => Ok(j.checkpoint),
            Err(e) if e.dbus_name().is_some_and(|n| n.ends_with("InvalidArguments")) => {
                Err(AgentError::CheckpointGone(j.checkpoint))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Puts the host back as it was at `begin` (`virsh iface-rollback`); `checkpoint` names a
    /// leftover one. Returns what could not be restored.
    pub async fn rollback(&self, store: &Store, checkpoint: Option<&str>) -> Result<Vec<String>, AgentError> {
        if let Some(cp) = checkpoint {
            return Ok(self.undo(&Journal::new(cp.to_string(), 0, Some(Default::default()))).await);
        }
        let Some(j) = store.load()? else {
            return Err(AgentError::NoTransaction { what: "rollback", leftovers: self.nm.checkpoints().await? });
        };
        let problems = self.undo(&j).await;
        store.clear()?;
        Ok(problems)
    }

    /// The capability report for `host` on this daemon: its version, answers to probes for
    /// properties a version number cannot settle, and (`kernel`) the running kernel.
    pub async fn check(
        &self,
        host: &crate::model::Host,
        findings: &[crate::finding::Finding],
        kernel: bool,
    ) -> Result<crate::gaps::CheckReport, AgentError> {
        use crate::gaps;
        let mut probed = Vec::new();
        for f in gaps::probe_candidates(host) {
            if gaps::supports(self.version, f) {
                continue; // the table settles it
            }
            let Some((setting, prop, value)) = f.probe() else { continue };
            probed.push((f, self.nm.knows_property(setting, prop, value).await?));
        }
        let facts = gaps::Facts {
            nm: self.version,
            nm_source: "daemon",
            kernel: kernel.then(crate::host_probe::kernel),
            probed,
            runtime: kernel.then(crate::host_probe::runtime),
        };
        Ok(gaps::assess(host, findings, &facts))
    }

    /// The model of a defined interface, read back from its profiles.
    pub async fn model_of(&self, name: &str) -> Result<crate::model::Host, AgentError> {
        Ok(self.startable(name).await?.host)
    }

    /// A defined interface's profiles, found once, with its model (for checking it before
    /// starting it without looking it up twice).
    pub async fn startable(&self, name: &str) -> Result<Startable, AgentError> {
        let owned = self.find(name).await?;
        let profiles: Vec<Profile> =
            std::iter::once(&owned.main).chain(owned.ports.iter()).map(|s| s.profile.clone()).collect();
        let host = nm::host_from_profiles(&profiles)?.host;
        Ok(Startable { name: name.to_string(), owned, host })
    }

    /// Starts what [`Agent::startable`] found.
    pub async fn start_found(
        &self,
        s: &Startable,
        timeout: Duration,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), AgentError> {
        self.start_owned(&s.owned, &s.name, timeout, progress).await
    }

    /// Finds an interface's profiles: first by the UUIDs nmiface derives (a few lookups), else by
    /// reading every profile (an interface defined with its own `<uuid>`).
    async fn find(&self, name: &str) -> Result<Owned, AgentError> {
        let kinds = ["ethernet", "bridge", "bond", "vlan"];
        let uuids: Vec<String> = kinds.iter().map(|k| profile_uuid(None, k, name, None).to_string()).collect();
        let found = try_join_all(uuids.iter().map(|u| self.nm.profile_by_uuid(u))).await?;
        let main = found.into_iter().flatten().find(|s| {
            s.profile.is_managed()
                && s.profile.user_data(user_key::INTERFACE) == Some(name)
                && s.profile.master().is_none()
        });
        if let Some(main) = main {
            let port_uuids: Vec<&str> = main
                .profile
                .user_data(user_key::PORTS)
                .map(|p| p.split(' ').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            let ports = try_join_all(port_uuids.iter().map(|u| self.nm.profile_by_uuid(u))).await?;
            let ports: Vec<StoredProfile> = ports
                .into_iter()
                .flatten()
                .filter(|s| s.profile.is_managed() && s.profile.user_data(user_key::INTERFACE) == Some(name))
                .collect();
            if ports.len() == port_uuids.len() {
                return Ok(Owned { main, ports });
            }
        }
        let all = self.nm.profiles().await?;
        let profiles: Vec<Profile> = all.iter().map(|s| s.profile.clone()).collect();
        let owned = plan::owned_by_interface(&profiles, name);
        let pick = |p: &Profile| all.iter().find(|s| s.profile.uuid == p.uuid).cloned();
        match owned.split_first() {
            Some((main, ports)) if main.master().is_none() => {
                Ok(Owned { main: pick(main).expect("present"), ports: ports.iter().filter_map(|p| pick(p)).collect() })
            }
            _ => {
                let hint = profiles
                    .iter()
                    .find(|p| p.interface_name() == Some(name) || p.id == name)
                    .map(|p| format!("profile '{}' exists but was not created by nmiface", p.id));
                Err(AgentError::NotDefined { name: name.to_string(), hint })
            }
        }
    }

    /// Deletes the profiles of interface `name` (only nmiface's). Returns how many.
    #[instrument(skip(self))]
    pub async fn undefine(&self, name: &str, journal: Option<&mut Journal>) -> Result<usize, AgentError> {
        let owned = self.find(name).await?;
        self.delete_owned(&owned, journal).await
    }

    /// Deletes what [`Agent::startable`] found (used where the interface was looked up already).
    pub async fn undefine_found(&self, found: &Startable, journal: Option<&mut Journal>) -> Result<usize, AgentError> {
        self.delete_owned(&found.owned, journal).await
    }

    async fn delete_owned(&self, owned: &Owned, journal: Option<&mut Journal>) -> Result<usize, AgentError> {
        if let Some(j) = journal {
            for s in std::iter::once(&owned.main).chain(owned.ports.iter()) {
                j.remember(&s.profile);
            }
        }
        let paths: Vec<_> = std::iter::once(&owned.main).chain(owned.ports.iter()).map(|s| s.path.clone()).collect();
        bounded(&paths, |p| self.nm.delete(p)).await.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(paths.len())
    }

    /// Activates interface `name` and waits until it and its ports are ACTIVATED.
    #[instrument(skip(self, progress))]
    pub async fn start(
        &self,
        name: &str,
        timeout: Duration,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), AgentError> {
        let owned = self.find(name).await?;
        self.start_owned(&owned, name, timeout, progress).await
    }

    async fn start_owned(
        &self,
        owned: &Owned,
        name: &str,
        timeout: Duration,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), AgentError> {
        let port_names: Vec<String> =
            owned.ports.iter().filter_map(|s| s.profile.interface_name().map(str::to_string)).collect();
        let ethernet: Vec<String> = owned
            .ports
            .iter()
            .filter(|s| s.profile.conn_type() == Some(conn_type::ETHERNET))
            .filter_map(|s| s.profile.interface_name().map(str::to_string))
            .collect();
        let mut eth_main = Vec::new();
        if owned.main.profile.conn_type() == Some(conn_type::ETHERNET) {
            eth_main.push(name.to_string());
        }
        let all_eth: Vec<String> = eth_main.into_iter().chain(ethernet).collect();
        self.nm.activate_and_wait(&owned.main.path, name, &port_names, &all_eth, timeout, progress).await.map_err(
            |failure| {
                let hint = hint_for(&failure, owned.main.profile.conn_type());
                AgentError::Activation { interface: name.to_string(), failure, hint }
            },
        )
    }

    /// Deactivates interface `name` (and so its ports).
    #[instrument(skip(self))]
    pub async fn stop(&self, name: &str, timeout: Duration) -> Result<(), AgentError> {
        let owned = self.find(name).await?;
        let active = self.nm.active_profiles().await?;
        let main = owned.main.path.to_string();
        let Some((ac, _)) = active.iter().find(|(_, p)| *p == main) else {
            return Err(AgentError::NotActive(name.to_string()));
        };
        let ac = zbus::zvariant::ObjectPath::try_from(ac.as_str()).map_err(|e| NmError::Dbus(e.into()))?;
        self.nm.deactivate_and_wait(&ac, timeout).await?;
        Ok(())
    }

    /// Interfaces defined by nmiface, with state and MAC (`virsh iface-list`).
    #[instrument(skip(self))]
    pub async fn list(&self) -> Result<Vec<Listed>, AgentError> {
        let (profiles, active, devices) =
            tokio::join!(self.nm.profiles(), self.nm.active_profiles(), self.nm.devices());
        let (profiles, active, devices) = (profiles?, active?, devices?);
        let active: std::collections::HashSet<&str> = active.iter().map(|(_, p)| p.as_str()).collect();
        let mut out: Vec<Listed> = profiles
            .iter()
            .filter(|s| s.profile.is_managed() && s.profile.master().is_none())
            .filter_map(|s| {
                let name = s.profile.user_data(user_key::INTERFACE)?.to_string();
                let kind = match s.profile.conn_type()? {
                    conn_type::ETHERNET => "ethernet",
                    other => other,
                }
                .to_string();
                let mac = devices
                    .iter()
                    .find(|d| d.interface == name && d.real && !d.hw_address.is_empty())
                    .map(|d| d.hw_address.to_lowercase())
                    .or_else(|| {
                        let b = s.profile.get("802-3-ethernet", "mac-address")?.as_bytes()?;
                        <[u8; 6]>::try_from(b).ok().map(|b| crate::model::Mac(b).to_string())
                    });
                Some(Listed { name, kind, active: active.contains(s.path.as_str()), mac })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The interface as libvirt XML: its definition (`inactive`), or with live state.
    #[instrument(skip(self))]
    pub async fn dumpxml(&self, name: &str, inactive: bool) -> Result<String, AgentError> {
        let owned = self.find(name).await?;
        let profiles: Vec<Profile> =
            std::iter::once(&owned.main).chain(owned.ports.iter()).map(|s| s.profile.clone()).collect();
        let recovered = nm::host_from_profiles(&profiles)?;
        let iface = recovered
            .host
            .interfaces
            .into_iter()
            .next()
            .ok_or_else(|| AgentError::NotDefined { name: name.to_string(), hint: None })?;
        if inactive {
            return Ok(xml::write_interface(&iface).0);
        }
        // Like libvirt's backends: live state for an active interface, else its definition.
        match self.live_state(&iface).await? {
            Some(live) => Ok(xml::write_interface_live(&iface, &live).0),
            None => Ok(xml::write_interface(&iface).0),
        }
    }

    async fn live_state(&self, iface: &crate::model::Interface) -> Result<Option<LiveState>, AgentError> {
        let devices = self.nm.devices().await?;
        if !devices.iter().any(|d| d.interface == iface.name.as_str() && d.real && d.state == 100) {
            return Ok(None);
        }
        let mut names = vec![iface.name.to_string()];
        if let crate::model::Kind::Bridge(b) = &iface.kind {
            for m in &b.ports {
                names.push(m.name().to_string());
                if let crate::model::Member::Bond { bond, .. } = m {
                    names.extend(bond.ports.iter().map(|p| p.name.to_string()));
                }
            }
        }
        if let crate::model::Kind::Bond(b) = &iface.kind {
            names.extend(b.ports.iter().map(|p| p.name.to_string()));
        }
        let mut live = LiveState::default();
        for d in devices.iter().filter(|d| d.real && names.contains(&d.interface)) {
            let speed = self.nm.speed(&d.path).await;
            let state = if d.state == 100 { "up" } else { "down" }.to_string();
            let mac = crate::model::Mac::parse(&d.hw_address).ok();
            live.links.insert(d.interface.clone(), LiveLink { state, speed, mac });
            if d.interface == iface.name.as_str() {
                if let Some(c) = &d.ip4_config {
                    live.ipv4 = parsed(self.nm.addresses(c, false).await?);
                }
                if let Some(c) = &d.ip6_config {
                    live.ipv6 = parsed(self.nm.addresses(c, true).await?);
                }
            }
        }
        Ok(Some(live))
    }

    /// The interface whose device (or definition) has this MAC (`virsh iface-name`).
    pub async fn name_of(&self, mac: &crate::model::Mac) -> Result<String, AgentError> {
        let listed = self.list().await?;
        let hits: Vec<&Listed> = listed.iter().filter(|l| l.mac.as_deref() == Some(&mac.to_string())).collect();
        match hits.as_slice() {
            [one] => Ok(one.name.clone()),
            [] => Err(AgentError::Lookup(format!("no interface defined by nmiface has MAC {mac}"))),
            many => Err(AgentError::Lookup(format!(
                "MAC {mac} is not unique: {}",
                many.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The MAC of interface `name` (`virsh iface-mac`).
    pub async fn mac_of(&self, name: &IfName) -> Result<String, AgentError> {
        let listed = self.list().await?;
        let l = listed
            .iter()
            .find(|l| l.name == name.as_str())
            .ok_or_else(|| AgentError::NotDefined { name: name.to_string(), hint: None })?;
        l.mac
            .clone()
            .ok_or_else(|| AgentError::Lookup(format!("interface '{name}' has no MAC yet (its device does not exist)")))
    }
}

/// NetworkManager's `address-data` pairs as typed addresses; anything unparsable is skipped.
fn parsed<A: std::str::FromStr>(list: Vec<(String, u32)>) -> Vec<(A, u8)> {
    list.into_iter().filter_map(|(a, p)| Some((a.parse().ok()?, u8::try_from(p).ok()?))).collect()
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
        ActivationFailure::Deactivated { reason, .. } if reason.contains("realized") => {
            Some(format!("the kernel could not create the {} device", kind.unwrap_or("software")))
        }
        ActivationFailure::NoDevice(d) => Some(format!("is {d} plugged in? `ip link` lists the host's devices")),
        _ => None,
    }
}
