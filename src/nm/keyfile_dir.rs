//! Writing keyfiles into a directory, safely: `translate --output-dir` may point at a directory
//! others can write to (or at NetworkManager's own), so a planted symlink must not redirect a
//! write, and a file already there must not keep its mode.
//!
//! Each keyfile goes to a new temporary file in the same directory (created exclusively, so it
//! is never an existing file or a symlink), gets mode 0600, and is renamed over the final name:
//! a rename replaces whatever entry has that name, a symlink included, and never writes
//! through it. Profiles whose file names collide are refused before anything is written.

use super::keyfile::to_keyfile;
use super::profile::Profile;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every keyfile written: NetworkManager ignores keyfiles others can read or write.
pub const KEYFILE_MODE: u32 = 0o600;

/// Keyfiles could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyfileWriteError {
    /// Two profiles would be written to the same file, the second overwriting the first.
    #[error("{}", collision(file, first, second))]
    NameCollision {
        /// The file name both map to.
        file: String,
        /// Id of the first profile.
        first: String,
        /// Id of the second.
        second: String,
    },
    /// The directory, a temporary file or a rename failed (the system's reason is the source).
    #[error("cannot write {}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

fn collision(file: &str, first: &str, second: &str) -> String {
    if first == second {
        // The usual way in: a port's profile is named CONTROLLER-port-PORT, like an interface.
        format!(
            "two profiles are called '{first}' and would both be written to {file} (ports' profiles are named CONTROLLER-port-PORT); rename the interface"
        )
    } else {
        format!("profiles '{first}' and '{second}' would both be written to {file}; rename one of the interfaces")
    }
}

/// Writes one keyfile per profile into `dir` (created if missing), named as NetworkManager
/// names them ([`Profile::keyfile_name`]), mode 0600. Returns the paths written, in order.
/// Refuses colliding file names before writing anything.
pub fn write_keyfiles<'p>(
    dir: &Path,
    profiles: impl IntoIterator<Item = &'p Profile>,
) -> Result<Vec<PathBuf>, KeyfileWriteError> {
    let profiles: Vec<&Profile> = profiles.into_iter().collect();
    let mut by_file: HashMap<String, &str> = HashMap::with_capacity(profiles.len());
    for p in &profiles {
        if let Some(first) = by_file.insert(p.keyfile_name(), &p.id) {
            return Err(KeyfileWriteError::NameCollision {
                file: p.keyfile_name(),
                first: first.to_string(),
                second: p.id.clone(),
            });
        }
    }
    fs::create_dir_all(dir).map_err(|source| KeyfileWriteError::Io { path: dir.to_path_buf(), source })?;
    let mut written = Vec::with_capacity(profiles.len());
    for p in profiles {
        let path = dir.join(p.keyfile_name());
        replace_file(&path, to_keyfile(p).as_bytes())
            .map_err(|source| KeyfileWriteError::Io { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}

/// Replaces `path` with a new file holding `bytes`, mode [`KEYFILE_MODE`], through a temporary
/// file in the same directory and a rename (atomic, and never through a symlink).
fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (tmp, mut file) = create_temp_beside(path)?;
    let result = (|| {
        // The mode given at creation is filtered by the umask; set it exactly on the open file.
        file.set_permissions(fs::Permissions::from_mode(KEYFILE_MODE))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A new file next to `path` with an unpredictable name, created exclusively (`O_EXCL`: an
/// existing file or symlink of that name makes it fail instead of being opened).
fn create_temp_beside(path: &Path) -> io::Result<(PathBuf, File)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let base = path.file_name().map_or_else(|| "keyfile".into(), |n| n.to_string_lossy());
    let mut last = None;
    for attempt in 0..16u32 {
        let tmp = dir.join(format!(".{base}.{:016x}.tmp", random_u64(attempt)));
        match OpenOptions::new().write(true).create_new(true).mode(KEYFILE_MODE).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// 64 unpredictable bits from std alone: `RandomState` is keyed randomly per process (and per
/// instance), and the time and pid make names differ across processes too.
fn random_u64(salt: u32) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(salt);
    h.write_u32(std::process::id());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nmiface-keyfile-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn profiles(xml: &str) -> Vec<Profile> {
        let doc = crate::xml::parse_document("t.xml", xml).unwrap();
        crate::nm::translate(&doc.host, &doc.sources, &crate::nm::Target::default()).profiles().cloned().collect()
    }

    /// See: issue 11. A symlink planted at a keyfile's name made the write go to its target.
    #[test]
    fn planted_symlink_is_replaced_not_followed() {
        let d = scratch("symlink");
        let victim = d.join("victim");
        fs::write(&victim, "precious").unwrap();
        let out = d.join("out");
        fs::create_dir(&out).unwrap();
        symlink(&victim, out.join("eth0.nmconnection")).unwrap();
        let written = write_keyfiles(&out, &profiles("<interface type='ethernet' name='eth0'/>")).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        let meta = fs::symlink_metadata(&written[0]).unwrap();
        assert!(meta.file_type().is_file(), "still a symlink");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert!(fs::read_to_string(&written[0]).unwrap().contains("id=eth0"));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    /// See: issue 11. A keyfile already there kept its (world-readable) mode.
    #[test]
    fn existing_file_gets_mode_0600() {
        let d = scratch("mode");
        let f = d.join("eth0.nmconnection");
        fs::write(&f, "old").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
        write_keyfiles(&d, &profiles("<interface type='ethernet' name='eth0'/>")).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o7777, 0o600);
        assert_ne!(fs::read_to_string(&f).unwrap(), "old");
        fs::remove_dir_all(&d).unwrap();
    }

    /// See: issue 11. A port profile id `br0-port-eth0` next to an interface of that name:
    /// one keyfile silently overwrote the other.
    #[test]
    fn colliding_keyfile_names_are_refused_before_writing() {
        let d = scratch("collide");
        let out = d.join("out");
        let ps = profiles(
            "<interfaces><interface type='bridge' name='br0'><bridge><interface type='ethernet' name='eth0'/></bridge></interface>\
             <interface type='ethernet' name='br0-port-eth0'/></interfaces>",
        );
        let e = write_keyfiles(&out, &ps).unwrap_err();
        assert!(
            matches!(&e, KeyfileWriteError::NameCollision { file, .. } if file == "br0-port-eth0.nmconnection"),
            "{e}"
        );
        assert!(!out.exists(), "something was written");
        fs::remove_dir_all(&d).unwrap();
    }
}
