//! `define` and `apply`: the profiles of a document added or updated in place, then (apply)
//! started and verified, as one step for the host.

use super::{Agent, AgentError, StoredInterface};
use crate::model::{Kind, Member};
use crate::nm::{self, user_key, DeviceType, Profile};
use crate::nm_client::{bounded, NmError, StoredProfile, BLOCK_AUTOCONNECT, TO_DISK};
use crate::plan;
use crate::transaction::Journal;
use crate::xml::Document;
use tracing::instrument;

/// What `define` did for one interface.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Defined {
    /// The interface.
    pub interface: String,
    /// Profiles added.
    pub added: usize,
    /// Profiles updated in place.
    pub updated: usize,
    /// Profiles deleted (ports no longer wanted).
    pub deleted: usize,
    /// Profiles that already held every setting: not written.
    pub unchanged: usize,
    /// What updating kept of the profiles NetworkManager held that the document cannot say,
    /// one line per profile and setting (`'Wired connection 1': 802-1x (eap, identity)`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// Settings dropped from a profile taken over that was of another type, or from a NIC's
    /// profile that its new controller cannot hold (a family the controller has off).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    /// What moved from a NIC's own profile when a bridge or bond took the NIC as a port.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<String>,
    /// Other tools' profiles of the same device that NetworkManager may bring up at boot
    /// instead (not adopted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compete: Vec<String>,
    /// Only the interface's own profile changed, and only in what NetworkManager applies to a
    /// running device in place (addresses, routes, DNS): `apply` reapplies instead of
    /// re-activating.
    #[serde(skip)]
    pub in_place: bool,
}

impl Defined {
    /// Whether any profile of the interface was written or deleted.
    pub fn changed(&self) -> bool {
        self.added + self.updated + self.deleted > 0
    }
}

impl Agent {
    /// Creates or updates (in place, never duplicating) the profiles of every interface in `doc`;
    /// returns what was done and each interface's profiles as now stored (so `apply` starts them
    /// without looking them up again). Refuses, changing nothing, a Wi-Fi station as a bridge
    /// port. Profiles changed or deleted are recorded in `journal` first.
    #[instrument(skip_all)]
    pub async fn define(
        &self,
        wanted: super::Wanted<'_>,
        adopt: bool,
        journal: Option<&mut Journal>,
    ) -> Result<(Vec<Defined>, Vec<StoredInterface>), AgentError> {
        let doc = wanted.doc;
        let stored = self.nm.profiles().await?;
        let desired = self.desired(wanted.profiles)?;
        let mut journal = journal;
        // Inside a transaction: a checkpoint over the devices it binds to, first (none when
        // `apply`'s already covers them).
        if let Some(j) = journal.as_deref_mut() {
            let existing: Vec<Profile> = stored.iter().map(|s| s.profile.clone()).collect();
            let planned = plan::define(&desired, &existing, adopt, &self.scope).ok();
            let scope = super::touched::DeviceScope::of(&desired, planned.as_ref(), &stored);
            self.transaction_checkpoint(j, &scope).await?;
        }
        self.define_over(doc, desired, adopt, journal, stored).await
    }

    /// [`Agent::define`] over profiles the caller fetched already.
    pub(super) async fn define_over(
        &self,
        doc: &Document,
        desired: Vec<Profile>,
        adopt: bool,
        journal: Option<&mut Journal>,
        stored: Vec<StoredProfile>,
    ) -> Result<(Vec<Defined>, Vec<StoredInterface>), AgentError> {
        self.refuse_wifi_ports(doc).await?;
        let mut desired = desired;
        self.dodge_squats(&mut desired, &stored)?;
        let mut view = super::takeover::DeviceView::default();
        self.refuse_others(&desired, &stored, &mut view).await?;
        let carried = self.carry_over(&mut desired, &stored, &mut view).await?;
        let owners = self.device_owners(&desired, &stored, adopt, &mut view).await?;
        let existing: Vec<Profile> = stored.iter().map(|s| s.profile.clone()).collect();
        let mut plan = plan::define_with(&desired, &existing, adopt, &self.scope, &owners.by_device)?;
        // Profiles updated are read again exactly, with their secrets: the merge lays the
        // document over what NetworkManager really holds, so nothing it cannot say is lost (the
        // listing leaves out values of types nmiface does not read, and GetSettings never
        // returns secrets; an update without them would delete a password).
        // Deleted profiles are read only for a journal to keep them.
        let touched: Vec<usize> = plan
            .update
            .iter()
            .map(|(i, _)| *i)
            .chain(plan.delete.iter().copied().filter(|_| journal.is_some()))
            .collect();
        let exact: Vec<Profile> =
            bounded(&touched, |&i| self.nm.with_secrets(&stored[i])).await.into_iter().collect::<Result<_, _>>()?;
        for (i, p) in plan.update.iter_mut() {
            let (Some(held), Some(origin)) =
                (touched.iter().position(|t| t == i).map(|k| &exact[k]), plan.origins.get_mut(i))
            else {
                continue;
            };
            // What is kept is said from the exact profile too: its secrets are kept as well.
            let m = nm::merge::merge(&origin.wanted, held);
            (*p, origin.kept, origin.dropped) = (m.profile, m.kept, m.dropped);
        }
        // After the merges, which start again from the translation's UUIDs.
        self.unsquat(&mut plan.add, &mut plan.update).await?;
        if let Some(j) = journal {
            for p in &exact {
                j.remember(p);
            }
            for p in &plan.add {
                j.remember_added(p.uuid);
            }
            // Written ahead: a crash from here on leaves a journal that knows every change.
            j.sync()?;
        }
        let mut report: Vec<Defined> = doc
            .host
            .interfaces
            .iter()
            .map(|i| Defined { interface: i.name.to_string(), ..Defined::default() })
            .collect();
        let count = |report: &mut Vec<Defined>, p: &Profile, f: fn(&mut Defined)| {
            if let Some(d) = report.iter_mut().find(|d| Some(d.interface.as_str()) == p.user_data(user_key::INTERFACE))
            {
                f(d);
            }
        };
        for p in &plan.add {
            count(&mut report, p, |d| d.added += 1);
        }
        for (iface, line) in carried.moved {
            if let Some(d) = report.iter_mut().find(|d| d.interface == iface) {
                d.moved.push(line);
            }
        }
        for (iface, line) in carried.not_carried {
            if let Some(d) = report.iter_mut().find(|d| d.interface == iface) {
                d.dropped.push(format!("not carried: {line}"));
            }
        }
        for (iface, line) in owners.compete {
            if let Some(d) = report.iter_mut().find(|d| d.interface == iface) {
                d.compete.push(line);
            }
        }
        for (i, p) in &plan.update {
            count(&mut report, p, |d| d.updated += 1);
            let Some(origin) = plan.origins.get(i) else { continue };
            let name = &existing[*i].id;
            let lines: Vec<String> =
                nm::merge::describe_kept(&origin.kept).into_iter().map(|k| format!("'{name}': {k}")).collect();
            let dropped: Vec<String> = origin.dropped.iter().map(|d| format!("'{name}': {d}")).collect();
            if let Some(d) = report.iter_mut().find(|d| Some(d.interface.as_str()) == p.user_data(user_key::INTERFACE))
            {
                d.kept.extend(lines);
                d.dropped.extend(dropped);
            }
        }
        for &i in &plan.unchanged {
            count(&mut report, &existing[i], |d| d.unchanged += 1);
        }
        for d in &mut report {
            // In place: one update, of the interface's own profile, in reapplicable settings.
            let mine = |p: &Profile| p.user_data(user_key::INTERFACE) == Some(d.interface.as_str());
            let updates: Vec<&(usize, Profile)> = plan.update.iter().filter(|(_, p)| mine(p)).collect();
            d.in_place = d.added == 0
                && d.deleted == 0
                && matches!(updates.as_slice(), [(i, p)] if p.master().is_none()
                    && nm::compare::reapplicable(&nm::compare::changes(p, &existing[*i])));
        }
        for &i in &plan.delete {
            count(&mut report, &existing[i], |d| d.deleted += 1);
        }
        // Ports name their controller by UUID, which NM accepts before the controller exists,
        // so every change can be in flight at once.
        let flags = TO_DISK | BLOCK_AUTOCONNECT;
        let added = bounded(&plan.add, |p| self.nm.add(p, flags)).await;
        let updated: Result<Vec<()>, NmError> =
            bounded(&plan.update, |(i, p)| self.nm.update(&stored[*i].path, p, flags)).await.into_iter().collect();
        let first_add_error = added.iter().position(Result::is_err);
        if first_add_error.is_some() || updated.is_err() {
            // Do not leave half an interface behind: remove what this define added. (Updates
            // are undone by transactions, which restore whole profiles.)
            let mut errors = Vec::new();
            let mut made = Vec::new();
            for r in added {
                match r {
                    Ok(path) => made.push(path),
                    Err(e) => errors.push(e),
                }
            }
            let _ = bounded(&made, |p| self.nm.delete(p)).await;
            return Err(match updated {
                Err(e) => e.into(),
                Ok(_) => errors.into_iter().next().map_or(AgentError::Nm(NmError::ObjectGone), AgentError::from),
            });
        }
        bounded(&plan.delete, |&i| self.nm.delete(&stored[i].path))
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()?;
        let now: Vec<StoredProfile> = plan
            .add
            .into_iter()
            .zip(added.into_iter().flatten())
            .map(|(profile, path)| StoredProfile { path, profile })
            .chain(plan.update.into_iter().map(|(i, profile)| StoredProfile { path: stored[i].path.clone(), profile }))
            .chain(plan.unchanged.iter().map(|&i| stored[i].clone()))
            .collect();
        let mut defined = Vec::new();
        for d in &report {
            let mine: Vec<&StoredProfile> =
                now.iter().filter(|s| s.profile.user_data(user_key::INTERFACE) == Some(d.interface.as_str())).collect();
            if let Some(main) = mine.iter().find(|s| s.profile.master().is_none()) {
                let ports = mine.iter().filter(|s| s.profile.master().is_some()).map(|s| (*s).clone()).collect();
                defined.push(StoredInterface { name: d.interface.clone(), main: (*main).clone(), ports });
            }
        }
        Ok((report, defined))
    }

    /// Refuses a document that makes a Wi-Fi station a bridge port (the draft's `<shared>` on
    /// `wlan0`, or a bridge listing it): an 802.11 station carries no frames for other MACs.
    async fn refuse_wifi_ports(&self, doc: &Document) -> Result<(), AgentError> {
        let ports: Vec<&str> = doc
            .host
            .interfaces
            .iter()
            .filter_map(|i| match &i.kind {
                Kind::Bridge(b) => Some(b.ports.iter().filter_map(|m| match m {
                    Member::Ethernet(p) => Some(p.name.as_str()),
                    _ => None,
                })),
                _ => None,
            })
            .flatten()
            .collect();
        let types = bounded(&ports, |p| self.nm.device_type(p)).await;
        for (port, t) in ports.iter().zip(types) {
            if t? == Some(DeviceType::Wifi) {
                return Err(AgentError::WifiStation(port.to_string()));
            }
        }
        Ok(())
    }
}

impl Agent {
    /// Deletes an interface's profiles (only nmiface's, as [`Agent::find`] found them); returns
    /// how many. Each is recorded in `journal` first.
    #[instrument(skip_all, fields(interface = %s.name))]
    pub async fn undefine(&self, s: &StoredInterface, journal: Option<&mut Journal>) -> Result<usize, AgentError> {
        if let Some(j) = journal {
            // Inside a transaction: a checkpoint over the devices its profiles run on, first.
            let scope = super::touched::DeviceScope {
                names: s.profiles().filter_map(|p| p.profile.interface_name()).map(str::to_string).collect(),
                profiles: s.profiles().map(|p| p.path.to_string()).collect(),
            };
            self.transaction_checkpoint(j, &scope).await?;
            for p in bounded(s.profiles(), |p| self.nm.with_secrets(p)).await {
                j.remember(&p?);
            }
            j.sync()?;
        }
        let paths: Vec<_> = s.profiles().map(|p| p.path.clone()).collect();
        bounded(&paths, |p| self.nm.delete(p)).await.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(paths.len())
    }
}

/// What `apply --check` shows for one profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProfileDiff {
    /// The profile's name (`connection.id`).
    pub profile: String,
    /// The interface it belongs to.
    pub interface: String,
    /// `add`, `update`, `delete` or `unchanged`.
    pub action: &'static str,
    /// The properties that would change (for `add`, all it would get).
    pub changes: Vec<nm::compare::Change>,
    /// A port's profile (a change to it re-activates its controller). Not in the JSON, which
    /// keeps its documented shape.
    #[serde(skip)]
    pub port: bool,
}

impl Agent {
    /// What `define`/`apply` of `doc` would write, profile by profile, changing nothing.
    pub async fn diff(&self, doc: &Document, adopt: bool) -> Result<Vec<ProfileDiff>, AgentError> {
        let mut desired = self.desired(self.translate(doc).into_profiles())?;
        let stored = self.nm.profiles().await?;
        // The same plan define would make: the NIC's settings moved, the device's profile adopted.
        let mut view = super::takeover::DeviceView::default();
        self.carry_over(&mut desired, &stored, &mut view).await?;
        let owners = self.device_owners(&desired, &stored, adopt, &mut view).await?;
        let existing: Vec<Profile> = stored.iter().map(|s| s.profile.clone()).collect();
        let plan = plan::define_with(&desired, &existing, adopt, &self.scope, &owners.by_device)?;
        let iface = |p: &Profile| p.user_data(user_key::INTERFACE).unwrap_or_default().to_string();
        let empty = Profile { id: String::new(), uuid: uuid::Uuid::nil(), settings: Default::default() };
        let mut out = Vec::new();
        for p in &plan.add {
            let changes = masked(nm::compare::changes(p, &empty));
            let port = p.master().is_some();
            out.push(ProfileDiff { profile: p.id.clone(), interface: iface(p), action: "add", changes, port });
        }
        for (i, p) in &plan.update {
            let changes = masked(nm::compare::changes(p, &existing[*i]));
            let port = p.master().is_some();
            out.push(ProfileDiff { profile: p.id.clone(), interface: iface(p), action: "update", changes, port });
        }
        for &i in &plan.delete {
            let p = &existing[i];
            let port = p.master().is_some();
            out.push(ProfileDiff {
                profile: p.id.clone(),
                interface: iface(p),
                action: "delete",
                changes: Vec::new(),
                port,
            });
        }
        for &i in &plan.unchanged {
            let p = &existing[i];
            out.push(ProfileDiff {
                profile: p.id.clone(),
                interface: iface(p),
                action: "unchanged",
                changes: Vec::new(),
                port: p.master().is_some(),
            });
        }
        Ok(out)
    }
}

/// `changes` with every secret's value hidden: a secret moved with a NIC is sent to
/// NetworkManager, never printed.
fn masked(mut changes: Vec<nm::compare::Change>) -> Vec<nm::compare::Change> {
    for c in &mut changes {
        let (setting, prop) = c.property.split_once('.').unwrap_or_default();
        if nm::merge::is_secret(setting, prop) {
            c.before = c.before.as_ref().map(|_| nm::Value::Str("(secret)".into()));
            c.after = c.after.as_ref().map(|_| nm::Value::Str("(secret)".into()));
        }
    }
    changes
}
