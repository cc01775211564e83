//! `apply`: define, then start every interface in waves (independent ones at once), verify, as
//! one step for the host; what already holds every setting and runs is left alone.

use super::define::Defined;
use super::guard::Guarded;
use super::touched::DeviceScope;
use super::{Agent, AgentError, Safety};
use crate::nm::{user_key, Profile};
use crate::nm_client::{NmError, Progress, StoredProfile};
use crate::plan;
use crate::transaction::Journal;
use crate::xml::Document;
use futures_util::StreamExt;
use std::time::Duration;
use tracing::instrument;

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
    /// Defines everything in `doc`, then starts each interface (VLAN parents first) and checks
    /// its addresses. With [`Safety::Checkpoint`] it is one step for the host: any failure rolls
    /// everything back. Starting uses the profiles just stored, with no lookup.
    #[instrument(skip_all)]
    pub async fn apply(
        &self,
        wanted: super::Wanted<'_>,
        adopt: bool,
        timeout: Duration,
        safety: Safety<'_>,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<(Vec<Defined>, Vec<Started>), AgentError> {
        let (stored, running) = self.current().await?;
        // One translation (the verb's) and one first plan for the whole apply: what is to do,
        // the devices its checkpoint covers, and the define that follows all start from them.
        let doc = wanted.doc;
        let desired = self.desired(wanted.profiles)?;
        let existing: Vec<Profile> = stored.iter().map(|s| s.profile.clone()).collect();
        // A plan that cannot be made is not "nothing to do": define says why, after its checks
        // of who holds the devices.
        let planned = plan::define(&desired, &existing, adopt, &self.scope).ok();
        // Nothing differs and everything runs: no checkpoint, no write, no re-activation.
        if let Some(done) = nothing_to_do(doc, &desired, planned.as_ref(), &stored, &running) {
            return Ok(done);
        }
        let scope = DeviceScope::of(&desired, planned.as_ref(), &stored);
        let steps = async |journal: Option<&mut Journal>| {
            self.apply_steps(doc, desired, adopt, timeout, journal, stored, &running, progress).await
        };
        self.guarded(safety, &scope, steps, |(_, started)| started.iter().any(|(_, r)| r.is_err()))
            .await
            .map_err(rolled_back)
    }

    /// What an apply starts from: every stored profile, and the paths of the active ones.
    async fn current(&self) -> Result<(Vec<StoredProfile>, std::collections::HashSet<String>), AgentError> {
        let (stored, active) = tokio::join!(self.nm.profiles(), self.nm.active_profiles());
        Ok((stored?, active?.into_iter().map(|(_, p)| p).collect()))
    }

    /// [`Agent::apply`] whose checkpoint is held for the user to confirm within `confirm`
    /// seconds ([`Agent::keep`] or [`Agent::revert`]); a failure rolls back at once.
    pub async fn apply_held(
        &self,
        wanted: super::Wanted<'_>,
        adopt: bool,
        timeout: Duration,
        confirm: u32,
        store: &crate::transaction::Store,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<((Vec<Defined>, Vec<Started>), super::Held), AgentError> {
        let (stored, running) = self.current().await?;
        let doc = wanted.doc;
        let desired = self.desired(wanted.profiles)?;
        let steps = async |journal: Option<&mut Journal>| {
            self.apply_steps(doc, desired, adopt, timeout, journal, stored, &running, progress).await
        };
        self.held(confirm, store, steps, |(_, started)| started.iter().any(|(_, r)| r.is_err()))
            .await
            .map_err(rolled_back)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_steps(
        &self,
        doc: &Document,
        desired: Vec<Profile>,
        adopt: bool,
        timeout: Duration,
        journal: Option<&mut Journal>,
        stored: Vec<StoredProfile>,
        running: &std::collections::HashSet<String>,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<(Vec<Defined>, Vec<Started>), AgentError> {
        let (report, defined) = self.define_over(doc, desired, adopt, journal, stored).await?;
        // Independent interfaces start at once (NetworkManager activates them concurrently), at
        // most ACTIVATIONS in flight; a VLAN waits for the wave of its parent.
        let progress = std::sync::Mutex::new(progress);
        let mut results = Vec::new();
        for wave in doc.host.start_waves() {
            // Collected first: see `nm_client::bounded` on futures that must be `Send`.
            let starts: Vec<_> = wave
                .into_iter()
                .filter_map(|iface| {
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
                            (true, true, false) => {
                                self.start(stored, timeout, &mut tell).await.map(|()| How::Reactivated)
                            }
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
                })
                .collect();
            results.extend(futures_util::stream::iter(starts).buffered(ACTIVATIONS).collect::<Vec<_>>().await);
        }
        Ok((report, results))
    }
}

/// A guarded apply's failure as the error to report: after a rollback, its cause is the failed
/// start (or the step's error), with what could not be restored.
fn rolled_back(e: Guarded<(Vec<Defined>, Vec<Started>)>) -> AgentError {
    match e {
        Guarded::RolledBack { result: Ok((_, started)), problems, checkpoint } => {
            let cause = started.into_iter().find_map(|(_, r)| r.err()).unwrap_or(AgentError::Nm(NmError::ObjectGone));
            AgentError::RolledBack { cause: Box::new(cause), problems, checkpoint }
        }
        Guarded::RolledBack { result: Err(cause), problems, checkpoint } => {
            AgentError::RolledBack { cause: Box::new(cause), problems, checkpoint }
        }
        Guarded::Failed(e) => e,
    }
}

/// When every profile of `doc` is stored as it would be written (`planned` changes nothing) and
/// every interface runs: what `apply` reports then, without changing anything.
fn nothing_to_do(
    doc: &Document,
    desired: &[Profile],
    planned: Option<&plan::Plan>,
    stored: &[StoredProfile],
    running: &std::collections::HashSet<String>,
) -> Option<Applied> {
    let plan = planned?;
    let mains_run = plan
        .unchanged
        .iter()
        .filter(|&&i| stored[i].profile.master().is_none())
        .all(|&i| running.contains(stored[i].path.as_str()));
    if !plan.is_empty() || !mains_run {
        return None;
    }
    // Counted in one pass: a host file of 1,000 interfaces made this quadratic the largest
    // cost of an apply that changes nothing.
    let mut profiles_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for name in desired.iter().filter_map(|p| p.user_data(user_key::INTERFACE)) {
        *profiles_of.entry(name).or_default() += 1;
    }
    let of = |name: &str| profiles_of.get(name).copied().unwrap_or(0);
    let report = doc
        .host
        .interfaces
        .iter()
        .map(|i| Defined { interface: i.name.to_string(), unchanged: of(i.name.as_str()), ..Defined::default() })
        .collect();
    let top: std::collections::HashSet<&str> = doc.host.interfaces.iter().map(|i| i.name.as_str()).collect();
    let started = doc
        .host
        .dependency_order()
        .iter()
        .filter(|i| top.contains(i.name.as_str()))
        .map(|i| (i.name.to_string(), Ok((How::Unchanged, Duration::ZERO))))
        .collect();
    Some((report, started))
}
