//! What `define` must do, decided without I/O: given the profiles a translation wants and the
//! profiles NetworkManager has, which to add, which to update in place, which to delete, and
//! which existing profiles block the change because nmiface does not own them.
//!
//! Ownership rule: nmiface changes or deletes only profiles tagged `nmiface.managed=1`. A
//! profile it does not own that has the same UUID or `connection.id` as one it wants is
//! refused, unless the user asks to adopt it; an adopted profile is updated in place and keeps
//! its UUID (ports that name it as controller are rewritten to match). Other profiles for the
//! same device are left alone: NetworkManager activates one profile per device at a time.

use crate::nm::{user_key, Key, Profile, Scope, Value};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A profile nmiface would have to touch but does not own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile '{existing_id}' ({existing_uuid}) for {interface} {whose}; refusing to change it{}", match whose { Whose::Foreign => " (use --adopt to take it over)", _ => "" })]
pub struct NotOwned {
    /// The interface nmiface wants to define.
    pub interface: String,
    /// The existing profile's `connection.id`.
    pub existing_id: String,
    /// The existing profile's UUID.
    pub existing_uuid: Uuid,
    /// Whose it is.
    pub whose: Whose,
}

/// Whose a profile in the way is, as far as NetworkManager shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whose {
    /// Another tool's (no nmiface marks): `--adopt` may take it over.
    Foreign,
    /// nmiface's, private to these users (not the caller alone).
    OtherUsers(Vec<String>),
    /// nmiface's, system-wide, while the caller works on a user's own profiles.
    System,
}

impl Whose {
    /// Whose `p` is, for a caller whose scope does not own it.
    pub fn of(p: &Profile) -> Whose {
        if p.user_data(crate::nm::user_key::MANAGED) != Some("1") {
            return Whose::Foreign;
        }
        match p.permitted_users() {
            users if users.is_empty() => Whose::System,
            users => Whose::OtherUsers(users.into_iter().map(str::to_string).collect()),
        }
    }
}

impl std::fmt::Display for Whose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Whose::Foreign => f.write_str("was not created by nmiface"),
            Whose::OtherUsers(u) => write!(f, "carries nmiface's marks but is private to {}", u.join(", ")),
            Whose::System => f.write_str("carries nmiface's marks but is system-wide, not one of yours"),
        }
    }
}

/// The changes for one `define`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// New profiles.
    pub add: Vec<Profile>,
    /// (index into `existing`, new settings) pairs.
    /// Each update is the profile NetworkManager holds with the document's properties laid
    /// over it ([`crate::nm::merge`]): what the document cannot say is kept.
    pub update: Vec<(usize, Profile)>,
    /// Per index into `existing` of an update: the translation it came from and what the merge
    /// kept or dropped of the held profile (to merge again over the exact profile with its
    /// secrets, and to report).
    pub origins: BTreeMap<usize, Origin>,
    /// Indexes into `existing` of profiles of the defined interfaces that are no longer wanted
    /// (a port removed from a bridge).
    pub delete: Vec<usize>,
    /// Indexes into `existing` of profiles that already hold every setting nmiface would send:
    /// left alone (no write, no re-activation).
    pub unchanged: Vec<usize>,
}

impl Plan {
    /// True when nothing changes (unchanged profiles aside).
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// What a planned change binds to, for a checkpoint over those devices alone (a checkpoint over
/// every device would, rolled back, undo what other users did to theirs meanwhile).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touches {
    /// Interface names the change's profiles bind to: added, updated, deleted, and unchanged
    /// ones too (`apply` starts an unchanged profile that is not running).
    pub names: BTreeSet<String>,
    /// Indexes into `existing` of profiles updated or deleted: the device one is active on is
    /// disturbed whatever its name (a profile bound by MAC, or adopted, names none).
    pub held: BTreeSet<usize>,
}

impl Plan {
    /// What this plan's change binds to, given the `existing` profiles it was planned against.
    pub fn touches(&self, existing: &[Profile]) -> Touches {
        let held: BTreeSet<usize> = self.update.iter().map(|(i, _)| *i).chain(self.delete.iter().copied()).collect();
        let names = self
            .add
            .iter()
            .chain(self.update.iter().map(|(_, p)| p))
            .chain(held.iter().chain(&self.unchanged).filter_map(|&i| existing.get(i)))
            .filter_map(Profile::interface_name)
            .map(str::to_string)
            .collect();
        Touches { names, held }
    }
}

/// Whether `have` stands where `want` would. NetworkManager keeps several profiles per device
/// (one active at a time), so sharing a device is no conflict: a stock host has a "Wired
/// connection N" profile on every NIC. A profile nmiface owns stands in the way when it is the
/// same interface's profile for the same device (a re-define under another UUID); any other
/// profile when it has the same UUID or the same name (`connection.id`).
fn conflicts(want: &Profile, have: &Profile, scope: &Scope) -> bool {
    if scope.owns(have) {
        let same_device = have.interface_name() == want.interface_name() && have.conn_type() == want.conn_type();
        (have.uuid == want.uuid || have.id == want.id || same_device)
            && have.user_data(user_key::INTERFACE) == want.user_data(user_key::INTERFACE)
    } else {
        have.uuid == want.uuid || have.id == want.id
    }
}

/// Where an update came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// The translation (stamped, renumbered to the held profile's UUID).
    pub wanted: Profile,
    /// Settings of the held profile kept, with their properties.
    pub kept: Vec<(String, Vec<String>)>,
    /// Settings of the held profile dropped (it was of another type).
    pub dropped: Vec<String>,
}

/// Plans `define` of `desired` (all profiles of the interfaces being defined) against `existing`.
pub fn define(desired: &[Profile], existing: &[Profile], adopt: bool, scope: &Scope) -> Result<Plan, NotOwned> {
    define_with(desired, existing, adopt, scope, &BTreeMap::new())
}

/// [`define`], adopting by device too: `by_device` maps a wanted profile's UUID to the UUID of
/// the profile NetworkManager would use for its device (the caller found it), which `adopt`
/// takes over in place, keeping its UUID.
pub fn define_with(
    desired: &[Profile],
    existing: &[Profile],
    adopt: bool,
    scope: &Scope,
    by_device: &BTreeMap<Uuid, Uuid>,
) -> Result<Plan, NotOwned> {
    let mut desired: Vec<Profile> = desired.to_vec();
    let mut remap: BTreeMap<Uuid, Uuid> = BTreeMap::new();
    let mut targets: Vec<Option<usize>> = Vec::with_capacity(desired.len());
    let mut claimed = BTreeSet::new();
    for want in &desired {
        let mine = existing.iter().position(|h| h.uuid == want.uuid && scope.owns(h));
        let device = by_device
            .get(&want.uuid)
            .filter(|_| adopt)
            .and_then(|u| existing.iter().position(|h| h.uuid == *u && !claimed.contains(&h.uuid)));
        let target = match mine.or(device) {
            Some(i) => {
                if existing[i].uuid != want.uuid {
                    remap.insert(want.uuid, existing[i].uuid);
                }
                Some(i)
            }
            None => match existing.iter().position(|h| !claimed.contains(&(h.uuid)) && conflicts(want, h, scope)) {
                Some(i) if scope.owns(&existing[i]) && existing[i].uuid != want.uuid => {
                    // Ours, under another UUID (e.g. the user's <uuid> changed): replace it.
                    remap.insert(want.uuid, existing[i].uuid);
                    Some(i)
                }
                Some(i) if scope.owns(&existing[i]) || adopt => {
                    if existing[i].uuid != want.uuid {
                        remap.insert(want.uuid, existing[i].uuid);
                    }
                    Some(i)
                }
                Some(i) => {
                    return Err(NotOwned {
                        interface: want.interface_name().unwrap_or(&want.id).to_string(),
                        existing_id: existing[i].id.clone(),
                        existing_uuid: existing[i].uuid,
                        whose: Whose::of(&existing[i]),
                    })
                }
                None => None,
            },
        };
        if let Some(i) = target {
            claimed.insert(existing[i].uuid);
        }
        targets.push(target);
    }
    // Apply UUID changes to the profiles and to ports that point at them.
    for p in &mut desired {
        if let Some(new) = remap.get(&p.uuid) {
            p.uuid = *new;
            set_str(p, "uuid", new.to_string());
        }
        if let Some(master) = p.master().and_then(|m| Uuid::parse_str(m).ok()) {
            if let Some(new) = remap.get(&master) {
                set_str(p, "master", new.to_string());
            }
        }
    }
    let interfaces: BTreeSet<&str> = desired.iter().filter_map(|p| p.user_data(user_key::INTERFACE)).collect();
    let delete = existing
        .iter()
        .enumerate()
        .filter(|(i, h)| {
            scope.owns(h)
                && !claimed.contains(&h.uuid)
                && h.user_data(user_key::INTERFACE).is_some_and(|n| interfaces.contains(n))
                && !targets.contains(&Some(*i))
        })
        .map(|(i, _)| i)
        .collect();
    let mut plan = Plan { delete, ..Plan::default() };
    for (p, t) in desired.into_iter().zip(targets) {
        let Some(i) = t else {
            plan.add.push(p);
            continue;
        };
        let m = crate::nm::merge::merge(&p, &existing[i]);
        if crate::nm::compare::changes(&m.profile, &existing[i]).is_empty() {
            plan.unchanged.push(i);
        } else {
            plan.update.push((i, m.profile));
            plan.origins.insert(i, Origin { wanted: p, kept: m.kept, dropped: m.dropped });
        }
    }
    Ok(plan)
}

fn set_str(p: &mut Profile, prop: &'static str, v: String) {
    p.settings.entry(Key::Borrowed("connection")).or_default().insert(Key::Borrowed(prop), Value::Str(v));
}

/// The profiles nmiface owns for interface `name`: its own profile first, then its ports.
pub fn owned_by_interface<'a>(existing: &'a [Profile], name: &str, scope: &Scope) -> Vec<&'a Profile> {
    let mut v: Vec<&Profile> =
        existing.iter().filter(|p| scope.owns(p) && p.user_data(user_key::INTERFACE) == Some(name)).collect();
    v.sort_by_key(|p| p.master().is_some());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nm::{translate, Target};
    use crate::xml::parse_document;

    fn profiles(xml: &str) -> Vec<Profile> {
        let d = parse_document("t", xml).unwrap();
        translate(&d.host, &d.sources, &Target::default()).profiles().cloned().collect()
    }

    const BRIDGE: &str = "<interface type='bridge' name='br0'><bridge><interface type='ethernet' name='eth0'/><interface type='ethernet' name='eth1'/></bridge></interface>";

    #[test]
    fn adds_then_updates_in_place() {
        let want = profiles(BRIDGE);
        let p = define(&want, &[], false, &Scope::System).unwrap();
        assert_eq!((p.add.len(), p.update.len(), p.delete.len()), (3, 0, 0));
        let p = define(&want, &want, false, &Scope::System).unwrap();
        assert_eq!((p.add.len(), p.update.len(), p.delete.len(), p.unchanged.len()), (0, 0, 0, 3));
        let other = profiles(&BRIDGE.replace("name='br0'>", "name='br0'><mtu size='9000'/>"));
        let p = define(&other, &want, false, &Scope::System).unwrap();
        assert_eq!((p.add.len(), p.update.len(), p.delete.len()), (0, 3, 0));
    }

    #[test]
    fn touches_names_every_device_the_change_binds_to() {
        let before = profiles(BRIDGE);
        let after = profiles(
            "<interface type='bridge' name='br0'><mtu size='9000'/><bridge><interface type='ethernet' name='eth0'/></bridge></interface>",
        );
        let p = define(&after, &before, false, &Scope::System).unwrap();
        let t = p.touches(&before);
        // eth1 is no longer a port: its profile goes, and its device is disturbed.
        assert_eq!(t.names, ["br0", "eth0", "eth1"].map(String::from).into());
        assert!(p.delete.iter().chain(p.update.iter().map(|(i, _)| i)).all(|i| t.held.contains(i)));
        assert!(t.held.contains(&p.delete[0]));
        // Nothing held yet: the names alone.
        let t = define(&before, &[], false, &Scope::System).unwrap().touches(&[]);
        assert_eq!(t.names, ["br0", "eth0", "eth1"].map(String::from).into());
        assert!(t.held.is_empty());
    }

    #[test]
    fn a_removed_port_is_deleted() {
        let before = profiles(BRIDGE);
        let after = profiles(
            "<interface type='bridge' name='br0'><bridge><interface type='ethernet' name='eth0'/></bridge></interface>",
        );
        let p = define(&after, &before, false, &Scope::System).unwrap();
        assert_eq!(p.delete.len(), 1);
        assert_eq!(before[p.delete[0]].interface_name(), Some("eth1"));
    }

    #[test]
    fn foreign_profiles_are_refused_unless_adopted() {
        let want = profiles(BRIDGE);
        let mut foreign = want[0].clone();
        foreign.uuid = Uuid::from_u128(7);
        foreign.settings.get_mut("user").unwrap().clear();
        let err = define(&want, std::slice::from_ref(&foreign), false, &Scope::System).unwrap_err();
        assert_eq!(err.existing_uuid, Uuid::from_u128(7));
        let p = define(&want, &[foreign], true, &Scope::System).unwrap();
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].1.uuid, Uuid::from_u128(7));
        // The ports now name the adopted UUID as their controller.
        assert!(p.add.iter().all(|port| port.master() == Some("00000000-0000-0000-0000-000000000007")));
    }

    /// A refusal says whose the profile in the way is: root's share blocked by a user's
    /// private nmiface profile once said "not created by nmiface".
    #[test]
    fn a_refusal_says_whose_profile_is_in_the_way() {
        let want = profiles(BRIDGE);
        let mut alices = want.clone();
        Scope::User("alice".into()).stamp(&mut alices);
        let mut theirs = alices[0].clone();
        theirs.uuid = want[0].uuid;
        let err = define(&want, &[theirs], false, &Scope::System).unwrap_err();
        assert_eq!(err.whose, Whose::OtherUsers(vec!["alice".into()]));
        assert!(err.to_string().contains("private to alice") && !err.to_string().contains("--adopt"), "{err}");
        let mut foreign = want[0].clone();
        foreign.settings.get_mut("user").unwrap().clear();
        let err = define(&want, &[foreign], false, &Scope::User("bob".into())).unwrap_err();
        assert!(err.to_string().contains("not created by nmiface") && err.to_string().contains("--adopt"), "{err}");
    }

    #[test]
    fn a_device_may_be_a_port_of_two_nmiface_interfaces() {
        // Regression: defining bond0 over eth1 took over br0's eth1 port profile.
        let br = profiles(BRIDGE);
        let bond = profiles("<interface type='bond' name='bond0'><bond mode='active-backup'><interface type='ethernet' name='eth1'/></bond></interface>");
        let p = define(&bond, &br, false, &Scope::System).unwrap();
        assert_eq!((p.add.len(), p.update.len(), p.delete.len()), (2, 0, 0));
    }

    #[test]
    fn a_foreign_profile_for_the_same_device_is_no_conflict() {
        // A stock host's "Wired connection 1" on eth0.
        let want = profiles(BRIDGE);
        let mut stock = want[1].clone();
        stock.uuid = Uuid::from_u128(9);
        stock.id = "Wired connection 1".into();
        stock.settings.get_mut("user").unwrap().clear();
        let p = define(&want, &[stock], false, &Scope::System).unwrap();
        assert_eq!((p.add.len(), p.update.len(), p.delete.len()), (3, 0, 0));
    }

    #[test]
    fn unrelated_foreign_profiles_are_left_alone() {
        let want = profiles(BRIDGE);
        let other = profiles("<interface type='ethernet' name='eth3'/>");
        let mut foreign = other[0].clone();
        foreign.settings.get_mut("user").unwrap().clear();
        let p = define(&want, &[foreign], false, &Scope::System).unwrap();
        assert_eq!((p.add.len(), p.update.len(), p.delete.len()), (3, 0, 0));
    }
}
