//! A transaction's checkpoints: one per change inside it, over the devices that change binds
//! to (never one over every device: rolled back, it would also put back what others did to
//! their devices meanwhile), written ahead as an intent so that a crash between
//! CheckpointCreate and the journal write leaves a journal that can find the checkpoint.

use super::touched::DeviceScope;
use super::{Agent, AgentError};
use crate::nm_client::{boottime_ms, NmError};
use crate::transaction::{Intent, Journal, JournalKind, TxCheckpoint};
use std::collections::BTreeSet;

impl Agent {
    /// The journal of a new transaction (`virsh iface-begin`): it knows every profile that
    /// exists now, and takes no checkpoint: what the transaction will change is not known yet,
    /// and a checkpoint over every device would, rolled back, also put back what others did to
    /// their devices meanwhile. With `checkpoint`, each change inside takes one over the
    /// devices it binds to (`Agent::transaction_checkpoint`), rolled back by NetworkManager
    /// by itself `rollback_timeout` seconds after `begin`. Without (a user NetworkManager does
    /// not let take checkpoints) the journal alone protects: it restores the user's own
    /// profiles, not device state.
    pub async fn open_transaction(&self, rollback_timeout: u32, checkpoint: bool) -> Result<Journal, AgentError> {
        let known = self.nm.profiles().await?.into_iter().map(|s| s.profile.uuid).collect();
        Ok(Journal::transaction(rollback_timeout, known, checkpoint).in_scope(self.scope.clone()))
    }

    /// Before a change inside the transaction `j` (nothing for any other journal, or one the
    /// journal alone protects): a checkpoint over the existing devices `scope` binds to that
    /// none of the transaction's checkpoints covers yet (an earlier one holds the older state,
    /// the one a rollback wants) and that the transaction did not create, with ALLOW_OVERLAPPING
    /// (another party's checkpoint may cover them) and what is left of the transaction's
    /// timeout, so NetworkManager still rolls everything back by itself when it expires.
    /// Written ahead as an intent, then recorded, in `j`; so are the names the change may
    /// create (disconnected by the undo).
    pub(crate) async fn transaction_checkpoint(&self, j: &mut Journal, scope: &DeviceScope) -> Result<(), AgentError> {
        if j.kind != JournalKind::Transaction || !j.device_checkpoints {
            return Ok(());
        }
        let (covered, new) = self.covered(scope, &j.new_devices).await?;
        j.new_devices.extend(new);
        let already: BTreeSet<&str> = j.checkpoints.iter().flat_map(|c| c.devices.iter().map(String::as_str)).collect();
        let devices: Vec<String> = covered.into_iter().filter(|d| !already.contains(d.as_str())).collect();
        if devices.is_empty() {
            j.sync()?;
            return Ok(());
        }
        let timeout = match j.seconds_left() {
            None => 0,
            Some(0) => return Err(AgentError::CheckpointGone(expired_words(j))),
            Some(s) => s,
        };
        let own = j.recorded_checkpoints().into_iter().map(str::to_string).collect::<Vec<_>>();
        let leftovers = self.overlapping(&devices, &own).await?;
        if !leftovers.is_empty() {
            j.sync()?;
            return Err(AgentError::LeftoverCheckpoints(leftovers));
        }
        j.intent =
            Some(Intent { devices: devices.clone(), after: boottime_ms().unwrap_or(0), rollback_timeout: timeout });
        j.sync()?;
        let created = self.nm.checkpoint_create_overlapping(&devices, timeout, self.tracks_global_dns()).await;
        j.intent = None;
        if let Ok(path) = &created {
            j.checkpoints.push(TxCheckpoint { path: path.clone(), devices });
        }
        j.sync()?;
        created.map(|_| ()).map_err(Into::into)
    }

    /// The checkpoints NetworkManager has that cover one of `devices`, other than `own`: a
    /// crashed run's orphan there would roll this change back at its timeout.
    pub(super) async fn overlapping(&self, devices: &[String], own: &[String]) -> Result<Vec<String>, AgentError> {
        let infos = self.nm.checkpoint_infos().await?;
        Ok(infos
            .into_iter()
            .filter(|c| !own.contains(&c.path) && c.devices.iter().any(|d| devices.contains(d)))
            .map(|c| c.path)
            .collect())
    }

    /// The checkpoint a journal's intent says may have been created and never recorded (the
    /// process died between CheckpointCreate and the journal write): one over exactly the
    /// intent's devices (every device: any), with its timeout, made at or after the intent was
    /// written, and recorded nowhere in the journal. The oldest such (this user's lock was held
    /// from the intent on, so a later one is not this journal's).
    pub(crate) async fn intended(&self, j: &Journal) -> Result<Option<String>, NmError> {
        let Some(intent) = &j.intent else { return Ok(None) };
        let recorded = j.recorded_checkpoints();
        let want: BTreeSet<&str> = intent.devices.iter().map(String::as_str).collect();
        let mut found: Vec<_> = self
            .nm
            .checkpoint_infos()
            .await?
            .into_iter()
            .filter(|c| !recorded.contains(&c.path.as_str()))
            .filter(|c| c.rollback_timeout == intent.rollback_timeout)
            // The boot clock read from /proc/uptime is to 10 ms: a little slack.
            .filter(|c| c.created + 1000 >= intent.after)
            .filter(|c| want.is_empty() || c.devices.iter().map(String::as_str).collect::<BTreeSet<_>>() == want)
            .collect();
        found.sort_by_key(|c| c.created);
        Ok(found.into_iter().next().map(|c| c.path))
    }

    /// Drops a checkpoint, keeping what was changed.
    pub async fn drop_checkpoint(&self, checkpoint: &str) -> Result<(), AgentError> {
        match self.nm.checkpoint_destroy(checkpoint).await {
            Err(NmError::NoSuchCheckpoint(_)) => Err(AgentError::CheckpointGone(checkpoint.to_string())),
            r => Ok(r?),
        }
    }

    /// The checkpoints NetworkManager has now.
    pub async fn checkpoints(&self) -> Result<Vec<String>, AgentError> {
        Ok(self.nm.checkpoints().await?)
    }
}

/// Why a transaction counts as expired, for messages.
pub(crate) fn expired_words(j: &Journal) -> String {
    match j.recorded_checkpoints().as_slice() {
        [] => format!(
            "(none was taken; its {} s timeout passed, when it would have been rolled back)",
            j.rollback_timeout
        ),
        cps => cps.join(", "),
    }
}
