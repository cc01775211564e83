//! Users cannot disturb each other or root, with two unprivileged users (A, B) and root in the
//! `--users` sandbox: a per-user change never takes a device or a name root or another user
//! holds (checked on the device, not only the profile); a UUID another user squats does not lock
//! a user out; a transaction records whose profiles it is on, and a change of the other scope
//! cannot join it.

use super::{ensure, nmcli, rt, text, R};
use crate::sandbox::Sandbox;
use std::process::Output;

const NM: &str = "org.freedesktop.NetworkManager";

fn as_user(sb: &Sandbox, user: &str, args: &[&str]) -> Output {
    let mut full = vec![env!("CARGO_BIN_EXE_nmiface")];
    full.extend_from_slice(args);
    sb.as_user(user, &full).current_dir("/").output().unwrap()
}

fn ok(what: &str, out: &Output) -> R {
    ensure(out.status.success(), || {
        format!("{what}: exit {:?}: {}{}", out.status.code(), text(&out.stdout), text(&out.stderr))
    })
}

/// Exit 2, and `--json`'s error kind.
fn refused(what: &str, out: &Output, kind: &str) -> R {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    ensure(out.status.code() == Some(2) && v["error"]["kind"] == kind, || {
        format!(
            "{what}: wanted exit 2 ({kind}), got {:?}: {}{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

fn active(sb: &Sandbox) -> String {
    text(&nmcli(sb, &["-g", "NAME,DEVICE", "con", "show", "--active"]).stdout)
}

fn bridge(name: &str, addr: &str) -> String {
    format!(
        "<interface type='bridge' name='{name}'><start mode='none'/><protocol family='ipv4'><ip address='{addr}' prefix='24'/></protocol><bridge stp='off'/></interface>"
    )
}

pub fn users_cannot_take_each_others_devices() -> R {
    let sb = Sandbox::up_users(true);
    let ((a, a_uid), (b, b_uid)) = (sb.user_a(), sb.user_b());
    for (user, uid) in [(&a, a_uid), (&b, b_uid)] {
        sb.login(user);
        for action in ["settings.modify.own", "network-control", "settings.modify.system"] {
            sb.polkit(uid, &format!("{NM}.{action}"), "yes");
        }
    }
    // Root's bridge br10 with eth0 as its port, and root's profile on eth1, made with nmcli
    // (its default names: nothing collides with nmiface's by name) and up.
    for args in [
        &[
            "con",
            "add",
            "type",
            "bridge",
            "ifname",
            "br10",
            "con-name",
            "bridge-br10",
            "ipv4.method",
            "manual",
            "ipv4.addresses",
            "192.168.77.10/24",
            "bridge.stp",
            "no",
        ][..],
        &["con", "add", "type", "ethernet", "ifname", "eth0", "con-name", "bridge-slave-eth0", "master", "br10"][..],
        &[
            "con",
            "add",
            "type",
            "ethernet",
            "ifname",
            "eth1",
            "con-name",
            "Wired connection 2",
            "ipv4.method",
            "manual",
            "ipv4.addresses",
            "192.168.78.1/24",
        ][..],
    ] {
        let out = nmcli(&sb, args);
        ensure(out.status.success(), || format!("nmcli {args:?}: {}", text(&out.stderr)))?;
    }
    for id in ["bridge-br10", "bridge-slave-eth0", "Wired connection 2"] {
        let out = nmcli(&sb, &["con", "up", id]);
        ensure(out.status.success(), || format!("nmcli up {id}: {}", text(&out.stderr)))?;
    }
    let before = active(&sb);

    // B's per-user bridge named like root's, B's ethernet profile for root's NIC, B's NAT share
    // on root's bridge: refused, root's devices untouched.
    let f = sb.write("b-br10.xml", &bridge("br10", "198.51.100.10"));
    refused("B: apply br10", &as_user(&sb, &b, &["apply", "--json", &f]), "InUse")?;
    let eth =
        "<interface type='ethernet' name='eth1'><protocol family='ipv4'><ip address='198.51.100.11' prefix='24'/></protocol></interface>";
    let f = sb.write("b-eth1.xml", eth);
    refused("B: apply eth1", &as_user(&sb, &b, &["apply", "--json", &f]), "InUse")?;
    refused("B: share on br10", &as_user(&sb, &b, &["share", "--nat", "--bridge", "br10", "--json"]), "InUse")?;
    ensure(active(&sb) == before, || format!("root's devices changed:\nbefore {before}\nafter {}", active(&sb)))?;

    // A's NAT bridge, then B's bridge of the same name: A's device is A's.
    ok("A: share", &as_user(&sb, &a, &["share", "--nat", "--bridge", "vmnat0"]))?;
    let f = sb.write("b-vmnat0.xml", &bridge("vmnat0", "198.51.100.12"));
    refused("B: apply A's bridge name", &as_user(&sb, &b, &["apply", "--json", &f]), "InUse")?;
    ensure(active(&sb).contains("vmnat0"), || "A's bridge went down".into())?;

    // B cannot probe which names A has defined: A's UUIDs are not derived from names (a
    // derived one that exists answered "permission denied", one that does not "unknown").
    let derived = nmiface::nm::Scope::User(a.clone()).uuid(nmiface::nm::profile_uuid(None, "bridge", "vmnat0", None));
    let probe = sb
        .as_user(
            &b,
            &[
                "gdbus",
                "call",
                "--system",
                "--dest",
                "org.freedesktop.NetworkManager",
                "--object-path",
                "/org/freedesktop/NetworkManager/Settings",
                "--method",
                "org.freedesktop.NetworkManager.Settings.GetConnectionByUuid",
                &derived.to_string(),
            ],
        )
        .output()
        .unwrap();
    // NetworkManager answers as for a UUID nobody has: a Settings error, not PermissionDenied.
    let said = text(&probe.stderr);
    ensure(
        !probe.status.success()
            && said.contains("org.freedesktop.NetworkManager.Settings.")
            && !said.contains("PermissionDenied"),
        || format!("B's probe of A's derived UUID: {said}"),
    )?;

    // B squats the UUID A's next share would get: A is not locked out.
    let a_scope = nmiface::nm::Scope::User(a.clone());
    let squat = a_scope.uuid(nmiface::nm::profile_uuid(None, "bridge", "virbr1", None)).to_string();
    let squatting = ["connection.uuid", &squat, "ipv4.method", "disabled", "ipv6.method", "disabled"];
    super::private_bridge(&sb, &b, "sq0", "squat", &squatting)?;
    ok("A: share virbr1 beside a squatted UUID", &as_user(&sb, &a, &["share", "--nat"]))?;
    ok("A: tap add on virbr1", &as_user(&sb, &a, &["tap", "add", "virbr1", "--name", "atap0"]))?;
    ok("A: leases virbr1", &as_user(&sb, &a, &["leases", "virbr1"]))?;
    ok("A: dumpxml virbr1", &as_user(&sb, &a, &["dumpxml", "virbr1"]))?;
    ok("A: tap remove", &as_user(&sb, &a, &["tap", "remove", "atap0"]))?;
    ok("A: stop virbr1", &as_user(&sb, &a, &["stop", "virbr1"]))?;
    ok("A: undefine virbr1", &as_user(&sb, &a, &["undefine", "virbr1"]))?;
    let f = sb.write("a-br7.xml", &bridge("abr7", "198.51.100.17"));
    ok("A: a journalled change after all that", &as_user(&sb, &a, &["define", &f]))?;

    // A's transaction is on A's own profiles: a --system change cannot join it, and rollback
    // undoes exactly what it recorded.
    let out = as_user(&sb, &a, &["begin", "--json"]);
    ok("A: begin", &out)?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    ensure(v["protection"] == "journal" && v["rollback_timeout"] == 600, || format!("begin --json: {v}"))?;
    let f = sb.write("a-sys.xml", &bridge("asys0", "198.51.100.20"));
    refused(
        "A: --system define inside A's transaction",
        &as_user(&sb, &a, &["--system", "define", "--json", &f]),
        "Busy",
    )?;
    ensure(!text(&nmcli(&sb, &["-g", "NAME", "con", "show"]).stdout).contains("asys0"), || {
        "the refused --system define left a profile".into()
    })?;
    let f = sb.write("a-tx.xml", &bridge("atx0", "198.51.100.21"));
    ok("A: define inside the transaction", &as_user(&sb, &a, &["define", &f]))?;
    ok("A: rollback", &as_user(&sb, &a, &["rollback"]))?;
    ensure(!text(&nmcli(&sb, &["-g", "NAME", "con", "show"]).stdout).contains("atx0"), || "rollback kept atx0".into())?;
    // Taps are inside transactions: one added is removed by rollback, and undefine's taps come
    // back with their bridge.
    let names = || text(&nmcli(&sb, &["-g", "NAME", "con", "show"]).stdout);
    ok("A: begin", &as_user(&sb, &a, &["begin"]))?;
    ok("A: tap add in a transaction", &as_user(&sb, &a, &["tap", "add", "vmnat0", "--name", "atap1"]))?;
    ok("A: rollback", &as_user(&sb, &a, &["rollback"]))?;
    ensure(!names().contains("atap1"), || "rollback kept the tap added inside the transaction".into())?;
    ok("A: tap add", &as_user(&sb, &a, &["tap", "add", "vmnat0", "--name", "atap2"]))?;
    ok("A: begin", &as_user(&sb, &a, &["begin"]))?;
    ok("A: undefine vmnat0 with its tap", &as_user(&sb, &a, &["undefine", "vmnat0"]))?;
    ensure(!names().contains("atap2"), || "undefine kept the tap".into())?;
    ok("A: rollback", &as_user(&sb, &a, &["rollback"]))?;
    ensure(names().contains("atap2") && names().contains("vmnat0"), || {
        format!("rollback did not bring back the bridge and its tap: {}", names())
    })?;

    // --system as a user with settings.modify.system but no checkpoint rights: the journal
    // protects the change (it was refused for want of checkpoint rights).
    let f = sb.write("a-sys1.xml", &bridge("asys1", "198.51.100.22"));
    let out = as_user(&sb, &a, &["--system", "apply", "--json", &f]);
    ok("A: --system apply", &out)?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    ensure(v["protection"] == "journal", || format!("--system apply as a user: {v}"))?;
    ok("A: --system undefine", &as_user(&sb, &a, &["--system", "undefine", "asys1"]))?;

    // B's stopped NAT bridge, whose subnet A then takes (B's profile is invisible to A): B's
    // start is refused, not a success whose dnsmasq cannot bind.
    ok(
        "B: share",
        &as_user(&sb, &b, &["share", "--nat", "--bridge", "bnat", "--persist", "--subnet", "10.42.77.0/24"]),
    )?;
    ok("B: stop", &as_user(&sb, &b, &["stop", "bnat"]))?;
    ok(
        "A: share on B's subnet",
        &as_user(&sb, &a, &["share", "--nat", "--bridge", "anat", "--subnet", "10.42.77.0/24"]),
    )?;
    refused("B: start on A's subnet", &as_user(&sb, &b, &["start", "bnat", "--json"]), "InUse")?;
    // A moves anat elsewhere: said, not silent (its VMs need new leases).
    let out = as_user(&sb, &a, &["share", "--nat", "--bridge", "anat", "--subnet", "10.42.78.0/24"]);
    ok("A: share anat on another subnet", &out)?;
    ensure(text(&out.stderr).contains("re-addressed from 10.42.77.1/24 to 10.42.78.1/24"), || {
        format!("re-addressing anat was silent: {}", text(&out.stderr))
    })?;
    ensure(active(&sb).contains("anat"), || "A's bridge went down".into())?;

    ensure(active(&sb).contains("bridge-br10:br10") && active(&sb).contains("Wired connection 2:eth1"), || {
        format!("root's devices at the end: {}", active(&sb))
    })
}

/// Issue 22: root's failed apply rolls back the devices its change bound to and nothing else.
/// A starts a NAT bridge while root's apply runs (a new bridge over eth1 whose DHCP never
/// answers, so it fails after `--timeout`): root's rollback leaves A's bridge up with its
/// address (a checkpoint over every device, with DISCONNECT_NEW_DEVICES, took it down), puts
/// eth1 back on the profile it ran (a covered device re-activated), and removes root's bridge,
/// profile and link (the journal deletes the profile nmiface added; NetworkManager then
/// removes the device). A change that binds to no existing device takes no checkpoint.
pub fn roots_rollback_leaves_a_users_new_bridge_alone() -> R {
    let sb = Sandbox::up_users(true);
    let (a, a_uid) = sb.user_a();
    sb.at_desk(&a, a_uid);
    // eth1 runs a profile of root's: the rollback must bring it back, not merely leave it.
    root_runs_eth1(&sb, &[])?;
    let names = || text(&nmcli(&sb, &["-g", "NAME", "con", "show"]).stdout);
    let (active_before, names_before) = (active(&sb), names());

    let f = sb.write(
        "root-brfail.xml",
        "<interface type='bridge' name='brfail'><protocol family='ipv4'><dhcp/></protocol><bridge stp='off'><interface type='ethernet' name='eth1'/></bridge></interface>",
    );
    let root = sb.spawn_nmiface(&["-v", "apply", "--timeout", "12", &f]);
    // Nothing returns early before root's apply is waited for.
    let started = super::wait_for(8, || active(&sb).contains("brfail"));
    let shared = started.then(|| as_user(&sb, &a, &["share", "--nat", "--bridge", "virbr-a"]));
    let addr = |sb: &Sandbox| -> Vec<String> {
        let v = sb.ip_json(&["-4", "addr", "show", "dev", "virbr-a"]);
        let infos =
            v.as_array().into_iter().flatten().flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default());
        infos.map(|i| format!("{}/{}", i["local"], i["prefixlen"])).collect()
    };
    let a_addr = addr(&sb);
    let running = active(&sb);
    let out = root.wait_with_output().unwrap();
    ensure(started && running.contains("brfail"), || {
        format!("root's apply was not under way while A shared; the trial proves nothing: {running}")
    })?;
    ok("A: share virbr-a while root's apply runs", shared.as_ref().unwrap())?;
    ensure(!a_addr.is_empty(), || "A's bridge has no IPv4 address".into())?;
    let err = text(&out.stderr);
    // Under a checkpoint (over eth1): the -v log names the call.
    ensure(out.status.code() == Some(2) && err.contains("restored") && err.contains("CheckpointCreate"), || {
        format!("root's apply should fail and restore the host: exit {:?}: {err}", out.status.code())
    })?;

    // A's bridge: untouched by root's rollback.
    let state = text(&nmcli(&sb, &["-g", "GENERAL.STATE", "device", "show", "virbr-a"]).stdout);
    ensure(state.trim() == "100 (connected)" && active(&sb).contains("virbr-a"), || {
        format!("root's rollback disturbed A's bridge: device {}, active: {}", state.trim(), active(&sb))
    })?;
    ensure(addr(&sb) == a_addr, || format!("A's bridge's address: {:?} before, {:?} after", a_addr, addr(&sb)))?;

    // Root's half-made change: gone, eth1 back on root-eth1, nmcli's view as before but A's.
    let gone = super::wait_for(5, || !sb.ip_json(&["link", "show"]).to_string().contains("\"brfail\""));
    ensure(gone, || "root's bridge brfail is still a link".into())?;
    let without_a = |s: String| s.lines().filter(|l| !l.contains("virbr-a")).collect::<Vec<_>>().join("\n");
    ensure(without_a(active(&sb)) == without_a(active_before.clone()), || {
        format!("active profiles:\nbefore {active_before}\nafter {}", active(&sb))
    })?;
    ensure(without_a(names()) == without_a(names_before.clone()), || {
        format!("profiles:\nbefore {names_before}\nafter {}", names())
    })?;

    // A change that binds to no existing device (a bridge without ports): no checkpoint (an
    // empty device list would be every device to NetworkManager); its journal undoes it, the
    // bridge's link included, and A's bridge stays up.
    let f = sb.write(
        "root-brlone.xml",
        "<interface type='bridge' name='brlone'><protocol family='ipv4'><dhcp/></protocol><bridge stp='off'/></interface>",
    );
    let out = sb.nmiface(&["-v", "apply", "--timeout", "3", &f]);
    let err = text(&out.stderr);
    ensure(out.status.code() == Some(2) && err.contains("restored") && !err.contains("CheckpointCreate"), || {
        format!("root's port-less bridge should fail, be undone without a checkpoint: {err}")
    })?;
    let gone = super::wait_for(5, || !sb.ip_json(&["link", "show"]).to_string().contains("\"brlone\""));
    ensure(gone && !names().contains("brlone"), || "root's bridge brlone was left behind".into())?;
    ensure(active(&sb).contains("virbr-a") && addr(&sb) == a_addr, || {
        format!("A's bridge after root's second rollback: {}", active(&sb))
    })
}

/// Root's transaction protects only what its changes touch: root `begin`s, A shares a NAT
/// bridge while root's transaction is open, root `apply`s a static address on eth1, then
/// `rollback`s. A's bridge stays up with its address (a checkpoint over every device taken at
/// `begin`, with DISCONNECT_NEW_DEVICES, took it down at root's rollback); root's change is
/// gone (eth1 back on the profile it ran, root's profile deleted).
pub fn roots_transaction_rollback_leaves_a_users_bridge_alone() -> R {
    let sb = Sandbox::up_users(true);
    let (a, a_uid) = sb.user_a();
    sb.at_desk(&a, a_uid);
    root_runs_eth1(&sb, &["autoconnect", "no"])?;
    let names = || text(&nmcli(&sb, &["-g", "NAME", "con", "show"]).stdout);
    let (active_before, names_before) = (active(&sb), names());

    ok("root: begin", &sb.nmiface(&["begin", "--timeout", "120"]))?;
    ok("A: share while root's transaction is open", &as_user(&sb, &a, &["share", "--nat", "--bridge", "virbr-a"]))?;
    let addr = |sb: &Sandbox| -> Vec<String> {
        let v = sb.ip_json(&["-4", "addr", "show", "dev", "virbr-a"]);
        let infos =
            v.as_array().into_iter().flatten().flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default());
        infos.map(|i| format!("{}/{}", i["local"], i["prefixlen"])).collect()
    };
    let state = || text(&nmcli(&sb, &["-g", "GENERAL.STATE", "device", "show", "virbr-a"]).stdout).trim().to_string();
    // Its activation: the same object before and after root's rollback, or it was restarted.
    let activation = || {
        let out = text(&nmcli(&sb, &["-t", "-f", "DEVICE,ACTIVE-PATH", "con", "show", "--active"]).stdout);
        out.lines().find(|l| l.starts_with("virbr-a:")).unwrap_or_default().to_string()
    };
    ensure(super::wait_for(20, || state() == "100 (connected)"), || {
        format!("A's bridge did not come up: {}", state())
    })?;
    let (a_addr, a_activation) = (addr(&sb), activation());
    ensure(!a_addr.is_empty() && !a_activation.is_empty(), || "A's bridge has no IPv4 address".into())?;
    let f = sb.write(
        "root-eth1.xml",
        "<interface type='ethernet' name='eth1'><protocol family='ipv4'><ip address='192.0.2.71' prefix='24'/></protocol></interface>",
    );
    ok("root: apply inside the transaction", &sb.nmiface(&["apply", &f]))?;
    ensure(active(&sb).contains("eth1") && !active(&sb).contains("root-eth1"), || {
        format!("root's apply did not change eth1; the trial proves nothing: {}", active(&sb))
    })?;
    ok("root: rollback", &sb.nmiface(&["rollback"]))?;

    ensure(state() == "100 (connected)" && activation() == a_activation, || {
        format!(
            "root's rollback disturbed A's bridge: device {}, activation {} (was {a_activation})",
            state(),
            activation()
        )
    })?;
    ensure(addr(&sb) == a_addr, || format!("A's bridge's address: {:?} before, {:?} after", a_addr, addr(&sb)))?;
    let without_a = |s: String| s.lines().filter(|l| !l.contains("virbr-a")).collect::<Vec<_>>().join("\n");
    let settled = super::wait_for(5, || without_a(active(&sb)) == without_a(active_before.clone()));
    ensure(settled, || format!("active profiles:\nbefore {active_before}\nafter {}", active(&sb)))?;
    ensure(without_a(names()) == without_a(names_before.clone()), || {
        format!("profiles:\nbefore {names_before}\nafter {}", names())
    })?;
    let cps = rt().block_on(async { sb.client().await.checkpoints().await }).map_err(|e| e.to_string())?;
    ensure(cps.is_empty(), || format!("checkpoints left after rollback: {cps:?}"))
}

/// eth1 running root's nmcli-made profile `root-eth1` (192.168.79.1/24), with `extra` settings.
fn root_runs_eth1(sb: &Sandbox, extra: &[&str]) -> R {
    let mut add = vec!["con", "add", "type", "ethernet", "ifname", "eth1", "con-name", "root-eth1"];
    add.extend(["ipv4.method", "manual", "ipv4.addresses", "192.168.79.1/24"]);
    add.extend_from_slice(extra);
    for args in [&add[..], &["con", "up", "root-eth1"][..]] {
        let out = nmcli(sb, args);
        ensure(out.status.success(), || format!("nmcli {args:?}: {}", text(&out.stderr)))?;
    }
    Ok(())
}

/// B predicts the UUID root's `define` of `brq` would get (derived from the name, as root's
/// are) and squats it with a private profile of another name: root's define still makes `brq`
/// (with a fresh UUID), and B's profile stays as it was. Before, root was refused ("carries
/// nmiface's marks but is private to nmib" or "was not created by nmiface"): a user locked root
/// out of a name.
pub fn a_user_cannot_squat_roots_next_uuid() -> R {
    let sb = Sandbox::up_users(true);
    let (b, b_uid) = sb.user_b();
    sb.at_desk(&b, b_uid);
    let doc = sb.write(
        "brq.xml",
        "<interface type='bridge' name='brq'><start mode='none'/><protocol family='ipv4'><ip address='192.0.2.77' prefix='24'/></protocol><bridge stp='off'/></interface>",
    );
    let out = sb.nmiface(&["translate", "--json", &doc]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("translate: {e}"))?;
    let uuid = json.to_string().split("\"uuid\":").nth(1).and_then(|r| r.split('"').nth(1)).unwrap_or("").to_string();
    ensure(uuid.len() == 36, || format!("no UUID in translate's output: {json}"))?;
    super::private_bridge(
        &sb,
        &b,
        "bsq0",
        "squat",
        &["connection.uuid", &uuid, "ipv4.method", "disabled", "ipv6.method", "disabled", "autoconnect", "no"],
    )?;
    let held = text(&nmcli(&sb, &["-g", "connection.uuid", "con", "show", "squat"]).stdout);
    ensure(held.trim() == uuid, || format!("B's squat has {held}, wanted {uuid}"))?;
    let before = text(&nmcli(&sb, &["-t", "con", "show", "squat"]).stdout);
    let out = sb.nmiface(&["define", &doc]);
    ensure(out.status.success(), || {
        format!("root's define beside B's squat: {}{}", text(&out.stdout), text(&out.stderr))
    })?;
    let root_uuid = text(&nmcli(&sb, &["-g", "connection.uuid", "con", "show", "brq"]).stdout);
    ensure(!root_uuid.trim().is_empty() && root_uuid.trim() != uuid, || format!("root's brq: {root_uuid}"))?;
    let after = text(&nmcli(&sb, &["-t", "con", "show", "squat"]).stdout);
    ensure(after == before, || format!("B's profile changed:\n{before}\n->\n{after}"))?;
    // Defined again: the same profile, updated in place (found by its marks, not its UUID).
    let out = sb.nmiface(&["define", &doc]);
    ensure(out.status.success(), || format!("root's second define: {}", text(&out.stderr)))?;
    let n = text(&nmcli(&sb, &["-g", "NAME", "con", "show"]).stdout).lines().filter(|l| *l == "brq").count();
    ensure(n == 1, || format!("{n} profiles named brq after a second define"))
}
