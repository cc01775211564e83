//! Laptop virtualization sharing for unprivileged users (`share --nat`, `tap add/remove`,
//! `leases`) against a real NetworkManager in the `--users` sandbox: the taps are real kernel
//! taps that only their owner can open.

use super::{ensure, nmcli, permissions, text, R};
use crate::sandbox::Sandbox;
use std::process::Output;

const NM: &str = "org.freedesktop.NetworkManager";

/// Opens tap `name` the way qemu does (TUNSETIFF: tap, no packet info, vnet_hdr) and prints
/// `ok` or the errno.
const OPEN_TAP: &str = r#"
import fcntl, os, struct, sys
fd = os.open("/dev/net/tun", os.O_RDWR)
try:
    fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", sys.argv[1].encode(), 0x0002 | 0x1000 | 0x4000))
    print("ok")
except OSError as e:
    print("errno", e.errno)
"#;

fn nmiface_as(sb: &Sandbox, user: &str, args: &[&str]) -> Output {
    let mut full = vec![env!("CARGO_BIN_EXE_nmiface")];
    full.extend_from_slice(args);
    sb.as_user(user, &full).current_dir("/").output().unwrap()
}

fn ok(what: &str, out: &Output) -> Result<String, String> {
    match out.status.success() {
        true => Ok(text(&out.stdout)),
        false => Err(format!("{what}: exit {:?}: {}{}", out.status.code(), text(&out.stdout), text(&out.stderr))),
    }
}

fn refused(what: &str, out: &Output, words: &str) -> R {
    let err = text(&out.stderr);
    ensure(out.status.code() == Some(2) && err.contains(words), || {
        format!("{what}: wanted exit 2 with '{words}', got {:?}: {err}", out.status.code())
    })
}

/// `ip -d link show NAME` in NetworkManager's namespace (empty when there is no such link).
fn link(sb: &Sandbox, name: &str) -> String {
    text(&sb.exec(&["ip", "-d", "link", "show", name]).stdout)
}

fn open_tap(sb: &Sandbox, user: &str, tap: &str) -> String {
    text(&sb.as_user(user, &["python3", "-c", OPEN_TAP, tap]).output().unwrap().stdout).trim().to_string()
}

/// A's NAT bridge with a subnet nmiface chose (a colliding one refused), A's tap on it (a
/// real tap owned by A: A opens it, B gets EPERM), the refusals (B's tap on A's bridge, a
/// bridge not for VMs, a name in use), a tap of A's on a NIC's system bridge made by root
/// (NetworkManager 1.42 lets a user do that: the VM is on the LAN), logout taking A's taps
/// down while root's bridge stays, and removal leaving nothing behind.
pub fn user_owned_taps_without_root() -> R {
    let sb = Sandbox::up_users(true);
    let ((a, a_uid), (b, b_uid)) = (sb.user_a(), sb.user_b());
    for (user, uid) in [(&a, a_uid), (&b, b_uid)] {
        sb.at_desk(user, uid);
    }
    let out = ok("A: share", &nmiface_as(&sb, &a, &["share", "--nat", "--bridge", "nat0", "--json"]))?;
    let json: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    ensure(json["subnet"] == "10.42.0.1/24" && json["subnet_chosen"] == true && json["scope"] == "user", || {
        format!("share: {json}")
    })?;
    let perms = permissions(&sb, "nat0");
    ensure(perms == Some(format!("user:{a}")), || format!("nat0 permissions: {perms:?}"))?;
    let out = nmiface_as(&sb, &a, &["share", "--nat", "--bridge", "nat1", "--subnet", "10.42.0.0/24"]);
    refused("a colliding subnet", &out, "collides with 10.42.0.1/24 (nat0)")?;
    ensure(link(&sb, "nat1").is_empty(), || "the refused share left a bridge".into())?;

    let out = ok("A: tap add", &nmiface_as(&sb, &a, &["tap", "add", "nat0", "--json"]))?;
    let tap: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    ensure(tap["tap"] == "vtap0" && tap["owner"] == a_uid, || format!("tap add: {tap}"))?;
    ensure(tap["domain_xml"].as_str().is_some_and(|x| x.contains("<target dev='vtap0' managed='no'/>")), || {
        format!("domain XML: {tap}")
    })?;
    let l = link(&sb, "vtap0");
    ensure(l.contains("tun type tap") && l.contains("vnet_hdr on") && l.contains(&format!("user {a}")), || {
        format!("vtap0: {l}")
    })?;
    ensure(l.contains("master nat0"), || format!("vtap0 is not a port of nat0: {l}"))?;
    ensure(open_tap(&sb, &a, "vtap0") == "ok", || format!("A cannot open its tap: {}", open_tap(&sb, &a, "vtap0")))?;
    ensure(open_tap(&sb, &b, "vtap0") == "errno 1", || format!("B opening A's tap: {}", open_tap(&sb, &b, "vtap0")))?;

    refused("B: tap on A's bridge", &nmiface_as(&sb, &b, &["tap", "add", "nat0"]), "no bridge nat0 of yours")?;
    let plain = sb.write(
        "br5.xml",
        "<interface type='bridge' name='br5'><start mode='none'/><protocol family='ipv4'><ip address='192.0.2.5' prefix='24'/></protocol><bridge/></interface>",
    );
    let _ = std::process::Command::new("chmod").args(["a+r", &plain]).status();
    ok("A: define br5", &nmiface_as(&sb, &a, &["define", &plain]))?;
    refused("a tap on a plain bridge", &nmiface_as(&sb, &a, &["tap", "add", "br5"]), "not a bridge for VMs")?;
    refused("a name in use", &nmiface_as(&sb, &a, &["tap", "add", "nat0", "--name", "eth0"]), "in use")?;
    ok("A: a multi-queue tap", &nmiface_as(&sb, &a, &["tap", "add", "nat0", "--name", "mq0", "--multi-queue"]))?;
    ensure(link(&sb, "mq0").contains("multi_queue"), || format!("mq0: {}", link(&sb, "mq0")))?;
    ok("A: tap remove mq0", &nmiface_as(&sb, &a, &["tap", "remove", "mq0"]))?;

    // A NIC's system-wide bridge, made by root: A's tap on it puts a VM on the LAN.
    let eth1 = sb.write(
        "eth1.xml",
        "<interface type='ethernet' name='eth1'><protocol family='ipv4'><ip address='198.51.100.20' prefix='24'/></protocol></interface>",
    );
    for args in [vec!["apply", eth1.as_str()], vec!["bridge", "--no-stp", "eth1", "br9"]] {
        let out = sb.nmiface(&args);
        ensure(out.status.success(), || format!("root {args:?}: {}", text(&out.stderr)))?;
    }
    let out = ok("A: tap on br9", &nmiface_as(&sb, &a, &["tap", "add", "br9", "--name", "lan0"]))?;
    ensure(out.contains("on the LAN"), || format!("tap on br9: {out}"))?;
    ensure(link(&sb, "lan0").contains("master br9"), || format!("lan0: {}", link(&sb, "lan0")))?;

    // Logout: A's taps go down with A's bridge; root's bridge stays.
    sb.logout(&a);
    let gone = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        link(&sb, "lan0").is_empty() && link(&sb, "vtap0").is_empty()
    });
    ensure(gone, || format!("A's taps after logout: {}{}", link(&sb, "lan0"), link(&sb, "vtap0")))?;
    ensure(link(&sb, "br9").contains("state UP"), || format!("root's br9 after A's logout: {}", link(&sb, "br9")))?;
    sb.login(&a);

    for args in [vec!["tap", "remove", "lan0"], vec!["undefine", "nat0"], vec!["undefine", "br5"]] {
        ok(&format!("A: {args:?}"), &nmiface_as(&sb, &a, &args))?;
    }
    let left = text(&nmcli(&sb, &["-g", "NAME", "con", "show"]).stdout);
    ensure(!["nat0", "vtap0", "lan0", "br5"].iter().any(|n| left.lines().any(|l| l == *n)), || {
        format!("profiles left behind: {left}")
    })?;
    ensure(link(&sb, "nat0").is_empty() && link(&sb, "vtap0").is_empty(), || "links left behind".into())
}

/// Whether the real-kernel guest may be skipped: only outside CI, loudly.
pub(super) fn skip_guest(why: &str) -> R {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    eprintln!("\n*** {} the guest on a user's tap: {why} ***\n", if ci { "FAILING (CI=true)" } else { "SKIPPING" });
    ensure(!ci, || format!("the guest must run under CI=true: {why}"))
}

/// End to end with a real VM run by an unprivileged user on a host shaped like stock Debian
/// (NetworkManager's `/var/lib/NetworkManager` root's and 0700; A and A's session service
/// outside NetworkManager's mount namespace, so no lease file is readable): through A's session
/// service, a NAT bridge and a tap; a qemu guest booted **as A** on the tap
/// (`integration/vm/tap-guest.sh`: the real-kernel tier's kernel) leases a 10.42.x address
/// from NetworkManager's dnsmasq and pings the wire through the masquerade; `leases`,
/// `GetLeases` and `LeaseAdded` report its MAC and address from the kernel's neighbour table
/// (the guest's MAC behind A's tap in the bridge's FDB); B's qemu gets EPERM on the tap and B
/// does not see the share; removing the tap and the share leaves nothing behind.
pub fn a_vm_run_by_a_user() -> R {
    let sb = Sandbox::up_users(true);
    let ((a, a_uid), (b, _)) = (sb.user_a(), sb.user_b());
    sb.at_desk(&a, a_uid);
    // The uplink: eth0 on the wire, where 192.168.77.1 answers.
    let up = sb.write("up0.xml", "<interface type='ethernet' name='eth0'><protocol family='ipv4'><ip address='192.168.77.2' prefix='24'/></protocol></interface>");
    let out = sb.nmiface(&["apply", &up]);
    ensure(out.status.success(), || format!("uplink: {}", text(&out.stderr)))?;
    // Stock Debian: the lease files are root's alone.
    let nm_pid = std::fs::read_to_string(sb.dir().join("nm.pid")).unwrap_or_default().trim().to_string();
    let mode = text(
        &std::process::Command::new("nsenter")
            .args(["-t", &nm_pid, "-m", "stat", "-c", "%U %a", "/var/lib/NetworkManager"])
            .output()
            .unwrap()
            .stdout,
    );
    ensure(mode.trim() == "root 700", || format!("NetworkManager's /var/lib/NetworkManager: {mode}"))?;
    let dir = sb.service_dir(60);
    sb.session_bus(&a, &dir);
    let gdbus = |path: &str, method: &str, args: &[&str]| {
        let mut full = vec!["gdbus", "call", "--session", "--dest", "org.nmiface.Interfaces1", "--object-path", path];
        full.extend(["--method", method]);
        full.extend_from_slice(args);
        sb.as_user(&a, &full).output().unwrap()
    };
    let out = gdbus("/org/nmiface/Interfaces1", "org.nmiface.Interfaces1.Manager.ShareNat", &["{'bridge': <'nat0'>}"]);
    let share = ok("ShareNat", &out)?.split('\'').nth(1).unwrap_or_default().to_string();
    ensure(share == "/org/nmiface/Interfaces1/share/nat0", || format!("share object: {share}"))?;
    let monitor = sb.monitor(&a, "leases");
    let out = ok("AddTap", &gdbus(&share, "org.nmiface.Interfaces1.Share.AddTap", &["{}"]))?;
    let tap = out.split('\'').nth(1).unwrap_or_default().to_string();
    ensure(tap == "vtap0" && out.contains("managed='no'"), || format!("AddTap: {out}"))?;

    // The guest stays up after its ping (--hold) so that A looks at a running VM: a stopped
    // VM's MAC leaves the bridge's FDB with its tap's carrier, and with it A's claim to it.
    let mac = "52:54:00:4e:4d:20";
    let (out_file, err_file) = (sb.dir().join("guest.out"), sb.dir().join("guest.err"));
    let mut guest = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/integration/vm/tap-guest.sh"))
        .args(["--mac", mac, "--hold", "30", &sb.name, &a, &tap, "192.168.77.1"])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    // A, who cannot read dnsmasq's lease file, sees the guest through the neighbour table.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    let mut seen = None;
    let mut last = String::new();
    while seen.is_none() && std::time::Instant::now() < deadline && guest.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let out = nmiface_as(&sb, &a, &["leases", "nat0", "--json"]);
        last = format!("{}{}", text(&out.stdout), text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        seen = json.as_array().into_iter().flatten().find(|l| l["mac"] == mac).cloned();
    }
    let during = match &seen {
        Some(l) => Ok((
            l.clone(),
            ok("GetLeases", &gdbus(&share, "org.nmiface.Interfaces1.Share.GetLeases", &[])),
            // The signal may trail the CLI's answer by one read of the service's: 2 s at most.
            (0..20)
                .map(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    monitor.log()
                })
                .find(|log| log.contains("LeaseAdded") && log.contains(mac))
                .unwrap_or_else(|| monitor.log()),
        )),
        None => Err(format!("the running guest never showed in A's leases: {last}")),
    };
    let status = guest.wait().unwrap();
    let (report, errors) = (
        std::fs::read_to_string(&out_file).unwrap_or_default(),
        std::fs::read_to_string(&err_file).unwrap_or_default(),
    );
    if status.code() == Some(77) {
        return skip_guest(&errors);
    }
    let field = |k: &str| report.lines().find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string));
    ensure(status.success(), || format!("the guest: {report}{errors}"))?;
    let ip = field("GUEST_IP").unwrap_or_default();
    ensure(ip.starts_with("10.42.0.") && field("GUEST_MAC").as_deref() == Some(mac), || {
        format!("guest lease: {report}")
    })?;
    // dnsmasq has the lease (root reads it in NetworkManager's mount namespace) ...
    ensure(field("DNSMASQ_LEASE").is_some_and(|l| l.contains(&ip)), || {
        format!("no lease in dnsmasq's file: {report}")
    })?;
    // ... and A saw it, without host name or expiry (the neighbour table has neither).
    let (lease, get_leases, log) = during?;
    ensure(lease["ip"] == ip.as_str() && lease["source"] == "neighbour" && lease["expiry"].is_null(), || {
        format!("A's lease {lease} (the guest has {ip})")
    })?;
    let out = get_leases?;
    ensure(out.contains(mac) && out.contains(&ip), || format!("GetLeases: {out}"))?;
    ensure(log.lines().any(|l| l.contains("LeaseAdded") && l.contains(mac) && l.contains(&ip)), || {
        format!("no LeaseAdded for {mac} {ip} while the guest ran:\n{log}")
    })?;

    // B: EPERM on the tap, and no share of B's.
    let eperm = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/integration/vm/tap-guest.sh"))
        .args(["--expect-eperm", &sb.name, &b, &tap])
        .output()
        .unwrap();
    ensure(eperm.status.success(), || format!("B's qemu on A's tap: {}{}", text(&eperm.stdout), text(&eperm.stderr)))?;
    refused("B: leases of A's share", &nmiface_as(&sb, &b, &["leases", "nat0"]), "no interface 'nat0'")?;

    ok("RemoveTap", &gdbus(&share, "org.nmiface.Interfaces1.Share.RemoveTap", &[&format!("'{tap}'")]))?;
    ok("A: undefine nat0", &nmiface_as(&sb, &a, &["undefine", "nat0"]))?;
    let left = text(&nmcli(&sb, &["-g", "NAME", "con", "show"]).stdout);
    ensure(!left.lines().any(|l| l == "nat0" || l == tap), || format!("profiles left behind: {left}"))?;
    ensure(link(&sb, "nat0").is_empty() && link(&sb, &tap).is_empty(), || "links left behind".into())
}

/// Ctrl-C or SIGTERM while NetworkManager still waits on polkit for the tap's profile (the
/// add is in flight, so the rollback would look before NetworkManager makes it): the
/// interrupted `tap add` lets the add land, then removes it. Before, the tap's profile
/// appeared a moment after "the change was rolled back" and stayed (found by the generated
/// interleavings, `interleave.rs`).
pub fn an_interrupted_tap_add_leaves_no_tap() -> R {
    let sb = Sandbox::up_users(true);
    let (a, a_uid) = sb.user_a();
    sb.at_desk(&a, a_uid);
    ok("A: share", &nmiface_as(&sb, &a, &["share", "--nat", "--bridge", "nat0"]))?;
    // polkit now takes 2 s to say yes to a profile change: the add waits in NetworkManager.
    sb.polkit(a_uid, &format!("{NM}.settings.modify.own"), "yes@2");
    let log_before = sb.polkit_log().lines().count();
    let args = [env!("CARGO_BIN_EXE_nmiface"), "tap", "add", "nat0", "--name", "slow0"];
    let child = sb
        .as_user(&a, &args)
        .current_dir("/")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let asked = super::wait_for(10, || {
        sb.polkit_log().lines().skip(log_before).any(|l| l.contains("settings.modify.own") && l.ends_with("yes@2"))
    });
    let pid = text(
        &std::process::Command::new("pgrep")
            .args(["-u", &a, "-f", "tap add nat0 --name slow0"])
            .output()
            .unwrap()
            .stdout,
    );
    let pid = pid.lines().next().unwrap_or("").trim().to_string();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    let out = child.wait_with_output().unwrap();
    ensure(asked && !pid.is_empty(), || format!("the add never waited on polkit (pid '{pid}'): {}", sb.polkit_log()))?;
    let err = text(&out.stderr);
    ensure(out.status.code() == Some(143) && err.contains("rolled back"), || {
        format!("SIGTERM during the add: exit {:?}: {}{err}", out.status.code(), text(&out.stdout))
    })?;
    // Past the polkit delay: nothing may appear.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let names = text(&nmcli(&sb, &["-g", "NAME", "con", "show"]).stdout);
    ensure(!names.lines().any(|l| l == "slow0") && link(&sb, "slow0").is_empty(), || {
        format!("the interrupted tap add left slow0: {names}{}", link(&sb, "slow0"))
    })
}
