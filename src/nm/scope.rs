//! Whose profiles nmiface works on: system-wide ones (root's CLI, or a user who asked for them)
//! or one user's own (`connection.permissions` = exactly that user).
//!
//! Ownership needs both halves: nmiface's marks **and** the permissions NetworkManager reports.
//! A mark alone proves nothing (anyone who can write a profile can copy it), and NetworkManager
//! enforces the permissions, so a private profile can only be the listed user's.

use super::profile::{user_key, Profile};
use super::value::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Whose profiles a run creates, sees as its own and may change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// System-wide profiles (no `connection.permissions`): NetworkManager asks polkit for
    /// `settings.modify.system`.
    #[default]
    System,
    /// Profiles private to this user (`connection.permissions` = `user:NAME`): NetworkManager
    /// asks for `settings.modify.own`, lets only this user (and root) read or activate them,
    /// and takes their activations down when the user logs out.
    User(String),
}

impl Scope {
    /// True when `p` is nmiface's and belongs to this scope: marked, and its permissions are
    /// exactly this scope's (none for [`Scope::System`], this one user for [`Scope::User`]).
    pub fn owns(&self, p: &Profile) -> bool {
        if p.user_data(user_key::MANAGED) != Some("1") {
            return false;
        }
        let users = p.permitted_users();
        match self {
            Scope::System => users.is_empty(),
            Scope::User(me) => users.len() == 1 && users[0] == me,
        }
    }

    /// "user" or "system", as the session service's `Scope` property and `--json` say it.
    pub fn label(&self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::User(_) => "user",
        }
    }

    /// The UUID this scope gives the profile nmiface would give `system` system-wide.
    pub fn uuid(&self, system: Uuid) -> Uuid {
        match self {
            Scope::System => system,
            Scope::User(me) => Uuid::new_v5(&system, format!("user:{me}").as_bytes()),
        }
    }

    /// Makes freshly translated profiles this scope's. For a user: `connection.permissions` is
    /// set to that user, and every UUID is derived again from the user's name (ports' references
    /// to their controller and the controller's port list follow), so two users' `br0` and the
    /// system's `br0` are distinct profiles that never collide.
    pub fn stamp(&self, profiles: &mut [Profile]) {
        let Scope::User(me) = self else { return };
        let remap: BTreeMap<Uuid, Uuid> = profiles.iter().map(|p| (p.uuid, self.uuid(p.uuid))).collect();
        let renamed = |s: &str| match Uuid::parse_str(s).ok().and_then(|u| remap.get(&u)) {
            Some(new) => new.to_string(),
            None => s.to_string(),
        };
        for p in profiles.iter_mut() {
            p.uuid = remap[&p.uuid];
            let master = p.master().map(&renamed);
            let ports = p.user_data(user_key::PORTS).map(|l| l.split(' ').map(&renamed).collect::<Vec<_>>().join(" "));
            let c = p.settings.entry("connection".into()).or_default();
            c.insert("uuid".into(), Value::Str(p.uuid.to_string()));
            c.insert("permissions".into(), Value::StrList(vec![format!("user:{me}:")]));
            if let Some(m) = master {
                c.insert("master".into(), Value::Str(m));
            }
            if let Some(list) = ports {
                if let Some(Value::StrDict(d)) = p.settings.get_mut("user").and_then(|u| u.get_mut("data")) {
                    d.insert(user_key::PORTS.to_string(), list);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nm::{translate, Target};

    fn bridge_with_port() -> Vec<Profile> {
        let xml = r#"<interface type="bridge" name="br0"><start mode="none"/><protocol family="ipv4"><ip address="10.0.0.1" prefix="24"/></protocol><bridge><interface type="ethernet" name="eth1"/></bridge></interface>"#;
        let d = crate::xml::parse_document("t.xml", xml).unwrap();
        translate(&d.host, &d.sources, &Target::default()).profiles().cloned().collect()
    }

    #[test]
    fn a_user_stamp_makes_the_profiles_that_users_alone() {
        let system = bridge_with_port();
        let mut mine = system.clone();
        let alice = Scope::User("alice".into());
        alice.stamp(&mut mine);
        assert!(mine.iter().all(|p| alice.owns(p)));
        assert!(mine.iter().all(|p| !Scope::System.owns(p)));
        assert!(mine.iter().all(|p| !Scope::User("bob".into()).owns(p)));
        assert!(system.iter().all(|p| Scope::System.owns(p) && !alice.owns(p)));
        // New UUIDs, and the port still names its controller, the controller its port.
        assert!(mine.iter().zip(&system).all(|(m, s)| m.uuid != s.uuid));
        assert_eq!(mine[1].master(), Some(mine[0].uuid.to_string().as_str()));
        assert_eq!(mine[0].user_data(user_key::PORTS), Some(mine[1].uuid.to_string().as_str()));
        assert_eq!(mine[0].get("connection", "uuid").and_then(Value::as_str), Some(mine[0].uuid.to_string().as_str()));
    }

    #[test]
    fn a_mark_without_the_exact_permissions_is_nobodys() {
        let mut p = bridge_with_port().remove(0);
        let c = p.settings.get_mut("connection").unwrap();
        c.insert("permissions".into(), Value::StrList(vec!["user:alice:".into(), "user:bob:".into()]));
        for s in [Scope::System, Scope::User("alice".into()), Scope::User("bob".into())] {
            assert!(!s.owns(&p), "{s:?}");
        }
    }
}
