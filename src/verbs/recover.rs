//! After an interrupted change: rolling back what it left, and saying what was found.

use super::{Context, VerbError};
use crate::transaction::{Journal, JournalKind};

/// What [`Context::recover`] found after an interrupted verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// No change was under way (it had not started, or had finished).
    Nothing,
    /// The interrupted change was rolled back.
    RolledBack,
    /// The change is part of the open transaction: `rollback` undoes it, `commit` keeps it.
    InTransaction,
}

impl Context {
    /// Rolls back a change whose process died before it finished (its journal was written ahead).
    pub(super) async fn finish_interrupted(&self, j: &Journal, pid: u32) -> Result<(), VerbError> {
        (self.notice)(&format!("a change by process {pid} was interrupted; rolling it back first"));
        let problems = self.agent.undo(j).await;
        if !problems.is_empty() {
            return Err(VerbError::RollbackIncomplete { problems });
        }
        j.discard()?;
        Ok(())
    }

    /// After an interrupt, before the change's future is dropped: keeps running it only until
    /// no NetworkManager call of it is in flight, at most `grace`. NetworkManager carries out a
    /// call whose caller went away (an add waiting on polkit lands later), so dropping the
    /// change mid-call would let the rollback miss what the call makes. Returns the change's
    /// result if it finished meanwhile (then there is nothing to roll back: say so).
    pub async fn land_calls<F: std::future::Future>(
        &self,
        mut change: std::pin::Pin<&mut F>,
        grace: std::time::Duration,
    ) -> Option<F::Output> {
        let mut calls = self.agent.client().calls_in_flight();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            // Read after the change's last step ran: 0 means it is between calls (waiting on a
            // signal, or about to start one it has not sent).
            if *calls.borrow_and_update() == 0 {
                return None;
            }
            tokio::select! {
                r = change.as_mut() => return Some(r),
                _ = calls.changed() => {}
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    /// After an interrupted verb (SIGINT, SIGTERM): rolls back the change it left, if any.
    /// An open transaction stays open: its journal was written ahead of every change, so
    /// `rollback` still restores everything. Says what it found, for the caller's message.
    pub async fn recover(&self) -> Result<Recovered, VerbError> {
        let _lock = self.lock("recover".into()).await?;
        let Some(j) = self.store()?.load()? else { return Ok(Recovered::Nothing) };
        match j.kind {
            // This very process's change: no notice about "a change by process N".
            JournalKind::Change { pid } if pid == std::process::id() => {
                let problems = self.agent.undo(&j).await;
                if !problems.is_empty() {
                    return Err(VerbError::RollbackIncomplete { problems });
                }
                j.discard()?;
                Ok(Recovered::RolledBack)
            }
            JournalKind::Change { pid } => {
                self.finish_interrupted(&j, pid).await?;
                Ok(Recovered::RolledBack)
            }
            JournalKind::Transaction => Ok(Recovered::InTransaction),
        }
    }
}
