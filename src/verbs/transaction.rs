//! Transactions (`virsh iface-begin`, `iface-commit`, `iface-rollback`) on NetworkManager
//! checkpoints, recorded in the runtime journal so the next nmiface process finds them.

use super::{Context, VerbError};
use crate::agent::AgentError;
use crate::transaction::Journal;

impl Context {
    /// Opens a transaction: a checkpoint over all devices that NetworkManager rolls back by
    /// itself after `rollback_timeout` seconds (0: never) unless committed.
    pub async fn begin(&self, rollback_timeout: u32) -> Result<Journal, VerbError> {
        let _lock = self.lock("begin".into()).await?;
        if let Some(j) = self.store.load()? {
            let existing = self.agent.checkpoints().await?;
            if existing.contains(&j.checkpoint) {
                let now = Journal::new(String::new(), 0, None).begun;
                return Err(AgentError::TransactionRunning {
                    checkpoint: j.checkpoint,
                    age: now.saturating_sub(j.begun),
                }
                .into());
            }
            self.store.clear()?; // stale: its checkpoint was rolled back or destroyed
        }
        let j = self.agent.open_transaction(rollback_timeout).await?;
        self.store.save(&j)?;
        Ok(j)
    }

    /// Keeps the transaction's changes; `checkpoint` names a leftover one instead. Returns the
    /// checkpoint dropped.
    pub async fn commit(&self, checkpoint: Option<&str>) -> Result<String, VerbError> {
        let _lock = self.lock("commit".into()).await?;
        if let Some(cp) = checkpoint {
            self.agent.drop_checkpoint(cp).await?;
            return Ok(cp.to_string());
        }
        let Some(j) = self.store.load()? else {
            let leftovers = self.agent.checkpoints().await?;
            return Err(AgentError::NoTransaction { what: "commit", leftovers }.into());
        };
        self.store.clear()?;
        self.agent.drop_checkpoint(&j.checkpoint).await?;
        Ok(j.checkpoint)
    }

    /// Puts the host back as it was at `begin`; `checkpoint` names a leftover one instead.
    pub async fn rollback(&self, checkpoint: Option<&str>) -> Result<(), VerbError> {
        let _lock = self.lock("rollback".into()).await?;
        let j = match checkpoint {
            Some(cp) => Journal::new(cp.to_string(), 0, Some(Default::default())),
            None => match self.store.load()? {
                Some(j) => j,
                None => {
                    let leftovers = self.agent.checkpoints().await?;
                    return Err(AgentError::NoTransaction { what: "rollback", leftovers }.into());
                }
            },
        };
        let problems = self.agent.undo(&j).await;
        if checkpoint.is_none() {
            self.store.clear()?;
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(VerbError::RollbackIncomplete { problems })
        }
    }
}
