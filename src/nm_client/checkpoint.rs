//! NetworkManager checkpoints: a snapshot of some devices' (or every device's) state and active
//! profile that NM restores on request, or by itself when the rollback timeout passes (even if
//! nmiface died).

use super::{NmClient, NmError};
use tracing::debug;
use zbus::zvariant::ObjectPath;

/// Delete profiles added after the checkpoint on rollback (NM 1.6).
pub const DELETE_NEW_CONNECTIONS: u32 = 0x02;
/// Disconnect devices that appeared after the checkpoint on rollback (NM 1.6).
pub const DISCONNECT_NEW_DEVICES: u32 = 0x04;
/// Let the checkpoint cover devices another checkpoint covers already (NM 1.12). Rolling back
/// the older one destroys the younger overlapping ones without rolling them back.
pub const ALLOW_OVERLAPPING: u32 = 0x08;
/// Also restore NM's internal global DNS (NM 1.48, backported to 1.46.2).
pub const TRACK_INTERNAL_GLOBAL_DNS: u32 = 0x20;

/// A device a rollback could not restore, with NM's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackFailure {
    /// The device's object path.
    pub device: String,
    /// NMRollbackResult in words.
    pub reason: &'static str,
}

impl NmClient {
    /// Creates a checkpoint. `devices` (object paths) given: over those devices alone, restoring
    /// them and nothing else on rollback. `None`: over every device, with DISCONNECT_NEW_DEVICES
    /// (a rollback also disconnects every device that appeared meanwhile, whoever started it):
    /// for a transaction or a held change, which must be undone before it is known what they
    /// touch, or by NetworkManager alone. An empty list is refused here, since NetworkManager
    /// reads an empty list as "all devices".
    ///
    /// With `track_dns` (the daemon's version has TRACK_INTERNAL_GLOBAL_DNS) that flag is tried
    /// first and dropped if the daemon refuses it (NM rejects unknown bits with "Invalid
    /// flags"); without, it is not tried at all: every apply on NetworkManager 1.42 paid for a
    /// refused call before the one it took.
    pub async fn checkpoint_create(
        &self,
        devices: Option<&[String]>,
        rollback_timeout: u32,
        track_dns: bool,
    ) -> Result<String, NmError> {
        self.checkpoint_create_flags(devices, rollback_timeout, track_dns, 0).await
    }

    /// [`NmClient::checkpoint_create`] over `devices` with ALLOW_OVERLAPPING: for a change
    /// inside a transaction, whose devices another party's checkpoint may cover already.
    pub async fn checkpoint_create_overlapping(
        &self,
        devices: &[String],
        rollback_timeout: u32,
        track_dns: bool,
    ) -> Result<String, NmError> {
        self.checkpoint_create_flags(Some(devices), rollback_timeout, track_dns, ALLOW_OVERLAPPING).await
    }

    async fn checkpoint_create_flags(
        &self,
        devices: Option<&[String]>,
        rollback_timeout: u32,
        track_dns: bool,
        extra: u32,
    ) -> Result<String, NmError> {
        // Not DELETE_NEW_CONNECTIONS: a rollback may delete only what nmiface added (its
        // journal knows), never a profile another user or tool added meanwhile. Nor, over a
        // device list, DISCONNECT_NEW_DEVICES: NetworkManager would disconnect every device
        // outside the list, other users' too.
        let (paths, base) = match devices {
            Some([]) => {
                return Err(NmError::InvalidArguments { message: "a checkpoint over no device".into() });
            }
            Some(d) => {
                let paths = d.iter().map(|p| ObjectPath::try_from(p.as_str())).collect::<Result<Vec<_>, _>>();
                (paths.map_err(zbus::Error::from)?, 0)
            }
            None => (Vec::new(), DISCONNECT_NEW_DEVICES),
        };
        let base = base | extra;
        let mut last = None;
        let tries: &[u32] = if track_dns { &[base | TRACK_INTERNAL_GLOBAL_DNS, base] } else { &[base] };
        for &flags in tries {
            debug!(call = "CheckpointCreate", devices = paths.len(), rollback_timeout, flags);
            match self.nm.checkpoint_create(&paths, rollback_timeout, flags).await {
                Ok(p) => return Ok(p.to_string()),
                Err(e) => match NmError::from(e) {
                    NmError::InvalidFlags => last = Some(NmError::InvalidFlags),
                    e => return Err(e),
                },
            }
        }
        Err(last.unwrap_or(NmError::InvalidFlags))
    }

    /// Keeps the checkpoint alive for another `seconds`.
    pub async fn checkpoint_extend(&self, checkpoint: &str, seconds: u32) -> Result<(), NmError> {
        debug!(call = "CheckpointAdjustRollbackTimeout", checkpoint, seconds);
        self.nm.checkpoint_adjust_rollback_timeout(&path(checkpoint)?, seconds).await.map_err(|e| gone(e, checkpoint))
    }

    /// Destroys the checkpoint, keeping what was changed.
    pub async fn checkpoint_destroy(&self, checkpoint: &str) -> Result<(), NmError> {
        debug!(call = "CheckpointDestroy", checkpoint);
        self.nm.checkpoint_destroy(&path(checkpoint)?).await.map_err(|e| gone(e, checkpoint))
    }

    /// Rolls back; returns the devices NM could not restore.
    pub async fn checkpoint_rollback(&self, checkpoint: &str) -> Result<Vec<RollbackFailure>, NmError> {
        debug!(call = "CheckpointRollback", checkpoint);
        let results = self.nm.checkpoint_rollback(&path(checkpoint)?).await.map_err(|e| gone(e, checkpoint))?;
        let mut failed: Vec<RollbackFailure> = results
            .into_iter()
            .filter(|(_, r)| *r != 0)
            .map(|(device, r)| RollbackFailure {
                device,
                reason: match r {
                    1 => "the device no longer exists",
                    2 => "the device is now unmanaged",
                    _ => "NetworkManager could not restore it",
                },
            })
            .collect();
        failed.sort_by(|a, b| a.device.cmp(&b.device));
        Ok(failed)
    }

    /// The checkpoints that exist now.
    pub async fn checkpoints(&self) -> Result<Vec<String>, NmError> {
        debug!(call = "Get Checkpoints");
        Ok(self.nm.checkpoints().await?.into_iter().map(|p| p.to_string()).collect())
    }
}

/// What NetworkManager says of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Its object path.
    pub path: String,
    /// The object paths of the devices it covers.
    pub devices: Vec<String>,
    /// When it was made: CLOCK_BOOTTIME, milliseconds.
    pub created: i64,
    /// Its rollback timeout as made, seconds (0: never).
    pub rollback_timeout: u32,
}

impl NmClient {
    /// The checkpoint's devices, creation time and timeout; `None` when it is gone.
    pub async fn checkpoint_info(&self, checkpoint: &str) -> Result<Option<CheckpointInfo>, NmError> {
        debug!(call = "Get Checkpoint", checkpoint);
        let p = super::proxies::build::<super::proxies::CheckpointProxy<'_>>(self.connection(), path(checkpoint)?)
            .await
            .map_err(NmError::from)?;
        let (devices, created, timeout) = tokio::join!(p.devices(), p.created(), p.rollback_timeout());
        match (devices, created, timeout) {
            (Ok(d), Ok(c), Ok(t)) => Ok(Some(CheckpointInfo {
                path: checkpoint.to_string(),
                devices: d.into_iter().map(|p| p.to_string()).collect(),
                created: c,
                rollback_timeout: t,
            })),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => match NmError::from(e) {
                // Gone meanwhile: NetworkManager no longer has the object.
                NmError::ObjectGone | NmError::InvalidArguments { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    /// Every checkpoint NetworkManager has now, with what it covers (one gone meanwhile is
    /// left out).
    pub async fn checkpoint_infos(&self) -> Result<Vec<CheckpointInfo>, NmError> {
        let mut out = Vec::new();
        for cp in self.checkpoints().await? {
            out.extend(self.checkpoint_info(&cp).await?);
        }
        Ok(out)
    }
}

/// CLOCK_BOOTTIME now, milliseconds (the clock of a checkpoint's `Created`), from
/// `/proc/uptime` (the boot-time clock, to 10 ms); `None` if it cannot be read.
pub fn boottime_ms() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some((secs * 1000.0) as i64)
}

fn path(p: &str) -> Result<ObjectPath<'_>, NmError> {
    ObjectPath::try_from(p).map_err(|_| NmError::NoSuchCheckpoint(p.to_string()))
}

/// NetworkManager answers InvalidArguments for a checkpoint it does not have.
fn gone(e: zbus::Error, checkpoint: &str) -> NmError {
    match NmError::from(e) {
        NmError::InvalidArguments { .. } => NmError::NoSuchCheckpoint(checkpoint.to_string()),
        e => e,
    }
}
