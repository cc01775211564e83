//! Issue 6: transactions and atomic apply against the sandboxed NetworkManager.

use super::{ensure, nmcli, rt, text, R};
use crate::sandbox::Sandbox;
use std::time::{Duration, Instant};

/// Everything a failed change must leave as it was: keyfiles byte for byte, every profile's
/// settings, and the kernel's links and addresses.
pub fn snapshot(sb: &Sandbox) -> String {
    let rt = rt();
    let client = rt.block_on(sb.client());
    let mut out = String::new();
    let mut files: Vec<_> = std::fs::read_dir(sb.keyfile_dir()).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        out += &format!("== {}\n{}\n", f.display(), std::fs::read_to_string(&f).unwrap_or_default());
    }
    let mut profiles = rt.block_on(client.profiles()).unwrap();
    profiles.sort_by_key(|s| s.profile.uuid);
    for mut s in profiles {
        // Changes whenever a profile is activated; not configuration.
        if let Some(c) = s.profile.settings.get_mut("connection") {
            c.remove("timestamp");
        }
        out += &format!("== profile {}\n{}\n", s.profile.uuid, serde_json::to_string(&s.profile.settings).unwrap());
    }
    let links = sb.ip_json(&["link"]);
    for l in links.as_array().into_iter().flatten() {
        out += &format!("== link {} {} {} {}\n", l["ifname"], l["operstate"], l["master"], l["mtu"]);
    }
    let addrs = sb.ip_json(&["addr"]);
    for a in addrs.as_array().into_iter().flatten() {
        for i in a["addr_info"].as_array().into_iter().flatten() {
            out += &format!("== addr {} {}/{}\n", a["ifname"], i["local"], i["prefixlen"]);
        }
    }
    out
}

pub fn diff(before: &str, after: &str) -> String {
    similar_asserts::SimpleDiff::from_str(before, after, "before", "after").to_string()
}

const BR1: &str = "<interface type='bridge' name='br1'><protocol family='ipv4'><ip address='198.51.100.1' prefix='24'/></protocol><bridge stp='off'><interface type='ethernet' name='eth2'/></bridge></interface>";

/// A prior state worth restoring: an active static ethernet, a defined but inactive bridge, and
/// a hand-made profile.
fn prior_state(sb: &Sandbox) -> R {
    let eth0 = sb.write("eth0.xml", "<interface type='ethernet' name='eth0'><protocol family='ipv4'><ip address='192.0.2.1' prefix='24'/></protocol></interface>");
    let out = sb.nmiface(&["apply", &eth0]);
    ensure(out.status.success(), || format!("apply eth0: {}", text(&out.stderr)))?;
    let br1 = sb.write("br1.xml", BR1);
    let out = sb.nmiface(&["define", &br1]);
    ensure(out.status.success(), || format!("define br1: {}", text(&out.stderr)))?;
    let out =
        nmcli(sb, &["con", "add", "type", "ethernet", "ifname", "eth3", "con-name", "handmade", "autoconnect", "no"]);
    ensure(out.status.success(), || format!("nmcli: {}", text(&out.stderr)))
}

pub fn failing_apply_changes_nothing() -> R {
    let sb = Sandbox::up(false);
    prior_state(&sb)?;
    let before = snapshot(&sb);
    // Changes br1 (a profile that exists, inactive: the checkpoint alone would not restore it)
    // and adds a bond, which this kernel cannot create.
    let changed = BR1.replace("198.51.100.1", "198.51.100.99");
    let host = format!(
        "<interfaces>{changed}<interface type='bond' name='bond0'><bond mode='active-backup'><interface type='ethernet' name='eth1'/></bond></interface></interfaces>"
    );
    let f = sb.write("bad.xml", &host);
    // --force past the capability check, so NetworkManager itself fails the bond and the
    // checkpoint has to undo the changes made before that.
    let out = sb.nmiface(&["apply", "--force", &f]);
    let err = text(&out.stderr);
    ensure(out.status.code() == Some(2), || format!("apply should fail: exit {:?} {err}", out.status.code()))?;
    ensure(err.contains("restored"), || format!("the message should say the host was restored: {err}"))?;
    let after = snapshot(&sb);
    ensure(before == after, || format!("the host changed:\n{}", diff(&before, &after)))
}

pub fn sigkill_mid_apply_is_rolled_back_by_nm() -> R {
    let sb = Sandbox::up(false);
    prior_state(&sb)?;
    let before = snapshot(&sb);
    // DHCP on eth1 has no server: the activation waits, and nmiface is killed meanwhile.
    let f = sb.write(
        "dhcp1.xml",
        "<interface type='ethernet' name='eth1'><protocol family='ipv4'><dhcp/></protocol></interface>",
    );
    let mut child = sb.spawn_nmiface(&["apply", "--rollback-timeout", "2", &f]);
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    ensure(snapshot(&sb) != before, || {
        "the apply had not changed anything before the kill; the test proves nothing".into()
    })?;
    // NetworkManager rolls back the devices by itself once the keep-alives stop. It deletes no
    // profile (nmiface takes checkpoints without delete-new-profiles, so another user's new
    // profile would survive): the one nmiface added stays until the next nmiface run finishes
    // the journal it wrote ahead.
    let rt = rt();
    let nm = rt.block_on(sb.client());
    let t0 = Instant::now();
    while !rt.block_on(nm.checkpoints()).map_err(|e| e.to_string())?.is_empty() {
        if t0.elapsed() > Duration::from_secs(15) {
            return Err("NetworkManager did not roll back 15 s after the kill".into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = sb.nmiface(&["rollback"]);
    ensure(out.status.success(), || format!("rollback after the kill: {}", text(&out.stderr)))?;
    ensure(text(&out.stderr).contains("interrupted"), || {
        format!("rollback did not say it finished an interrupted change: {}", text(&out.stderr))
    })?;
    let after = snapshot(&sb);
    ensure(before == after, || format!("not restored after the next run:\n{}", diff(&before, &after)))
}

pub fn nm_restart_during_apply_does_not_hang() -> R {
    let sb = Sandbox::up(false);
    let f = sb.write(
        "dhcp1.xml",
        "<interface type='ethernet' name='eth1'><protocol family='ipv4'><dhcp/></protocol></interface>",
    );
    let child = sb.spawn_nmiface(&["apply", "--timeout", "60", &f]);
    std::thread::sleep(Duration::from_millis(1000));
    let t0 = Instant::now();
    std::process::Command::new("kill").arg(sb.nm_pid().to_string()).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    ensure(t0.elapsed() < Duration::from_secs(10), || format!("nmiface took {:?} to notice", t0.elapsed()))?;
    ensure(out.status.code() == Some(2), || format!("exit {:?}: {err}", out.status.code()))?;
    ensure(err.contains("NetworkManager"), || format!("the message should name NetworkManager: {err}"))
}

pub fn begin_rollback_and_commit() -> R {
    let sb = Sandbox::up(false);
    prior_state(&sb)?;
    let before = snapshot(&sb);
    for (args, words) in [(["commit"], "nothing to commit"), (["rollback"], "nothing to rollback")] {
        let out = sb.nmiface(&args);
        ensure(out.status.code() == Some(2) && text(&out.stderr).contains(words), || {
            format!("{args:?}: {}", text(&out.stderr))
        })?;
    }
    let out = sb.nmiface(&["begin", "--timeout", "120"]);
    ensure(out.status.success(), || format!("begin: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["begin"]);
    ensure(out.status.code() == Some(2) && text(&out.stderr).contains("another transaction"), || {
        format!("second begin: {}", text(&out.stderr))
    })?;
    // Several changes: a new started bridge, a changed inactive one, an undefined one.
    let br0 = sb.write("br0.xml", "<interface type='bridge' name='br0'><protocol family='ipv4'><ip address='203.0.113.1' prefix='24'/></protocol><bridge stp='off'><interface type='ethernet' name='eth1'/></bridge></interface>");
    for args in [vec!["apply", br0.as_str()], vec!["undefine", "eth0"]] {
        let out = sb.nmiface(&args);
        ensure(out.status.success(), || format!("{args:?}: {}", text(&out.stderr)))?;
    }
    let f = sb.write("br1b.xml", &BR1.replace("198.51.100.1", "198.51.100.7"));
    let out = sb.nmiface(&["define", &f]);
    ensure(out.status.success(), || format!("define br1: {}", text(&out.stderr)))?;
    ensure(snapshot(&sb) != before, || "nothing changed inside the transaction".into())?;
    let out = sb.nmiface(&["rollback"]);
    ensure(out.status.success(), || format!("rollback: {}", text(&out.stderr)))?;
    let after = snapshot(&sb);
    ensure(before == after, || format!("rollback did not restore the state at begin:\n{}", diff(&before, &after)))?;

    // begin -> change -> commit: the change stays and no checkpoint remains.
    let out = sb.nmiface(&["begin"]);
    ensure(out.status.success(), || format!("begin: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["apply", &br0]);
    ensure(out.status.success(), || format!("apply: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["commit"]);
    ensure(out.status.success(), || format!("commit: {}", text(&out.stderr)))?;
    let rt = rt();
    let client = rt.block_on(sb.client());
    let cps = rt.block_on(client.checkpoints()).unwrap();
    ensure(cps.is_empty(), || format!("checkpoints left after commit: {cps:?}"))?;
    let listed = text(&sb.nmiface(&["list"]).stdout);
    ensure(listed.contains("br0") && listed.contains("active"), || format!("br0 not kept: {listed}"))
}

pub fn leftover_checkpoint_is_reported_and_rolled_back() -> R {
    let sb = Sandbox::up(false);
    let rt = rt();
    let client = rt.block_on(sb.client());
    // What a crashed run leaves: a checkpoint no transaction file records. A change whose
    // checkpoint would cover one of its devices names it (`begin` takes no checkpoint, so it
    // has nothing to check: the first change inside the transaction does).
    let cp = rt.block_on(client.checkpoint_create(None, 0, false)).unwrap();
    let f = sb.write("eth1.xml", "<interface type='ethernet' name='eth1'><protocol family='ipv4'><ip address='192.0.2.9' prefix='24'/></protocol></interface>");
    for args in [vec!["apply", f.as_str()], vec!["begin"], vec!["apply", f.as_str()]] {
        let out = sb.nmiface(&args);
        let err = text(&out.stderr);
        let refused = args[0] == "apply";
        ensure((out.status.code() == Some(2) && err.contains(&cp)) == refused, || {
            format!("{args:?} should name the leftover {cp} exactly when it takes a checkpoint: {err}")
        })?;
    }
    let out = sb.nmiface(&["rollback"]);
    ensure(out.status.success(), || format!("rollback of the empty transaction: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["rollback", "--checkpoint", &cp]);
    ensure(out.status.success(), || format!("rollback --checkpoint: {}", text(&out.stderr)))?;
    let left = rt.block_on(client.checkpoints()).unwrap();
    ensure(left.is_empty(), || format!("checkpoint still there: {left:?}"))
}

pub fn concurrent_applies_do_not_interleave() -> R {
    let sb = Sandbox::up(false);
    let slow = sb.write(
        "slow.xml",
        "<interface type='ethernet' name='eth1'><protocol family='ipv4'><dhcp/></protocol></interface>",
    );
    let fast = sb.write("fast.xml", "<interface type='ethernet' name='eth2'><protocol family='ipv4'><ip address='192.0.2.2' prefix='24'/></protocol></interface>");
    let first = sb.spawn_nmiface(&["apply", "--timeout", "3", &slow]);
    std::thread::sleep(Duration::from_millis(500));
    let second = sb.nmiface(&["apply", &fast]);
    let first = first.wait_with_output().unwrap();
    let err = text(&second.stderr);
    ensure(err.contains("waiting for another nmiface") && err.contains("apply"), || {
        format!("the second apply did not wait for the first: {err}")
    })?;
    ensure(second.status.success(), || format!("second apply: {err}"))?;
    ensure(first.status.code() == Some(2), || {
        format!("the first (DHCP without server, 3 s) should fail: {}", text(&first.stderr))
    })
}
