//! The lock and the journal every change runs under: an interrupted change left by a process
//! that is gone is finished first; an open transaction's journal is handed to the change, or
//! refused when its scope is another's or it expired.

use super::{whose, Context, VerbError, LOCK_WAIT};
use crate::agent::AgentError;
use crate::transaction::{Claim, Journal, JournalKind, Lock, Store, TxError};

impl Context {
    /// The lock and journal's place, or why there is none.
    pub(super) fn store(&self) -> Result<&Store, VerbError> {
        match &self.store {
            Some(s) => Ok(s),
            // Asked again for the typed reason (the directory may have been fixed meanwhile,
            // but this context was built without it: a change must not run half-protected).
            None => Err(Store::for_bus(&self.bus_id).err().unwrap_or_else(|| TxError::NoRuntimeDir {
                why: "it appeared after nmiface started; run again".into(),
            }))?,
        }
    }

    /// The lock that serialises this party's changes to this NetworkManager, waited for
    /// without blocking the runtime's thread, at most [`LOCK_WAIT`]; then the host-wide claim
    /// that keeps parties from taking the same name at once (always in that order), at most
    /// [`crate::transaction::CLAIM_WAIT`]. Both are held until the returned pair is dropped.
    pub(super) async fn lock(&self, what: String) -> Result<(Lock, Claim), VerbError> {
        let wait = |holder: &str| (self.notice)(&format!("waiting for another nmiface ({holder}) to finish"));
        let store = self.store()?;
        let lock = store.lock(&what, LOCK_WAIT, &wait).await?;
        let claim = crate::transaction::claim(store.key(), crate::transaction::CLAIM_WAIT, &|w| (self.notice)(w)).await;
        Ok((lock, claim))
    }

    /// The journal on disk, once the lock is held: an interrupted change (its process is gone,
    /// since we hold the lock) is rolled back first; an open transaction whose checkpoint is
    /// gone is refused rather than trusted.
    pub(super) async fn open_journal(&self) -> Result<Option<Journal>, VerbError> {
        let Some(j) = self.store()?.load()? else { return Ok(None) };
        match j.kind {
            JournalKind::Change { pid } => {
                self.finish_interrupted(&j, pid).await?;
                Ok(None)
            }
            JournalKind::Transaction => {
                if j.scope != *self.agent.scope() {
                    return Err(VerbError::OtherScope { open: whose(&j.scope), asked: whose(self.agent.scope()) });
                }
                if self.expired(&j).await? {
                    // What NetworkManager's own rollback at the timeout did, or would have done
                    // over every device before: every device the transaction covered is back
                    // (one a younger checkpoint covers still is rolled back now), and the
                    // devices it created are disconnected. Its profiles stay for `rollback`
                    // (restores them) or `commit` (keeps them).
                    let mut devices_only = j.clone();
                    devices_only.saved.clear();
                    devices_only.added.clear();
                    let problems = self.agent.undo(&devices_only).await;
                    if !problems.is_empty() {
                        return Err(VerbError::RollbackIncomplete { problems });
                    }
                    return Err(VerbError::TransactionExpired { checkpoint: crate::agent::expired_words(&j) });
                }
                Ok(Some(j))
            }
        }
    }

    /// Whether the open transaction `j` expired: NetworkManager rolled back (a recorded
    /// checkpoint is gone: its timeout passed, or it restarted), or, with none recorded, the
    /// transaction's timeout passed (when its checkpoints would have rolled back).
    pub(super) async fn expired(&self, j: &Journal) -> Result<bool, VerbError> {
        if !j.protects_devices() {
            return Ok(false);
        }
        let recorded = j.recorded_checkpoints();
        if recorded.is_empty() {
            return Ok(j.seconds_left() == Some(0));
        }
        let existing = self.agent.checkpoints().await?;
        Ok(recorded.iter().any(|cp| !existing.iter().any(|e| e == cp)))
    }

    /// With the lock held: an interrupted change's journal (its process is gone, since we hold
    /// the lock) is rolled back first, whatever verb comes next (start, stop, tap remove too,
    /// not only the changes that read the journal anyway).
    pub(super) async fn finish_leftover(&self) -> Result<(), VerbError> {
        if let Some(j) = self.store()?.load()? {
            if let JournalKind::Change { pid } = j.kind {
                self.finish_interrupted(&j, pid).await?;
            }
        }
        Ok(())
    }

    /// Runs a change under the lock, with the open transaction's journal if there is one, and
    /// saves that journal afterwards (also when the change failed: it records what was touched).
    pub(super) async fn changing<T>(
        &self,
        what: String,
        change: impl AsyncFnOnce(Option<&mut Journal>) -> Result<T, AgentError>,
    ) -> Result<T, VerbError> {
        let _lock = self.lock(what).await?;
        let mut journal = self.open_journal().await?;
        let r = change(journal.as_mut()).await;
        if let Some(j) = &journal {
            j.sync()?;
        }
        Ok(r?)
    }
}
