//! Transactions (`virsh iface-begin`, `iface-commit`, `iface-rollback`) on NetworkManager
//! checkpoints, recorded in the runtime journal so the next nmiface process finds them.

use super::{Context, VerbError};
use crate::agent::AgentError;
use crate::transaction::{Journal, JournalKind};

impl Context {
    /// The open transaction's journal, if there is one (read without the lock: for showing
    /// how the user is protected, not for changing anything).
    pub fn open_transaction(&self) -> Result<Option<Journal>, VerbError> {
        Ok(self.store()?.load()?.filter(|j| j.kind == JournalKind::Transaction))
    }

    /// Opens a transaction: its journal, and no checkpoint yet; each change inside takes one
    /// over the devices it binds to, which NetworkManager rolls back by itself
    /// `rollback_timeout` seconds (0: never) after `begin` unless committed.
    pub async fn begin(&self, rollback_timeout: u32) -> Result<Journal, VerbError> {
        let _lock = self.lock("begin".into()).await?;
        if let Some(j) = self.open_journal().await? {
            let now = Journal::new(String::new(), 0, None).begun;
            return Err(AgentError::TransactionRunning {
                checkpoint: j.recorded_checkpoints().join(", "),
                age: now.saturating_sub(j.begun),
            }
            .into());
        }
        let allowed = self.checkpoints_allowed().await?;
        let j = self.agent.open_transaction(rollback_timeout, allowed).await?;
        self.store()?.save(&j)?;
        Ok(j)
    }

    /// Keeps the transaction's changes; `checkpoint` names a leftover one instead. Returns the
    /// checkpoints dropped (comma-separated; empty when there were none).
    pub async fn commit(&self, checkpoint: Option<&str>) -> Result<String, VerbError> {
        let _lock = self.lock("commit".into()).await?;
        if let Some(cp) = checkpoint {
            self.agent.drop_checkpoint(cp).await?;
            return Ok(cp.to_string());
        }
        let j = match self.store()?.load()? {
            Some(j) if j.kind == JournalKind::Transaction => j,
            other => {
                if let Some(j) = other {
                    // An interrupted change, not a transaction: finish it, then say so.
                    if let JournalKind::Change { pid } = j.kind {
                        self.finish_interrupted(&j, pid).await?;
                    }
                }
                let leftovers = self.agent.checkpoints().await?;
                return Err(AgentError::NoTransaction { what: "commit", leftovers }.into());
            }
        };
        // The changes stay either way; an expired checkpoint is reported after forgetting it.
        // One created and never recorded (the intent) goes too.
        let mut all: Vec<String> = self.agent.intended(&j).await?.into_iter().collect();
        all.extend(j.recorded_checkpoints().into_iter().map(str::to_string));
        j.discard()?;
        let mut gone = None;
        for cp in &all {
            if let Err(e) = self.agent.drop_checkpoint(cp).await {
                match e {
                    AgentError::CheckpointGone(_) => gone = Some(e),
                    e => return Err(e.into()),
                }
            }
        }
        if let Some(e) = gone {
            return Err(e.into());
        }
        Ok(all.join(", "))
    }

    /// Puts the host back as it was at `begin`; `checkpoint` names a leftover one instead. An
    /// interrupted change's journal is rolled back the same way.
    pub async fn rollback(&self, checkpoint: Option<&str>) -> Result<(), VerbError> {
        let _lock = self.lock("rollback".into()).await?;
        let j = match checkpoint {
            Some(cp) => Journal::new(cp.to_string(), 0, Some(Default::default())).in_scope(self.agent.scope().clone()),
            None => match self.store()?.load()? {
                Some(j) => j,
                None => {
                    let leftovers = self.agent.checkpoints().await?;
                    return Err(AgentError::NoTransaction { what: "rollback", leftovers }.into());
                }
            },
        };
        if let JournalKind::Change { pid } = j.kind {
            (self.notice)(&format!("a change by process {pid} was interrupted; rolling it back"));
        }
        let problems = self.agent.undo(&j).await;
        if !problems.is_empty() {
            // The journal stays, so a second rollback can finish what this one could not.
            return Err(VerbError::RollbackIncomplete { problems });
        }
        j.discard()?;
        Ok(())
    }
}
