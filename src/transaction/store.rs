//! Where a journal and the lock live: a private runtime directory, files only this user can
//! have written, never followed through a symlink.

use super::{Journal, TxError};
use crate::identity::current_uid;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where one system bus's transaction file and lock live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    dir: PathBuf,
    key: String,
}

fn io(path: &Path, source: std::io::Error) -> TxError {
    TxError::Io { path: path.display().to_string(), source }
}

/// Opens a file of the runtime directory without following a symlink, created 0600 when
/// `create`, and checks that this user owns it: another user's planted file is refused.
fn open_private(path: &Path, write: bool, create: bool) -> Result<File, TxError> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(write).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if create {
        o.create(true).mode(0o600);
    }
    let f = o.open(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => TxError::Untrusted { path: path.display().to_string(), why: "it is a symlink".into() },
        _ => io(path, e),
    })?;
    let meta = f.metadata().map_err(|e| io(path, e))?;
    if Some(meta.uid()) != current_uid() || meta.mode() & 0o022 != 0 || !meta.is_file() {
        return Err(TxError::Untrusted {
            path: path.display().to_string(),
            why: "not a regular file owned by this user and writable only by it".into(),
        });
    }
    Ok(f)
}

/// The runtime directory: `NMIFACE_RUNTIME_DIR` (tests), else `/run/nmiface` for root, else
/// `$XDG_RUNTIME_DIR/nmiface` when that directory is this user's own (mode 0700). Nothing else:
/// a world-writable place such as /tmp would let another user plant the journal or the lock.
fn runtime_dir() -> Result<PathBuf, TxError> {
    runtime_dir_for(current_uid(), std::env::var_os("NMIFACE_RUNTIME_DIR"), std::env::var_os("XDG_RUNTIME_DIR"))
}

/// [`runtime_dir`] for a uid and the two variables, testable without switching users.
fn runtime_dir_for(
    uid: Option<u32>,
    explicit: Option<std::ffi::OsString>,
    xdg: Option<std::ffi::OsString>,
) -> Result<PathBuf, TxError> {
    if let Some(d) = explicit {
        return Ok(PathBuf::from(d));
    }
    if uid == Some(0) {
        return Ok(PathBuf::from("/run/nmiface"));
    }
    let Some(xdg) = xdg.filter(|x| !x.is_empty()) else {
        return Err(TxError::NoRuntimeDir { why: "XDG_RUNTIME_DIR is not set".into() });
    };
    let xdg = PathBuf::from(xdg);
    let meta = std::fs::symlink_metadata(&xdg).map_err(|e| io(&xdg, e))?;
    if !meta.is_dir() || Some(meta.uid()) != uid || meta.mode() & 0o077 != 0 {
        return Err(TxError::NoRuntimeDir {
            why: format!("XDG_RUNTIME_DIR {} is not a directory of this user's with mode 0700", xdg.display()),
        });
    }
    Ok(xdg.join("nmiface"))
}

/// Creates the directory 0700 if needed, and checks it is a real directory of this user's
/// that nobody else can write.
fn private_dir(dir: &Path) -> Result<(), TxError> {
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) => return Err(io(dir, e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| io(dir, e))?;
    if !meta.is_dir() || Some(meta.uid()) != current_uid() || meta.mode() & 0o022 != 0 {
        return Err(TxError::Untrusted {
            path: dir.display().to_string(),
            why: "not a directory owned by this user and writable only by it".into(),
        });
    }
    Ok(())
}

impl Store {
    /// The key of this store's bus (its identity, hashed), which also names the host-wide claim.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The store for the bus whose identity (`org.freedesktop.DBus.GetId`) is `bus_id`:
    /// sandboxes and the real bus get separate files; two addresses of one bus share them.
    pub fn for_bus(bus_id: &str) -> Result<Self, TxError> {
        let dir = runtime_dir()?;
        // Bus ids are 32 hex digits; anything else is hashed into a safe file name.
        let key = if !bus_id.is_empty() && bus_id.len() <= 64 && bus_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bus_id.to_string()
        } else {
            let h =
                bus_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
            format!("{h:016x}")
        };
        Ok(Self { dir, key })
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(format!("transaction-{}.json", self.key))
    }

    /// The open transaction, if any.
    pub fn load(&self) -> Result<Option<Journal>, TxError> {
        let path = self.journal_path();
        if let Err(e) = std::fs::symlink_metadata(&path) {
            return if e.kind() == std::io::ErrorKind::NotFound { Ok(None) } else { Err(io(&path, e)) };
        }
        let mut text = String::new();
        open_private(&path, false, false)?.read_to_string(&mut text).map_err(|e| io(&path, e))?;
        let corrupt = |why: String| TxError::Corrupt { path: path.display().to_string(), why };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        let mut j = Journal::from_json(&v).map_err(corrupt)?;
        j.store = Some(self.clone());
        Ok(Some(j))
    }

    /// Writes the transaction durably: a new temporary file (never through a symlink), synced,
    /// renamed over the old one, and the directory synced.
    pub fn save(&self, j: &Journal) -> Result<(), TxError> {
        private_dir(&self.dir)?;
        let path = self.journal_path();
        let tmp = self.dir.join(format!(".transaction-{}.{}.tmp", self.key, std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| io(&tmp, e))?;
        let text = serde_json::to_string_pretty(&j.to_json())
            .map_err(|e| TxError::Corrupt { path: path.display().to_string(), why: e.to_string() })?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io(&self.dir, e))
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
    /// another holds it, `on_wait` is told who, then this waits, polling without blocking the
    /// thread, at most `max_wait`; after that it fails naming the holder.
    pub async fn lock(
        &self,
        what: &str,
        max_wait: Duration,
        on_wait: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Lock, TxError> {
        private_dir(&self.dir)?;
        let path = self.dir.join(format!("lock-{}", self.key));
        let mut file = open_private(&path, true, true)?;
        let started = std::time::Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.rewind();
                    let _ = file.read_to_string(&mut holder);
                    let holder = if holder.trim().is_empty() {
                        "unknown process".to_string()
                    } else {
                        holder.trim().to_string()
                    };
                    if started.elapsed() >= max_wait {
                        return Err(TxError::Busy { holder, waited: started.elapsed().as_secs() });
                    }
                    if !told {
                        on_wait(&holder);
                        told = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&path, e)),
            }
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "pid {}: {what}", std::process::id());
        self.remove_stale_temporaries();
        Ok(Lock { _file: file })
    }

    /// Removes the temporary journals of processes that are gone: one killed outright while
    /// writing ([`Store::save`]) left its `.transaction-KEY.PID.tmp` behind for good. Called
    /// with the lock held; a temporary file of a live process is left alone.
    fn remove_stale_temporaries(&self) {
        let prefix = format!(".transaction-{}.", self.key);
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".tmp")) else { continue };
            let Ok(pid) = pid.parse::<u32>() else { continue };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Held while changing NetworkManager; dropping it lets the next nmiface go.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_writers_temporary_journal_goes_with_the_next_lock() {
        let dir = std::env::temp_dir().join(format!("nmiface-stale-tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let store = Store { dir: dir.clone(), key: "k".into() };
        // No process has pid 0x7fff_fffe (above pid_max); ours is alive.
        let dead = dir.join(".transaction-k.2147483646.tmp");
        let live = dir.join(format!(".transaction-k.{}.tmp", std::process::id()));
        let other = dir.join(".transaction-other.2147483646.tmp");
        for f in [&dead, &live, &other] {
            std::fs::write(f, "{").unwrap();
        }
        let lock = store.lock("test", Duration::from_secs(1), &|_| {}).await.unwrap();
        assert!(!dead.exists(), "a dead writer's temporary journal stayed");
        assert!(live.exists() && other.exists(), "a live writer's or another bus's file went");
        drop(lock);
        let _ = std::fs::remove_dir_all(&dir);
    }
    use crate::nm::{translate, Target};
    use crate::transaction::TxError;
    use std::collections::BTreeSet;

    #[test]
    fn journal_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("nmiface-tx-test-{}", std::process::id()));
        std::env::set_var("NMIFACE_RUNTIME_DIR", &dir);
        let store = Store::for_bus("0123456789abcdef0123456789abcdef").unwrap();
        let d = crate::xml::parse_document("t", "<interface type='bridge' name='br0'><bridge/></interface>").unwrap();
        let p = translate(&d.host, &d.sources, &Target::default()).profiles().next().unwrap().clone();
        let mut j =
            Journal::new("/org/freedesktop/NetworkManager/Checkpoint/1".into(), 60, Some(BTreeSet::from([p.uuid])));
        j.remember(&p);
        j.remember(&p);
        assert_eq!(j.saved.len(), 1);
        store.save(&j).unwrap();
        j.store = Some(store.clone());
        assert_eq!(store.load().unwrap(), Some(j));
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let l = rt.block_on(store.lock("test", Duration::from_secs(1), &|_| {})).unwrap();
        // A second holder waits at most its bound, then names the first.
        let e = rt.block_on(store.lock("second", Duration::from_millis(200), &|_| {})).unwrap_err();
        assert!(matches!(e, TxError::Busy { ref holder, .. } if holder.contains("test")), "{e}");
        drop(l);
        let _ = std::fs::remove_dir_all(dir);
    }

    // Issue 11, item 6: runtime state only in a place that is the user's own.
    #[test]
    fn runtime_state_only_in_a_private_directory() {
        let base = std::env::temp_dir().join(format!("nmiface-rt-{}", std::process::id()));
        let open = base.join("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let me = current_uid();
        // A desktop user: root makes the directory theirs, anyone else tests as themselves.
        let user = if me == Some(0) {
            std::os::unix::fs::chown(&open, Some(4242), None).unwrap();
            Some(4242)
        } else {
            me
        };
        // No XDG_RUNTIME_DIR for a user: refused, never /tmp.
        assert!(matches!(runtime_dir_for(Some(1000), None, None), Err(TxError::NoRuntimeDir { .. })));
        // A directory others can read, or another user's: refused.
        assert!(matches!(runtime_dir_for(user, None, Some(open.clone().into())), Err(TxError::NoRuntimeDir { .. })));
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        assert!(runtime_dir_for(user.map(|u| u + 1), None, Some(open.clone().into())).is_err());
        assert_eq!(runtime_dir_for(user, None, Some(open.clone().into())).unwrap(), open.join("nmiface"));
        assert_eq!(runtime_dir_for(Some(0), None, None).unwrap(), PathBuf::from("/run/nmiface"));
        // A journal planted as a symlink (to a file another user controls) is refused.
        let store = Store { dir: base.join("store"), key: "k".into() };
        private_dir(&store.dir).unwrap();
        let victim = base.join("planted.json");
        std::fs::write(&victim, "{}").unwrap();
        std::os::unix::fs::symlink(&victim, store.journal_path()).unwrap();
        assert!(matches!(store.load(), Err(TxError::Untrusted { .. })), "{:?}", store.load());
        // A journal owned by someone else is refused too.
        std::fs::remove_file(store.journal_path()).unwrap();
        std::fs::write(store.journal_path(), "{}").unwrap();
        if me == Some(0) {
            std::os::unix::fs::chown(store.journal_path(), Some(65534), None).unwrap();
            assert!(matches!(store.load(), Err(TxError::Untrusted { .. })), "{:?}", store.load());
        }
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn a_journal_from_before_per_change_checkpoints_still_loads() {
        // A transaction begun by an older nmiface: one checkpoint over every device, no list.
        let old = serde_json::json!({
            "kind": "transaction", "checkpoint": "/org/freedesktop/NetworkManager/Checkpoint/4", "begun": 1,
            "rollback_timeout": 600, "pid": 1, "known": [], "saved": [], "added": [], "scope": "system",
        });
        let j = Journal::from_json(&old).unwrap();
        assert!(j.protects_devices() && j.checkpoints.is_empty() && j.intent.is_none());
        assert_eq!(j.recorded_checkpoints(), vec!["/org/freedesktop/NetworkManager/Checkpoint/4"]);
        // A new one: no checkpoint at begin, the changes' list and an intent round-trip.
        let mut j = Journal::transaction(600, BTreeSet::new(), true);
        j.checkpoints.push(crate::transaction::TxCheckpoint { path: "/c/1".into(), devices: vec!["/d/1".into()] });
        j.checkpoints.push(crate::transaction::TxCheckpoint { path: "/c/2".into(), devices: vec!["/d/2".into()] });
        j.intent = Some(crate::transaction::Intent { devices: vec!["/d/3".into()], after: 5, rollback_timeout: 9 });
        assert_eq!(Journal::from_json(&j.to_json()).unwrap(), j);
        assert_eq!(j.recorded_checkpoints(), vec!["/c/2", "/c/1"]);
        let journal_only = Journal::transaction(600, BTreeSet::new(), false);
        assert!(!Journal::from_json(&journal_only.to_json()).unwrap().protects_devices());
        assert_eq!(journal_only.seconds_left(), None);
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
