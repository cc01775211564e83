//! define, undefine, start, stop, apply.

use super::{gate, names, safety, Checked, Context, GapLine, VerbError};
use crate::agent::{Defined, Started, Wanted};
use crate::finding::Finding;
use crate::nm_client::Progress;
use crate::xml::Document;
use std::time::Duration;

/// How `define` may go.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefineOptions {
    /// Take over conflicting profiles nmiface did not create.
    pub adopt: bool,
    /// Go on despite capability gaps.
    pub force: bool,
}

/// What `define` did.
#[derive(Debug)]
pub struct DefineOutcome {
    /// Per interface: profiles added, updated, deleted.
    pub defined: Vec<Defined>,
    /// What reading and translating approximated or dropped.
    pub findings: Vec<Finding>,
    /// Gaps a forced change went on despite.
    pub forced: Vec<GapLine>,
}

/// How `apply` may go.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Take over conflicting profiles nmiface did not create.
    pub adopt: bool,
    /// Go on despite capability gaps.
    pub force: bool,
    /// How long to wait for each activation.
    pub timeout: Duration,
    /// Seconds NetworkManager waits for a keep-alive before rolling back by itself.
    pub rollback_timeout: u32,
    /// Take a checkpoint (when no transaction is open).
    pub checkpoint: bool,
}

impl Default for ApplyOptions {
    /// No adopting, no forcing, a checkpoint, and [`super::defaults`]' waits.
    fn default() -> Self {
        ApplyOptions {
            adopt: false,
            force: false,
            timeout: super::defaults::ACTIVATION_TIMEOUT,
            rollback_timeout: super::defaults::ROLLBACK_TIMEOUT,
            checkpoint: true,
        }
    }
}

/// How a change protected the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    /// Its own checkpoint: a failure rolled everything back.
    Checkpoint,
    /// The user's open transaction: the changes are journalled for commit or rollback.
    Transaction,
    /// The user's open transaction without a checkpoint (NetworkManager does not let this
    /// user take one): rollback restores the user's own profiles, not device state.
    TransactionJournal,
    /// The journal alone (NetworkManager does not let this user take checkpoints): a failure
    /// restored the profiles the change touched and deleted those it added.
    Journal,
    /// None (asked for).
    None,
}

/// What `apply` did.
#[derive(Debug)]
pub struct ApplyOutcome {
    /// Per interface: profiles added, updated, deleted.
    pub defined: Vec<Defined>,
    /// Per interface, in start order: how it started and how long it took. (One that did not
    /// start makes the verb fail: [`VerbError::NotStarted`].)
    pub started: Vec<Started>,
    /// What reading and translating approximated or dropped.
    pub findings: Vec<Finding>,
    /// Gaps a forced change went on despite.
    pub forced: Vec<GapLine>,
    /// How the host was protected.
    pub protection: Protection,
}

impl ApplyOutcome {
    /// Whether anything changed: a profile added, updated or deleted, or an interface
    /// (re)started or updated in place.
    pub fn changed(&self) -> bool {
        self.defined.iter().any(|d| d.changed())
            || self.started.iter().any(|(_, r)| !matches!(r, Ok((crate::agent::How::Unchanged, _))))
    }

    /// The verdict, decided here for every front end: an interface that did not start makes
    /// the apply a failure ([`VerbError::NotStarted`]), whatever protected the host.
    fn verdict(mut self) -> Result<Self, VerbError> {
        if self.started.iter().all(|(_, r)| r.is_ok()) {
            return Ok(self);
        }
        let total = self.started.len();
        let failed =
            std::mem::take(&mut self.started).into_iter().filter_map(|(name, r)| r.err().map(|e| (name, e))).collect();
        Err(VerbError::NotStarted { failed, total, protection: self.protection })
    }
}

/// A change made and waiting for the user's confirmation; it holds the lock until settled.
pub struct Pending {
    held: crate::agent::Held,
    _lock: crate::transaction::Lock,
}

impl Pending {
    /// The checkpoint NetworkManager rolls back to without a confirmation.
    pub fn checkpoint(&self) -> &str {
        self.held.checkpoint()
    }
}

/// What `start` did.
#[derive(Debug)]
pub struct StartOutcome {
    /// Gaps a forced start went on despite.
    pub forced: Vec<GapLine>,
    /// It was running already: nothing was done (no re-activation).
    pub already: bool,
}

impl Context {
    /// Creates or updates the profiles of every interface in `doc` (`virsh iface-define`).
    pub async fn define(&self, doc: &Document, o: DefineOptions) -> Result<DefineOutcome, VerbError> {
        let Checked { mut findings, forced, profiles } = self.checked(doc, false, o.force, "define").await?;
        let (defined, _) = self
            .changing(format!("define {}", names(doc)), async |j| {
                self.agent.define(Wanted { doc, profiles }, o.adopt, j).await
            })
            .await?;
        findings.extend(super::takeover_findings(&defined));
        Ok(DefineOutcome { defined, findings, forced })
    }

    /// Defines and starts everything in `doc`, as one step for the host.
    pub async fn apply(
        &self,
        doc: &Document,
        o: ApplyOptions,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<ApplyOutcome, VerbError> {
        // For a user, NetworkManager asks polkit about every action: asked beside the check.
        let (checked, allowed) = tokio::join!(self.checked(doc, true, o.force, "apply"), self.checkpoints_allowed());
        let (Checked { mut findings, forced, profiles }, allowed) = (checked?, allowed?);
        let mut protection = Protection::None;
        let store = self.store()?;
        let (defined, started) = self
            .changing(format!("apply {}", names(doc)), async |j| {
                let (s, p) = safety(j, store, o.checkpoint, allowed, o.rollback_timeout);
                protection = p;
                self.agent.apply(Wanted { doc, profiles }, o.adopt, o.timeout, s, progress).await
            })
            .await?;
        findings.extend(super::takeover_findings(&defined));
        ApplyOutcome { defined, started, findings, forced, protection }.verdict()
    }

    /// Applies `doc` like [`Context::apply`] but holds its checkpoint for `confirm` seconds: the
    /// caller asks the user, then calls [`Context::settle`]. Without that in time (the session
    /// that would answer died with the network), NetworkManager rolls back by itself.
    pub async fn apply_confirm(
        &self,
        doc: &Document,
        o: ApplyOptions,
        confirm: u32,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<(ApplyOutcome, Pending), VerbError> {
        let Checked { mut findings, forced, profiles } = self.checked(doc, true, o.force, "apply").await?;
        let (lock, claim) = self.lock(format!("apply --confirm {}", names(doc))).await?;
        if let Some(j) = self.open_journal().await? {
            return Err(VerbError::InTransaction { checkpoint: j.recorded_checkpoints().join(", ") });
        }
        let ((defined, started), held) = self
            .agent
            .apply_held(Wanted { doc, profiles }, o.adopt, o.timeout, confirm, self.store()?, progress)
            .await?;
        findings.extend(super::takeover_findings(&defined));
        let outcome = ApplyOutcome { defined, started, findings, forced, protection: Protection::Checkpoint };
        // The names are taken: other parties need not wait through the confirmation.
        drop(claim);
        let pending = Pending { held, _lock: lock };
        match outcome.verdict() {
            Ok(outcome) => Ok((outcome, pending)),
            Err(e) => {
                // Nothing to confirm: put the host back before saying why.
                let problems = self.agent.revert(pending.held).await;
                match problems.is_empty() {
                    true => Err(e),
                    false => Err(VerbError::RollbackIncomplete { problems }),
                }
            }
        }
    }

    /// Keeps (`keep`) or reverts a change [`Context::apply_confirm`] holds.
    pub async fn settle(&self, pending: Pending, keep: bool) -> Result<(), VerbError> {
        if keep {
            return Ok(self.agent.keep(pending.held).await?);
        }
        let problems = self.agent.revert(pending.held).await;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(VerbError::RollbackIncomplete { problems })
        }
    }

    /// Deletes an interface's profiles, only nmiface's (`virsh iface-undefine`), and the
    /// caller's taps on it (`tap add`). Returns how many profiles went.
    pub async fn undefine(&self, name: &str) -> Result<usize, VerbError> {
        self.changing(format!("undefine {name}"), async |j| {
            let found = self.agent.find(name).await?;
            // Only a bridge has taps; looking costs a read of every profile.
            let taps = match found.main.profile.conn_type() == Some(crate::nm::conn_type::BRIDGE) {
                true => self.agent.taps(Some(name)).await?,
                false => Vec::new(),
            };
            // The taps go too: journalled first, so a rollback brings them back.
            let mut j = j;
            if let Some(j) = j.as_deref_mut() {
                for t in &taps {
                    j.remember(&self.agent.client().with_secrets(t).await?);
                }
            }
            let n = self.agent.undefine(&found, j).await?;
            for t in &taps {
                self.agent.tap_remove(&t.profile.id).await?;
            }
            Ok(n + taps.len())
        })
        .await
    }

    /// Activates an interface and waits for the outcome (`virsh iface-start`).
    pub async fn start(
        &self,
        name: &str,
        timeout: Duration,
        force: bool,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<StartOutcome, VerbError> {
        let found = self.agent.find(name).await?;
        // A NIC whose own profile a running bridge took over: activating it would silently pull
        // the NIC out of the bridge, leaving both with the same addresses.
        if let Some(bridge) = self.agent.taken_over_by(&found).await? {
            return Err(crate::agent::AgentError::TakenOverByBridge { nic: found.name.clone(), bridge }.into());
        }
        let host = found.model().map_err(crate::agent::AgentError::from)?;
        let forced = gate(&self.agent.check(&host, &[], true).await?, true, force, "start")?;
        let _lock = self.lock(format!("start {name}")).await?;
        self.finish_leftover().await?;
        // A user's profile must not take a device someone else holds, nor a NAT subnet another
        // bridge serves (NetworkManager's dnsmasq could not bind: a false success).
        self.agent.refuse_others_at_start(&found).await?;
        if self.agent.is_running(&found).await? {
            return Ok(StartOutcome { forced, already: true });
        }
        self.agent.start(&found, timeout, progress).await?;
        Ok(StartOutcome { forced, already: false })
    }

    /// Deactivates an interface (`virsh iface-destroy`).
    pub async fn stop(&self, name: &str, timeout: Duration) -> Result<(), VerbError> {
        let _lock = self.lock(format!("stop {name}")).await?;
        self.finish_leftover().await?;
        let found = self.agent.find(name).await?;
        Ok(self.agent.stop(&found, timeout).await?)
    }
}
