//! Issue 21, items 4 and 5: `dumpxml` is faithful to the host's profiles, whoever made them.
//! Realistic profiles of other tools, made with nmcli: each can be named (by interface, profile
//! name or UUID) and dumped; the XML carries DNS and routes; what it cannot carry is named by its
//! NetworkManager property, and the exit status says so; libvirt's own tools take the XML.

use super::{ensure, nmcli, text, R};
use crate::sandbox::Sandbox;
use std::process::{Command, Output};

const MAC: &str = "52:54:00:aa:bb:01";

fn add(sb: &Sandbox, args: &[&str]) -> R {
    let mut full = vec!["con", "add"];
    full.extend_from_slice(args);
    let out = nmcli(sb, &full);
    ensure(out.status.success(), || format!("nmcli {args:?}: {}", text(&out.stderr)))
}

/// `dumpxml ARGS`: its exit status, XML and findings.
fn dump(sb: &Sandbox, args: &[&str]) -> (Option<i32>, String, String) {
    let mut full = vec!["dumpxml"];
    full.extend_from_slice(args);
    let out: Output = sb.nmiface(&full);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn has_all(what: &str, hay: &str, needles: &[&str]) -> R {
    let missing: Vec<&&str> = needles.iter().filter(|n| !hay.contains(**n)).collect();
    ensure(missing.is_empty(), || format!("{what} lacks {missing:?}:\n{hay}"))
}

/// libvirt's schema takes the XML without nmiface's elements (it refuses every other
/// namespace), and libvirt's parser takes it whole.
fn libvirt_takes(sb: &Sandbox, label: &str, xml: &str) -> R {
    if !std::path::Path::new("/usr/bin/virt-xml-validate").exists() {
        return ensure(std::env::var("CI").as_deref() != Ok("true"), || "virt-xml-validate missing under CI".into());
    }
    let plain: String = xml
        .lines()
        .filter(|l| !l.trim_start().starts_with("<nmi:"))
        .map(|l| l.replace(" xmlns:nmi='urn:nmiface:interface:1'", "") + "\n")
        .collect();
    let f = sb.write(&format!("{label}.plain.xml"), &plain);
    let v = Command::new("virt-xml-validate").args([&f, "interface"]).output().map_err(|e| e.to_string())?;
    ensure(v.status.success(), || {
        format!("{label}: not valid libvirt XML: {}{}\n{plain}", text(&v.stdout), text(&v.stderr))
    })?;
    let whole = sb.write(&format!("{label}.xml"), xml);
    let d = Command::new("virsh")
        .args(["-q", "-c", "test:///default", &format!("iface-define {whole}")])
        .output()
        .map_err(|e| e.to_string())?;
    ensure(d.status.success(), || format!("{label}: libvirt's parser refuses it: {}", text(&d.stderr)))
}

pub fn foreign_profiles_are_dumped_faithfully() -> R {
    let sb = Sandbox::up_with_macs(false, &[("eth1".to_string(), MAC.to_string())]);
    // A wired profile as an administrator writes it: static addresses, DNS, routes, a zone.
    add(
        &sb,
        &[
            "type",
            "ethernet",
            "con-name",
            "Office",
            "ifname",
            "eth2",
            "autoconnect",
            "no",
            "ipv4.method",
            "manual",
            "ipv4.addresses",
            "192.0.2.10/24",
            "ipv4.gateway",
            "192.0.2.1",
            "ipv4.dns",
            "192.0.2.53 192.0.2.54",
            "ipv4.dns-search",
            "example.com lab.example.com",
            "ipv4.dns-options",
            "rotate",
            "ipv4.routes",
            "198.51.100.0/24 192.0.2.254 100 table=200, 203.0.113.0/25",
            "ipv4.route-metric",
            "300",
            "connection.zone",
            "work",
            "ipv6.method",
            "ignore",
            "ethernet.cloned-mac-address",
            "random",
        ],
    )?;
    // Bound to its NIC by MAC, as connection editors offer.
    add(
        &sb,
        &["type", "ethernet", "con-name", "Test Wired Connection", "autoconnect", "no", "ethernet.mac-address", MAC],
    )?;
    // A bridge with a named port and a port that takes any device.
    add(
        &sb,
        &[
            "type",
            "bridge",
            "con-name",
            "brx",
            "ifname",
            "brx",
            "autoconnect",
            "no",
            "ipv4.method",
            "disabled",
            "ipv6.method",
            "disabled",
        ],
    )?;
    add(
        &sb,
        &[
            "type",
            "ethernet",
            "con-name",
            "brx-eth3",
            "ifname",
            "eth3",
            "master",
            "brx",
            "slave-type",
            "bridge",
            "autoconnect",
            "no",
        ],
    )?;
    add(
        &sb,
        &[
            "type",
            "ethernet",
            "con-name",
            "brx-any",
            "master",
            "brx",
            "slave-type",
            "bridge",
            "autoconnect",
            "no",
            "bridge-port.priority",
            "40",
        ],
    )?;
    // A VLAN whose parent is given by MAC: nmcli insists on a parent, so it is removed after.
    add(
        &sb,
        &[
            "type",
            "vlan",
            "con-name",
            "vl",
            "dev",
            "eth1",
            "id",
            "10",
            "autoconnect",
            "no",
            "ethernet.mac-address",
            MAC,
            "ipv4.method",
            "disabled",
            "ipv6.method",
            "disabled",
        ],
    )?;
    let out = nmcli(&sb, &["con", "modify", "vl", "vlan.parent", "", "connection.interface-name", ""]);
    ensure(out.status.success(), || format!("nmcli modify vl: {}", text(&out.stderr)))?;
    // Two profiles of one name.
    add(&sb, &["type", "ethernet", "con-name", "Twin", "ifname", "eth0", "autoconnect", "no"])?;
    add(
        &sb,
        &["type", "ethernet", "con-name", "Twin", "ifname", "eth0", "autoconnect", "no", "ipv4.method", "disabled"],
    )?;

    // list --json: every profile with its UUID.
    let listed: serde_json::Value =
        serde_json::from_slice(&sb.nmiface(&["list", "--all", "--json"]).stdout).map_err(|e| e.to_string())?;
    let rows = listed.as_array().cloned().unwrap_or_default();
    ensure(rows.len() >= 6 && rows.iter().all(|r| r["uuid"].as_str().is_some_and(|u| u.len() == 36)), || {
        format!("list --json without UUIDs: {listed}")
    })?;
    let uuid_of = |id: &str, twin: usize| -> Result<String, String> {
        let mut u: Vec<String> =
            rows.iter().filter(|r| r["profile"] == id).filter_map(|r| r["uuid"].as_str().map(str::to_string)).collect();
        u.sort();
        u.get(twin).cloned().ok_or_else(|| format!("{id} not listed: {listed}"))
    };

    // The wired profile, by its name and by its interface: DNS and routes in the XML, the rest
    // named; exit 1 since something is left out.
    for name in ["Office", "eth2"] {
        let (code, xml, err) = dump(&sb, &[name]);
        ensure(code == Some(1), || format!("dumpxml {name}: exit {code:?}: {err}"))?;
        has_all(
            &format!("dumpxml {name}"),
            &xml,
            &[
                "<interface type='ethernet' name='eth2' xmlns:nmi='urn:nmiface:interface:1'>",
                "<ip address='192.0.2.10' prefix='24'/>",
                "<route gateway='192.0.2.1'/>",
                "<nmi:dns server='192.0.2.53'/>",
                "<nmi:dns server='192.0.2.54'/>",
                "<nmi:dns-search domain='lab.example.com'/>",
                "<nmi:dns-option value='rotate'/>",
                "<nmi:route address='198.51.100.0' prefix='24' gateway='192.0.2.254' metric='100' table='200'/>",
                "<nmi:route address='203.0.113.0' prefix='25'/>",
                "<nmi:route-metric value='300'/>",
            ],
        )?;
        ensure(!xml.contains("family='ipv6'"), || format!("ipv6 ignore dumped as a protocol:\n{xml}"))?;
        has_all(
            &format!("dumpxml {name} findings"),
            &err,
            &["connection.zone", "ethernet.cloned-mac-address", "ipv6.method 'ignore'"],
        )?;
        libvirt_takes(&sb, "office", &xml)?;
    }

    // Bound by MAC: named after the device with that MAC; the definition alone by the MAC.
    let (code, xml, err) = dump(&sb, &["Test Wired Connection"]);
    ensure(code == Some(1), || format!("dumpxml of the MAC-bound profile: exit {code:?}: {err}"))?;
    has_all("MAC-bound dump", &xml, &["<interface type='ethernet' name='eth1'>", &format!("<mac address='{MAC}'/>")])?;
    has_all("MAC-bound findings", &err, &["by MAC"])?;
    libvirt_takes(&sb, "wired", &xml)?;
    let (code, xml, err) = dump(&sb, &["--inactive", "Test Wired Connection"]);
    ensure(code == Some(1) && xml.contains("name='enx525400aabb01'") && err.contains("by MAC"), || {
        format!("dumpxml --inactive of the MAC-bound profile: exit {code:?}:\n{xml}{err}")
    })?;
    let out = sb.nmiface(&["name", MAC]);
    ensure(out.status.success() && text(&out.stdout).trim() == "eth1", || {
        format!("name {MAC}: {}{}", text(&out.stdout), text(&out.stderr))
    })?;
    let out = sb.nmiface(&["mac", "eth2"]);
    ensure(out.status.success(), || format!("mac eth2 (another tool's profile): {}", text(&out.stderr)))?;

    // The bridge: the nameless port left out with a finding, its bridge-port setting named.
    let (code, xml, err) = dump(&sb, &["brx"]);
    ensure(code == Some(1), || format!("dumpxml brx: exit {code:?}: {err}"))?;
    has_all("bridge dump", &xml, &["<interface type='bridge' name='brx'>", "<interface type='ethernet' name='eth3'>"])?;
    has_all("bridge findings", &err, &["'brx-any'", "left out", "bridge-port.priority"])?;
    libvirt_takes(&sb, "brx", &xml)?;

    // The VLAN: its parent resolved from the MAC.
    let (code, xml, err) = dump(&sb, &["vl"]);
    ensure(code == Some(1), || format!("dumpxml vl: exit {code:?}: {err}"))?;
    has_all(
        "vlan dump",
        &xml,
        &["<interface type='vlan' name='eth1.10'>", "<vlan tag='10'>", "<interface name='eth1'/>"],
    )?;
    libvirt_takes(&sb, "vl", &xml)?;

    // Two of one name: refused by name, naming the UUIDs; each reached by its UUID.
    let (code, _, err) = dump(&sb, &["Twin"]);
    let (a, b) = (uuid_of("Twin", 0)?, uuid_of("Twin", 1)?);
    ensure(code == Some(2) && err.contains(&a) && err.contains(&b), || format!("dumpxml Twin: exit {code:?}: {err}"))?;
    for u in [&a, &b] {
        let (code, xml, err) = dump(&sb, &[u]);
        ensure(matches!(code, Some(0 | 1)) && xml.contains("name='eth0'"), || {
            format!("dumpxml {u}: exit {code:?}:\n{xml}{err}")
        })?;
    }
    let (_, xa, _) = dump(&sb, &[&a]);
    let (_, xb, _) = dump(&sb, &[&b]);
    ensure(xa != xb, || format!("both UUIDs dumped the same profile:\n{xa}"))
}
