//! Transactions (`begin`, `commit`, `rollback`) and atomic changes on NetworkManager
//! checkpoints, plus the lock that keeps two nmiface processes from interleaving and the
//! host-wide claim that keeps two parties from taking the same name at once (`claim.rs`).
//!
//! A checkpoint restores devices and deletes profiles added after it, and NetworkManager rolls
//! it back by itself when its timeout passes, even if nmiface died. It does not restore a
//! profile that was changed or deleted while inactive, so nmiface keeps a journal of the
//! profiles it changes or deletes, as they were before, and restores them after the checkpoint
//! rollback. An explicit transaction's journal lives in a runtime file, so the next nmiface
//! process finds it: `/run/nmiface` for root, else `$XDG_RUNTIME_DIR/nmiface`
//! (verified to be the user's own, mode 0700; `NMIFACE_RUNTIME_DIR` overrides for tests), one
//! file per system bus (keyed by the bus's identity). Files are opened without following
//! symlinks and refused unless this user owns them.

mod claim;
mod store;

pub use claim::{claim, Claim, CLAIM_WAIT};
pub use store::{Lock, Store};

use crate::nm::{Profile, Settings, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

/// A transaction file or lock problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The runtime file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The transaction file is not nmiface's format.
    #[error("{path}: not a transaction file nmiface can read ({why})")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Another nmiface held the lock for longer than nmiface waits.
    #[error("another nmiface is changing NetworkManager ({holder}); gave up after waiting {waited} s")]
    Busy {
        /// Who holds it.
        holder: String,
        /// Seconds waited.
        waited: u64,
    },
    /// No safe place for runtime state.
    #[error("no private runtime directory for nmiface's lock and journal: {why} (nmiface keeps them only in /run/nmiface for root or in $XDG_RUNTIME_DIR/nmiface)")]
    NoRuntimeDir {
        /// Why.
        why: String,
    },
    /// A runtime file or directory someone else could have planted.
    #[error("{path}: refusing to use it: {why}")]
    Untrusted {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// Whose journal it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalKind {
    /// The user's transaction (`begin` … `commit`/`rollback`).
    Transaction,
    /// One atomic change (an `apply`, `bridge`, …) by process `pid`: on disk only while that
    /// change runs; found afterwards, it was interrupted, and the next run finishes it.
    Change {
        /// The process that made the change.
        pid: u32,
    },
}

/// What a transaction or an atomic change has to undo: the checkpoint, the profiles as they
/// were before nmiface changed or deleted them, and the profiles nmiface added (the only ones
/// a rollback deletes). Written ahead of every change when it has a store.
#[derive(Debug, Clone, PartialEq)]
pub struct Journal {
    /// Whose it is.
    pub kind: JournalKind,
    /// The checkpoint's object path; empty when NetworkManager does not let this user take
    /// checkpoints and the journal alone protects the user's own profiles.
    pub checkpoint: String,
    /// When it began (seconds since the epoch).
    pub begun: u64,
    /// NetworkManager's rollback timeout, seconds (0: none).
    pub rollback_timeout: u32,
    /// UUIDs of every profile that existed at the start; `None` when the journal is made right
    /// before the changes (everything that exists then predates them).
    pub known: Option<BTreeSet<Uuid>>,
    /// Profiles as they were before nmiface first changed or deleted them.
    pub saved: Vec<Profile>,
    /// Profiles nmiface added (recorded before they are sent).
    pub added: BTreeSet<Uuid>,
    /// Whose profiles the changes were made on (system-wide, or one user's): the undo works in
    /// that scope, whoever finishes it (a user's `--system apply` killed halfway is finished by
    /// the user's next change, which must not take the system profiles for someone else's).
    pub scope: crate::nm::Scope,
    /// Interface names an atomic change binds to that had no device when it began: its
    /// checkpoint cannot cover a device that did not exist (and is not taken over every device,
    /// which would undo other users' work), so the undo disconnects a device of these names
    /// that runs one of the scope's profiles, as NetworkManager's DISCONNECT_NEW_DEVICES would
    /// for every device.
    pub new_devices: BTreeSet<String>,
    /// A transaction's checkpoints, oldest first: each change inside it takes one over the
    /// existing devices it binds to that no earlier one covers (so none of them overlap: the
    /// oldest state of each device is the one kept). Empty for an atomic change (its one is
    /// [`Journal::checkpoint`]) and for a transaction begun by an older nmiface (which took one
    /// over every device at `begin`, in [`Journal::checkpoint`]).
    pub checkpoints: Vec<TxCheckpoint>,
    /// Written ahead of a CheckpointCreate and cleared once the checkpoint is recorded: a
    /// journal found with an intent may have a checkpoint nobody recorded (the process died
    /// right after creating it), which finishing the journal looks for ([`Intent`]).
    pub intent: Option<Intent>,
    /// A transaction whose changes take checkpoints (NetworkManager lets this user take them);
    /// `false`: the journal alone protects it.
    pub device_checkpoints: bool,
    /// Where the journal is written ahead of each change.
    store: Option<Store>,
}

/// One checkpoint a change inside a transaction took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxCheckpoint {
    /// Its object path.
    pub path: String,
    /// The object paths of the devices it covers.
    pub devices: Vec<String>,
}

/// A checkpoint about to be created: enough to find it among NetworkManager's if the process
/// dies before recording it (same devices, made at or after `after`, same timeout).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Intent {
    /// The devices it is asked over (object paths; empty: every device).
    pub devices: Vec<String>,
    /// CLOCK_BOOTTIME in milliseconds just before the call.
    pub after: i64,
    /// The rollback timeout asked, seconds.
    pub rollback_timeout: u32,
}

impl Journal {
    /// A transaction's journal for a new checkpoint.
    pub fn new(checkpoint: String, rollback_timeout: u32, known: Option<BTreeSet<Uuid>>) -> Self {
        let begun = now_secs();
        Self {
            kind: JournalKind::Transaction,
            begun,
            rollback_timeout,
            known,
            saved: Vec::new(),
            added: BTreeSet::new(),
            scope: crate::nm::Scope::System,
            new_devices: BTreeSet::new(),
            checkpoints: Vec::new(),
            intent: None,
            device_checkpoints: !checkpoint.is_empty(),
            checkpoint,
            store: None,
        }
    }

    /// A transaction's journal (`begin`): no checkpoint yet; with `device_checkpoints`, each
    /// change inside takes one over the devices it binds to, rolled back by NetworkManager by
    /// itself `rollback_timeout` seconds after `begin` (0: never).
    pub fn transaction(rollback_timeout: u32, known: BTreeSet<Uuid>, device_checkpoints: bool) -> Self {
        let timeout = if device_checkpoints { rollback_timeout } else { 0 };
        let mut j = Self::new(String::new(), timeout, Some(known));
        j.device_checkpoints = device_checkpoints;
        j
    }

    /// Seconds left before a transaction's checkpoints roll back by themselves: `None` when they
    /// never do (timeout 0), `Some(0)` once it has passed.
    pub fn seconds_left(&self) -> Option<u32> {
        if self.rollback_timeout == 0 {
            return None;
        }
        let now = now_secs();
        let end = self.begun.saturating_add(u64::from(self.rollback_timeout));
        Some(u32::try_from(end.saturating_sub(now)).unwrap_or(u32::MAX))
    }

    /// Every checkpoint this journal recorded, newest first (the order to roll them back in).
    pub fn recorded_checkpoints(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.checkpoints.iter().rev().map(|c| c.path.as_str()).collect();
        out.extend(self.checkpoint());
        out
    }

    /// A transaction protected by checkpoints (its changes take them), not the journal alone.
    pub fn protects_devices(&self) -> bool {
        self.device_checkpoints || self.checkpoint().is_some()
    }

    /// The same journal, for changes on `scope`'s profiles.
    pub fn in_scope(mut self, scope: crate::nm::Scope) -> Self {
        self.scope = scope;
        self
    }

    /// One atomic change's journal, written to `store` ahead of each change ([`Journal::sync`]).
    /// Not before: until the first change, the checkpoint alone (which NetworkManager rolls
    /// back by itself) covers the host, and a write here would cost every apply an fsync.
    pub fn for_change(checkpoint: String, rollback_timeout: u32, store: Option<Store>) -> Result<Self, TxError> {
        let mut j = Self::new(checkpoint, rollback_timeout, None);
        j.kind = JournalKind::Change { pid: std::process::id() };
        j.store = store;
        Ok(j)
    }

    /// Records `before`, the state of a profile about to be changed or deleted, unless it was
    /// created inside the transaction (the rollback deletes those) or is recorded already.
    pub fn remember(&mut self, before: &Profile) {
        let predates =
            self.known.as_ref().is_none_or(|k| k.contains(&before.uuid)) && !self.added.contains(&before.uuid);
        if predates && !self.saved.iter().any(|p| p.uuid == before.uuid) {
            let mut p = before.clone();
            // The last-activation time is NetworkManager's runtime data, kept outside the
            // keyfile; sending it back would write it into the keyfile.
            if let Some(c) = p.settings.get_mut("connection") {
                c.remove("timestamp");
            }
            self.saved.push(p);
        }
    }

    /// Records a profile about to be added.
    pub fn remember_added(&mut self, uuid: Uuid) {
        self.added.insert(uuid);
    }

    /// Writes the journal to its store, if it has one: call it after recording and before
    /// changing anything, so a crash leaves a journal that knows the change.
    pub fn sync(&self) -> Result<(), TxError> {
        match &self.store {
            Some(store) => store.save(self),
            None => Ok(()),
        }
    }

    /// The checkpoint protecting the devices, if there is one (else the journal alone restores
    /// profiles).
    pub fn checkpoint(&self) -> Option<&str> {
        Some(self.checkpoint.as_str()).filter(|c| !c.is_empty())
    }

    /// Removes the journal from its store (the change or transaction is over).
    pub fn discard(&self) -> Result<(), TxError> {
        match &self.store {
            Some(store) => store.clear(),
            None => Ok(()),
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let (kind, pid) = match self.kind {
            JournalKind::Transaction => ("transaction", std::process::id()),
            JournalKind::Change { pid } => ("change", pid),
        };
        serde_json::json!({
            "kind": kind,
            "checkpoint": self.checkpoint,
            "begun": self.begun,
            "rollback_timeout": self.rollback_timeout,
            "pid": pid,
            "known": self.known,
            "saved": self.saved,
            "added": self.added,
            "new_devices": self.new_devices,
            "checkpoints": self.checkpoints,
            "intent": self.intent,
            "protection": if self.device_checkpoints { "checkpoint" } else { "journal" },
            "scope": match &self.scope {
                crate::nm::Scope::System => "system".to_string(),
                crate::nm::Scope::User(u) => format!("user:{u}"),
            },
        })
    }

    pub(crate) fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        let checkpoint = v["checkpoint"].as_str().ok_or("no checkpoint")?.to_string();
        let known = match &v["known"] {
            serde_json::Value::Null => None,
            k => Some(serde_json::from_value(k.clone()).map_err(|e| e.to_string())?),
        };
        let mut saved = Vec::new();
        for p in v["saved"].as_array().ok_or("no saved list")? {
            let uuid = p["uuid"].as_str().and_then(|u| Uuid::parse_str(u).ok()).ok_or("saved profile without uuid")?;
            let mut settings = Settings::new();
            for (name, props) in p["settings"].as_object().ok_or("saved profile without settings")? {
                let props = props.as_object().ok_or("bad setting")?;
                let setting = props
                    .iter()
                    .map(|(k, v)| Some((k.clone().into(), Value::from_tagged_json(v)?)))
                    .collect::<Option<_>>()
                    .ok_or("bad property value")?;
                settings.insert(name.clone().into(), setting);
            }
            saved.push(Profile { id: p["id"].as_str().unwrap_or_default().to_string(), uuid, settings });
        }
        let kind = match v["kind"].as_str() {
            Some("change") => {
                let pid = v["pid"].as_u64().and_then(|p| u32::try_from(p).ok()).ok_or("change without pid")?;
                JournalKind::Change { pid }
            }
            _ => JournalKind::Transaction,
        };
        let added = match &v["added"] {
            serde_json::Value::Null => BTreeSet::new(),
            a => serde_json::from_value(a.clone()).map_err(|e| e.to_string())?,
        };
        // Absent in a journal written before nmiface knew it: nothing to disconnect.
        let new_devices = match &v["new_devices"] {
            serde_json::Value::Null => BTreeSet::new(),
            a => serde_json::from_value(a.clone()).map_err(|e| e.to_string())?,
        };
        // Absent in a journal written before transactions took checkpoints per change.
        let checkpoints = match &v["checkpoints"] {
            serde_json::Value::Null => Vec::new(),
            a => serde_json::from_value(a.clone()).map_err(|e| e.to_string())?,
        };
        let intent = match &v["intent"] {
            serde_json::Value::Null => None,
            a => Some(serde_json::from_value(a.clone()).map_err(|e| e.to_string())?),
        };
        let device_checkpoints = match v["protection"].as_str() {
            Some("checkpoint") => true,
            Some(_) => false,
            None => !checkpoint.is_empty(),
        };
        let scope = match v["scope"].as_str() {
            None | Some("system") => crate::nm::Scope::System,
            Some(s) => crate::nm::Scope::User(s.strip_prefix("user:").ok_or("bad scope")?.to_string()),
        };
        Ok(Self {
            kind,
            added,
            scope,
            new_devices,
            checkpoints,
            intent,
            device_checkpoints,
            store: None,
            checkpoint,
            begun: v["begun"].as_u64().unwrap_or(0),
            rollback_timeout: v["rollback_timeout"].as_u64().unwrap_or(0) as u32,
            known,
            saved,
        })
    }
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
