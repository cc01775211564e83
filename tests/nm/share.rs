//! Issue 5: sharing a NIC with VMs (L2, `bridge`/`unbridge`) and NAT sharing (`share --nat`),
//! end to end in the sandbox with a "VM" network namespace.

use super::{ensure, rt, text, R};
use crate::sandbox::{script, Sandbox};
use crate::transactions::snapshot;
use std::process::Command;

/// Runs CMD in the VM namespace.
fn vm(sb: &Sandbox, cmd: &[&str]) -> std::process::Output {
    Command::new("bash").arg(script()).args(["vm-exec", &sb.name, "vm1", "--"]).args(cmd).output().unwrap()
}

/// A VM: a namespace whose veth peer `vm1p` (in NM's namespace) is made a port of `bridge`.
fn attach_vm(sb: &Sandbox, bridge: &str) -> R {
    let out = Command::new("bash").arg(script()).args(["vm", &sb.name, "vm1", "vm1p"]).output().unwrap();
    ensure(out.status.success(), || format!("vm: {}", text(&out.stderr)))?;
    for args in [vec!["ip", "link", "set", "vm1p", "master", bridge], vec!["ip", "link", "set", "vm1p", "up"]] {
        let out = sb.exec(&args);
        ensure(out.status.success(), || format!("{args:?}: {}", text(&out.stderr)))?;
    }
    let out = vm(sb, &["ip", "link", "set", "vmeth0", "up"]);
    ensure(out.status.success(), || format!("vmeth0 up: {}", text(&out.stderr)))
}

/// The VM asks for a lease with busybox udhcpc; returns the address it was offered.
fn vm_lease(sb: &Sandbox) -> Result<String, String> {
    let out = vm(sb, &["busybox", "udhcpc", "-i", "vmeth0", "-n", "-q", "-t", "12", "-T", "1", "-s", "/bin/true"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    all.lines()
        .find_map(|l| l.split("lease of ").nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string))
        .ok_or_else(|| format!("the VM got no lease: {all}"))
}

fn v4_of(sb: &Sandbox, dev: &str) -> Vec<String> {
    let a = sb.ip_json(&["-4", "addr", "show", "dev", dev]);
    a[0]["addr_info"].as_array().into_iter().flatten().filter_map(|i| i["local"].as_str().map(str::to_string)).collect()
}

const ETH0_DHCP: &str = "<interface type='ethernet' name='eth0'><protocol family='ipv4'><dhcp/></protocol></interface>";

pub fn l2_bridge_for_vms_and_unbridge() -> R {
    let sb = Sandbox::up(true);
    let f = sb.write("eth0.xml", ETH0_DHCP);
    let out = sb.nmiface(&["apply", &f]);
    ensure(out.status.success(), || format!("apply eth0: {}", text(&out.stderr)))?;
    let lease = v4_of(&sb, "eth0");
    let mac = sb.ip_json(&["link", "show", "eth0"])[0]["address"].clone();
    let rt = rt();
    let client = rt.block_on(sb.client());
    let standalone = |c: &nmiface::nm_client::NmClient| {
        let mut p = rt.block_on(c.profiles()).unwrap().into_iter().find(|s| s.profile.id == "eth0").unwrap().profile;
        if let Some(c) = p.settings.get_mut("connection") {
            c.remove("timestamp");
        }
        p
    };
    let before = standalone(&client);

    let out = sb.nmiface(&["bridge", "eth0", "br0"]);
    ensure(out.status.code() == Some(0), || format!("bridge: exit {:?} {}", out.status.code(), text(&out.stderr)))?;
    // The bridge has the NIC's MAC and so its DHCP lease; the NIC is its port.
    ensure(v4_of(&sb, "br0") == lease, || format!("br0 has {:?}, eth0 had {lease:?}", v4_of(&sb, "br0")))?;
    ensure(sb.ip_json(&["link", "show", "br0"])[0]["address"] == mac, || "br0 does not carry eth0's MAC".into())?;
    ensure(sb.ip_json(&["link", "show", "eth0"])[0]["master"] == "br0", || "eth0 is not a port of br0".into())?;
    // A VM on the bridge gets its lease from the wire-side DHCP server: layer 2 sharing.
    attach_vm(&sb, "br0")?;
    let vm_addr = vm_lease(&sb)?;
    ensure(vm_addr.starts_with("192.168.77."), || format!("the VM's lease {vm_addr} is not from the wire"))?;

    let out = sb.nmiface(&["unbridge", "br0"]);
    ensure(out.status.success(), || format!("unbridge: {}", text(&out.stderr)))?;
    ensure(sb.ip_json(&["link", "show", "br0"]).as_array().is_none_or(|a| a.is_empty()), || "br0 still exists".into())?;
    ensure(v4_of(&sb, "eth0") == lease, || format!("eth0 has {:?} after unbridge, had {lease:?}", v4_of(&sb, "eth0")))?;
    let active = rt.block_on(client.active_profiles()).unwrap();
    let eth0_path = rt.block_on(client.profiles()).unwrap().into_iter().find(|s| s.profile.id == "eth0").unwrap().path;
    ensure(active.iter().any(|(_, p)| p == eth0_path.as_str()), || "eth0's own profile is not active again".into())?;
    ensure(standalone(&client) == before, || "eth0's own profile changed".into())
}

pub fn nat_share_for_vms() -> R {
    let sb = Sandbox::up(true);
    let f = sb.write("eth0.xml", ETH0_DHCP);
    let out = sb.nmiface(&["apply", &f]);
    ensure(out.status.success(), || format!("apply eth0 (the uplink): {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["share", "--nat", "--bridge", "virbr1", "--subnet", "10.42.7.0/24"]);
    ensure(out.status.success(), || format!("share --nat: {}", text(&out.stderr)))?;
    attach_vm(&sb, "virbr1")?;
    let addr = vm_lease(&sb)?;
    ensure(addr.starts_with("10.42.7."), || format!("the VM's lease {addr} is not from NetworkManager's dnsmasq"))?;
    let rules = text(&sb.exec(&["nft", "list", "ruleset"]).stdout);
    ensure(rules.contains("10.42.7.0/24") && rules.contains("masquerade"), || format!("no masquerade rule: {rules}"))?;
    // The VM reaches the wire side through the NAT.
    for cmd in [
        vec!["ip", "addr", "add", &format!("{addr}/24"), "dev", "vmeth0"],
        vec!["ip", "route", "add", "default", "via", "10.42.7.1"],
    ] {
        let out = vm(&sb, &cmd);
        ensure(out.status.success(), || format!("{cmd:?}: {}", text(&out.stderr)))?;
    }
    let out = vm(&sb, &["busybox", "ping", "-c", "1", "-W", "3", "192.168.77.1"]);
    ensure(out.status.success(), || format!("the VM cannot reach the wire: {}{}", text(&out.stdout), text(&out.stderr)))
}

pub fn failed_sharing_changes_nothing() -> R {
    let sb = Sandbox::up(false);
    // eth1 has DHCP but no server on its wire: it can be defined, not activated.
    let f = sb.write("eth1.xml", "<interface type='ethernet' name='eth1'><start mode='none'/><protocol family='ipv4'><dhcp/></protocol></interface>");
    let out = sb.nmiface(&["define", &f]);
    ensure(out.status.success(), || format!("define eth1: {}", text(&out.stderr)))?;
    let f = sb.write("br5.xml", "<interface type='bridge' name='br5'><bridge stp='off'><interface type='ethernet' name='eth2'/></bridge></interface>");
    let out = sb.nmiface(&["apply", &f]);
    ensure(out.status.success(), || format!("apply br5: {}", text(&out.stderr)))?;
    let before = snapshot(&sb);
    for (args, words) in [
        (vec!["bridge", "eth9", "br0"], "no network device named eth9"),
        (vec!["bridge", "eth2", "br0"], "already a port"),
        (vec!["bridge", "--timeout", "3", "eth1", "br0"], "restored"),
    ] {
        let out = sb.nmiface(&args);
        let err = text(&out.stderr);
        ensure(out.status.code() == Some(2) && err.contains(words), || {
            format!("{args:?}: exit {:?}: {err}", out.status.code())
        })?;
        let after = snapshot(&sb);
        ensure(before == after, || {
            format!(
                "{args:?} changed the host:\n{}",
                similar_asserts::SimpleDiff::from_str(&before, &after, "before", "after")
            )
        })?;
    }
    Ok(())
}
