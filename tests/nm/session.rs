//! The session service (`nmiface session`) for unprivileged users, against a real NetworkManager
//! with `auth-polkit`, NetworkManager's own D-Bus policy, the polkit stand-in and login records
//! (`nm-sandbox.sh up --users`). Each user has a session bus whose service directory points at
//! the built binary, so every trial also goes through D-Bus activation. The clients are `gdbus`
//! (which sends no interactive-authorization flag unless `-i`) and `gdbus monitor`.

use super::{active, ensure, nmcli, permissions, text, wait_for, R};
use crate::sandbox::Sandbox;
use std::process::Output;
use std::time::Duration;

pub(super) const SVC: &str = "org.nmiface.Interfaces1";
pub(super) const MGR: &str = "/org/nmiface/Interfaces1";
const NM: &str = "org.freedesktop.NetworkManager";

/// A per-user NAT bridge (NetworkManager's shared method), started at login.
const NAT0: &str = r#"<interface type="bridge" name="nat0" xmlns:nmi="urn:nmiface:interface:1"><start mode="onboot"/><protocol family="ipv4"><nmi:nat/><ip address="10.42.9.1" prefix="24"/></protocol><bridge stp="off" delay="0"/></interface>"#;

pub(super) fn bridge(name: &str, addr: &str) -> String {
    format!(
        r#"<interface type="bridge" name="{name}"><start mode="none"/><protocol family="ipv4"><ip address="{addr}" prefix="24"/></protocol><bridge stp="off" delay="0"/></interface>"#
    )
}

/// A users sandbox with a session bus for each user, both able to activate the service.
pub(super) struct Desk {
    pub sb: Sandbox,
    pub a: (String, u32),
    pub b: (String, u32),
}

impl Desk {
    pub(super) fn new(auth_polkit: bool, idle_exit: u32) -> Desk {
        let sb = Sandbox::up_users(auth_polkit);
        let dir = sb.service_dir(idle_exit);
        let (a, b) = (sb.user_a(), sb.user_b());
        sb.session_bus(&a.0, &dir);
        sb.session_bus(&b.0, &dir);
        Desk { sb, a, b }
    }

    /// `gdbus call` on `user`'s session bus.
    pub(super) fn call(&self, user: &str, interactive: bool, path: &str, method: &str, args: &[&str]) -> Output {
        let mut full = vec!["gdbus", "call", "--session", "--dest", SVC, "--object-path", path, "--method", method];
        if interactive {
            full.push("--interactive");
        }
        full.extend_from_slice(args);
        self.sb.as_user(user, &full).output().expect("gdbus")
    }

    /// A Manager method, as `user`.
    pub(super) fn mgr(&self, user: &str, method: &str, args: &[&str]) -> Output {
        self.call(user, false, MGR, &format!("{SVC}.Manager.{method}"), args)
    }

    /// A Manager property, as `user`.
    fn prop(&self, user: &str, name: &str) -> String {
        let out =
            self.call(user, false, MGR, "org.freedesktop.DBus.Properties.Get", &[&format!("{SVC}.Manager"), name]);
        text(&out.stdout)
    }

    /// The service's pid on `user`'s bus, if it runs (asking the bus does not activate it).
    pub(super) fn service_pid(&self, user: &str) -> Option<String> {
        let out = self
            .sb
            .as_user(user, &["gdbus", "call", "--session", "--dest", "org.freedesktop.DBus"])
            .args(["--object-path", "/org/freedesktop/DBus", "--method"])
            .args(["org.freedesktop.DBus.GetConnectionUnixProcessID", SVC])
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        // `(uint32 1234,)`
        text(&out.stdout).split_whitespace().last().map(|w| w.trim_matches(|c: char| !c.is_ascii_digit()).to_string())
    }
}

/// gdbus's quoting of a string argument (GVariant text), so XML is not parsed as a variant.
pub(super) fn s(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The D-Bus error name of a failed gdbus call.
pub(super) fn error_name(out: &Output) -> String {
    let err = text(&out.stderr);
    err.split("GDBus.Error:").nth(1).and_then(|r| r.split(':').next()).unwrap_or("").to_string()
}

fn ok(what: &str, out: &Output) -> R {
    ensure(out.status.success(), || format!("{what}: {}{}", text(&out.stdout), text(&out.stderr)))
}

fn fails_with(what: &str, out: &Output, name: &str) -> R {
    ensure(!out.status.success() && error_name(out) == name, || {
        format!("{what}: wanted {name}, got exit {:?}: {}{}", out.status.code(), text(&out.stdout), text(&out.stderr))
    })
}

/// The object paths in a gdbus reply.
pub(super) fn paths(out: &Output) -> Vec<String> {
    text(&out.stdout)
        .split('\'')
        .filter(|p| p.starts_with("/org/nmiface/Interfaces1/interface/"))
        .map(str::to_string)
        .collect()
}

/// `InterfaceEvent` lines for `path` with `event`.
fn has_event(log: &str, path: &str, event: i32) -> bool {
    log.lines().any(|l| l.contains("InterfaceEvent") && l.contains(path) && l.contains(&format!("{path}', {event}, ")))
}

/// User A's per-user NAT bridge through the service: `connection.permissions=user:A`,
/// NetworkManager asked polkit `settings.modify.own` for A, `InterfaceEvent` said defined and
/// started. B neither sees nor touches it (service: not found; NetworkManager directly:
/// PermissionDenied). A system-wide nmiface profile and B's own profile of the same name are
/// never A's. The `SYSTEM` flag with polkit answering no, auth, auth with interaction: the
/// error names, then a system-wide profile. Transactions: journal while NetworkManager refuses
/// checkpoints to A, a checkpoint once it allows them. Logout takes A's bridge down (stopped
/// event), login brings it back.
pub fn user_profiles_are_private_and_networkmanager_decides() -> R {
    let d = Desk::new(true, 30);
    let ((a, a_uid), (b, b_uid)) = (d.a.clone(), d.b.clone());
    d.sb.login(&a);
    d.sb.login(&b);
    for (uid, action) in [(a_uid, "settings.modify.own"), (a_uid, "network-control"), (b_uid, "settings.modify.own")] {
        d.sb.polkit(uid, &format!("{NM}.{action}"), "yes");
    }
    let monitor = d.sb.monitor(&a, "a");

    let out = d.mgr(&a, "Apply", &[&s(NAT0), "{}"]);
    ok("A: Apply nat0", &out)?;
    let nat0 = paths(&out).first().cloned().ok_or("Apply returned no object")?;
    let perms = permissions(&d.sb, "nat0").ok_or("no nat0 profile")?;
    ensure(perms.contains(&format!("user:{a}")), || format!("nat0 permissions: {perms:?}"))?;
    let asked = format!("{a_uid} {NM}.settings.modify.own");
    ensure(d.sb.polkit_log().contains(&asked), || format!("polkit was not asked '{asked}':\n{}", d.sb.polkit_log()))?;
    ensure(wait_for(10, || active(&d.sb).contains(&"nat0".to_string())), || "nat0 is not active".into())?;

    // B: nothing of A's through the service, NetworkManager's refusal directly.
    let out = d.mgr(&b, "ListInterfaces", &["0"]);
    ok("B: ListInterfaces", &out)?;
    ensure(paths(&out).is_empty(), || format!("B sees objects: {}", text(&out.stdout)))?;
    fails_with(
        "B: lookup nat0",
        &d.mgr(&b, "InterfaceLookupByName", &["nat0"]),
        "org.nmiface.Interfaces1.Error.NotFound",
    )?;
    let uuid = text(&nmcli(&d.sb, &["-g", "connection.uuid", "con", "show", "nat0"]).stdout).trim().to_string();
    let path = text(
        &std::process::Command::new("busctl")
            .args([&format!("--address={}", d.sb.bus()), "call", NM, "/org/freedesktop/NetworkManager/Settings"])
            .args([&format!("{NM}.Settings"), "GetConnectionByUuid", "s", &uuid])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .trim_start_matches("o ")
    .trim_matches('"')
    .to_string();
    let del =
        d.sb.as_user(&b, &["gdbus", "call", "--system", "--dest", NM, "--object-path", &path])
            .args(["--method", &format!("{NM}.Settings.Connection.Delete")])
            .output()
            .unwrap();
    ensure(!del.status.success() && text(&del.stderr).contains("PermissionDenied"), || {
        format!("B's Delete of A's profile: {}{}", text(&del.stdout), text(&del.stderr))
    })?;
    ensure(permissions(&d.sb, "nat0").is_some(), || "B deleted A's profile".into())?;

    // Marks prove nothing: a system-wide nmiface profile and B's own nat0 are never A's.
    let f = d.sb.write("fake0.xml", &bridge("fake0", "192.0.2.1"));
    let out = d.sb.nmiface(&["define", &f]);
    ok("root: define fake0", &out)?;
    // B cannot take the name of A's running bridge (its device is A's), but B's own nmiface
    // profiles are never A's either.
    fails_with(
        "B: define a nat0 of its own",
        &d.mgr(&b, "InterfaceDefineXML", &[&s(&bridge("nat0", "198.51.100.1")), "0"]),
        "org.nmiface.Interfaces1.Error.InUse",
    )?;
    ok("B: define its own natb", &d.mgr(&b, "InterfaceDefineXML", &[&s(&bridge("natb", "198.51.100.1")), "0"]))?;
    let out = d.mgr(&a, "ListInterfaces", &["0"]);
    ensure(paths(&out) == vec![nat0.clone()], || format!("A's list: {}", text(&out.stdout)))?;
    fails_with(
        "A: lookup fake0",
        &d.mgr(&a, "InterfaceLookupByName", &["fake0"]),
        "org.nmiface.Interfaces1.Error.NotOwned",
    )?;
    let out = d.sb.as_user(&a, &[env!("CARGO_BIN_EXE_nmiface"), "undefine", "fake0"]).output().unwrap();
    ensure(out.status.code() == Some(2), || {
        format!("A's CLI undefine fake0: {:?} {}", out.status.code(), text(&out.stderr))
    })?;
    ensure(permissions(&d.sb, "fake0").is_some(), || "A's CLI deleted the system profile".into())?;

    // SYSTEM: polkit no / auth / auth with interaction allowed.
    let sys = bridge("sys0", "203.0.113.1");
    let modify_system = format!("{NM}.settings.modify.system");
    d.sb.polkit(a_uid, &modify_system, "no");
    let out = d.mgr(&a, "InterfaceDefineXML", &[&s(&sys), "4"]);
    fails_with("SYSTEM, polkit no", &out, "org.nmiface.Interfaces1.Error.PermissionDenied")?;
    d.sb.polkit(a_uid, &modify_system, "auth");
    ensure(wait_for(5, || d.prop(&a, "Permissions").contains(&format!("'{modify_system}': 'auth'"))), || {
        format!("Permissions did not follow polkit: {}", d.prop(&a, "Permissions"))
    })?;
    let out = d.mgr(&a, "InterfaceDefineXML", &[&s(&sys), "4"]);
    fails_with("SYSTEM, polkit auth", &out, "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")?;
    ensure(permissions(&d.sb, "sys0").is_none(), || "a refused define left a profile".into())?;
    let out = d.call(&a, true, MGR, &format!("{SVC}.Manager.InterfaceDefineXML"), &[&s(&sys), "4"]);
    ok("SYSTEM, polkit auth, interaction allowed", &out)?;
    ensure(permissions(&d.sb, "sys0").as_deref() == Some(""), || format!("sys0: {:?}", permissions(&d.sb, "sys0")))?;
    d.sb.polkit(a_uid, &modify_system, "yes");
    ensure(wait_for(5, || d.prop(&a, "Permissions").contains(&format!("'{modify_system}': 'yes'"))), || {
        format!("Permissions did not follow polkit: {}", d.prop(&a, "Permissions"))
    })?;
    let out = d.mgr(&a, "InterfaceDefineXML", &[&s(&bridge("sys1", "203.0.113.2")), "4"]);
    ok("SYSTEM, polkit yes", &out)?;
    ensure(permissions(&d.sb, "sys1").as_deref() == Some(""), || format!("sys1: {:?}", permissions(&d.sb, "sys1")))?;

    // Transactions: the journal while checkpoints are refused, a checkpoint once allowed.
    let checkpoint = format!("{NM}.checkpoint-rollback");
    d.sb.polkit(a_uid, &checkpoint, "no");
    ok("begin (journal)", &d.mgr(&a, "InterfaceChangeBegin", &["0"]))?;
    ensure(d.prop(&a, "Transaction").contains("journal"), || format!("Transaction: {}", d.prop(&a, "Transaction")))?;
    ok("define tx0", &d.mgr(&a, "InterfaceDefineXML", &[&s(&bridge("tx0", "192.0.2.9")), "0"]))?;
    ok("rollback (journal)", &d.mgr(&a, "InterfaceChangeRollback", &["0"]))?;
    ensure(permissions(&d.sb, "tx0").is_none(), || "rollback left tx0".into())?;
    d.sb.polkit(a_uid, &checkpoint, "yes");
    ensure(wait_for(5, || d.prop(&a, "Permissions").contains(&format!("'{checkpoint}': 'yes'"))), || {
        format!("Permissions did not follow polkit: {}", d.prop(&a, "Permissions"))
    })?;
    ok("begin (checkpoint)", &d.mgr(&a, "InterfaceChangeBegin", &["0"]))?;
    ensure(d.prop(&a, "Transaction").contains("checkpoint"), || format!("Transaction: {}", d.prop(&a, "Transaction")))?;
    ok("commit", &d.mgr(&a, "InterfaceChangeCommit", &["0"]))?;
    ensure(d.prop(&a, "Transaction").contains("none"), || format!("Transaction: {}", d.prop(&a, "Transaction")))?;

    // Logout takes A's bridge down (the service says stopped), login brings it back.
    d.sb.logout(&a);
    ensure(wait_for(10, || !active(&d.sb).contains(&"nat0".to_string())), || "nat0 still up after logout".into())?;
    std::thread::sleep(Duration::from_millis(500));
    d.sb.login(&a);
    ensure(wait_for(20, || active(&d.sb).contains(&"nat0".to_string())), || "nat0 not up after login".into())?;
    std::thread::sleep(Duration::from_millis(500));
    let log = monitor.log();
    for (ev, what) in [(0, "defined"), (2, "started"), (3, "stopped")] {
        ensure(has_event(&log, &nat0, ev), || format!("no {what} event for {nat0}:\n{log}"))?;
    }
    let went_down = |l: &&str| {
        l.starts_with(&format!("{nat0}: ")) && l.contains("PropertiesChanged") && l.contains("'Active': <false>")
    };
    ensure(log.lines().any(|l| went_down(&l)), || format!("no PropertiesChanged Active=false for {nat0}:\n{log}"))?;
    Ok(())
}

/// With `auth-polkit=false` (no polkit at all) B still cannot touch A's profile. The service
/// is activated by the first call, survives a NetworkManager restart (same process, the version
/// announced again, calls work), exits when idle, and the next call activates it again.
pub fn activation_restart_and_idle_exit() -> R {
    let d = Desk::new(false, 8);
    let ((a, _), (b, _)) = (d.a.clone(), d.b.clone());
    d.sb.login(&a);
    ensure(d.service_pid(&a).is_none(), || "the service runs before any call".into())?;
    let out = d.mgr(&a, "Apply", &[&s(&bridge("br5", "192.0.2.5")), "{}"]);
    ok("A: Apply br5", &out)?;
    let br5 = paths(&out).first().cloned().ok_or("no object")?;
    // The introspection data clients (gdbus, python-dbus, Qt) parse must be well-formed XML:
    // zbus copies doc comments into it as XML comments, where `--` is not allowed.
    for path in [MGR, br5.as_str()] {
        let out =
            d.sb.as_user(&a, &["gdbus", "introspect", "--session", "--dest", SVC, "--object-path", path, "--xml"])
                .output()
                .unwrap();
        well_formed(&text(&out.stdout)).map_err(|e| format!("introspection of {path}: {e}"))?;
    }
    let pid = d.service_pid(&a).ok_or("the service did not start")?;
    let managed = d.call(&a, false, MGR, "org.freedesktop.DBus.ObjectManager.GetManagedObjects", &[]);
    ensure(text(&managed.stdout).contains(&br5) && text(&managed.stdout).contains("'Name': <'br5'>"), || {
        format!("GetManagedObjects: {}{}", text(&managed.stdout), text(&managed.stderr))
    })?;
    let uuid = text(&nmcli(&d.sb, &["-g", "connection.uuid", "con", "show", "br5"]).stdout).trim().to_string();
    let out = d.sb.as_user(&b, &["nmcli", "con", "delete", "uuid", &uuid]).output().unwrap();
    ensure(!out.status.success() && permissions(&d.sb, "br5").is_some(), || {
        format!("B deleted A's profile without polkit: {}", text(&out.stdout))
    })?;

    let before = d.prop(&a, "NetworkManagerVersion");
    ensure(before.contains("'1."), || format!("NetworkManagerVersion: {before}"))?;
    let monitor = d.sb.monitor(&a, "restart");
    d.sb.restart_nm();
    d.sb.login(&a);
    // Read again from the daemon that came back (empty while it is away).
    ensure(wait_for(5, || d.prop(&a, "NetworkManagerVersion") == before), || {
        format!("version after restart: {} (before: {before})", d.prop(&a, "NetworkManagerVersion"))
    })?;
    let out = d.mgr(&a, "ListInterfaces", &["0"]);
    ensure(paths(&out) == vec![br5.clone()], || format!("after the restart: {}", text(&out.stdout)))?;
    ok("Apply after restart", &d.mgr(&a, "Apply", &[&s(&bridge("br6", "192.0.2.6")), "{}"]))?;
    ensure(d.service_pid(&a).as_deref() == Some(pid.as_str()), || "the service did not survive the restart".into())?;
    let log = monitor.log();
    ensure(log.contains("NetworkManagerVersion"), || format!("no NetworkManagerVersion change announced:\n{log}"))?;

    // A share's object outlives the service that made it: the next service exports it again.
    let out = d.mgr(&a, "ShareNat", &["{'bridge': <'nat5'>, 'subnet': <'10.42.55.0/24'>}"]);
    ok("A: ShareNat nat5", &out)?;
    let share = text(&out.stdout).split('\'').nth(1).unwrap_or("").to_string();
    let subnet = |d: &Desk| {
        let args = [&format!("{SVC}.Share"), "Subnet"];
        text(&d.call(&a, false, &share, "org.freedesktop.DBus.Properties.Get", &args).stdout)
    };
    let made = subnet(&d);
    ensure(made.contains("10.42.55.1/24"), || format!("the share's subnet: {made}"))?;

    // Idle: gone within the delay (+ a tick), back at the next call, with the share's object.
    ensure(wait_for(16, || d.service_pid(&a).is_none()), || "the service did not exit when idle".into())?;
    let again = subnet(&d);
    ensure(again == made, || format!("the share's object after an idle exit: {again:?} (was {made:?})"))?;
    let out = d.mgr(&a, "ListInterfaces", &["0"]);
    ensure(paths(&out).len() == 3, || format!("after re-activation: {}", text(&out.stdout)))?;
    ensure(d.service_pid(&a).is_some_and(|p| p != pid), || "no new service process".into())
}

/// The CLI run by a user, straight against NetworkManager: per-user profiles by default, the
/// journal as protection where NetworkManager refuses checkpoints (said in `--json`), B unable
/// to see them, `--system` refused with NetworkManager's words, bridging a NIC refused as
/// system-wide only, and `undefine` removing the user's own.
pub fn cli_run_by_a_user() -> R {
    let d = Desk::new(true, 30);
    let ((a, a_uid), (b, _)) = (d.a.clone(), d.b.clone());
    d.sb.at_desk(&a, a_uid);
    let nmiface = |user: &str, args: &[&str]| {
        let mut full = vec![env!("CARGO_BIN_EXE_nmiface")];
        full.extend_from_slice(args);
        d.sb.as_user(user, &full).current_dir("/").output().unwrap()
    };
    let f = d.sb.write("br8.xml", &bridge("br8", "192.0.2.8"));
    let _ = std::process::Command::new("chmod").args(["a+r", &f]).status();
    let out = nmiface(&a, &["apply", "--json", &f]);
    ok("A: apply", &out)?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("json: {e}"))?;
    ensure(json["protection"] == "journal", || format!("protection: {json}"))?;
    let perms = permissions(&d.sb, "br8").ok_or("no br8")?;
    ensure(perms == format!("user:{a}"), || format!("br8 permissions: {perms:?}"))?;
    ensure(active(&d.sb).contains(&"br8".to_string()), || "br8 not active".into())?;

    let out = nmiface(&b, &["list", "--json"]);
    ok("B: list", &out)?;
    ensure(!text(&out.stdout).contains("br8"), || format!("B lists A's br8: {}", text(&out.stdout)))?;

    d.sb.polkit(a_uid, &format!("{NM}.settings.modify.system"), "no");
    let g = d.sb.write("sys8.xml", &bridge("sys8", "192.0.2.18"));
    let _ = std::process::Command::new("chmod").args(["a+r", &g]).status();
    let out = nmiface(&a, &["--system", "define", &g]);
    let err = text(&out.stderr);
    ensure(out.status.code() == Some(2) && err.contains("NetworkManager denied permission"), || {
        format!("--system define: {:?}: {err}", out.status.code())
    })?;
    ensure(permissions(&d.sb, "sys8").is_none(), || "a refused define left sys8".into())?;
    let out = nmiface(&a, &["bridge", "eth1", "br9"]);
    let err = text(&out.stderr);
    ensure(out.status.code() == Some(2) && err.contains("system-wide profiles only"), || {
        format!("bridge as a user: {:?}: {err}", out.status.code())
    })?;
    ok("A: undefine", &nmiface(&a, &["undefine", "br8"]))?;
    ensure(permissions(&d.sb, "br8").is_none(), || "br8 still there".into())
}

/// Reads `xml` to its end with quick-xml; the first error, if any.
fn well_formed(xml: &str) -> Result<(), String> {
    if !xml.contains("<node") {
        return Err(format!("no introspection data: {xml}"));
    }
    let mut r = quick_xml::Reader::from_str(xml);
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Eof) => return Ok(()),
            // XML forbids `--` inside a comment; quick-xml reads it anyway, expat (python-dbus,
            // GLib) does not.
            Ok(quick_xml::events::Event::Comment(c)) if c.windows(2).any(|w| w == b"--") => {
                return Err(format!("a comment holds '--': {}", String::from_utf8_lossy(&c)));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("at byte {}: {e}", r.buffer_position())),
        }
    }
}

/// A transaction open when the session ends is rolled back, not lost with `$XDG_RUNTIME_DIR`:
/// A's CLI `begin` starts the session service (D-Bus activation), which then does not exit
/// when idle while the transaction is open; A defines a bridge inside it; SIGTERM to the
/// service (what systemd sends at logout) rolls the transaction back: the bridge's profile is
/// gone and no transaction is left.
pub fn a_transaction_open_at_the_end_of_the_session_is_rolled_back() -> R {
    let d = Desk::new(true, 2);
    let (a, a_uid) = d.a.clone();
    d.sb.at_desk(&a, a_uid);
    let nmiface = env!("CARGO_BIN_EXE_nmiface");
    let run = |args: &[&str]| {
        let mut full = vec![nmiface];
        full.extend_from_slice(args);
        d.sb.as_user(&a, &full).current_dir("/").output().unwrap()
    };
    ok("A: begin", &run(&["begin"]))?;
    let pid = d.service_pid(&a).ok_or("begin did not start the session service")?;
    let doc = d.sb.write("trx.xml", &bridge("trx0", "192.0.2.66"));
    let _ = std::process::Command::new("chmod").args(["a+r", &doc]).status();
    ok("A: define inside the transaction", &run(&["define", &doc]))?;
    ensure(permissions(&d.sb, "trx0").is_some(), || "trx0 was not defined".into())?;
    // Past the idle delay (2 s): the service stays for the open transaction.
    std::thread::sleep(std::time::Duration::from_secs(4));
    ensure(d.service_pid(&a).as_deref() == Some(pid.as_str()), || "the service left with a transaction open".into())?;
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    ensure(wait_for(15, || d.service_pid(&a).is_none()), || "the service did not stop on SIGTERM".into())?;
    ensure(permissions(&d.sb, "trx0").is_none(), || "the transaction's bridge outlived the session".into())?;
    let out = run(&["rollback"]);
    ensure(!out.status.success() && text(&out.stderr).contains("no transaction"), || {
        format!("a transaction is still open: {}{}", text(&out.stdout), text(&out.stderr))
    })
}
