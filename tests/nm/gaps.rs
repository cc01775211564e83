//! Issue 4: capability gaps reported before anything changes, against the sandboxed
//! NetworkManager 1.42.4 on a kernel without bonding and 802.1q.

use super::{ensure, text, R};
use crate::sandbox::Sandbox;
use crate::transactions::snapshot;

fn check_json(sb: &Sandbox, file: &str) -> Result<(Option<i32>, serde_json::Value), String> {
    let out = sb.nmiface(&["check", "--json", file]);
    let v =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("check --json {file}: {e}: {}", text(&out.stderr)))?;
    Ok((out.status.code(), v))
}

fn items(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["items"].as_array().cloned().unwrap_or_default())
        .collect()
}

pub fn bond_and_vlan_report_the_kernel_gap() -> R {
    let sb = Sandbox::up(false);
    for (file, module, feature) in [
        ("xml-samples/libvirt-bond-active-backup-miimon-ioctl.xml", "bonding", "bond device"),
        ("xml-samples/libvirt-vlan-on-ethernet.xml", "vlan", "vlan device"),
    ] {
        let (code, r) = check_json(&sb, file)?;
        ensure(code == Some(1), || format!("check {file}: exit {code:?}, want 1 (gaps)"))?;
        ensure(r["nm_source"] == "daemon", || format!("the version should come from the daemon: {r}"))?;
        ensure(r["kernel"][module] == "missing", || {
            format!("kernel {module} should be missing here: {}", r["kernel"])
        })?;
        let gap = items(&r).into_iter().find(|i| i["feature"] == feature);
        ensure(
            gap.as_ref()
                .is_some_and(|g| g["status"] == "unsupported" && g["by"] == "kernel" && g["remedy"].is_string()),
            || format!("{file}: no kernel gap for '{feature}': {gap:?}"),
        )?;
    }
    Ok(())
}

pub fn apply_with_a_kernel_gap_changes_nothing() -> R {
    let sb = Sandbox::up(false);
    let before = snapshot(&sb);
    let out = sb.nmiface(&["apply", "xml-samples/host-rfc-seed-set.xml"]);
    let err = text(&out.stderr);
    ensure(out.status.code() == Some(2) && err.contains("refusing to apply"), || {
        format!("apply: exit {:?}: {err}", out.status.code())
    })?;
    let after = snapshot(&sb);
    ensure(before == after, || "apply refused by the check still changed the host".into())
}

pub fn the_daemon_is_asked_what_a_version_cannot_settle() -> R {
    let sb = Sandbox::up(false);
    // bond-port.prio arrived in 1.44 and was backported to 1.42.8: for 1.42.4 nmiface asks.
    let (code, r) = check_json(&sb, "xml-samples/ext-bond-active-backup-arp-targets.xml")?;
    let prio = items(&r).into_iter().find(|i| i["feature"].as_str().is_some_and(|f| f.ends_with("bond-port.prio")));
    ensure(code == Some(1), || format!("exit {code:?}"))?;
    ensure(
        prio.as_ref().is_some_and(|p| {
            p["status"] == "unsupported"
                && p["by"] == "nm-version"
                && p["detail"].as_str().is_some_and(|d| d.contains("asked the daemon"))
        }),
        || format!("bond-port.prio should be found unknown by asking NetworkManager 1.42.4: {prio:?}"),
    )?;
    // Nothing was created by asking.
    let rt = super::rt();
    let client = rt.block_on(sb.client());
    let n = rt.block_on(client.profiles()).unwrap().len();
    ensure(n == 1, || format!("{n} profiles after check (want only NetworkManager's loopback)"))
}
