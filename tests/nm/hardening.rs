//! Issue 11: never hang, never lose a profile, never be fooled: each test reproduces what broke
//! before (runtime state, transactions and rollback, waits, ownership) against the sandboxed
//! NetworkManager.

use super::{ensure, nmcli, rt, text, R};
use crate::sandbox::Sandbox;
use crate::transactions::{diff, snapshot};
use std::process::Stdio;
use std::time::{Duration, Instant};

const DHCP_ETH1: &str = "<interface type='ethernet' name='eth1'><protocol family='ipv4'><dhcp/></protocol></interface>";

fn run_ok(sb: &Sandbox, args: &[&str]) -> R {
    let out = sb.nmiface(args);
    ensure(out.status.success(), || format!("{args:?}: exit {:?}: {}", out.status.code(), text(&out.stderr)))
}

/// Item 7: `…/bus.sock` and `…/./bus.sock` are one bus, so one lock: the second change waits.
pub fn one_lock_per_bus_whatever_the_address() -> R {
    let sb = Sandbox::up(false);
    let slow = sb.write("slow.xml", DHCP_ETH1);
    let fast = sb.write("fast.xml", "<interface type='ethernet' name='eth2'><protocol family='ipv4'><ip address='192.0.2.2' prefix='24'/></protocol></interface>");
    let first = sb.spawn_nmiface(&["apply", "--timeout", "3", &slow]);
    std::thread::sleep(Duration::from_millis(800));
    let other = sb.bus().replace("/bus.sock", "/./bus.sock");
    let second = sb.nmiface_command(&["apply", &fast]).env("DBUS_SYSTEM_BUS_ADDRESS", &other).output();
    let _ = first.wait_with_output();
    let second = second.map_err(|e| e.to_string())?;
    ensure(text(&second.stderr).contains("waiting for another nmiface"), || {
        format!("the second address got its own lock: {}", text(&second.stderr))
    })
}

/// Item 9: a transaction whose checkpoint expired is noticed; nothing runs unprotected.
pub fn an_expired_transaction_is_noticed() -> R {
    let sb = Sandbox::up(false);
    let before = snapshot(&sb);
    run_ok(&sb, &["begin", "--timeout", "2"])?;
    std::thread::sleep(Duration::from_secs(4)); // NetworkManager rolls back by itself
    let f = sb.write("eth1.xml", DHCP_ETH1);
    let out = sb.nmiface(&["apply", "--timeout", "2", &f]);
    ensure(out.status.code() == Some(2), || format!("apply in an expired transaction: exit {:?}", out.status.code()))?;
    ensure(text(&out.stderr).contains("checkpoint") && text(&out.stderr).contains("gone"), || {
        format!("no word of the expired transaction: {}", text(&out.stderr))
    })?;
    let now = snapshot(&sb);
    ensure(now == before, || format!("apply changed the host in an expired transaction:\n{}", diff(&before, &now)))?;
    run_ok(&sb, &["rollback"])?;
    let after = snapshot(&sb);
    ensure(after == before, || format!("rollback of the expired transaction:\n{}", diff(&before, &after)))
}

/// The foreign profile that adopt overwrites: a static address, DNS (`au`), a route with
/// attributes, and an 802.1X password (a secret GetSettings never returns).
fn foreign_eth3(sb: &Sandbox) -> R {
    let out = nmcli(
        sb,
        &[
            "con",
            "add",
            "type",
            "ethernet",
            "con-name",
            "eth3",
            "ifname",
            "eth3",
            "autoconnect",
            "no",
            "ipv4.method",
            "manual",
            "ipv4.addresses",
            "192.0.2.33/24",
            "ipv4.dns",
            "192.0.2.53,192.0.2.54",
            "ipv4.routes",
            "198.51.100.0/24 192.0.2.254 100 onlink=true table=100",
            "ipv6.method",
            "manual",
            "ipv6.addresses",
            "2001:db8::33/64",
            "ipv6.dns",
            "2001:db8::53",
            "802-1x.eap",
            "peap",
            "802-1x.identity",
            "bob",
            "802-1x.password",
            "s3cret",
            "802-1x.phase2-auth",
            "mschapv2",
        ],
    );
    ensure(out.status.success(), || format!("nmcli con add: {}", text(&out.stderr)))
}

/// The profile as NetworkManager holds it, secrets included.
fn exact(sb: &Sandbox, id: &str) -> Result<String, String> {
    let show = |args: &[&str]| {
        let out = nmcli(sb, args);
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(format!("{args:?}: {}", text(&out.stderr)))
        }
    };
    let settings = show(&["--show-secrets", "-t", "con", "show", id])?;
    // The runtime lines (GENERAL.*, timestamps, IP state) are not configuration.
    let keep: Vec<&str> = settings
        .lines()
        .filter(|l| !l.starts_with("GENERAL.") && !l.starts_with("connection.timestamp") && !l.starts_with("IP"))
        .filter(|l| !l.starts_with("DHCP"))
        .collect();
    let file = std::fs::read_to_string(sb.keyfile_dir().join(format!("{id}.nmconnection"))).unwrap_or_default();
    Ok(format!("{}\n== keyfile\n{file}", keep.join("\n")))
}

/// Items 10 and 11: inside a transaction, `apply --adopt` over a foreign profile is killed by
/// SIGTERM; `rollback` then restores that profile exactly, secrets and all.
pub fn an_interrupted_adopt_is_undone_exactly() -> R {
    let sb = Sandbox::up(false);
    foreign_eth3(&sb)?;
    // Let NetworkManager write the keyfile its own way first, so the bytes compare.
    let out = nmcli(&sb, &["con", "modify", "eth3", "connection.autoconnect-priority", "0"]);
    ensure(out.status.success(), || format!("nmcli con modify: {}", text(&out.stderr)))?;
    let before = exact(&sb, "eth3")?;
    run_ok(&sb, &["begin"])?;
    let f = sb.write(
        "eth3.xml",
        "<interface type='ethernet' name='eth3'><protocol family='ipv4'><dhcp/></protocol></interface>",
    );
    let child = sb.spawn_nmiface(&["apply", "--adopt", "--timeout", "30", &f]);
    std::thread::sleep(Duration::from_secs(3));
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    ensure(out.status.code() == Some(143), || {
        format!("SIGTERM'd apply: exit {:?}: {}", out.status.code(), text(&out.stderr))
    })?;
    ensure(exact(&sb, "eth3")? != before, || "the adopt had not changed the profile; the test proves nothing".into())?;
    run_ok(&sb, &["rollback"])?;
    let after = exact(&sb, "eth3")?;
    ensure(after == before, || format!("eth3 not restored exactly:\n{}", diff(&before, &after)))
}

/// Item 10: a standalone apply stopped by SIGINT rolls back before it exits.
pub fn an_interrupted_apply_rolls_back() -> R {
    let sb = Sandbox::up(false);
    let before = snapshot(&sb);
    let f = sb.write("eth1.xml", DHCP_ETH1);
    // Ctrl-C, and the terminal hanging up (an SSH session that died).
    for (signal, status) in [("INT", 130), ("HUP", 129)] {
        let child = sb.spawn_nmiface(&["apply", "--timeout", "30", &f]);
        std::thread::sleep(Duration::from_secs(2));
        let _ = std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        ensure(out.status.code() == Some(status), || {
            format!("SIG{signal}'d apply: exit {:?}: {}", out.status.code(), text(&out.stderr))
        })?;
        let after = snapshot(&sb);
        ensure(after == before, || format!("not rolled back on SIG{signal}:\n{}", diff(&before, &after)))?;
    }
    Ok(())
}

/// Item 12: a rollback deletes only what nmiface added, not a profile someone else added
/// during the transaction.
pub fn rollback_keeps_what_others_added() -> R {
    let sb = Sandbox::up(false);
    run_ok(&sb, &["begin"])?;
    let out =
        nmcli(&sb, &["con", "add", "type", "ethernet", "con-name", "cafe-wifi", "ifname", "eth3", "autoconnect", "no"]);
    ensure(out.status.success(), || format!("nmcli con add: {}", text(&out.stderr)))?;
    let f = sb.write("eth2.xml", "<interface type='ethernet' name='eth2'><start mode='none'/></interface>");
    run_ok(&sb, &["define", &f])?;
    run_ok(&sb, &["rollback"])?;
    let names = text(&nmcli(&sb, &["-t", "-f", "NAME", "con", "show"]).stdout);
    ensure(names.lines().any(|l| l == "cafe-wifi"), || format!("rollback deleted another's profile: {names}"))?;
    ensure(!names.lines().any(|l| l == "eth2"), || format!("rollback kept what nmiface added: {names}"))
}

/// Item 13: a hung NetworkManager (SIGSTOP) ends `list` and `apply` within the call timeout;
/// after SIGCONT the host is as before once the interrupted change is finished.
pub fn a_hung_networkmanager_is_bounded() -> R {
    let sb = Sandbox::up(false);
    let before = snapshot(&sb);
    sb.signal_nm("STOP");
    let t0 = Instant::now();
    let out = sb.nmiface_command(&["list"]).env("NMIFACE_DBUS_TIMEOUT", "2").output().map_err(|e| e.to_string());
    let listed = t0.elapsed();
    sb.signal_nm("CONT");
    let out = out?;
    ensure(out.status.code() == Some(2) && listed < Duration::from_secs(8), || {
        format!("list against a hung NM: exit {:?} after {listed:?}: {}", out.status.code(), text(&out.stderr))
    })?;
    ensure(text(&out.stderr).contains("did not answer"), || format!("no clear message: {}", text(&out.stderr)))?;

    let f = sb.write("eth1.xml", DHCP_ETH1);
    let child = sb
        .nmiface_command(&["apply", "--timeout", "3", &f])
        .env("NMIFACE_DBUS_TIMEOUT", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(1200));
    sb.signal_nm("STOP");
    let t0 = Instant::now();
    let out = child.wait_with_output().map_err(|e| e.to_string());
    let applied = t0.elapsed();
    sb.signal_nm("CONT");
    let out = out?;
    ensure(out.status.code() == Some(2) && applied < Duration::from_secs(15), || {
        format!("apply against a hung NM: exit {:?} after {applied:?}: {}", out.status.code(), text(&out.stderr))
    })?;
    // NetworkManager, resumed, still has our queued calls; the journal finishes the rest.
    std::thread::sleep(Duration::from_millis(500));
    let _ = sb.nmiface(&["rollback"]);
    let after = snapshot(&sb);
    ensure(after == before, || format!("the host changed:\n{}", diff(&before, &after)))
}

/// Item 14: nmiface's marks copied into a profile prove nothing: a user's private profile is
/// never root's to change, and `replaces` only names the NIC's own ethernet profile.
pub fn forged_marks_are_not_ownership() -> R {
    let sb = Sandbox::up(false);
    let out = nmcli(
        &sb,
        &[
            "con",
            "add",
            "type",
            "ethernet",
            "con-name",
            "corp-uplink",
            "ifname",
            "eth2",
            "autoconnect",
            "no",
            "ipv4.method",
            "manual",
            "ipv4.addresses",
            "203.0.113.2/24",
        ],
    );
    ensure(out.status.success(), || format!("nmcli con add: {}", text(&out.stderr)))?;
    let corp = text(&nmcli(&sb, &["-g", "connection.uuid", "con", "show", "corp-uplink"]).stdout).trim().to_string();
    let forged = |name: &str, permissions: &str, ports: &str| {
        format!(
            "[connection]\nid={name}\nuuid={}\ntype=bridge\ninterface-name={name}\nautoconnect=false\n{permissions}\n\n[bridge]\nstp=false\n\n[ipv4]\nmethod=disabled\n\n[ipv6]\nmethod=disabled\n\n[user]\nnmiface.interface={name}\nnmiface.managed=1\nnmiface.ports={ports}\nnmiface.replaces={corp}\n",
            uuid_of(name)
        )
    };
    // A private profile of user nobody's, with every mark of nmiface's.
    let private = sb.keyfile_dir().join("br7.nmconnection");
    std::fs::write(&private, forged("br7", "permissions=user:nobody;", "")).map_err(|e| e.to_string())?;
    // A system bridge with marks and a port on eth1, claiming to replace the corporate uplink.
    let system = sb.keyfile_dir().join("br8.nmconnection");
    std::fs::write(&system, forged("br8", "", &uuid_of("br8-port"))).map_err(|e| e.to_string())?;
    let port = sb.keyfile_dir().join("br8-port-eth1.nmconnection");
    std::fs::write(
        &port,
        format!(
            "[connection]\nid=br8-port-eth1\nuuid={}\ntype=ethernet\ninterface-name=eth1\nmaster={}\nslave-type=bridge\nautoconnect=false\n\n[user]\nnmiface.interface=br8\nnmiface.managed=1\n",
            uuid_of("br8-port"),
            uuid_of("br8")
        ),
    )
    .map_err(|e| e.to_string())?;
    for f in [&private, &system, &port] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(|e| e.to_string())?;
    }
    let out = nmcli(&sb, &["con", "reload"]);
    ensure(out.status.success(), || format!("nmcli con reload: {}", text(&out.stderr)))?;

    let out = sb.nmiface(&["unbridge", "br7"]);
    ensure(out.status.code() == Some(2), || {
        format!("unbridge of a user's private profile: exit {:?}", out.status.code())
    })?;
    let listed: serde_json::Value =
        serde_json::from_slice(&sb.nmiface(&["list", "--all", "--json"]).stdout).map_err(|e| e.to_string())?;
    let br7 = listed.as_array().into_iter().flatten().find(|l| l["name"] == "br7");
    ensure(br7.is_some_and(|l| l["nmiface"] == false), || {
        format!("list must show br7 as another's profile, not nmiface's: {listed}")
    })?;

    let out = sb.nmiface(&["unbridge", "br8"]);
    ensure(out.status.success(), || format!("unbridge br8: {}", text(&out.stderr)))?;
    let active = text(&nmcli(&sb, &["-t", "-f", "NAME", "con", "show", "--active"]).stdout);
    ensure(!active.lines().any(|l| l == "corp-uplink"), || {
        format!("unbridge activated a profile it was told to: {active}")
    })?;
    let names = text(&nmcli(&sb, &["-t", "-f", "NAME", "con", "show"]).stdout);
    ensure(names.lines().any(|l| l == "br7") && names.lines().any(|l| l == "corp-uplink"), || {
        format!("a profile that is not nmiface's was deleted: {names}")
    })
}

/// A fixed UUID per name, for hand-written keyfiles.
fn uuid_of(name: &str) -> String {
    let mut h = 0u128;
    for b in name.bytes() {
        h = h.wrapping_mul(131).wrapping_add(u128::from(b));
    }
    uuid::Uuid::from_u128(h | (4 << 76) | (0x8 << 60)).to_string()
}

/// Item 8: a closed or full standard output does not turn a made change into a crash.
pub fn an_unwritable_stdout_is_not_a_crash() -> R {
    let sb = Sandbox::up(false);
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").map_err(|e| e.to_string())?;
    let out = sb.nmiface_command(&["begin"]).stdout(full).stderr(Stdio::piped()).output().map_err(|e| e.to_string())?;
    ensure(out.status.code() == Some(0), || {
        format!("begin >/dev/full: exit {:?}: {}", out.status.code(), text(&out.stderr))
    })?;
    let mut child = sb
        .nmiface_command(&["commit"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    drop(child.stdout.take()); // like `| true`: the reader is gone
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    ensure(out.status.code() == Some(0), || {
        format!("commit | true: exit {:?}: {}", out.status.code(), text(&out.stderr))
    })
}

/// Issue 14: like `virsh iface-list`, every profile of the host is listed, others' marked as not
/// nmiface's; a stock "Wired connection 1" dumps as valid libvirt XML, a Wi-Fi profile is listed
/// but not translated.
pub fn every_host_interface_is_listed() -> R {
    let sb = Sandbox::up(false);
    for args in [
        vec!["con", "add", "type", "ethernet", "con-name", "Wired connection 1", "ifname", "eth0", "autoconnect", "no"],
        vec!["con", "add", "type", "wifi", "con-name", "cafe", "ifname", "wlan0", "ssid", "cafe", "autoconnect", "no"],
    ] {
        let out = nmcli(&sb, &args);
        ensure(out.status.success(), || format!("nmcli {args:?}: {}", text(&out.stderr)))?;
    }
    let f = sb.write("eth1.xml", "<interface type='ethernet' name='eth1'><start mode='none'/></interface>");
    run_ok(&sb, &["define", &f])?;
    let listed: serde_json::Value =
        serde_json::from_slice(&sb.nmiface(&["list", "--all", "--json"]).stdout).map_err(|e| e.to_string())?;
    let find = |name: &str| listed.as_array().into_iter().flatten().find(|l| l["name"] == name).cloned();
    let eth0 = find("eth0").ok_or_else(|| format!("stock profile not listed: {listed}"))?;
    ensure(eth0["nmiface"] == false && eth0["profile"] == "Wired connection 1" && eth0["type"] == "ethernet", || {
        format!("stock profile listed wrongly: {eth0}")
    })?;
    let wlan = find("wlan0").ok_or_else(|| format!("Wi-Fi profile not listed: {listed}"))?;
    ensure(wlan["nmiface"] == false && wlan["type"] == "wifi", || format!("Wi-Fi profile listed wrongly: {wlan}"))?;
    ensure(find("eth1").is_some_and(|l| l["nmiface"] == true), || format!("nmiface's own not marked: {listed}"))?;
    let text_list = text(&sb.nmiface(&["list", "--all"]).stdout);
    ensure(text_list.contains("not nmiface's"), || format!("the table does not mark others' profiles: {text_list}"))?;

    let out = sb.nmiface(&["dumpxml", "eth0"]);
    ensure(out.status.success(), || format!("dumpxml of the stock profile: {}", text(&out.stderr)))?;
    let xml = sb.write("stock.xml", &text(&out.stdout));
    if std::path::Path::new("/usr/bin/virt-xml-validate").exists() {
        let v = std::process::Command::new("virt-xml-validate")
            .args([&xml, "interface"])
            .output()
            .map_err(|e| e.to_string())?;
        ensure(v.status.success(), || format!("not valid libvirt XML: {}{}", text(&v.stdout), text(&v.stderr)))?;
    }
    ensure(text(&out.stdout).contains("<interface type='ethernet' name='eth0'>"), || {
        format!("dumpxml: {}", text(&out.stdout))
    })?;
    let out = sb.nmiface(&["dumpxml", "wlan0"]);
    ensure(out.status.code() == Some(2) && text(&out.stderr).contains("cannot describe"), || {
        format!("dumpxml of a Wi-Fi profile: exit {:?}: {}", out.status.code(), text(&out.stderr))
    })?;
    // Read-only: nmiface will not remove what it did not define.
    let out = sb.nmiface(&["undefine", "eth0"]);
    ensure(out.status.code() == Some(2), || format!("undefine of the stock profile: exit {:?}", out.status.code()))
}

/// Issue 14: `apply --confirm` keeps a change only when `commit` is read in time; silence rolls
/// it back (nmiface itself, or NetworkManager when nmiface is gone).
pub fn apply_confirm_keeps_only_what_is_confirmed() -> R {
    use std::io::Write;
    let sb = Sandbox::up(false);
    let before = snapshot(&sb);
    let f = sb.write("eth2.xml", "<interface type='ethernet' name='eth2'><protocol family='ipv4'><ip address='192.0.2.2' prefix='24'/></protocol></interface>");
    let answer = |input: Option<&str>, secs: &str| -> Result<std::process::Output, String> {
        let mut child = sb
            .nmiface_command(&["apply", "--json", "--confirm", secs, &f])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut stdin = child.stdin.take();
        if let (Some(text), Some(w)) = (input, stdin.as_mut()) {
            std::thread::sleep(Duration::from_millis(500));
            let _ = w.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| e.to_string());
        drop(stdin);
        out
    };
    // Silence: rolled back when the time is up, exit 2, the host as before.
    let t0 = Instant::now();
    let out = answer(None, "2")?;
    ensure(out.status.code() == Some(2) && text(&out.stderr).contains("not confirmed"), || {
        format!("unanswered --confirm: exit {:?}: {}", out.status.code(), text(&out.stderr))
    })?;
    ensure(t0.elapsed() < Duration::from_secs(8), || format!("took {:?}", t0.elapsed()))?;
    let now = snapshot(&sb);
    ensure(now == before, || format!("not rolled back:\n{}", diff(&before, &now)))?;
    // `commit`: kept, no checkpoint left.
    let out = answer(Some("commit\n"), "10")?;
    ensure(out.status.success(), || format!("confirmed apply: exit {:?}: {}", out.status.code(), text(&out.stderr)))?;
    ensure(text(&out.stdout).contains("\"confirmed\": true"), || format!("no confirmation: {}", text(&out.stdout)))?;
    let cps = rt().block_on(async { sb.client().await.checkpoints().await }).map_err(|e| e.to_string())?;
    ensure(cps.is_empty(), || format!("checkpoint left after commit: {cps:?}"))?;
    let addrs = text(&sb.exec(&["ip", "-4", "-br", "addr", "show", "eth2"]).stdout);
    ensure(addrs.contains("192.0.2.2/24"), || format!("confirmed change not kept: {addrs}"))?;
    // nmiface killed while it waits for the answer: NetworkManager rolls the devices back.
    run_ok(&sb, &["undefine", "eth2"])?;
    let mut child = sb
        .nmiface_command(&["apply", "--confirm", "2", &f])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_secs(3));
    let addrs = text(&sb.exec(&["ip", "-4", "-br", "addr", "show", "eth2"]).stdout);
    ensure(!addrs.contains("192.0.2.2"), || format!("NetworkManager did not roll back by itself: {addrs}"))
}
