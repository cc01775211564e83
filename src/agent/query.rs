//! What is defined and how it runs: `list`, `dumpxml`, `name`, `mac`, and the capability check.

use super::{Agent, AgentError, StoredInterface};
use crate::finding::Finding;
use crate::gaps::{self, CheckReport};
use crate::model::{Host, IfName, Interface, Kind, Mac, Member};
use crate::nm::{self, conn_type, user_key, DeviceState, Profile};
use crate::nm_client::StoredProfile;
use crate::xml::{self, LiveLink, LiveState};
use tracing::instrument;

/// One line of `list`: an interface nmiface defined, or another NetworkManager profile of the
/// host (like `virsh iface-list`, which shows every configured interface).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    /// Interface name (for another profile without one: the profile's name).
    pub name: String,
    /// `ethernet`, `bridge`, `bond`, `vlan`; for other profiles also `wifi`, `vpn`,
    /// `loopback`, … (NetworkManager's type otherwise).
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether its profile is active.
    pub active: bool,
    /// Current MAC of the device, else the configured one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Whether nmiface defined it (else it is read-only for nmiface, unless adopted).
    pub nmiface: bool,
    /// The NetworkManager profile's name (`connection.id`).
    pub profile: String,
    /// The profile's UUID (the session service's object paths are made from it; `dumpxml UUID`
    /// names this very profile, also where several share a name).
    pub uuid: uuid::Uuid,
    /// Whose nmiface profile it is: `system` (system-wide), `user` (one user's, named in
    /// `user`), `null` for a profile nmiface did not make. An nmiface profile of another scope
    /// than the caller's has `"nmiface": false` (read-only for this caller) and its scope here.
    pub scope: Option<&'static str>,
    /// For a `user` profile: that user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Whose nmiface profile `p` is, by its marks and its permissions (see [`Listed::scope`]).
fn scope_of(p: &Profile) -> (Option<&'static str>, Option<String>) {
    if p.user_data(user_key::MANAGED) != Some("1") {
        return (None, None);
    }
    match p.permitted_users().as_slice() {
        [] => (Some("system"), None),
        [one] => (Some("user"), Some(one.to_string())),
        _ => (None, None),
    }
}

/// A NetworkManager connection type as `list` names it.
fn kind_word(conn_type: &str) -> &str {
    match conn_type {
        conn_type::ETHERNET => "ethernet",
        "802-11-wireless" => "wifi",
        other => other,
    }
}

impl Agent {
    /// Interfaces defined by nmiface, with state and MAC (`virsh iface-list`).
    #[instrument(skip(self))]
    pub async fn list(&self) -> Result<Vec<Listed>, AgentError> {
        let (profiles, active, devices) =
            tokio::join!(self.nm.profiles(), self.nm.active_profiles(), self.nm.devices());
        let (profiles, active, devices) = (profiles?, active?, devices?);
        let active: std::collections::HashSet<&str> = active.iter().map(|(_, p)| p.as_str()).collect();
        let mut out: Vec<Listed> = profiles
            .iter()
            .filter(|s| s.profile.master().is_none())
            .filter_map(|s| {
                let nmiface = self.scope.owns(&s.profile);
                let (scope, user) = scope_of(&s.profile);
                let marked = s.profile.user_data(user_key::INTERFACE).filter(|_| scope.is_some());
                let name = match (nmiface, marked) {
                    (true, None) => return None,
                    (_, Some(n)) => n.to_string(),
                    // A NIC's profile bound by MAC only: the device it applies to, else the
                    // profile's name (a VLAN's MAC names its parent, not itself).
                    (false, None) => match (s.profile.interface_name(), nic_mac(&s.profile)) {
                        (Some(n), _) => n.to_string(),
                        (None, Some(mac)) => device_with(&devices, &mac).unwrap_or(&s.profile.id).to_string(),
                        (None, None) => s.profile.id.clone(),
                    },
                };
                let kind = kind_word(s.profile.conn_type()?).to_string();
                let mac = devices
                    .iter()
                    .find(|d| d.interface == name && d.real && !d.hw_address.is_empty())
                    .map(|d| d.hw_address.to_lowercase())
                    .or_else(|| nic_mac(&s.profile).map(|m| m.to_string()));
                let profile = s.profile.id.clone();
                Some(Listed {
                    name,
                    kind,
                    active: active.contains(s.path.as_str()),
                    mac,
                    nmiface,
                    profile,
                    uuid: s.profile.uuid,
                    scope,
                    user,
                })
            })
            .collect();
        // nmiface's first, then by name.
        out.sort_by(|a, b| (!a.nmiface, &a.name, &a.profile).cmp(&(!b.nmiface, &b.name, &b.profile)));
        Ok(out)
    }

    /// The interface as libvirt XML: its definition (`inactive`), or with live state.
    #[instrument(skip_all, fields(interface = %s.name))]
    pub async fn dumpxml(&self, s: &StoredInterface, inactive: bool) -> Result<String, AgentError> {
        let host = s.model()?;
        let Some(iface) = host.interfaces.into_iter().next() else {
            return Err(AgentError::NotDefined { name: s.name.clone(), foreign: None });
        };
        if inactive {
            return Ok(xml::write_interface(&iface).0);
        }
        // Like libvirt's backends: live state for an active interface, else its definition.
        let mut iface = iface;
        match self.live_state(&mut iface).await? {
            Some(live) => Ok(xml::write_interface_live(&iface, &live).0),
            None => Ok(xml::write_interface(&iface).0),
        }
    }

    /// The live state of an active interface; its ports become the devices that are its ports
    /// now (a NIC another profile took is no longer one, whatever the port profile says).
    async fn live_state(&self, iface: &mut Interface) -> Result<Option<LiveState>, AgentError> {
        let devices = self.nm.devices().await?;
        let up = |state: DeviceState| state == DeviceState::Activated;
        let Some(own) = devices.iter().find(|d| d.interface == iface.name.as_str() && d.real && up(d.state)) else {
            return Ok(None);
        };
        if let Some(real) = &own.ports {
            let is_port = |name: &str| devices.iter().any(|d| d.real && d.interface == name && real.contains(&d.path));
            match &mut iface.kind {
                Kind::Bridge(b) => b.ports.retain(|m| is_port(m.name().as_str())),
                Kind::Bond(b) => b.ports.retain(|p| is_port(p.name.as_str())),
                _ => {}
            }
        }
        let mut names = vec![iface.name.to_string()];
        if let Kind::Bridge(b) = &iface.kind {
            for m in &b.ports {
                names.push(m.name().to_string());
                if let Member::Bond { bond, .. } = m {
                    names.extend(bond.ports.iter().map(|p| p.name.to_string()));
                }
            }
        }
        if let Kind::Bond(b) = &iface.kind {
            names.extend(b.ports.iter().map(|p| p.name.to_string()));
        }
        let mut live = LiveState::default();
        for d in devices.iter().filter(|d| d.real && names.contains(&d.interface)) {
            let speed = self.nm.speed(&d.path).await;
            let state = if up(d.state) { "up" } else { "down" }.to_string();
            let mac = Mac::parse(&d.hw_address).ok();
            live.links.insert(d.interface.clone(), LiveLink { state, speed, mac });
            if d.interface == iface.name.as_str() {
                if let Some(c) = &d.ip4_config {
                    live.ipv4 = parsed(self.nm.addresses(c, false).await?);
                }
                if let Some(c) = &d.ip6_config {
                    live.ipv6 = parsed(self.nm.addresses(c, true).await?);
                }
            }
        }
        Ok(Some(live))
    }

    /// The interface whose device (or definition) has this MAC (`virsh iface-name`), among
    /// every profile `list` shows; several profiles of one device name it once.
    pub async fn name_of(&self, mac: &Mac) -> Result<String, AgentError> {
        let listed = self.list().await?;
        let text = mac.to_string();
        let mut hits: Vec<String> =
            listed.into_iter().filter(|l| l.mac.as_deref() == Some(text.as_str())).map(|l| l.name).collect();
        hits.sort();
        hits.dedup();
        match hits.len() {
            1 => Ok(hits.remove(0)),
            0 => Err(AgentError::NoSuchMac(*mac)),
            _ => Err(AgentError::AmbiguousMac { mac: *mac, names: hits }),
        }
    }

    /// The MAC of interface `name` (`virsh iface-mac`): nmiface's interface of that name, else
    /// any profile `list` shows under it.
    pub async fn mac_of(&self, name: &IfName) -> Result<String, AgentError> {
        let listed = self.list().await?;
        // nmiface's first (list sorts them first), then others' profiles.
        let l = listed
            .into_iter()
            .filter(|l| l.name == name.as_str())
            .min_by_key(|l| (!l.nmiface, l.mac.is_none()))
            .ok_or_else(|| AgentError::NoSuchProfile(name.to_string()))?;
        l.mac.ok_or_else(|| AgentError::NoMacYet(name.to_string()))
    }

    /// Another NetworkManager profile as libvirt XML, read-only, with what the format cannot
    /// say as findings. `name` is a profile UUID, a profile name (`connection.id`), an
    /// interface name, or the device a profile bound by MAC applies to; of several, the active
    /// one, else the only one.
    pub async fn dumpxml_foreign(&self, name: &str, inactive: bool) -> Result<(String, Vec<Finding>), AgentError> {
        let (profiles, active, devices) =
            tokio::join!(self.nm.profiles(), self.nm.active_profiles(), self.nm.devices());
        let (profiles, active_list, devices) = (profiles?, active?, devices?);
        let active: std::collections::HashSet<&str> = active_list.iter().map(|(_, p)| p.as_str()).collect();
        let chosen = pick(&profiles, &active, &devices, name, |p| self.scope.owns(p))?;
        let kind = chosen.profile.conn_type().unwrap_or("");
        if ![conn_type::ETHERNET, conn_type::BRIDGE, conn_type::BOND, conn_type::VLAN].contains(&kind) {
            return Err(AgentError::NotExpressible { name: name.to_string(), kind: kind_word(kind).to_string() });
        }
        // Its ports: profiles naming it as controller, by UUID or by interface name.
        let mut mine: Vec<Profile> = vec![chosen.profile.clone()];
        let uuid = chosen.profile.uuid.to_string();
        mine.extend(
            profiles
                .iter()
                .filter(|s| s.profile.master().is_some_and(|m| m == uuid || Some(m) == chosen.profile.interface_name()))
                .map(|s| s.profile.clone()),
        );
        if chosen.profile.interface_name().is_none() && configured_mac(&chosen.profile).is_none() {
            // Bound to no device at all: name it after the device it is active on, else the
            // interface name asked for.
            let on_device = active_list
                .iter()
                .find(|(_, p)| p.as_str() == chosen.path.as_str())
                .and_then(|(ac, _)| devices.iter().find(|d| d.active_connection.as_deref() == Some(ac.as_str())))
                .map(|d| d.interface.clone())
                .or_else(|| IfName::new(name).ok().map(|_| name.to_string()));
            if let (Some(c), Some(dev)) = (mine.first_mut(), on_device) {
                c.settings.entry("connection".into()).or_default().insert("interface-name".into(), dev.into());
            }
        }
        let macs: Vec<(String, Mac)> = devices
            .iter()
            .filter(|d| d.real)
            .filter_map(|d| Some((d.interface.clone(), Mac::parse(&d.hw_address).ok()?)))
            .collect();
        let all: Vec<Profile> = profiles.iter().map(|s| s.profile.clone()).collect();
        // The definition alone (--inactive) names a NIC bound by MAC by that MAC, not by the
        // device that has it now.
        let around = nm::Around { devices: &macs, profiles: &all, name_by_device: !inactive };
        let recovered = nm::host_from_profiles_around(&mine, around)?;
        let mut findings = recovered.findings;
        let Some(mut iface) = recovered.host.interfaces.into_iter().next() else {
            return Err(AgentError::NotDefined { name: name.to_string(), foreign: None });
        };
        let live = match inactive {
            true => None,
            false => self.live_state(&mut iface).await?,
        };
        let (xml, more) = match live {
            Some(live) => xml::write_interface_live(&iface, &live),
            None => xml::write_interface(&iface),
        };
        findings.extend(more);
        Ok((xml, findings))
    }

    /// The capability report for `host` on this daemon: its version, answers to probes for
    /// properties a version number cannot settle, and (`kernel`) the running kernel.
    pub async fn check(&self, host: &Host, findings: &[Finding], kernel: bool) -> Result<CheckReport, AgentError> {
        let mut probed = Vec::new();
        for f in nm::features::probe_candidates(host) {
            if nm::supports(self.version, f) {
                continue; // the table settles it
            }
            let Some((setting, prop, value)) = f.probe() else { continue };
            probed.push((f, self.nm.knows_property(setting, prop, value).await?));
        }
        let devices = match kernel && gaps::makes_ports(host) {
            true => Some(self.host_devices().await?),
            false => None,
        };
        let facts = gaps::Facts {
            nm: self.version,
            nm_source: "daemon",
            kernel: kernel.then(crate::host_probe::kernel),
            probed,
            runtime: kernel.then(crate::host_probe::runtime),
            devices,
        };
        Ok(gaps::assess(host, findings, &facts))
    }
}

impl Agent {
    /// The host's real devices and the controller each is a port of now, for `check`.
    async fn host_devices(&self) -> Result<Vec<gaps::HostDevice>, AgentError> {
        let devices = self.nm.devices().await?;
        Ok(devices
            .iter()
            .filter(|d| d.real)
            .map(|d| gaps::HostDevice {
                name: d.interface.clone(),
                controller: crate::nm_client::DeviceInfo::controller_of(&devices, d)
                    .flatten()
                    .map(|c| c.interface.clone()),
            })
            .collect())
    }
}

/// The profile `dumpxml_foreign` shows for `name` (see there); `owns`: nmiface's own, which
/// only a UUID reaches here (by name they are found before).
fn pick<'a>(
    profiles: &'a [StoredProfile],
    active: &std::collections::HashSet<&str>,
    devices: &[crate::nm_client::DeviceInfo],
    name: &str,
    owns: impl Fn(&Profile) -> bool,
) -> Result<&'a StoredProfile, AgentError> {
    if let Ok(uuid) = uuid::Uuid::parse_str(name) {
        if let Some(s) = profiles.iter().find(|s| s.profile.uuid == uuid) {
            // A port's UUID shows its controller, the interface it is part of.
            let ctrl = s.profile.master().and_then(|m| {
                profiles.iter().find(|c| c.profile.uuid.to_string() == m || c.profile.interface_name() == Some(m))
            });
            return Ok(ctrl.unwrap_or(s));
        }
    }
    let device_mac =
        devices.iter().find(|d| d.interface == name && d.real).and_then(|d| Mac::parse(&d.hw_address).ok());
    let candidates: Vec<&StoredProfile> = profiles
        .iter()
        .filter(|s| !owns(&s.profile) && s.profile.master().is_none())
        .filter(|s| match s.profile.interface_name() {
            Some(n) => n == name || s.profile.id == name,
            // Bound by MAC (or to any device): by its name, or the device it applies to.
            None => s.profile.id == name || (device_mac.is_some() && nic_mac(&s.profile) == device_mac),
        })
        .collect();
    if let Some(s) = candidates.iter().find(|s| active.contains(s.path.as_str())) {
        return Ok(s);
    }
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(AgentError::NoSuchProfile(name.to_string())),
        many => {
            // Named with their UUIDs, which `dumpxml UUID` takes.
            let names = many.iter().map(|s| format!("'{}' ({})", s.profile.id, s.profile.uuid)).collect();
            Err(AgentError::AmbiguousProfile { name: name.to_string(), profiles: names })
        }
    }
}

/// The device with `mac`, by name.
fn device_with<'d>(devices: &'d [crate::nm_client::DeviceInfo], mac: &Mac) -> Option<&'d str> {
    devices
        .iter()
        .find(|d| d.real && Mac::parse(&d.hw_address).ok().as_ref() == Some(mac))
        .map(|d| d.interface.as_str())
}

/// The MAC an Ethernet profile binds its NIC by.
fn nic_mac(p: &Profile) -> Option<Mac> {
    (p.conn_type() == Some(conn_type::ETHERNET)).then(|| configured_mac(p)).flatten()
}

/// The MAC a profile binds to, if it names one.
fn configured_mac(p: &Profile) -> Option<Mac> {
    let b = p.get("802-3-ethernet", "mac-address")?.as_bytes()?;
    <[u8; 6]>::try_from(b).ok().map(Mac)
}

/// NetworkManager's `address-data` pairs as typed addresses; anything unparsable is skipped.
fn parsed<A: std::str::FromStr>(list: Vec<(String, u32)>) -> Vec<(A, u8)> {
    list.into_iter().filter_map(|(a, p)| Some((a.parse().ok()?, u8::try_from(p).ok()?))).collect()
}
