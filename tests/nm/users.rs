//! The `--users` sandbox is real: unprivileged users talk to NetworkManager over a default-deny
//! bus with NetworkManager's own D-Bus policy, NetworkManager asks our polkit stand-in per user
//! and action, and follows logins and logouts. Only `nmcli` (and, where nmcli cannot reach
//! NetworkManager's check, `gdbus`) acts; nothing of nmiface runs here.

use super::{active, ensure, nmcli, text, wait_for, R};
use crate::sandbox::Sandbox;
use std::process::Output;
use std::time::Duration;

const NM: &str = "org.freedesktop.NetworkManager";

fn run_as(sb: &Sandbox, user: &str, args: &[&str]) -> Output {
    sb.as_user(user, args).output().expect("nm-sandbox.sh as")
}

fn ok(what: &str, out: &Output) -> R {
    ensure(out.status.success(), || {
        format!("{what}: exit {:?}: {}{}", out.status.code(), text(&out.stdout), text(&out.stderr))
    })
}

/// The D-Bus path of the profile `uuid`, asked as root.
fn settings_path(sb: &Sandbox, uuid: &str) -> Result<String, String> {
    let out = std::process::Command::new("busctl")
        .args([&format!("--address={}", sb.bus()), "call", NM, "/org/freedesktop/NetworkManager/Settings"])
        .args([&format!("{NM}.Settings"), "GetConnectionByUuid", "s", uuid])
        .output()
        .unwrap();
    // `o "/org/freedesktop/NetworkManager/Settings/2"`
    let path = text(&out.stdout).trim().trim_start_matches("o ").trim_matches('"').to_string();
    if out.status.success() && path.starts_with('/') {
        Ok(path)
    } else {
        Err(format!("GetConnectionByUuid {uuid}: {}", text(&out.stderr)))
    }
}

fn bridge_args<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["nmcli", "con", "add", "type", "bridge", "ifname", name, "con-name", name];
    v.extend_from_slice(extra);
    v.extend(["ipv4.method", "disabled", "ipv6.method", "disabled"]);
    v
}

/// nmia, logged in, with polkit's yes for `settings.modify.own`, adds a private bridge profile;
/// NetworkManager asked polkit exactly that for nmia's uid. nmib can neither read nor delete it.
/// A polkit no for `settings.modify.system` stops nmia's system-wide profile (and a yes lets it
/// through, so the no was the cause). With yes for `network-control` nmia brings the bridge up,
/// and logging out takes it down.
pub fn polkit_and_logins_decide_what_users_may_do() -> R {
    let sb = Sandbox::up_users(true);
    let (a, a_uid) = sb.user_a();
    let (b, b_uid) = sb.user_b();
    sb.login(&a);

    // Private profile: settings.modify.own, asked for nmia's uid.
    sb.polkit(a_uid, &format!("{NM}.settings.modify.own"), "yes");
    let perm = format!("user:{a}");
    // No autoconnect: nmia is logged in, so NetworkManager would bring it up at once.
    let args = bridge_args("brA", &["connection.permissions", &perm, "connection.autoconnect", "no"]);
    ok("nmia adds brA", &run_as(&sb, &a, &args))?;
    let asked = format!("{a_uid} {NM}.settings.modify.own ");
    ensure(sb.polkit_log().lines().any(|l| l.starts_with(&asked) && l.ends_with(" yes")), || {
        format!("NetworkManager did not ask polkit for {asked}…:\n{}", sb.polkit_log())
    })?;
    let uuid = text(&nmcli(&sb, &["-g", "connection.uuid", "con", "show", "brA"]).stdout).trim().to_string();
    ensure(!uuid.is_empty(), || "root does not see brA".into())?;

    // nmib: cannot read it, and NetworkManager refuses to delete it (nmcli cannot even name a
    // profile it cannot read, so the Delete goes over D-Bus directly, as any client could).
    let show = run_as(&sb, &b, &["nmcli", "-f", "all", "con", "show", "brA"]);
    ensure(!show.status.success() && !text(&show.stdout).contains(&uuid), || {
        format!("nmib can read nmia's profile: {}", text(&show.stdout))
    })?;
    let del = run_as(&sb, &b, &["nmcli", "con", "delete", "brA"]);
    ensure(!del.status.success(), || "nmcli con delete brA succeeded for nmib".into())?;
    let path = settings_path(&sb, &uuid)?;
    let method = format!("{NM}.Settings.Connection.Delete");
    let del = run_as(&sb, &b, &["gdbus", "call", "--system", "-d", NM, "-o", &path, "-m", &method]);
    let err = text(&del.stderr);
    ensure(!del.status.success() && err.contains(&format!("{NM}.Settings.PermissionDenied")), || {
        format!("nmib's Delete of brA: exit {:?}, {err}", del.status.code())
    })?;
    ensure(!text(&nmcli(&sb, &["-g", "connection.uuid", "con", "show", "brA"]).stdout).trim().is_empty(), || {
        "brA is gone after nmib's delete".into()
    })?;
    // The bus enforces NetworkManager's D-Bus policy: Sleep is for root only.
    let sleep = format!("{NM}.Sleep");
    let call = ["gdbus", "call", "--system", "-d", NM, "-o", "/org/freedesktop/NetworkManager", "-m", &sleep, "true"];
    let err = text(&run_as(&sb, &b, &call).stderr);
    ensure(err.contains("org.freedesktop.DBus.Error.AccessDenied"), || {
        format!("nmib's Sleep was not refused by the bus: {err}")
    })?;
    ensure(!sb.polkit_log().lines().any(|l| l.starts_with(&format!("{b_uid} {NM}.settings"))), || {
        format!("NetworkManager asked polkit about nmib's settings, not only its ACL:\n{}", sb.polkit_log())
    })?;

    // System-wide profile: settings.modify.system decides.
    sb.polkit(a_uid, &format!("{NM}.settings.modify.system"), "no");
    let add = run_as(&sb, &a, &bridge_args("brS", &[]));
    ensure(!add.status.success(), || "nmia added a system-wide profile despite polkit's no".into())?;
    ensure(text(&nmcli(&sb, &["-g", "NAME", "con", "show"]).stdout).lines().all(|l| l != "brS"), || {
        "brS exists after a refused add".into()
    })?;
    let asked = format!("{a_uid} {NM}.settings.modify.system ");
    ensure(sb.polkit_log().lines().any(|l| l.starts_with(&asked) && l.ends_with(" no")), || {
        format!("NetworkManager did not ask polkit for {asked}…:\n{}", sb.polkit_log())
    })?;
    sb.polkit(a_uid, &format!("{NM}.settings.modify.system"), "yes");
    ok("nmia adds brS once polkit says yes", &run_as(&sb, &a, &bridge_args("brS", &[])))?;

    // Activation while logged in; logout takes it down.
    sb.polkit(a_uid, &format!("{NM}.network-control"), "yes");
    ensure(!active(&sb).iter().any(|n| n == "brA"), || "brA is active before nmia brings it up".into())?;
    ok("nmia brings brA up", &run_as(&sb, &a, &["nmcli", "con", "up", "brA"]))?;
    ensure(active(&sb).iter().any(|n| n == "brA"), || format!("brA not active: {:?}", active(&sb)))?;
    sb.logout(&a);
    ensure(wait_for(10, || !active(&sb).iter().any(|n| n == "brA")), || {
        format!("brA still active 10 s after nmia logged out: {:?}", active(&sb))
    })
}

/// A private profile with autoconnect stays down while its user is logged out, comes up at
/// login and goes down at logout: NetworkManager's session monitor reads our logind records.
/// With `auth-polkit=false` NetworkManager never asks polkit. The user's session bus admits the
/// user only.
pub fn login_brings_private_profiles_up_and_logout_down() -> R {
    let sb = Sandbox::up_users(false);
    let (a, _) = sb.user_a();
    let (b, _) = sb.user_b();
    let perm = format!("user:{a}");
    let args = bridge_args("brB", &["connection.permissions", &perm, "connection.autoconnect", "yes"]);
    ok("nmia adds brB", &run_as(&sb, &a, &args))?;
    std::thread::sleep(Duration::from_millis(1500));
    ensure(!active(&sb).iter().any(|n| n == "brB"), || "brB came up with nmia logged out".into())?;
    sb.login(&a);
    ensure(wait_for(10, || active(&sb).iter().any(|n| n == "brB")), || {
        format!("brB not autoconnected 10 s after nmia logged in: {:?}", active(&sb))
    })?;
    sb.logout(&a);
    ensure(wait_for(10, || !active(&sb).iter().any(|n| n == "brB")), || {
        format!("brB still active 10 s after nmia logged out: {:?}", active(&sb))
    })?;
    ensure(sb.polkit_log().is_empty(), || format!("auth-polkit=false, yet polkit was asked:\n{}", sb.polkit_log()))?;

    let services = sb.dir().join("services");
    std::fs::create_dir_all(&services).unwrap();
    let (address, runtime) = sb.session_bus(&a, &services);
    let list = |out: Output| out.status.success() && text(&out.stdout).contains("org.freedesktop.DBus");
    ensure(list(run_as(&sb, &a, &["busctl", "--user", "list", "--no-pager"])), || {
        "nmia cannot use its session bus".into()
    })?;
    let addr = format!("--address={address}");
    ensure(!list(run_as(&sb, &b, &["busctl", &addr, "list", "--no-pager"])), || {
        "nmib reached nmia's session bus".into()
    })?;
    let root = std::process::Command::new("busctl").args([addr.as_str(), "list", "--no-pager"]).output().unwrap();
    ensure(!list(root), || "root reached nmia's session bus".into())?;
    let env = text(&run_as(&sb, &a, &["env"]).stdout);
    ensure(env.contains(&format!("XDG_RUNTIME_DIR={}", runtime.display())), || format!("as: no XDG_RUNTIME_DIR: {env}"))
}
