//! `define` and `apply`: the profiles of a document added or updated in place, then (apply)
//! started and verified, as one step for the host.

use super::guard::Guarded;
use super::{Agent, AgentError, Safety, StoredInterface};
use crate::model::{Kind, Member};
use crate::nm::{self, user_key, DeviceType, Profile};
use crate::nm_client::{bounded, NmError, Progress, StoredProfile, BLOCK_AUTOCONNECT, TO_DISK};
use crate::plan;
use crate::transaction::Journal;
use crate::xml::Document;
use futures_util::StreamExt;
use std::time::Duration;
use tracing::instrument;

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
    /// Profiles that already held every setting: not written.
    pub unchanged: usize,
    /// Only the interface's own profile changed, and only in what NetworkManager applies to a
    /// running device in place (addresses, routes, DNS): `apply` reapplies instead of
    /// re-activating.
    #[serde(skip)]
    pub in_place: bool,
}

impl Defined {
    /// Whether any profile of the interface was written or deleted.
    pub fn changed(&self) -> bool {
        self.added + self.updated + self.deleted > 0
    }
}

/// What `apply` did to one interface that started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// Already running with every setting: nothing was done.
    Unchanged,
    /// Running, and its changed settings were applied in place (the link stayed up).
    Reapplied,
    /// Running, and re-activated for settings only an activation applies.
    Reactivated,
    /// Started (it was not running).
    Started,
}

/// How many activations `apply` keeps in flight. Each watches three signal streams (one match
/// rule each on the bus), so the bound also keeps far below the bus's per-connection limits.
pub const ACTIVATIONS: usize = 16;

/// One interface's start in `apply`: its name and what was done and how long it took, or why it
/// failed.
pub type Started = (String, Result<(How, Duration), AgentError>);

/// What `apply` did: per interface what was defined, and how each started.
pub type Applied = (Vec<Defined>, Vec<Started>);

impl Agent {
    /// Creates or updates (in place, never duplicating) the profiles of every interface in `doc`;
    /// returns what was done and each interface's profiles as now stored (so `apply` starts them
    /// without looking them up again). Refuses, changing nothing, a Wi-Fi station as a bridge
    /// port. Profiles changed or deleted are recorded in `journal` first.
    #[instrument(skip_all)]
    pub async fn define(
        &self,
        doc: &Document,
        adopt: bool,
        journal: Option<&mut Journal>,
    ) -> Result<(Vec<Defined>, Vec<StoredInterface>), AgentError> {
        let stored = self.nm.profiles().await?;
        self.define_over(doc, adopt, journal, stored).await
    }

    /// [`Agent::define`] over profiles the caller fetched already.
    async fn define_over(
        &self,
        doc: &Document,
        adopt: bool,
        journal: Option<&mut Journal>,
        stored: Vec<StoredProfile>,
    ) -> Result<(Vec<Defined>, Vec<StoredInterface>), AgentError> {
        self.refuse_wifi_ports(doc).await?;
        let t = nm::translate(&doc.host, &doc.sources, &self.target());
        let desired: Vec<Profile> = t.profiles().cloned().collect();
        let existing: Vec<Profile> = stored.iter().map(|s| s.profile.clone()).collect();
        let plan = plan::define(&desired, &existing, adopt)?;
        if let Some(j) = journal {
            let touched: Vec<usize> = plan.update.iter().map(|(i, _)| *i).chain(plan.delete.iter().copied()).collect();
            for p in bounded(&touched, |&i| self.nm.with_secrets(&stored[i])).await {
                j.remember(&p?);
            }
            for p in &plan.add {
                j.remember_added(p.uuid);
            }
            // Written ahead: a crash from here on leaves a journal that knows every change.
            j.sync()?;
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
        for &i in &plan.unchanged {
            count(&mut report, &existing[i], |d| d.unchanged += 1);
        }
        for d in &mut report {
            // In place: one update, of the interface's own profile, in reapplicable settings.
            let mine = |p: &Profile| p.user_data(user_key::INTERFACE) == Some(d.interface.as_str());
            let updates: Vec<&(usize, Profile)> = plan.update.iter().filter(|(_, p)| mine(p)).collect();
            d.in_place = d.added == 0
                && d.deleted == 0
                && matches!(updates.as_slice(), [(i, p)] if p.master().is_none()
                    && nm::compare::reapplicable(&nm::compare::changes(p, &existing[*i])));
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
        let first_add_error = added.iter().position(Result::is_err);
        if first_add_error.is_some() || updated.is_err() {
            // Do not leave half an interface behind: remove what this define added. (Updates
            // are undone by transactions, which restore whole profiles.)
            let mut errors = Vec::new();
            let mut made = Vec::new();
            for r in added {
                match r {
                    Ok(path) => made.push(path),
                    Err(e) => errors.push(e),
                }
            }
            let _ = bounded(&made, |p| self.nm.delete(p)).await;
            return Err(match updated {
                Err(e) => e.into(),
                Ok(_) => errors.into_iter().next().map_or(AgentError::Nm(NmError::ObjectGone), AgentError::from),
            });
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
            .chain(plan.unchanged.iter().map(|&i| stored[i].clone()))
            .collect();
        let mut defined = Vec::new();
        for d in &report {
            let mine: Vec<&StoredProfile> =
                now.iter().filter(|s| s.profile.user_data(user_key::INTERFACE) == Some(d.interface.as_str())).collect();
            if let Some(main) = mine.iter().find(|s| s.profile.master().is_none()) {
                let ports = mine.iter().filter(|s| s.profile.master().is_some()).map(|s| (*s).clone()).collect();
                defined.push(StoredInterface { name: d.interface.clone(), main: (*main).clone(), ports });
            }
        }
        Ok((report, defined))
    }

    /// Refuses a document that makes a Wi-Fi station a bridge port (the draft's `<shared>` on
    /// `wlan0`, or a bridge listing it): an 802.11 station carries no frames for other MACs.
    async fn refuse_wifi_ports(&self, doc: &Document) -> Result<(), AgentError> {
        let ports: Vec<&str> = doc
            .host
            .interfaces
            .iter()
            .filter_map(|i| match &i.kind {
                Kind::Bridge(b) => Some(b.ports.iter().filter_map(|m| match m {
                    Member::Ethernet(p) => Some(p.name.as_str()),
                    _ => None,
                })),
                _ => None,
            })
            .flatten()
            .collect();
        let types = bounded(&ports, |p| self.nm.device_type(p)).await;
        for (port, t) in ports.iter().zip(types) {
            if t? == Some(DeviceType::Wifi) {
                return Err(AgentError::WifiStation(port.to_string()));
            }
        }
        Ok(())
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
        let (stored, active) = tokio::join!(self.nm.profiles(), self.nm.active_profiles());
        let (stored, active) = (stored?, active?);
        let running: std::collections::HashSet<String> = active.into_iter().map(|(_, p)| p).collect();
        // Nothing differs and everything runs: no checkpoint, no write, no re-activation.
        if let Some(done) = self.nothing_to_do(doc, adopt, &stored, &running)? {
            return Ok(done);
        }
        let steps = async |journal: Option<&mut Journal>| {
            self.apply_steps(doc, adopt, timeout, journal, stored, &running, progress).await
        };
        self.guarded(safety, steps, |(_, started)| started.iter().any(|(_, r)| r.is_err())).await.map_err(rolled_back)
    }

    /// When every profile of `doc` is stored as it would be written and every interface runs:
    /// what `apply` reports then, without changing anything.
    fn nothing_to_do(
        &self,
        doc: &Document,
        adopt: bool,
        stored: &[StoredProfile],
        running: &std::collections::HashSet<String>,
    ) -> Result<Option<Applied>, AgentError> {
        let t = nm::translate(&doc.host, &doc.sources, &self.target());
        let desired: Vec<Profile> = t.profiles().cloned().collect();
        let existing: Vec<Profile> = stored.iter().map(|s| s.profile.clone()).collect();
        let plan = plan::define(&desired, &existing, adopt)?;
        let mains_run = plan
            .unchanged
            .iter()
            .filter(|&&i| existing[i].master().is_none())
            .all(|&i| running.contains(stored[i].path.as_str()));
        if !plan.is_empty() || !mains_run {
            return Ok(None);
        }
        let report = t
            .interfaces
            .iter()
            .map(|i| Defined { interface: i.interface.to_string(), unchanged: i.profiles.len(), ..Defined::default() })
            .collect();
        let started = doc
            .host
            .dependency_order()
            .iter()
            .filter(|i| t.interfaces.iter().any(|p| p.interface == i.name))
            .map(|i| (i.name.to_string(), Ok((How::Unchanged, Duration::ZERO))))
            .collect();
        Ok(Some((report, started)))
    }

    /// [`Agent::apply`] whose checkpoint is held for the user to confirm within `confirm`
    /// seconds ([`Agent::keep`] or [`Agent::revert`]); a failure rolls back at once.
    pub async fn apply_held(
        &self,
        doc: &Document,
        adopt: bool,
        timeout: Duration,
        confirm: u32,
        store: &crate::transaction::Store,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<((Vec<Defined>, Vec<Started>), super::Held), AgentError> {
        let (stored, active) = tokio::join!(self.nm.profiles(), self.nm.active_profiles());
        let (stored, active) = (stored?, active?);
        let running: std::collections::HashSet<String> = active.into_iter().map(|(_, p)| p).collect();
        let steps = async |journal: Option<&mut Journal>| {
            self.apply_steps(doc, adopt, timeout, journal, stored, &running, progress).await
        };
        self.held(confirm, store, steps, |(_, started)| started.iter().any(|(_, r)| r.is_err()))
            .await
            .map_err(rolled_back)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_steps(
        &self,
        doc: &Document,
        adopt: bool,
        timeout: Duration,
        journal: Option<&mut Journal>,
        stored: Vec<StoredProfile>,
        running: &std::collections::HashSet<String>,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<(Vec<Defined>, Vec<Started>), AgentError> {
        let (report, defined) = self.define_over(doc, adopt, journal, stored).await?;
        // Independent interfaces start at once (NetworkManager activates them concurrently), at
        // most ACTIVATIONS in flight; a VLAN waits for the wave of its parent.
        let progress = std::sync::Mutex::new(progress);
        let mut results = Vec::new();
        for wave in doc.host.start_waves() {
            let starts = wave.into_iter().filter_map(|iface| {
                // Not translated (an unsupported finding says why): nothing to start.
                let stored = defined.iter().find(|s| s.name == iface.name.as_str())?;
                let what = report.iter().find(|d| d.interface == iface.name.as_str())?;
                let was_running = running.contains(stored.main.path.as_str());
                let progress = &progress;
                Some(async move {
                    let name = iface.name.as_str();
                    let t0 = std::time::Instant::now();
                    let mut tell = |p: Progress| {
                        if let Ok(mut f) = progress.lock() {
                            f(name, p);
                        }
                    };
                    let r = match (was_running, what.changed(), what.in_place) {
                        (true, false, _) => Ok(How::Unchanged),
                        (true, true, true) => match self.nm.reapply(name).await {
                            Ok(()) => Ok(How::Reapplied),
                            // NetworkManager would not apply it in place after all.
                            Err(_) => self.start(stored, timeout, &mut tell).await.map(|()| How::Reactivated),
                        },
                        (true, true, false) => self.start(stored, timeout, &mut tell).await.map(|()| How::Reactivated),
                        (false, _, _) => self.start(stored, timeout, &mut tell).await.map(|()| How::Started),
                    };
                    let patience =
                        if matches!(r, Ok(How::Reapplied)) { Duration::from_secs(3) } else { Duration::ZERO };
                    let r = match r {
                        Ok(how) => self.verify(iface, patience).await.map(|()| how),
                        Err(e) => Err(e),
                    };
                    (name.to_string(), r.map(|how| (how, t0.elapsed())))
                })
            });
            results.extend(futures_util::stream::iter(starts).buffered(ACTIVATIONS).collect::<Vec<_>>().await);
        }
        Ok((report, results))
    }
}

impl Agent {
    /// Deletes an interface's profiles (only nmiface's, as [`Agent::find`] found them); returns
    /// how many. Each is recorded in `journal` first.
    #[instrument(skip_all, fields(interface = %s.name))]
    pub async fn undefine(&self, s: &StoredInterface, journal: Option<&mut Journal>) -> Result<usize, AgentError> {
        if let Some(j) = journal {
            for p in bounded(s.profiles(), |p| self.nm.with_secrets(p)).await {
                j.remember(&p?);
            }
            j.sync()?;
        }
        let paths: Vec<_> = s.profiles().map(|p| p.path.clone()).collect();
        bounded(&paths, |p| self.nm.delete(p)).await.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(paths.len())
    }
}

/// A guarded apply's failure as the error to report: after a rollback, its cause is the failed
/// start (or the step's error), with what could not be restored.
fn rolled_back(e: Guarded<(Vec<Defined>, Vec<Started>)>) -> AgentError {
    match e {
        Guarded::RolledBack { result: Ok((_, started)), problems } => {
            let cause = started.into_iter().find_map(|(_, r)| r.err()).unwrap_or(AgentError::Nm(NmError::ObjectGone));
            AgentError::RolledBack { cause: Box::new(cause), problems }
        }
        Guarded::RolledBack { result: Err(cause), problems } => {
            AgentError::RolledBack { cause: Box::new(cause), problems }
        }
        Guarded::Failed(e) => e,
    }
}

/// What `apply --check` shows for one profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProfileDiff {
    /// The profile's name (`connection.id`).
    pub profile: String,
    /// The interface it belongs to.
    pub interface: String,
    /// `add`, `update`, `delete` or `unchanged`.
    pub action: &'static str,
    /// The properties that would change (for `add`, all it would get).
    pub changes: Vec<nm::compare::Change>,
}

impl Agent {
    /// What `define`/`apply` of `doc` would write, profile by profile, changing nothing.
    pub async fn diff(&self, doc: &Document, adopt: bool) -> Result<Vec<ProfileDiff>, AgentError> {
        let t = nm::translate(&doc.host, &doc.sources, &self.target());
        let desired: Vec<Profile> = t.profiles().cloned().collect();
        let stored = self.nm.profiles().await?;
        let existing: Vec<Profile> = stored.iter().map(|s| s.profile.clone()).collect();
        let plan = plan::define(&desired, &existing, adopt)?;
        let iface = |p: &Profile| p.user_data(user_key::INTERFACE).unwrap_or_default().to_string();
        let empty = Profile { id: String::new(), uuid: uuid::Uuid::nil(), settings: Default::default() };
        let mut out = Vec::new();
        for p in &plan.add {
            let changes = nm::compare::changes(p, &empty);
            out.push(ProfileDiff { profile: p.id.clone(), interface: iface(p), action: "add", changes });
        }
        for (i, p) in &plan.update {
            let changes = nm::compare::changes(p, &existing[*i]);
            out.push(ProfileDiff { profile: p.id.clone(), interface: iface(p), action: "update", changes });
        }
        for &i in &plan.delete {
            let p = &existing[i];
            out.push(ProfileDiff { profile: p.id.clone(), interface: iface(p), action: "delete", changes: Vec::new() });
        }
        for &i in &plan.unchanged {
            let p = &existing[i];
            out.push(ProfileDiff {
                profile: p.id.clone(),
                interface: iface(p),
                action: "unchanged",
                changes: Vec::new(),
            });
        }
        Ok(out)
    }
}
