//! UUIDs others hold: a profile nmiface derives a UUID for may find it squatted by another
//! user's private profile (invisible here); such a profile gets a fresh random UUID, so nobody
//! can lock a user out of a name.

use super::{Agent, AgentError};
use crate::nm::{self, Profile};
use std::collections::BTreeMap;

/// A random UUID (version 4) from the kernel's random source: for a profile whose derived UUID
/// someone else took (another user's private profile squatting it), so a user cannot be locked
/// out of a name by another.
pub(super) fn fresh_uuid() -> Result<uuid::Uuid, AgentError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).map_err(AgentError::Randomness)?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// Gives profiles new UUIDs (`map`: old -> new), with the references to them: ports' controller
/// and the controller's port list.
pub(super) fn renumber<'a>(profiles: impl Iterator<Item = &'a mut Profile>, map: &BTreeMap<uuid::Uuid, uuid::Uuid>) {
    let renamed = |s: &str| match uuid::Uuid::parse_str(s).ok().and_then(|u| map.get(&u)) {
        Some(new) => new.to_string(),
        None => s.to_string(),
    };
    for p in profiles {
        if let Some(new) = map.get(&p.uuid) {
            p.uuid = *new;
            p.settings.entry("connection".into()).or_default().insert("uuid".into(), nm::Value::Str(new.to_string()));
        }
        if let Some(m) = p.master().map(&renamed) {
            p.settings.entry("connection".into()).or_default().insert("master".into(), nm::Value::Str(m));
        }
        let ports = p.user_data(nm::user_key::PORTS).map(|l| l.split(' ').map(&renamed).collect::<Vec<_>>().join(" "));
        if let (Some(list), Some(nm::Value::StrDict(d))) =
            (ports, p.settings.get_mut("user").and_then(|u| u.get_mut("data")))
        {
            d.insert(nm::user_key::PORTS.to_string(), list);
        }
    }
}

impl Agent {
    /// For root: a profile whose derived UUID a user's private profile holds (a squat: root
    /// sees it, and the plan would refuse it as not nmiface's) gets a fresh random UUID
    /// instead, so no user can lock root out of a name by predicting its UUID. A user's profile
    /// that shares the name or the interface is no squat: the plan decides about it (refused
    /// unless adopted).
    pub(super) fn dodge_squats(
        &self,
        desired: &mut [Profile],
        stored: &[crate::nm_client::StoredProfile],
    ) -> Result<(), AgentError> {
        if self.scope != nm::Scope::System {
            return Ok(());
        }
        let mut map = BTreeMap::new();
        for want in desired.iter() {
            let squatted = stored.iter().map(|s| &s.profile).any(|h| {
                h.uuid == want.uuid
                    && !h.permitted_users().is_empty()
                    && h.id != want.id
                    && h.interface_name() != want.interface_name()
            });
            if squatted {
                map.insert(want.uuid, fresh_uuid()?);
            }
        }
        if !map.is_empty() {
            renumber(desired.iter_mut(), &map);
        }
        Ok(())
    }

    /// For a user: every profile about to be added gets a fresh random UUID, references
    /// included. A UUID derived from names is one another user can predict: squat (a private
    /// profile of theirs under it, invisible here, locked the user out of the name) or probe
    /// (NetworkManager answers "permission denied" for a UUID that exists, "unknown" for one
    /// that does not: which names a user has defined). nmiface finds a user's profiles by their
    /// marks and permissions, not by UUID, so nothing depends on deriving them.
    pub(super) async fn unsquat(&self, add: &mut [Profile], update: &mut [(usize, Profile)]) -> Result<(), AgentError> {
        if self.scope == nm::Scope::System {
            // Root sees every profile: the plan already refused a UUID that is not nmiface's.
            return Ok(());
        }
        let mut map = BTreeMap::new();
        for p in add.iter() {
            map.insert(p.uuid, fresh_uuid()?);
        }
        if !map.is_empty() {
            renumber(add.iter_mut().chain(update.iter_mut().map(|(_, p)| p)), &map);
        }
        Ok(())
    }
}
