//! The bridge helper (`nmiface bridge-helper`, `nmiface-bridge-helper`) against a real
//! NetworkManager in the `--users` sandbox, called the way qemu and libvirt call it
//! (`integration/vm/helper-caller.py`: a socket pair, only fds 0, 1, 2 and N open, one
//! descriptor back with SCM_RIGHTS): the tap is the caller's, a port of the bridge, in memory
//! only, and gone with its last descriptor; refusals say why in one line and leave nothing.

use super::{ensure, nmcli, text, wait_for, R};
use crate::sandbox::Sandbox;
use std::collections::BTreeMap;

const NM: &str = "org.freedesktop.NetworkManager";
const CALLER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/integration/vm/helper-caller.py");

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
/// for VMs, a bad --fd) exits 2 with one line that says why, and creates nothing.
pub fn a_tap_handed_over_goes_with_its_descriptor() -> R {
    let sb = Sandbox::up_users(true);
    let ((a, a_uid), (b, b_uid)) = (sb.user_a(), sb.user_b());
    for (user, uid) in [(&a, a_uid), (&b, b_uid)] {
        sb.login(user);
        for action in ["settings.modify.own", "network-control"] {
            sb.polkit(uid, &format!("{NM}.{action}"), "yes");
        }
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
    let (r, code) = call(&sb, &a, &["--order", "qemu"], &[nmiface, "bridge-helper", "--use-vnet", "--br=virbr-nat"]);
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
