//! Issue 16: apply twice changes nothing the second time; a changed address is applied in place;
//! a change only an activation applies re-activates; `apply --check` says which.

use super::{ensure, rt, text, R};
use crate::sandbox::Sandbox;
use std::time::Duration;

fn br(address: &str, stp: &str) -> String {
    format!(
        "<interface type='bridge' name='br0'><protocol family='ipv4'><ip address='{address}' prefix='24'/></protocol><bridge stp='{stp}' delay='2'><interface type='ethernet' name='eth1'/></bridge></interface>"
    )
}

fn json_of(out: &std::process::Output) -> Result<serde_json::Value, String> {
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("not JSON ({e}): {}{}", text(&out.stdout), text(&out.stderr)))
}

/// The active connection of br0's profile, and the keyfile's bytes and modification time.
fn state(sb: &Sandbox) -> Result<(String, Vec<u8>, std::time::SystemTime), String> {
    let rt = rt();
    let nm = rt.block_on(sb.client());
    let active = rt.block_on(nm.active_profiles()).map_err(|e| e.to_string())?;
    let profile = rt
        .block_on(nm.profiles())
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|s| s.profile.id == "br0")
        .ok_or("no br0 profile")?;
    let ac = active.into_iter().find(|(_, p)| *p == profile.path.as_str()).map(|(a, _)| a).ok_or("br0 not active")?;
    let file = sb.keyfile_dir().join("br0.nmconnection");
    let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
    let mtime = std::fs::metadata(&file).and_then(|m| m.modified()).map_err(|e| e.to_string())?;
    Ok((ac, bytes, mtime))
}

fn outcome(v: &serde_json::Value, name: &str) -> String {
    v["started"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["interface"] == name)
        .map(|s| s["outcome"].to_string())
        .unwrap_or_default()
}

pub fn apply_twice_changes_nothing_then_only_what_differs() -> R {
    let sb = Sandbox::up(false);
    let f = sb.write("br0.xml", &br("192.0.2.1", "off"));
    let first = json_of(&sb.nmiface(&["apply", "--json", &f]))?;
    ensure(first["changed"] == true && outcome(&first, "br0") == "\"started\"", || format!("first apply: {first}"))?;
    let (ac, bytes, mtime) = state(&sb)?;
    std::thread::sleep(Duration::from_millis(1100)); // a rewrite would show in the mtime

    // --check first: nothing would change.
    let check = json_of(&sb.nmiface(&["apply", "--check", "--json", &f]))?;
    ensure(check["changed"] == false, || format!("--check of the same file: {check}"))?;
    let second = json_of(&sb.nmiface(&["apply", "--json", &f]))?;
    ensure(second["changed"] == false && outcome(&second, "br0") == "\"unchanged\"", || {
        format!("second apply: {second}")
    })?;
    let (ac2, bytes2, mtime2) = state(&sb)?;
    ensure(ac2 == ac, || format!("br0 was re-activated: {ac} -> {ac2}"))?;
    ensure(bytes2 == bytes && mtime2 == mtime, || "the keyfile was rewritten".into())?;
    let cps = rt().block_on(async { sb.client().await.checkpoints().await }).map_err(|e| e.to_string())?;
    ensure(cps.is_empty(), || format!("checkpoint left: {cps:?}"))?;
    let out = sb.nmiface(&["apply", &f]);
    ensure(text(&out.stdout).contains("Nothing to do"), || format!("text output: {}", text(&out.stdout)))?;

    // A new address: applied in place, the same active connection, the link never down.
    let f2 = sb.write("br0-addr.xml", &br("192.0.2.7", "off"));
    let check = json_of(&sb.nmiface(&["apply", "--check", "--json", &f2]))?;
    let updates: Vec<&serde_json::Value> =
        check["profiles"].as_array().into_iter().flatten().filter(|p| p["action"] == "update").collect();
    ensure(
        check["changed"] == true && updates.len() == 1 && updates[0]["changes"].to_string().contains("192.0.2.7"),
        || format!("--check of a new address: {check}"),
    )?;
    let third = json_of(&sb.nmiface(&["apply", "--json", &f2]))?;
    ensure(outcome(&third, "br0") == "\"reapplied\"", || format!("address change: {third}"))?;
    let (ac3, _, _) = state(&sb)?;
    ensure(ac3 == ac, || format!("an address change re-activated br0: {ac} -> {ac3}"))?;
    let addrs = text(&sb.exec(&["ip", "-4", "-br", "addr", "show", "br0"]).stdout);
    ensure(addrs.contains("192.0.2.7/24") && !addrs.contains("192.0.2.1/"), || format!("addresses now: {addrs}"))?;

    // STP: only an activation applies it.
    let f3 = sb.write("br0-stp.xml", &br("192.0.2.7", "on"));
    let fourth = json_of(&sb.nmiface(&["apply", "--json", "--timeout", "20", &f3]))?;
    ensure(outcome(&fourth, "br0") == "\"reactivated\"", || format!("STP change: {fourth}"))?;
    let (ac4, _, _) = state(&sb)?;
    ensure(ac4 != ac, || "STP changed without a re-activation".into())
}

/// `bridge` twice: the second changes nothing (the same active connection, no keyfile written).
pub fn bridge_twice_changes_nothing() -> R {
    let sb = Sandbox::up(false);
    let f = sb.write("eth1.xml", "<interface type='ethernet' name='eth1'><protocol family='ipv4'><ip address='198.51.100.20' prefix='24'/></protocol></interface>");
    let out = sb.nmiface(&["apply", &f]);
    ensure(out.status.success(), || format!("apply eth1: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["bridge", "--no-stp", "eth1", "br9"]);
    ensure(out.status.success(), || format!("first bridge: {}", text(&out.stderr)))?;
    let ac_of = |sb: &Sandbox| -> Result<(String, std::time::SystemTime), String> {
        let rt = rt();
        let nm = rt.block_on(sb.client());
        let br = rt
            .block_on(nm.profiles())
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|s| s.profile.id == "br9")
            .ok_or("no br9")?;
        let active = rt.block_on(nm.active_profiles()).map_err(|e| e.to_string())?;
        let ac = active.into_iter().find(|(_, p)| *p == br.path.as_str()).map(|(a, _)| a).ok_or("br9 not active")?;
        let mtime = std::fs::metadata(sb.keyfile_dir().join("br9.nmconnection"))
            .and_then(|m| m.modified())
            .map_err(|e| e.to_string())?;
        Ok((ac, mtime))
    };
    let before = ac_of(&sb)?;
    std::thread::sleep(Duration::from_millis(1100));
    let out = sb.nmiface(&["bridge", "--no-stp", "eth1", "br9"]);
    ensure(out.status.success() && text(&out.stdout).contains("nothing to do"), || {
        format!("second bridge: exit {:?}: {}{}", out.status.code(), text(&out.stdout), text(&out.stderr))
    })?;
    ensure(ac_of(&sb)? == before, || "the second bridge re-activated or rewrote br9".into())?;
    // A different request under the same name is still refused.
    let out = sb.nmiface(&["bridge", "eth1", "br9"]);
    ensure(out.status.code() == Some(2), || {
        format!("bridge with STP over the STP-less br9: exit {:?}", out.status.code())
    })
}
