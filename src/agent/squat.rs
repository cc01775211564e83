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
    /// For a user: the profiles about to be added whose UUID someone else holds (a private
    /// profile of another user, invisible here) get fresh random ones, references included.
    pub(super) async fn unsquat(&self, add: &mut [Profile], update: &mut [(usize, Profile)]) -> Result<(), AgentError> {
        if self.scope == nm::Scope::System {
            // Root sees every profile: the plan already refused a UUID that is not nmiface's.
            return Ok(());
        }
        let uuids: Vec<String> = add.iter().map(|p| p.uuid.to_string()).collect();
        let taken = crate::nm_client::bounded(&uuids, |u| self.nm.uuid_taken(u)).await;
        let mut map = BTreeMap::new();
        for (p, t) in add.iter().zip(taken) {
            if t? {
                tracing::warn!(uuid = %p.uuid, "a profile nmiface cannot see holds this UUID: taking a fresh one");
                map.insert(p.uuid, fresh_uuid()?);
            }
        }
        if !map.is_empty() {
            renumber(add.iter_mut().chain(update.iter_mut().map(|(_, p)| p)), &map);
        }
        Ok(())
    }
}
