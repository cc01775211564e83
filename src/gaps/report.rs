//! The capability report of `nmiface check`: for each interface and each feature it uses,
//! supported, approximated (how) or unsupported (by what), with a remedy. Documented JSON
//! (`--json`) is these types serialised.

use crate::finding::{Category, Finding, Severity};
use crate::model::{Host, MAX_VLAN_TAG_NM};
use crate::nm::features::{needs, supports, uses, Module, Need, NmFeature};
use crate::nm::NmVersion;
use serde::Serialize;

/// Whether a kernel module's function is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleState {
    /// Compiled into the kernel.
    BuiltIn,
    /// Loaded now.
    Loaded,
    /// Present under /lib/modules and loadable on demand (NetworkManager loads it).
    Loadable,
    /// None of the above.
    Missing,
}

impl ModuleState {
    /// True when the function can be used.
    pub fn available(self) -> bool {
        self != ModuleState::Missing
    }
}

/// What the running kernel can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// Bonding (`bonding`).
    pub bonding: ModuleState,
    /// 802.1Q VLANs (`8021q`).
    pub vlan: ModuleState,
    /// Linux bridges (`bridge`).
    pub bridge: ModuleState,
}

/// Everything the assessment needs to know about the host, gathered by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The NetworkManager version assessed against.
    pub nm: NmVersion,
    /// Where that version came from: `daemon`, `--nm-version`, or `baseline`.
    pub nm_source: &'static str,
    /// The kernel, unless checking offline.
    pub kernel: Option<KernelFacts>,
    /// Features the daemon was asked about directly, and its answer (known or not).
    pub probed: Vec<(NmFeature, bool)>,
    /// Programs NetworkManager runs for NAT sharing, unless checking offline.
    pub runtime: Option<RuntimeFacts>,
    /// The host's network devices and who holds them, when asked of the daemon: a port must
    /// exist and must not be another controller's port already.
    pub devices: Option<Vec<HostDevice>>,
}

/// One network device of the host, as NetworkManager sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    /// Kernel interface name.
    pub name: String,
    /// The controller it is a port of now (`None`: none, or the daemon does not say).
    pub controller: Option<String>,
}

/// Programs NetworkManager needs at run time for shared (NAT) mode, where found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeFacts {
    /// The `dnsmasq` binary (DHCP and DNS for the shared network).
    pub dnsmasq: Option<String>,
    /// `nft` (the nftables firewall backend, NM 1.32).
    pub nft: Option<String>,
    /// `iptables` (the older backend).
    pub iptables: Option<String>,
}

/// How well a feature is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// As asked.
    Supported,
    /// Close, not exact; `detail` says how.
    Approximated,
    /// Not done; `by` says what is missing.
    Unsupported,
}

/// What a gap is due to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum By {
    /// The NetworkManager version.
    NmVersion,
    /// The kernel (a missing module).
    Kernel,
    /// A program NetworkManager needs at run time.
    Runtime,
    /// The host's devices: a port that does not exist, or that another controller holds.
    Host,
    /// libvirt's format and NetworkManager's model do not map one to one.
    Mapping,
}

/// One feature of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The feature, e.g. `bond device`, `vlan.protocol 802.1ad`.
    pub feature: String,
    /// How well it is served.
    pub status: Status,
    /// What a gap is due to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<By>,
    /// Details: the version that adds it, the missing module, how it is approximated.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// What to do about a gap, in one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

impl Item {
    fn ok(feature: impl Into<String>, detail: impl Into<String>) -> Self {
        Item { feature: feature.into(), status: Status::Supported, by: None, detail: detail.into(), remedy: None }
    }
}

/// The features of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceCheck {
    /// Interface name.
    pub interface: String,
    /// Its features.
    pub items: Vec<Item>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// NetworkManager version assessed against.
    pub nm_version: String,
    /// Where that version came from.
    pub nm_source: &'static str,
    /// The kernel, unless offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelFacts>,
    /// What nmiface itself needs from NetworkManager.
    pub requirements: Vec<Item>,
    /// Per interface.
    pub interfaces: Vec<InterfaceCheck>,
    /// Approximations and losses in reading the XML, by element.
    pub mapping: Vec<Item>,
    /// How many items are not `supported`.
    pub gaps: usize,
}

impl CheckReport {
    /// Every item, with the interface it belongs to (`None` for requirements and mapping).
    pub fn items(&self) -> impl Iterator<Item = (Option<&str>, &Item)> {
        self.requirements
            .iter()
            .map(|i| (None, i))
            .chain(self.interfaces.iter().flat_map(|c| c.items.iter().map(move |i| (Some(c.interface.as_str()), i))))
            .chain(self.mapping.iter().map(|i| (None, i)))
    }

    /// Gaps that make a change wrong: unsupported by NetworkManager's version or by the mapping
    /// (for `define`), and also by the kernel or a runtime program (for starting).
    pub fn blocking(&self, starting: bool) -> Vec<&Item> {
        self.items()
            .map(|(_, i)| i)
            .filter(|i| i.status == Status::Unsupported)
            .filter(|i| starting || matches!(i.by, Some(By::NmVersion | By::Mapping)))
            .collect()
    }
}

struct Assessor<'f> {
    facts: &'f Facts,
}

impl Assessor<'_> {
    /// A feature of NetworkManager, by the daemon's answer when it was asked, else the table.
    fn nm(&self, f: NmFeature, feature: impl Into<String>) -> Item {
        let probed = self.facts.probed.iter().find(|(p, _)| *p == f).map(|(_, known)| *known);
        let known = probed.unwrap_or_else(|| supports(self.facts.nm, f));
        let how = if probed.is_some() { "asked the daemon" } else { "by version" };
        if known {
            return Item::ok(feature, format!("NetworkManager {} has {} ({how})", self.facts.nm, f.describe()));
        }
        Item {
            feature: feature.into(),
            status: Status::Unsupported,
            by: Some(By::NmVersion),
            detail: format!(
                "NetworkManager {} does not know {} ({how}); it needs {}",
                self.facts.nm,
                f.describe(),
                needs(f)
            ),
            remedy: Some(format!("upgrade NetworkManager to {}, or remove the setting", needs(f))),
        }
    }

    fn module(
        &self,
        feature: &str,
        what: &str,
        module: &str,
        config: &str,
        state: impl Fn(&KernelFacts) -> ModuleState,
    ) -> Item {
        let Some(k) = &self.facts.kernel else {
            return Item::ok(feature, "kernel not checked (offline)");
        };
        match state(k) {
            ModuleState::Missing => Item {
                feature: feature.into(),
                status: Status::Unsupported,
                by: Some(By::Kernel),
                detail: format!(
                    "this kernel ({}) has no {what} support: module '{module}' is not built in, not loaded, and not under /lib/modules/{}",
                    k.release, k.release
                ),
                remedy: Some(format!("run a kernel with {config} (module '{module}'), or install its modules package")),
            },
            s => Item::ok(feature, format!("kernel module '{module}': {}", serde_json::to_value(s).expect("enum").as_str().unwrap_or(""))),
        }
    }

    /// NAT sharing needs dnsmasq and a firewall backend on the host, which NM runs itself.
    fn nat(&self, items: &mut Vec<Item>) {
        let Some(rt) = &self.facts.runtime else {
            items.push(Item::ok("NAT sharing (ipv4.method=shared)", "runtime programs not checked (offline)"));
            return;
        };
        let missing = |feature: &str, detail: String, remedy: &str| Item {
            feature: feature.into(),
            status: Status::Unsupported,
            by: Some(By::Runtime),
            detail,
            remedy: Some(remedy.into()),
        };
        items.push(match &rt.dnsmasq {
            Some(p) => Item::ok("NAT sharing: dnsmasq", p.clone()),
            None => missing(
                "NAT sharing: dnsmasq",
                "NetworkManager runs dnsmasq for DHCP and DNS on a shared network; it is not installed".into(),
                "install dnsmasq-base (Debian) or dnsmasq",
            ),
        });
        items.push(match (&rt.nft, &rt.iptables) {
            (_, Some(p)) => Item::ok("NAT sharing: firewall backend", format!("iptables: {p}")),
            (Some(p), None) if supports(self.facts.nm, NmFeature::SharedNftables) => {
                Item::ok("NAT sharing: firewall backend", format!("nftables: {p}"))
            }
            (Some(_), None) => self.nm(NmFeature::SharedNftables, "NAT sharing: firewall backend nftables"),
            (None, None) => missing(
                "NAT sharing: firewall backend",
                "NetworkManager masquerades with nft or iptables; neither is installed".into(),
                "install nftables (or iptables)",
            ),
        });
    }

    /// One need as a report item.
    fn item(&self, need: Need, items: &mut Vec<Item>) {
        match need {
            Need::Plain { label, detail } => items.push(Item::ok(label, detail)),
            Need::Nm { feature, label } => items.push(self.nm(feature, label)),
            Need::Module(Module::Bonding) => {
                items.push(self.module("bond device", "bonding", "bonding", "CONFIG_BONDING", |k| k.bonding))
            }
            Need::Module(Module::Vlan) => {
                items.push(self.module("vlan device", "802.1Q VLAN", "8021q", "CONFIG_VLAN_8021Q", |k| k.vlan))
            }
            Need::Module(Module::Bridge) => {
                items.push(self.module("bridge device", "bridge", "bridge", "CONFIG_BRIDGE", |k| k.bridge))
            }
            Need::NatSharing => self.nat(items),
            Need::ReservedVlanTag(tag) => items.push(Item {
                feature: format!("vlan tag {tag}"),
                status: Status::Unsupported,
                by: Some(By::Mapping),
                detail: format!("{tag} is reserved by IEEE 802.1Q; NetworkManager takes 0-{MAX_VLAN_TAG_NM}"),
                remedy: Some(format!("use a tag from 0 to {MAX_VLAN_TAG_NM}")),
            }),
            Need::Ipv6Disabled if !supports(self.facts.nm, NmFeature::Ipv6Disabled) => items.push(Item {
                feature: "ipv6.method=disabled".into(),
                status: Status::Approximated,
                by: Some(By::NmVersion),
                detail: format!(
                    "NetworkManager {} has no 'disabled'; 'ignore' leaves IPv6 to the kernel",
                    self.facts.nm
                ),
                remedy: Some(format!("upgrade NetworkManager to {}", needs(NmFeature::Ipv6Disabled))),
            }),
            Need::Ipv6Disabled => {}
        }
    }
}

/// Whether `host` makes existing NICs ports (of a bridge or a bond): only then does its check
/// need the host's devices (reading them all costs a call per device: 1,000 on a host with
/// 1,000 bridges).
pub fn makes_ports(host: &Host) -> bool {
    use crate::model::{Kind, Member};
    host.interfaces.iter().any(|i| match &i.kind {
        Kind::Bridge(b) => b.ports.iter().any(|m| match m {
            Member::Ethernet(_) => true,
            Member::Bond { bond, .. } => !bond.ports.is_empty(),
            Member::Vlan { .. } => false,
        }),
        Kind::Bond(b) => !b.ports.is_empty(),
        _ => false,
    })
}

/// The host-device items of `iface`: each Ethernet port must exist and be free (or this very
/// controller's port already). Nothing is said when the devices were not read.
fn ports_on_host(iface: &crate::model::Interface, devices: &[HostDevice]) -> Vec<Item> {
    use crate::model::{Kind, Member};
    let mut ports: Vec<(&str, &str)> = Vec::new();
    match &iface.kind {
        Kind::Bridge(b) => {
            for m in &b.ports {
                match m {
                    Member::Ethernet(p) => ports.push((iface.name.as_str(), p.name.as_str())),
                    Member::Bond { name, bond } => {
                        ports.extend(bond.ports.iter().map(|p| (name.as_str(), p.name.as_str())))
                    }
                    Member::Vlan { .. } => {}
                }
            }
        }
        Kind::Bond(b) => ports.extend(b.ports.iter().map(|p| (iface.name.as_str(), p.name.as_str()))),
        _ => {}
    }
    let mut items = Vec::new();
    for (controller, port) in ports {
        let feature = format!("port {port}");
        let gap = |detail: String, remedy: &str| Item {
            feature: feature.clone(),
            status: Status::Unsupported,
            by: Some(By::Host),
            detail,
            remedy: Some(remedy.to_string()),
        };
        items.push(match devices.iter().find(|d| d.name == port) {
            None => gap(
                format!("this host has no network device {port}"),
                "plug it in or name an existing NIC (`ip link` lists them)",
            ),
            Some(HostDevice { controller: Some(c), .. }) if c != controller => gap(
                format!("{port} is a port of {c} now; {controller} would take it from {c}"),
                &format!("take it out of {c} first (nmiface unbridge {c}, or undefine {c})"),
            ),
            Some(_) => Item::ok(feature, format!("{port} exists and is free for {controller}")),
        });
    }
    items
}

/// Assesses `host` against `facts`. `findings` are those of reading and translating; their
/// mapping gaps are listed by element (version gaps are assessed here, from the model).
pub fn assess(host: &Host, findings: &[Finding], facts: &Facts) -> CheckReport {
    let a = Assessor { facts };
    let requirements =
        vec![a.nm(NmFeature::AddConnection2, "Settings.AddConnection2"), a.nm(NmFeature::UserData, "user.data")];
    let mut interfaces: Vec<InterfaceCheck> =
        host.interfaces.iter().map(|i| InterfaceCheck { interface: i.name.to_string(), items: Vec::new() }).collect();
    for u in uses(host) {
        if let Some(check) = interfaces.iter_mut().find(|c| c.interface == u.interface.as_str()) {
            a.item(u.need, &mut check.items);
        }
    }
    if let Some(devices) = &facts.devices {
        for (check, iface) in interfaces.iter_mut().zip(&host.interfaces) {
            check.items.extend(ports_on_host(iface, devices));
        }
    }
    let mapping: Vec<Item> = findings
        .iter()
        .filter(|f| f.category == Category::Mapping && f.severity.loses_meaning())
        .map(|f| Item {
            feature: match f.location {
                Some(l) => format!("{} (line {})", f.path, l.line),
                None => f.path.clone(),
            },
            status: if f.severity == Severity::Unsupported { Status::Unsupported } else { Status::Approximated },
            by: Some(By::Mapping),
            detail: f.message.clone(),
            remedy: None,
        })
        .collect();
    let mut report = CheckReport {
        nm_version: facts.nm.to_string(),
        nm_source: facts.nm_source,
        kernel: facts.kernel.clone(),
        requirements,
        interfaces,
        mapping,
        gaps: 0,
    };
    report.gaps = report.items().filter(|(_, i)| i.status != Status::Supported).count();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nm::{translate, Target};

    #[test]
    fn only_a_document_that_makes_nics_ports_needs_the_hosts_devices() {
        let host = |xml: &str| crate::xml::parse_document("t", xml).unwrap().host;
        let portless = "<interface type='bridge' name='br0'><bridge stp='off'/></interface>";
        let ported =
            "<interface type='bridge' name='br0'><bridge><interface type='ethernet' name='eth0'/></bridge></interface>";
        let bond = "<interface type='bond' name='bond0'><bond mode='active-backup'><interface type='ethernet' name='eth1'/></bond></interface>";
        assert!(!makes_ports(&host(portless)));
        assert!(makes_ports(&host(ported)));
        assert!(makes_ports(&host(bond)));
    }

    #[test]
    fn a_reserved_vlan_tag_is_reported_once_per_interface() {
        let d = crate::xml::parse_document(
            "t",
            "<interface type='vlan' name='eth0.4095'><vlan tag='4095'><interface name='eth0'/></vlan></interface>",
        )
        .unwrap();
        let t = translate(&d.host, &d.sources, &Target::default());
        assert_eq!(t.findings.len(), 1, "the translation leaves the VLAN out: {:?}", t.findings);
        let facts = Facts {
            nm: crate::nm::BASELINE,
            nm_source: "baseline",
            kernel: None,
            probed: Vec::new(),
            runtime: None,
            devices: None,
        };
        let r = assess(&d.host, &t.findings, &facts);
        assert!(r.mapping.is_empty(), "reported twice: {:?}", r.mapping);
        let tag: Vec<_> = r.interfaces[0].items.iter().filter(|i| i.feature == "vlan tag 4095").collect();
        assert_eq!(tag.len(), 1);
        assert_eq!((tag[0].status, tag[0].by), (Status::Unsupported, Some(By::Mapping)));
        assert_eq!(r.blocking(false).len(), 1, "define must refuse it");
    }

    #[test]
    fn a_missing_or_taken_port_is_a_host_gap() {
        let d = crate::xml::parse_document(
            "t",
            "<interface type='bridge' name='br1'><bridge><interface type='ethernet' name='eth9'/><interface type='ethernet' name='eth1'/><interface type='ethernet' name='eth2'/></bridge></interface>",
        )
        .unwrap();
        let dev = |n: &str, c: Option<&str>| HostDevice { name: n.into(), controller: c.map(Into::into) };
        let facts = Facts {
            nm: crate::nm::BASELINE,
            nm_source: "daemon",
            kernel: None,
            probed: Vec::new(),
            runtime: None,
            devices: Some(vec![dev("eth1", Some("br0")), dev("eth2", Some("br1"))]),
        };
        let r = assess(&d.host, &[], &facts);
        let host: Vec<_> = r.interfaces[0].items.iter().filter(|i| i.by == Some(By::Host)).collect();
        assert_eq!(host.len(), 2, "{:?}", r.interfaces[0].items);
        assert!(host[0].detail.contains("no network device eth9") || host[1].detail.contains("no network device eth9"));
        assert!(host.iter().any(|i| i.detail.contains("eth1 is a port of br0")));
        assert_eq!(r.gaps, 2);
        assert_eq!(r.blocking(true).len(), 2, "apply must not go on with them");
        assert!(r.blocking(false).is_empty(), "define of a profile for a NIC plugged in later is fine");
    }
}
