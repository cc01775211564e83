//! Who runs nmiface: the effective uid and its user name, and the [`Scope`] a front end works in
//! by default (root: system-wide profiles; anyone else: their own per-user profiles).
//!
//! Read from `/proc` and the user database, not from `$USER` (which the caller can set to
//! anything): NetworkManager compares `connection.permissions` with the name of the caller's uid,
//! so only that name makes profiles the caller can use.

use crate::nm::Scope;
use std::process::Command;

/// This process's effective uid, from `/proc/self/status` (no libc call needed, and `unsafe` is
/// not allowed in this crate).
pub fn current_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// The user name of `uid`: `/etc/passwd` first, then `getent passwd` (users from LDAP and
/// other NSS sources).
pub fn user_name(uid: u32) -> Option<String> {
    let from = |text: &str| {
        text.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?;
            (id.parse::<u32>().ok()? == uid && !name.is_empty()).then(|| name.to_string())
        })
    };
    if let Some(n) = std::fs::read_to_string("/etc/passwd").ok().as_deref().and_then(from) {
        return Some(n);
    }
    let out = Command::new("getent").args(["passwd", &uid.to_string()]).output().ok()?;
    from(&String::from_utf8_lossy(&out.stdout))
}

/// Why the caller's scope could not be found.
#[derive(Debug, thiserror::Error)]
#[error("cannot tell who runs nmiface: {0}")]
pub struct UnknownUser(pub String);

/// The scope a front end works in: system-wide for root or when `system` is asked, else the
/// caller's own per-user profiles.
pub fn caller_scope(system: bool) -> Result<Scope, UnknownUser> {
    let uid = current_uid().ok_or_else(|| UnknownUser("/proc/self/status has no Uid line".into()))?;
    if system || uid == 0 {
        return Ok(Scope::System);
    }
    let name = user_name(uid).ok_or_else(|| UnknownUser(format!("uid {uid} has no user name")))?;
    Ok(Scope::User(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_named_and_system_wide() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(caller_scope(true).unwrap(), Scope::System);
    }
}
