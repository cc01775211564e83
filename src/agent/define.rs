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
}

/// How many activations `apply` keeps in flight. Each watches three signal streams (one match
/// rule each on the bus), so the bound also keeps far below the bus's per-connection limits.
pub const ACTIVATIONS: usize = 16;

/// One interface's start in `apply`: its name and how long it took, or why it failed.
pub type Started = (String, Result<Duration, AgentError>);

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
        self.refuse_wifi_ports(doc).await?;
        let t = nm::translate(&doc.host, &doc.sources, &self.target());
        let desired: Vec<Profile> = t.profiles().cloned().collect();
        let stored = self.nm.profiles().await?;
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
        let steps =
            async |journal: Option<&mut Journal>| self.apply_steps(doc, adopt, timeout, journal, progress).await;
        self.guarded(safety, steps, |(_, started)| started.iter().any(|(_, r)| r.is_err())).await.map_err(rolled_back)
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
        let steps =
            async |journal: Option<&mut Journal>| self.apply_steps(doc, adopt, timeout, journal, progress).await;
        self.held(confirm, store, steps, |(_, started)| started.iter().any(|(_, r)| r.is_err()))
            .await
            .map_err(rolled_back)
    }

    async fn apply_steps(
        &self,
        doc: &Document,
        adopt: bool,
        timeout: Duration,
        journal: Option<&mut Journal>,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<(Vec<Defined>, Vec<Started>), AgentError> {
        let (report, defined) = self.define(doc, adopt, journal).await?;
        // Independent interfaces start at once (NetworkManager activates them concurrently), at
        // most ACTIVATIONS in flight; a VLAN waits for the wave of its parent.
        let progress = std::sync::Mutex::new(progress);
        let mut results = Vec::new();
        for wave in doc.host.start_waves() {
            let starts = wave.into_iter().filter_map(|iface| {
                // Not translated (an unsupported finding says why): nothing to start.
                let stored = defined.iter().find(|s| s.name == iface.name.as_str())?;
                let progress = &progress;
                Some(async move {
                    let name = iface.name.as_str();
                    let t0 = std::time::Instant::now();
                    let mut tell = |p: Progress| {
                        if let Ok(mut f) = progress.lock() {
                            f(name, p);
                        }
                    };
                    let mut r = self.start(stored, timeout, &mut tell).await;
                    if r.is_ok() {
                        r = self.verify(iface, Duration::ZERO).await;
                    }
                    (name.to_string(), r.map(|()| t0.elapsed()))
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
