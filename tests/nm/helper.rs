//! The bridge helper (`nmiface bridge-helper`, `nmiface-bridge-helper`) against a real
//! NetworkManager in the `--users` sandbox, called the way qemu and libvirt call it
//! (`integration/vm/helper-caller.py`: a socket pair, only fds 0, 1, 2 and N open, one
//! descriptor back with SCM_RIGHTS): the tap is the caller's, a port of the bridge, in memory
//! only, and gone with its last descriptor; refusals say why in one line and leave nothing.

use super::{ensure, nmcli, text, wait_for, R};
use crate::sandbox::Sandbox;
use std::collections::BTreeMap;

const CALLER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/integration/vm/helper-caller.py");

/// A session client calling `Manager.OpenTap("virbr-nat", {})`: the tap it names must be the one
/// behind the descriptor (TUNGETIFF), up while held, and gone within 5 s of the close.
const OPEN_TAP_CLIENT: &str = r#"
import dbus, fcntl, os, time
m = dbus.Interface(dbus.SessionBus().get_object("org.nmiface.Interfaces1", "/org/nmiface/Interfaces1"),
                   "org.nmiface.Interfaces1.Manager")
fd, name = m.OpenTap("virbr-nat", dbus.Dictionary({}, signature="sv"), timeout=60)
fd = fd.take()
got = fcntl.ioctl(fd, 0x800454D2, b"\0" * 40)[:16].rstrip(b"\0").decode()
print("tap", name, "fd", got, "match=" + ("yes" if got == name else "no"))
print("up=" + ("yes" if os.path.exists("/sys/class/net/" + name) else "no"))
os.close(fd)
end = time.monotonic() + 5
while os.path.exists("/sys/class/net/" + name) and time.monotonic() < end:
    time.sleep(0.01)
print("gone=" + ("no" if os.path.exists("/sys/class/net/" + name) else "yes"))
"#;

/// A link named `nmiface-bridge-helper` to the binary, as libvirt runs it (by path).
pub fn helper_link(sb: &Sandbox) -> String {
    let link = sb.dir().join("nmiface-bridge-helper");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nmiface"), &link).unwrap();
    link.display().to_string()
}

/// The caller's report (KEY=VALUE lines) and its exit status.
fn call(sb: &Sandbox, user: &str, opts: &[&str], helper: &[&str]) -> (BTreeMap<String, String>, Option<i32>) {
    let mut args = vec!["python3", CALLER];
    args.extend_from_slice(opts);
    args.push("--");
    args.extend_from_slice(helper);
    let out = sb.as_user(user, &args).current_dir("/").output().unwrap();
    let report = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    (report, out.status.code())
}

/// The tun devices in NetworkManager's namespace, and every profile's name.
fn taps_and_profiles(sb: &Sandbox) -> (Vec<String>, Vec<String>) {
    let links = text(&sb.exec(&["ip", "-o", "link", "show", "type", "tun"]).stdout);
    let taps = links.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap().to_string());
    let names = text(&nmcli(sb, &["-g", "NAME", "con", "show"]).stdout);
    (taps.collect(), names.lines().map(str::to_string).collect())
}

/// A user's VM gets a tap of theirs through the helper (libvirt's argument order through the
/// `nmiface-bridge-helper` link, qemu's through `nmiface bridge-helper`): owned by the user,
/// vnet_hdr on, a port of the user's NAT bridge, its profile only in memory; when the caller
/// closes it the tap and the profile are gone within 5 s, and 20 starts leave nothing. Every
/// refusal (another user's bridge, no such bridge, a name Linux cannot have, a bridge not
/// for VMs, a bridge that is down, a bad --fd) exits 2 with one line that says why, and
/// creates nothing.
pub fn a_tap_handed_over_goes_with_its_descriptor() -> R {
    let sb = Sandbox::up_users(true);
    let ((a, a_uid), (b, b_uid)) = (sb.user_a(), sb.user_b());
    for (user, uid) in [(&a, a_uid), (&b, b_uid)] {
        sb.at_desk(user, uid);
    }
    let share = [env!("CARGO_BIN_EXE_nmiface"), "share", "--nat", "--bridge", "virbr-nat"];
    let out = sb.as_user(&a, &share).current_dir("/").output().unwrap();
    ensure(out.status.success(), || format!("A: share: {}", text(&out.stderr)))?;
    let helper = helper_link(&sb);
    let before = taps_and_profiles(&sb);

    // Held open 3 s (a running VM): look at the tap meanwhile.
    let args = ["python3", CALLER, "--hold", "3", "--", &helper, "--use-vnet", "--br=virbr-nat"];
    let running = sb.as_user(&a, &args).current_dir("/").stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut seen = String::new();
    let up = wait_for(10, || {
        seen = text(&sb.exec(&["ip", "-d", "link", "show", "vtap0"]).stdout);
        seen.contains("master virbr-nat")
    });
    let file = text(&nmcli(&sb, &["-g", "NAME,FILENAME", "con", "show"]).stdout);
    let out = running.wait_with_output().unwrap();
    ensure(up, || format!("vtap0 never became a port of virbr-nat: {seen}"))?;
    ensure(
        seen.contains("tun type tap") && seen.contains("vnet_hdr on") && seen.contains(&format!("user {a}")),
        || format!("the handed tap: {seen}"),
    )?;
    // In memory only: NetworkManager keeps it under /run, so no reboot brings it back.
    ensure(file.lines().any(|l| l.starts_with("vtap0:/run/")), || format!("vtap0's profile is not in memory: {file}"))?;
    let report = text(&out.stdout);
    ensure(out.status.success() && report.contains("TAP=vtap0\n"), || format!("the held call: {report}"))?;
    let gone_ms: Option<u64> = report.lines().find_map(|l| l.strip_prefix("GONE_MS=")?.parse().ok());
    ensure(gone_ms.is_some_and(|ms| ms <= 5000), || format!("the tap outlived its descriptor: {report}"))?;
    ensure(wait_for(5, || taps_and_profiles(&sb) == before), || {
        format!("after the VM closed its tap: {:?}, before: {before:?}", taps_and_profiles(&sb))
    })?;

    // qemu's order, through the subcommand.
    let nmiface = env!("CARGO_BIN_EXE_nmiface");
    let qemu_words = [nmiface, "bridge-helper", "--timeout=20", "--use-vnet", "--br=virbr-nat"];
    let (r, code) = call(&sb, &a, &["--order", "qemu"], &qemu_words);
    ensure(code == Some(0) && r.get("TAP").is_some_and(|t| t.starts_with("vtap")), || format!("qemu's order: {r:?}"))?;

    // Refusals: exit 2, one line that says why, nothing made.
    let plain = sb.write(
        "br5.xml",
        "<interface type='bridge' name='br5'><start mode='none'/><protocol family='ipv4'><ip address='192.0.2.5' prefix='24'/></protocol><bridge/></interface>",
    );
    let _ = std::process::Command::new("chmod").args(["a+r", &plain]).status();
    let out = sb.as_user(&a, &[nmiface, "define", &plain]).current_dir("/").output().unwrap();
    ensure(out.status.success(), || format!("A: define br5: {}", text(&out.stderr)))?;
    let before = taps_and_profiles(&sb);
    for (who, bridge, words) in [
        (&b, "virbr-nat", "no bridge virbr-nat of yours"),
        (&a, "nosuch", "no bridge nosuch of yours"),
        (&a, "averyveryverylongname", "Linux allows at most 15"),
        (&a, "br5", "br5 is not a bridge for VMs"),
    ] {
        let (r, code) = call(&sb, who, &[], &[&helper, "--use-vnet", &format!("--br={bridge}")]);
        let err = r.get("HELPER_STDERR").cloned().unwrap_or_default();
        ensure(r.get("HELPER_EXIT").map(String::as_str) == Some("2") && code == Some(1), || {
            format!("{who} on {bridge}: {r:?}")
        })?;
        ensure(err.contains(words) && !err.contains(" | "), || {
            format!("{who} on {bridge}: wanted one line with '{words}': {err}")
        })?;
    }
    for (fd, words) in [("7", "--fd=7: no such open descriptor"), ("1", "--fd=1: not a socket")] {
        let out = sb
            .as_user(&a, &[&helper, "--use-vnet", "--br=virbr-nat", &format!("--fd={fd}")])
            .current_dir("/")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        ensure(out.status.code() == Some(2) && err.contains(words) && err.trim().lines().count() == 1, || {
            format!("--fd={fd}: exit {:?}: {err}", out.status.code())
        })?;
    }
    // A bridge that is down (stopped, or a share without --persist after NetworkManager
    // restarted): refused before a tap is made.
    let out = sb.as_user(&a, &[nmiface, "stop", "virbr-nat"]).current_dir("/").output().unwrap();
    ensure(out.status.success(), || format!("A: stop virbr-nat: {}", text(&out.stderr)))?;
    let (r, _) = call(&sb, &a, &[], &[&helper, "--use-vnet", "--br=virbr-nat"]);
    let err = r.get("HELPER_STDERR").cloned().unwrap_or_default();
    ensure(
        r.get("HELPER_EXIT").map(String::as_str) == Some("2") && err.contains("bridge virbr-nat is not up"),
        || format!("a tap on a stopped bridge: {r:?}"),
    )?;
    let out = sb.as_user(&a, &[nmiface, "start", "virbr-nat"]).current_dir("/").output().unwrap();
    ensure(out.status.success(), || format!("A: start virbr-nat: {}", text(&out.stderr)))?;
    ensure(taps_and_profiles(&sb) == before, || {
        format!("the refusals left something: {:?}, before: {before:?}", taps_and_profiles(&sb))
    })?;

    // Twenty VM starts and stops: nothing accumulates.
    let mut slowest = 0;
    for i in 0..20 {
        let (r, code) = call(&sb, &a, &["--hold", "0"], &[&helper, "--use-vnet", "--br=virbr-nat"]);
        ensure(code == Some(0), || format!("start {i}: {r:?}"))?;
        slowest = slowest.max(r.get("GONE_MS").and_then(|g| g.parse().ok()).unwrap_or(u64::MAX));
    }
    ensure(slowest <= 5000, || format!("a tap outlived its descriptor by {slowest} ms"))?;
    ensure(wait_for(5, || taps_and_profiles(&sb) == before), || {
        format!("after 20 starts: {:?}, before: {before:?}", taps_and_profiles(&sb))
    })?;

    // The service's OpenTap, from a client that launches qemu itself: the descriptor arrives
    // over D-Bus, is the tap named, and the tap goes when the client closes it.
    let dir = sb.service_dir(60);
    sb.session_bus(&a, &dir);
    let out = sb.as_user(&a, &["python3", "-c", OPEN_TAP_CLIENT]).current_dir("/").output().unwrap();
    let said = text(&out.stdout);
    ensure(out.status.success() && said.contains("match=yes") && said.contains("gone=yes"), || {
        format!("OpenTap from a client: {said}{}", text(&out.stderr))
    })?;
    ensure(wait_for(5, || taps_and_profiles(&sb) == before), || {
        format!("after OpenTap: {:?}, before: {before:?}", taps_and_profiles(&sb))
    })?;

    // libvirt's setting: printed, and written into a qemu.conf that keeps the rest.
    let home = tempdir(&sb, "home");
    std::fs::create_dir_all(home.join(".config/libvirt")).unwrap();
    std::fs::write(home.join(".config/libvirt/qemu.conf"), "user = \"me\"\nbridge_helper = \"/old\"\n").unwrap();
    let run = |flag: &str| {
        std::process::Command::new(&helper).arg(flag).env("HOME", &home).env_remove("XDG_CONFIG_HOME").output().unwrap()
    };
    let printed = run("--libvirt-config");
    let line = format!("bridge_helper = \"{helper}\"");
    ensure(text(&printed.stdout).trim() == line, || {
        format!("--libvirt-config: {}{}", text(&printed.stdout), text(&printed.stderr))
    })?;
    let written = run("--install-libvirt");
    let conf = std::fs::read_to_string(home.join(".config/libvirt/qemu.conf")).unwrap_or_default();
    ensure(written.status.success() && conf == format!("user = \"me\"\n{line}\n"), || {
        format!("--install-libvirt: {}{}\n{conf}", text(&written.stdout), text(&written.stderr))
    })
}

fn tempdir(sb: &Sandbox, name: &str) -> std::path::PathBuf {
    let d = sb.dir().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const GUEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/integration/vm/libvirt-guest.sh");

/// `integration/vm/libvirt-guest.sh ARGS`: its report, exit status and stderr.
fn guest(args: &[&str]) -> (BTreeMap<String, Vec<String>>, Option<i32>, String) {
    let out = std::process::Command::new("bash").arg(GUEST).args(args).output().unwrap();
    let mut report: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in text(&out.stdout).lines() {
        if let Some((k, v)) = l.split_once('=') {
            report.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    (report, out.status.code(), text(&out.stderr))
}

fn first<'a>(r: &'a BTreeMap<String, Vec<String>>, k: &str) -> &'a str {
    r.get(k).and_then(|v| v.first()).map_or("", String::as_str)
}

/// libvirt's session mode unchanged, as a desktop user runs it (`virsh -c qemu:///session`,
/// autostarted libvirtd with no `DBUS_SYSTEM_BUS_ADDRESS`, `bridge_helper` in the user's own
/// qemu.conf pointing at `nmiface-bridge-helper`): a TCG guest on `<interface type='bridge'><source
/// bridge='virbr-nat'/>` leases from NetworkManager's dnsmasq and pings the wire through NAT;
/// its tap goes with it; 20 starts and destroys leave no tap and no profile; user B's domain on
/// A's bridge does not start, and libvirt's error carries the helper's words; plain qemu with
/// `-netdev bridge,helper="nmiface bridge-helper"` the same.
pub fn a_libvirt_session_vm_on_the_helper() -> R {
    let sb = Sandbox::up_users(true);
    let ((a, a_uid), (b, b_uid)) = (sb.user_a(), sb.user_b());
    for (user, uid) in [(&a, a_uid), (&b, b_uid)] {
        sb.at_desk(user, uid);
    }
    let up = sb.write("up0.xml", "<interface type='ethernet' name='eth0'><protocol family='ipv4'><ip address='192.168.77.2' prefix='24'/></protocol></interface>");
    let out = sb.nmiface(&["apply", &up]);
    ensure(out.status.success(), || format!("uplink: {}", text(&out.stderr)))?;
    let share = [env!("CARGO_BIN_EXE_nmiface"), "share", "--nat", "--bridge", "virbr-nat"];
    let out = sb.as_user(&a, &share).current_dir("/").output().unwrap();
    ensure(out.status.success(), || format!("A: share: {}", text(&out.stderr)))?;
    let helper = helper_link(&sb);
    let before = taps_and_profiles(&sb);

    let (r, code, err) = guest(&[&sb.name, &a, "virbr-nat", &helper, "192.168.77.1"]);
    if code == Some(77) {
        return super::taps::skip_guest(&err);
    }
    ensure(code == Some(0) && first(&r, "GUEST_IP").starts_with("10.42.0.") && first(&r, "PING") == "ok", || {
        format!("the libvirt session guest: {r:?}\n{err}")
    })?;
    ensure(first(&r, "TAP").starts_with("vtap") && first(&r, "LEFT_RUNNING") == "none", || format!("{r:?}"))?;
    ensure(wait_for(5, || taps_and_profiles(&sb) == before), || {
        format!("after the guest: {:?}, before: {before:?}", taps_and_profiles(&sb))
    })?;

    // B's domain on A's bridge: refused, in the helper's words, through libvirt.
    let (r, code, err) = guest(&["--cycles", "1", &sb.name, &b, "virbr-nat", &helper]);
    let start_error = first(&r, "START_ERROR");
    ensure(code == Some(1) && start_error.contains("no bridge virbr-nat of yours"), || {
        format!("B's domain on A's bridge: exit {code:?}: {r:?}\n{err}")
    })?;

    // Twenty starts and destroys: each tap goes within 5 s, nothing is left.
    let (r, code, err) = guest(&["--cycles", "20", &sb.name, &a, "virbr-nat", &helper]);
    let gone = r.get("TAP_GONE_S").cloned().unwrap_or_default();
    ensure(code == Some(0) && gone.len() == 20, || format!("20 cycles: exit {code:?}: {r:?}\n{err}"))?;
    ensure(gone.iter().all(|g| g.parse::<f64>().is_ok_and(|s| s <= 5.0)), || {
        format!("taps outlived their VM: {gone:?}")
    })?;
    ensure(r.get("TAPS_LEFT").is_some_and(|l| l.iter().all(|n| n == "0")), || format!("taps left: {r:?}"))?;
    ensure(wait_for(5, || taps_and_profiles(&sb) == before), || {
        format!("after 20 cycles: {:?}, before: {before:?}", taps_and_profiles(&sb))
    })?;

    // Plain qemu: -netdev bridge with the helper as a command (qemu runs it through sh -c).
    let command = format!("{} bridge-helper", env!("CARGO_BIN_EXE_nmiface"));
    let (r, code, err) = guest(&["--qemu", &sb.name, &a, "virbr-nat", &command, "192.168.77.1"]);
    ensure(code == Some(0) && first(&r, "PING") == "ok", || format!("qemu -netdev bridge: {r:?}\n{err}"))?;
    ensure(wait_for(5, || taps_and_profiles(&sb) == before), || {
        format!("after qemu: {:?}, before: {before:?}", taps_and_profiles(&sb))
    })
}
