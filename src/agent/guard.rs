//! How a change protects the host: a NetworkManager checkpoint held for one atomic change (the
//! guard), or the user's open transaction, and the one way back (undo: checkpoint rollback, then
//! the journalled profiles written back).
//!
//! An atomic change's checkpoint covers only the devices the change binds to ([`DeviceScope`]):
//! a checkpoint over every device, rolled back, would also put back what other users did to
//! their devices meanwhile (NetworkManager restores every device in it, and DISCONNECT_NEW_DEVICES
//! disconnects every device outside it). NetworkManager rolls it back by itself when its timeout
//! passes, even if nmiface died. It does not restore a profile changed or deleted while
//! inactive, nor delete one added; the journal does, and the undo disconnects the devices of
//! the change's names that did not exist when it began (see [`Journal::new_devices`]).

use super::touched::DeviceScope;
use super::{Agent, AgentError, RestoreProblem};
use crate::nm_client::{boottime_ms, bounded, NmClient, NmError, BLOCK_AUTOCONNECT, TO_DISK};
use crate::transaction::{Intent, Journal, Store};
use std::collections::BTreeSet;
use std::time::Duration;

/// How a change protects the host.
pub enum Safety<'j> {
    /// Own checkpoint: any failure rolls everything back; NetworkManager rolls back by itself
    /// if nmiface dies (after this many seconds without a keep-alive).
    Checkpoint {
        /// Seconds NetworkManager waits for a keep-alive before rolling back.
        rollback_timeout: u32,
        /// Where the change's journal is written ahead, so an interrupted change can be
        /// finished by the next run (`None`: kept in memory only).
        store: Option<&'j Store>,
    },
    /// Inside the user's transaction: changes are journalled; the user commits or rolls back.
    Transaction(&'j mut Journal),
    /// The journal alone, for a user NetworkManager does not let take checkpoints: a failure
    /// restores the profiles this change touched (the user's own) and deletes those it added;
    /// device state is not rolled back, and nothing rolls back by itself if nmiface dies (the
    /// next run finishes the journal, written ahead to `store`).
    Journal {
        /// Where the change's journal is written ahead.
        store: Option<&'j Store>,
    },
    /// No protection (`--no-checkpoint`).
    Unprotected,
}

/// How a guarded change failed.
pub(crate) enum Guarded<T> {
    /// Before or without a checkpoint: nothing was rolled back.
    Failed(AgentError),
    /// The checkpoint was rolled back; `result` is what the steps gave.
    RolledBack {
        /// The steps' result (an `Ok` that still counted as a failure, or their error).
        result: Result<T, AgentError>,
        /// What could not be restored.
        problems: Vec<RestoreProblem>,
        /// A checkpoint was rolled back (device state too), not only the journal's profiles.
        checkpoint: bool,
    },
}

/// One atomic change's checkpoint, kept alive until released or undone.
struct Guard {
    journal: Journal,
    /// `None` when no checkpoint was taken (the change binds to no existing device).
    keepalive: Option<tokio::task::JoinHandle<()>>,
}

impl Guard {
    fn stop_keepalive(&self) {
        if let Some(k) = &self.keepalive {
            k.abort();
        }
    }
}

/// A change made under a checkpoint that is held until the user confirms it (`apply
/// --confirm`): NetworkManager rolls the devices back by itself when the confirmation time
/// passes without [`Agent::keep`], even if nmiface is gone (its journal, written ahead, lets the
/// next run finish the rest).
pub struct Held {
    journal: Journal,
}

impl Held {
    /// The checkpoint NetworkManager rolls back to.
    pub fn checkpoint(&self) -> &str {
        &self.journal.checkpoint
    }
}

impl Agent {
    /// Runs `steps` under `safety`. With a checkpoint, a step error, or a result `failed` calls
    /// a failure, rolls the host back and restores the journalled profiles; without one, the
    /// result is returned as it is. A checkpoint covers the devices of `scope` alone.
    pub(crate) async fn guarded<T>(
        &self,
        safety: Safety<'_>,
        scope: &DeviceScope,
        steps: impl AsyncFnOnce(Option<&mut Journal>) -> Result<T, AgentError>,
        failed: impl FnOnce(&T) -> bool,
    ) -> Result<T, Guarded<T>> {
        match safety {
            Safety::Unprotected => steps(None).await.map_err(Guarded::Failed),
            Safety::Transaction(j) => {
                self.transaction_checkpoint(j, scope).await.map_err(Guarded::Failed)?;
                steps(Some(j)).await.map_err(Guarded::Failed)
            }
            Safety::Journal { store } => {
                let mut journal = Journal::for_change(String::new(), 0, store.cloned())
                    .map(|j| j.in_scope(self.scope.clone()))
                    .map_err(|e| Guarded::Failed(e.into()))?;
                match steps(Some(&mut journal)).await {
                    Ok(t) if !failed(&t) => {
                        journal.discard().map_err(|e| Guarded::Failed(e.into()))?;
                        Ok(t)
                    }
                    // Refused before it changed anything: there is nothing to restore, and
                    // saying "restored" would claim work that was not done.
                    Err(e) if journal.saved.is_empty() && journal.added.is_empty() => {
                        journal.discard().map_err(|e| Guarded::Failed(e.into()))?;
                        Err(Guarded::Failed(e))
                    }
                    result => {
                        let mut problems = self.undo(&journal).await;
                        if problems.is_empty() {
                            if let Err(e) = journal.discard() {
                                problems.push(RestoreProblem::Journal(e));
                            }
                        }
                        Err(Guarded::RolledBack { result, problems, checkpoint: false })
                    }
                }
            }
            Safety::Checkpoint { rollback_timeout, store } => {
                let mut guard = self.guard(rollback_timeout, store, Some(scope)).await.map_err(Guarded::Failed)?;
                match steps(Some(&mut guard.journal)).await {
                    Ok(t) if !failed(&t) => {
                        guard.stop_keepalive();
                        if let Some(cp) = guard.journal.checkpoint() {
                            self.nm.checkpoint_destroy(cp).await.map_err(|e| Guarded::Failed(e.into()))?;
                        }
                        guard.journal.discard().map_err(|e| Guarded::Failed(e.into()))?;
                        Ok(t)
                    }
                    // Devices are put back either way: those that existed by the checkpoint,
                    // those the change created by the undo's disconnect.
                    result => {
                        guard.stop_keepalive();
                        let mut problems = self.undo(&guard.journal).await;
                        if problems.is_empty() {
                            if let Err(e) = guard.journal.discard() {
                                problems.push(RestoreProblem::Journal(e));
                            }
                        }
                        Err(Guarded::RolledBack { result, problems, checkpoint: true })
                    }
                }
            }
        }
    }

    /// Runs `steps` under a checkpoint like [`Safety::Checkpoint`], but on success holds the
    /// checkpoint, rolling back by itself `confirm` seconds from now, instead of dropping it.
    pub(crate) async fn held<T>(
        &self,
        confirm: u32,
        store: &Store,
        steps: impl AsyncFnOnce(Option<&mut Journal>) -> Result<T, AgentError>,
        failed: impl FnOnce(&T) -> bool,
    ) -> Result<(T, Held), Guarded<T>> {
        // Kept alive at a comfortable timeout while the change runs, then set to `confirm`.
        // Over every device, with DISCONNECT_NEW_DEVICES: a held change is undone by
        // NetworkManager alone when the confirmation does not come (the session that would
        // answer died with the network), and only that flag lets NetworkManager take down a
        // device the change created (a new bridge holding the default route).
        let mut guard = self.guard(confirm.max(20), Some(store), None).await.map_err(Guarded::Failed)?;
        match steps(Some(&mut guard.journal)).await {
            Ok(t) if !failed(&t) => {
                guard.stop_keepalive();
                match self.nm.checkpoint_extend(&guard.journal.checkpoint, confirm).await {
                    Ok(()) => Ok((t, Held { journal: guard.journal })),
                    Err(e) => {
                        let problems = self.undo(&guard.journal).await;
                        Err(Guarded::RolledBack { result: Err(e.into()), problems, checkpoint: true })
                    }
                }
            }
            result => {
                guard.stop_keepalive();
                let problems = self.undo(&guard.journal).await;
                if problems.is_empty() {
                    let _ = guard.journal.discard();
                }
                Err(Guarded::RolledBack { result, problems, checkpoint: true })
            }
        }
    }

    /// Keeps a held change: its checkpoint is dropped.
    pub async fn keep(&self, h: Held) -> Result<(), AgentError> {
        self.drop_checkpoint(&h.journal.checkpoint).await?;
        Ok(h.journal.discard()?)
    }

    /// Reverts a held change (not confirmed); returns what could not be restored.
    pub async fn revert(&self, h: Held) -> Vec<RestoreProblem> {
        let mut problems = self.undo(&h.journal).await;
        if problems.is_empty() {
            if let Err(e) = h.journal.discard() {
                problems.push(RestoreProblem::Journal(e));
            }
        }
        problems
    }

    /// Creates a checkpoint for one atomic change, with its journal written ahead to `store`,
    /// and keeps it alive while the change runs. With `scope`, over the existing devices it
    /// binds to; without, over every device (see [`NmClient::checkpoint_create`]).
    async fn guard(
        &self,
        rollback_timeout: u32,
        store: Option<&Store>,
        scope: Option<&DeviceScope>,
    ) -> Result<Guard, AgentError> {
        let (devices, new_devices) = match scope {
            Some(s) => {
                let (covered, new) = self.covered(s, &BTreeSet::new()).await?;
                (Some(covered), new)
            }
            None => (None, BTreeSet::new()),
        };
        // Over every device: any checkpoint is in the way (NetworkManager would refuse the
        // overlap). Over some: only one that covers one of them (another party's transaction
        // on other devices is not a leftover of this change's).
        let existing = match devices.as_deref() {
            None => self.nm.checkpoints().await?,
            Some([]) => Vec::new(),
            Some(d) => self.overlapping(d, &[]).await?,
        };
        if !existing.is_empty() {
            return Err(AgentError::LeftoverCheckpoints(existing));
        }
        // No existing device to cover: no checkpoint. An empty device list would mean every
        // device to NetworkManager, and a checkpoint over none would not help: without
        // DISCONNECT_NEW_DEVICES its rollback leaves a device the change created alone. The
        // journal protects such a change: the undo disconnects the devices it created and
        // deletes the profiles it added (NetworkManager then removes their software devices),
        // and if nmiface dies, the next run finishes that journal (nothing of NetworkManager's
        // rolls back by itself, but then nothing that existed was touched).
        let mut journal = Journal::for_change(String::new(), 0, store.cloned())?.in_scope(self.scope.clone());
        journal.new_devices = new_devices;
        let checkpoint = match devices.as_deref() {
            Some([]) => String::new(),
            d => {
                // Written ahead: killed right after the create, the journal still says a
                // checkpoint may exist, and the next run finds it ([`Agent::intended`]).
                journal.intent = Some(Intent {
                    devices: d.map(<[String]>::to_vec).unwrap_or_default(),
                    after: boottime_ms().unwrap_or(0),
                    rollback_timeout,
                });
                journal.sync()?;
                match self.nm.checkpoint_create(d, rollback_timeout, self.tracks_global_dns()).await {
                    Ok(cp) => cp,
                    Err(e) => {
                        let _ = journal.discard();
                        return Err(e.into());
                    }
                }
            }
        };
        // Recorded in memory; on disk with the change's first write (until then the intent
        // finds it).
        journal.intent = None;
        journal.rollback_timeout = if checkpoint.is_empty() { 0 } else { rollback_timeout };
        journal.checkpoint = checkpoint.clone();
        let keepalive = (!checkpoint.is_empty()).then(|| keep_alive(self.nm.clone(), checkpoint, rollback_timeout));
        Ok(Guard { journal, keepalive })
    }

    /// Rolls back to the journal's checkpoint (devices), deletes the profiles nmiface added (and
    /// only those: the checkpoint is taken without NetworkManager's delete-new-profiles flag, so
    /// a profile another user or tool added meanwhile stays), then restores the profiles it
    /// saved. Returns what could not be restored.
    pub async fn undo(&self, j: &Journal) -> Vec<RestoreProblem> {
        // In the scope the changes were made in, whoever finishes them.
        if j.scope != self.scope {
            return Box::pin(self.with_client(self.nm.clone()).with_scope(j.scope.clone()).undo(j)).await;
        }
        let mut problems = Vec::new();
        // Newest first: rolling an older checkpoint back destroys the younger ones that overlap
        // it, unrolled. One created but never recorded (the intent) is the newest of all.
        let mut checkpoints: Vec<String> = match self.intended(j).await {
            Ok(found) => found.into_iter().collect(),
            Err(NmError::Timeout) => return vec![RestoreProblem::Checkpoint(NmError::Timeout)],
            Err(e) => {
                problems.push(RestoreProblem::Checkpoint(e));
                Vec::new()
            }
        };
        checkpoints.extend(j.recorded_checkpoints().into_iter().map(str::to_string));
        for cp in &checkpoints {
            match self.nm.checkpoint_rollback(cp).await {
                Ok(failed) => problems.extend(failed.into_iter().map(RestoreProblem::Device)),
                // Gone: NetworkManager already rolled back when the timeout passed (or
                // restarted).
                Err(NmError::NoSuchCheckpoint(_)) => {}
                // Hung: every further call would wait as long; the journal stays for the next
                // run.
                Err(NmError::Timeout) => return vec![RestoreProblem::Checkpoint(NmError::Timeout)],
                Err(e) => problems.push(RestoreProblem::Checkpoint(e)),
            }
        }
        problems.extend(self.disconnect_new(j).await);
        let added: Vec<String> = j.added.iter().map(ToString::to_string).collect();
        let removed = bounded(&added, |uuid| async move {
            match self.nm.profile_by_uuid(uuid).await {
                // Still nmiface's own: it was added by this change.
                Ok(Some(s)) if self.scope.owns(&s.profile) => self.nm.delete(&s.path).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }
            .map_err(|error| RestoreProblem::Profile { id: uuid.clone(), error })
        })
        .await;
        problems.extend(removed.into_iter().filter_map(Result::err));
        let restored = bounded(&j.saved, |p| async move {
            let error = |error| RestoreProblem::Profile { id: p.id.clone(), error };
            let exact = p.without_legacy_duplicates();
            let r = match self.nm.profile_by_uuid(&p.uuid.to_string()).await.map_err(error)? {
                Some(s) => self.nm.update(&s.path, &exact, TO_DISK | BLOCK_AUTOCONNECT).await,
                None => self.nm.add(&exact, TO_DISK | BLOCK_AUTOCONNECT).await.map(|_| ()),
            };
            r.map_err(error)
        })
        .await;
        problems.extend(restored.into_iter().filter_map(Result::err));
        problems
    }
}

/// Extends the checkpoint's timeout while work goes on, so a short timeout still covers a slow
/// activation, and a crash leaves the host to NetworkManager's rollback within seconds.
fn keep_alive(nm: NmClient, checkpoint: String, rollback_timeout: u32) -> tokio::task::JoinHandle<()> {
    let period = Duration::from_millis(u64::from(rollback_timeout.max(3)) * 1000 / 3);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            if nm.checkpoint_extend(&checkpoint, rollback_timeout).await.is_err() {
                return;
            }
        }
    })
}

impl Agent {
    /// Whether this daemon's checkpoints can track NetworkManager's internal global DNS.
    pub(super) fn tracks_global_dns(&self) -> bool {
        crate::nm::supports(self.version, crate::nm::NmFeature::CheckpointTrackGlobalDns)
    }
}
