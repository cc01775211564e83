//! Transactions (`begin`, `commit`, `rollback`) and atomic changes on NetworkManager
//! checkpoints, plus the lock that keeps two nmiface processes from interleaving.
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

mod store;

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
    /// Where the journal is written ahead of each change.
    store: Option<Store>,
}

impl Journal {
    /// A transaction's journal for a new checkpoint.
    pub fn new(checkpoint: String, rollback_timeout: u32, known: Option<BTreeSet<Uuid>>) -> Self {
        let begun = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self {
            kind: JournalKind::Transaction,
            checkpoint,
            begun,
            rollback_timeout,
            known,
            saved: Vec::new(),
            added: BTreeSet::new(),
            scope: crate::nm::Scope::System,
            new_devices: BTreeSet::new(),
            store: None,
        }
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
        let scope = match v["scope"].as_str() {
            None | Some("system") => crate::nm::Scope::System,
            Some(s) => crate::nm::Scope::User(s.strip_prefix("user:").ok_or("bad scope")?.to_string()),
        };
        Ok(Self {
            kind,
            added,
            scope,
            new_devices,
            store: None,
            checkpoint,
            begun: v["begun"].as_u64().unwrap_or(0),
            rollback_timeout: v["rollback_timeout"].as_u64().unwrap_or(0) as u32,
            known,
            saved,
        })
    }
}
