//! Transactions (`begin`, `commit`, `rollback`) and atomic changes on NetworkManager
//! checkpoints, plus the lock that keeps two nmiface processes from interleaving.
//!
//! A checkpoint restores devices and deletes profiles added after it, and NetworkManager rolls
//! it back by itself when its timeout passes, even if nmiface died. It does not restore a
//! profile that was changed or deleted while inactive, so nmiface keeps a journal of the
//! profiles it changes or deletes, as they were before, and restores them after the checkpoint
//! rollback. An explicit transaction's journal lives in a runtime file, so the next nmiface
//! process finds it: `/run/nmiface` for root, else `$XDG_RUNTIME_DIR/nmiface`
//! (`NMIFACE_RUNTIME_DIR` overrides), one file per system bus address.

use crate::nm::{Profile, Settings, Value};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
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
    /// Another nmiface holds the lock and waiting was not asked for.
    #[error("another nmiface is changing NetworkManager ({holder})")]
    Busy {
        /// Who holds it.
        holder: String,
    },
}

/// What a transaction has to undo.
#[derive(Debug, Clone, PartialEq)]
pub struct Journal {
    /// The checkpoint's object path.
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
}

impl Journal {
    /// A journal for a new checkpoint.
    pub fn new(checkpoint: String, rollback_timeout: u32, known: Option<BTreeSet<Uuid>>) -> Self {
        let begun = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self { checkpoint, begun, rollback_timeout, known, saved: Vec::new() }
    }

    /// Records `before`, the state of a profile about to be changed or deleted, unless it was
    /// created inside the transaction (the checkpoint deletes those) or is recorded already.
    pub fn remember(&mut self, before: &Profile) {
        let predates = self.known.as_ref().is_none_or(|k| k.contains(&before.uuid));
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

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "checkpoint": self.checkpoint,
            "begun": self.begun,
            "rollback_timeout": self.rollback_timeout,
            "pid": std::process::id(),
            "known": self.known,
            "saved": self.saved,
        })
    }

    fn from_json(v: &serde_json::Value) -> Result<Self, String> {
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
        Ok(Self {
            checkpoint,
            begun: v["begun"].as_u64().unwrap_or(0),
            rollback_timeout: v["rollback_timeout"].as_u64().unwrap_or(0) as u32,
            known,
            saved,
        })
    }
}

/// Where one system bus's transaction file and lock live.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    key: String,
}

fn io(path: &std::path::Path, source: std::io::Error) -> TxError {
    TxError::Io { path: path.display().to_string(), source }
}

impl Store {
    /// The store for the bus at `bus_address` (sandboxes and the real bus get separate files).
    pub fn for_bus(bus_address: &str) -> Self {
        let dir = match std::env::var_os("NMIFACE_RUNTIME_DIR") {
            Some(d) => PathBuf::from(d),
            None if is_root() => PathBuf::from("/run/nmiface"),
            None => std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from).join("nmiface"),
        };
        // FNV-1a: a stable short name for the address, no dependency needed.
        let hash =
            bus_address.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Self { dir, key: format!("{hash:016x}") }
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(format!("transaction-{}.json", self.key))
    }

    /// The open transaction, if any.
    pub fn load(&self) -> Result<Option<Journal>, TxError> {
        let path = self.journal_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path, e)),
        };
        let corrupt = |why: String| TxError::Corrupt { path: path.display().to_string(), why };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        Journal::from_json(&v).map(Some).map_err(corrupt)
    }

    /// Writes the transaction (atomically: a temporary file renamed over the old one).
    pub fn save(&self, j: &Journal) -> Result<(), TxError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let path = self.journal_path();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&j.to_json()).expect("plain data"))
            .map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    }

    /// Forgets the transaction.
    pub fn clear(&self) -> Result<(), TxError> {
        let path = self.journal_path();
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, e)),
            _ => Ok(()),
        }
    }

    /// Takes the lock that serialises nmiface processes changing this NetworkManager. When
    /// another holds it, `on_wait` is told who, then this waits (or fails, if `wait` is false).
    pub fn lock(&self, what: &str, wait: bool, on_wait: impl FnOnce(&str)) -> Result<Lock, TxError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let path = self.dir.join(format!("lock-{}", self.key));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder =
                    if holder.trim().is_empty() { "unknown process".to_string() } else { holder.trim().to_string() };
                if !wait {
                    return Err(TxError::Busy { holder });
                }
                on_wait(&holder);
                file.lock().map_err(|e| io(&path, e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path, e)),
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "pid {}: {what}", std::process::id());
        Ok(Lock { _file: file })
    }
}

/// Held while changing NetworkManager; dropping it lets the next nmiface go.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn is_root() -> bool {
    // /proc/self/status "Uid:" real uid; avoids a libc dependency for one call.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nm::{translate, Target};

    #[test]
    fn journal_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("nmiface-tx-test-{}", std::process::id()));
        std::env::set_var("NMIFACE_RUNTIME_DIR", &dir);
        let store = Store::for_bus("unix:path=/x");
        let d = crate::xml::parse_document("t", "<interface type='bridge' name='br0'><bridge/></interface>").unwrap();
        let p = translate(&d.host, &d.sources, &Target::default()).profiles().next().unwrap().clone();
        let mut j =
            Journal::new("/org/freedesktop/NetworkManager/Checkpoint/1".into(), 60, Some(BTreeSet::from([p.uuid])));
        j.remember(&p);
        j.remember(&p);
        assert_eq!(j.saved.len(), 1);
        store.save(&j).unwrap();
        assert_eq!(store.load().unwrap(), Some(j));
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
        let _l = store.lock("test", false, |_| {}).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn profiles_made_inside_are_not_journalled() {
        let d = crate::xml::parse_document("t", "<interface type='ethernet' name='eth0'/>").unwrap();
        let p = translate(&d.host, &d.sources, &Target::default()).profiles().next().unwrap().clone();
        let mut j = Journal::new("/c".into(), 0, Some(BTreeSet::new()));
        j.remember(&p);
        assert!(j.saved.is_empty());
    }
}
