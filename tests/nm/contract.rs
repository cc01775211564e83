//! The session service's contract, checked against its own introspection: every method,
//! property and signal it declares is called here (or, for `LeaseAdded`, in the named trial that
//! boots a guest), with success and with every error name its documentation promises
//! (`Errors: …` in the doc comment, which zbus puts into the introspection XML). Changes run
//! beside reads: no call waits for a `Create` or an `Apply`. And the CLI and the service give
//! the same verdict for the same request.

use super::session::{bridge, error_name, paths, s, Desk, MGR, SVC};
use super::{ensure, nmcli, private_bridge, text, wait_for, R};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An ethernet interface whose MAC matches no device: defined fine, never started.
const NO_DEVICE: &str = r#"<interface type="ethernet" name="ctx0"><start mode="none"/><mac address="02:00:00:00:99:99"/><protocol family="ipv4"><ip address="192.0.2.99" prefix="24"/></protocol></interface>"#;

/// Members checked elsewhere, and the trial that checks them (it must name the member).
const ELSEWHERE: &[(&str, &str, &str)] = &[("LeaseAdded", "taps.rs", "a guest's DHCP lease on a user's tap")];

/// The calls made, as (member, outcome): `ok`, or the error name's last part.
struct Calls<'a> {
    d: &'a Desk,
    seen: Mutex<BTreeSet<(String, String)>>,
}

impl Calls<'_> {
    fn record(&self, member: &str, out: &Output) {
        let outcome = match out.status.success() {
            true => "ok".to_string(),
            false => error_name(out).rsplit('.').next().unwrap_or("").to_string(),
        };
        self.seen.lock().unwrap().insert((member.to_string(), outcome));
    }

    /// `member` of `interface` on `path`, as user A.
    fn on(&self, path: &str, interface: &str, member: &str, args: &[&str]) -> Output {
        let out = self.d.call(&self.d.a.0, false, path, &format!("{SVC}.{interface}.{member}"), args);
        self.record(member, &out);
        out
    }

    fn mgr(&self, member: &str, args: &[&str]) -> Output {
        self.on(MGR, "Manager", member, args)
    }

    /// A property of `interface` on `path`.
    fn prop(&self, path: &str, interface: &str, name: &str) -> Result<String, String> {
        let out = self.d.call(
            &self.d.a.0,
            false,
            path,
            "org.freedesktop.DBus.Properties.Get",
            &[&format!("{SVC}.{interface}"), name],
        );
        self.record(name, &out);
        match out.status.success() {
            true => Ok(text(&out.stdout)),
            false => Err(format!("Get {name}: {}", text(&out.stderr))),
        }
    }

    /// Success, recorded.
    fn ok(&self, what: &str, out: &Output) -> R {
        ensure(out.status.success(), || format!("{what}: {}{}", text(&out.stdout), text(&out.stderr)))
    }

    /// The error `name` (last part), recorded.
    fn fails(&self, what: &str, out: &Output, name: &str) -> R {
        let got = error_name(out);
        ensure(!out.status.success() && got.rsplit('.').next() == Some(name), || {
            format!("{what}: wanted {name}, got {got:?}: {}{}", text(&out.stdout), text(&out.stderr))
        })
    }
}

/// What one interface of the introspection declares: member kind and name -> documented errors.
type Declared = BTreeMap<(String, String), Vec<String>>;

/// The members of `org.nmiface.Interfaces1.*` interfaces in an introspection document, each with
/// the error names its doc comment lists after `Errors:`.
fn declared(xml: &str, into: &mut Declared) {
    let mut ours = false;
    let mut comment = String::new();
    let mut in_comment = false;
    for line in xml.lines().map(str::trim) {
        if in_comment {
            if line.starts_with("-->") {
                in_comment = false;
            } else {
                comment.push_str(line);
                comment.push(' ');
            }
            continue;
        }
        if line.starts_with("<!--") {
            in_comment = true;
            comment.clear();
            continue;
        }
        if let Some(rest) = line.strip_prefix("<interface name=\"") {
            ours = rest.starts_with(&format!("{SVC}."));
            comment.clear();
            continue;
        }
        for kind in ["method", "property", "signal"] {
            let Some(rest) = line.strip_prefix(&format!("<{kind} name=\"")) else { continue };
            if !ours {
                continue;
            }
            let name = rest.split('"').next().unwrap_or("").to_string();
            let errors = comment
                .split("Errors:")
                .nth(1)
                .map(|e| {
                    e.split(['.', '('])
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|n| n.trim().to_string())
                        .filter(|n| !n.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            into.insert((kind.to_string(), name), errors);
            comment.clear();
        }
        if line.starts_with("<arg") || line.starts_with("</") || line.starts_with("<annotation") {
            continue;
        }
    }
}

/// The raw introspection XML of `path` (busctl keeps the comments; gdbus drops them).
fn introspect(d: &Desk, path: &str) -> Result<String, String> {
    let out = d.sb.as_user(&d.a.0, &["busctl", "--user", "introspect", "--xml-interface", SVC, path]).output().unwrap();
    match out.status.success() {
        true => Ok(text(&out.stdout)),
        false => Err(format!("introspect {path}: {}", text(&out.stderr))),
    }
}

/// Every member of the service, called; every documented error, caused; reads beside a long
/// `Create` and a long `Apply`; the same verdicts from the CLI and the service.
pub fn every_member_is_called_and_the_cli_agrees() -> R {
    let d = Desk::new(true, 60);
    let (a, a_uid) = d.a.clone();
    d.sb.at_desk(&a, a_uid);
    // A profile of another tool, and one of the system, in A's way.
    let foreign = super::nmcli(&d.sb, &["con", "add", "type", "bridge", "ifname", "ctf", "con-name", "ctf"]);
    ensure(foreign.status.success(), || format!("nmcli: {}", text(&foreign.stderr)))?;
    let c = Calls { d: &d, seen: Mutex::new(BTreeSet::new()) };
    let monitor = d.sb.monitor(&a, "contract");

    // Manager: properties.
    for p in ["Version", "NetworkManagerVersion", "Permissions", "Transaction"] {
        c.prop(MGR, "Manager", p)?;
    }

    // Define, look up.
    let out = c.mgr("InterfaceDefineXML", &[&s(&bridge("ct0", "192.0.2.40")), "0"]);
    c.ok("define ct0", &out)?;
    let ct0 = paths(&out).first().cloned().ok_or("define returned no object")?;
    let mut decl = Declared::new();
    for path in [MGR, ct0.as_str()] {
        declared(&introspect(&d, path)?, &mut decl);
    }
    c.fails("define: bad XML", &c.mgr("InterfaceDefineXML", &[&s("<interface"), "0"]), "InvalidXml")?;
    c.fails("define over ctf", &c.mgr("InterfaceDefineXML", &[&s(&bridge("ctf", "192.0.2.41")), "0"]), "InUse")?;
    // A's own hand-made private profile of that name: A's, but not nmiface's (adopt takes it).
    let disabled = ["ipv4.method", "disabled", "ipv6.method", "disabled", "autoconnect", "no"];
    private_bridge(&d.sb, &a, "ctm", "ctm", &disabled)?;
    c.fails(
        "define over A's own ctm",
        &c.mgr("InterfaceDefineXML", &[&s(&bridge("ctm", "192.0.2.43")), "0"]),
        "NotOwned",
    )?;
    c.ok("lookup ct0", &c.mgr("InterfaceLookupByName", &["ct0"]))?;
    c.fails("lookup nosuch", &c.mgr("InterfaceLookupByName", &["nosuch"]), "NotFound")?;
    c.fails("lookup ctf", &c.mgr("InterfaceLookupByName", &["ctf"]), "NotOwned")?;
    c.fails("lookup by MAC zz", &c.mgr("InterfaceLookupByMAC", &["zz"]), "InvalidArgs")?;
    c.fails("lookup by MAC", &c.mgr("InterfaceLookupByMAC", &["02:00:00:00:00:99"]), "NotFound")?;

    // Create, with five clients reading all along (it once hung the service for good).
    let create = || c.on(&ct0, "Interface", "Create", &["0"]);
    let (created, reads) = beside(&d, create);
    c.ok("Create ct0", &created)?;
    reads?;
    c.ok("ListInterfaces after Create", &c.mgr("ListInterfaces", &["0"]))?;
    for p in ["Name", "MAC", "Active", "Type", "Scope", "State", "Findings"] {
        c.prop(&ct0, "Interface", p)?;
    }
    let mac = c.prop(&ct0, "Interface", "MAC")?;
    let mac = mac.split('\'').nth(1).unwrap_or("").to_string();
    c.ok("lookup by MAC", &c.mgr("InterfaceLookupByMAC", &[&mac]))?;
    c.ok("GetXMLDesc", &c.on(&ct0, "Interface", "GetXMLDesc", &["0"]))?;
    c.ok("GetXMLDesc inactive", &c.on(&ct0, "Interface", "GetXMLDesc", &["1"]))?;
    c.ok("Destroy ct0", &c.on(&ct0, "Interface", "Destroy", &["0"]))?;
    c.fails("Destroy ct0 again", &c.on(&ct0, "Interface", "Destroy", &["0"]), "NotActive")?;

    // An interface that cannot start: Create and Apply say so, with and without a checkpoint.
    let out = c.mgr("InterfaceDefineXML", &[&s(NO_DEVICE), "0"]);
    c.ok("define ctx0", &out)?;
    let ctx0 = paths(&out).first().cloned().ok_or("define returned no object")?;
    c.fails("Create ctx0", &c.on(&ctx0, "Interface", "Create", &["0"]), "ActivationFailed")?;
    let no_cp = "{'checkpoint': <false>}";
    c.fails("Apply ctx0 without checkpoint", &c.mgr("Apply", &[&s(NO_DEVICE), no_cp]), "ActivationFailed")?;
    c.ok("Undefine ctx0", &c.on(&ctx0, "Interface", "Undefine", &[]))?;

    // Apply: a bridge with STP waits ~2 s (progress signals) while five clients read.
    let stp = r#"<interface type="bridge" name="ct1"><start mode="none"/><protocol family="ipv4"><ip address="192.0.2.42" prefix="24"/></protocol><bridge stp="on" delay="2"/></interface>"#;
    let (applied, reads) = beside(&d, || c.mgr("Apply", &[&s(stp), "{}"]));
    c.ok("Apply ct1", &applied)?;
    reads?;
    c.fails("Apply: bad XML", &c.mgr("Apply", &[&s("<nope/>"), "{}"]), "InvalidXml")?;
    c.fails("Apply: unknown option", &c.mgr("Apply", &[&s(stp), "{'bogus': <true>}"]), "InvalidArgs")?;
    c.ok("Check", &c.mgr("Check", &[&s(stp), "{}"]))?;
    c.fails("Check: bad XML", &c.mgr("Check", &[&s("<interface"), "{}"]), "InvalidXml")?;
    for flags in ["0", "1", "2"] {
        c.ok("ListInterfaces", &c.mgr("ListInterfaces", &[flags]))?;
    }

    // Transactions.
    c.fails("commit without one", &c.mgr("InterfaceChangeCommit", &["0"]), "NoTransaction")?;
    c.fails("rollback without one", &c.mgr("InterfaceChangeRollback", &["0"]), "NoTransaction")?;
    c.ok("begin", &c.mgr("InterfaceChangeBegin", &["0"]))?;
    c.fails("begin again", &c.mgr("InterfaceChangeBegin", &["0"]), "Busy")?;
    c.fails("Apply ctx0 in a transaction", &c.mgr("Apply", &[&s(NO_DEVICE), "{}"]), "ActivationFailed")?;
    c.ok("rollback", &c.mgr("InterfaceChangeRollback", &["0"]))?;
    ensure(!super::nmcli(&d.sb, &["-g", "NAME", "con", "show"]).stdout.windows(4).any(|w| w == b"ctx0"), || {
        "the rollback left ctx0's profile".into()
    })?;
    c.ok("begin", &c.mgr("InterfaceChangeBegin", &["0"]))?;
    c.ok("commit", &c.mgr("InterfaceChangeCommit", &["0"]))?;

    // A NAT share, its taps and leases.
    let out = c.mgr("ShareNat", &["{'bridge': <'ctn0'>, 'subnet': <'10.42.61.0/24'>}"]);
    c.ok("ShareNat ctn0", &out)?;
    let share = text(&out.stdout).split('\'').nth(1).unwrap_or("").to_string();
    declared(&introspect(&d, &share)?, &mut decl);
    c.fails("ShareNat: bad subnet", &c.mgr("ShareNat", &["{'subnet': <'x'>}"]), "InvalidArgs")?;
    let clash = "{'bridge': <'ctn1'>, 'subnet': <'10.42.61.0/24'>}";
    c.fails("ShareNat: subnet in use", &c.mgr("ShareNat", &[clash]), "InUse")?;
    for p in ["Bridge", "Subnet"] {
        c.prop(&share, "Share", p)?;
    }
    let out = c.on(&share, "Share", "AddTap", &["{'name': <'cttap0'>}"]);
    c.ok("AddTap", &out)?;
    let xml = text(&out.stdout);
    ensure(xml.contains("dev='cttap0'"), || format!("AddTap's XML: {xml}"))?;
    c.fails("AddTap eth0", &c.on(&share, "Share", "AddTap", &["{'name': <'eth0'>}"]), "InUse")?;
    c.fails("AddTap: unknown option", &c.on(&share, "Share", "AddTap", &["{'bogus': <1>}"]), "InvalidArgs")?;
    c.ok("GetLeases", &c.on(&share, "Share", "GetLeases", &[]))?;
    c.ok("RemoveTap", &c.on(&share, "Share", "RemoveTap", &["cttap0"]))?;
    c.fails("RemoveTap again", &c.on(&share, "Share", "RemoveTap", &["cttap0"]), "NotFound")?;
    // OpenTap: the tap is handed over and lives as long as the descriptor (gdbus's, closed
    // when gdbus exits): then NetworkManager deletes its device and its profile.
    let out = c.mgr("OpenTap", &["ctn0", "{}"]);
    c.ok("OpenTap", &out)?;
    let tap = text(&out.stdout).split('\'').nth(1).unwrap_or("").to_string();
    ensure(tap.starts_with("vtap"), || format!("OpenTap: {}", text(&out.stdout)))?;
    let gone = wait_for(5, || {
        let link = d.sb.exec(&["ip", "link", "show", &tap]);
        let names = text(&super::nmcli(&d.sb, &["-g", "NAME", "con", "show"]).stdout);
        !link.status.success() && !names.lines().any(|l| l == tap)
    });
    ensure(gone, || format!("{tap} or its profile outlived the descriptor OpenTap handed over"))?;
    c.fails("OpenTap: unknown option", &c.mgr("OpenTap", &["ctn0", "{'bogus': <1>}"]), "InvalidArgs")?;
    c.fails("OpenTap on another tool's bridge", &c.mgr("OpenTap", &["ctf", "{}"]), "NotOwned")?;
    c.fails("OpenTap on a bridge not for VMs", &c.mgr("OpenTap", &["ct0", "{}"]), "Unsupported")?;
    c.ok("Undefine ct0", &c.on(&ct0, "Interface", "Undefine", &[]))?;

    // Bridging a NIC: system-wide only, and NetworkManager's polkit decides (yes for A here
    // only for this part).
    let eth1 = d.sb.write(
        "ct-eth1.xml",
        "<interface type='ethernet' name='eth1'><protocol family='ipv4'><ip address='198.51.100.21' prefix='24'/></protocol></interface>",
    );
    let out = d.sb.nmiface(&["apply", &eth1]);
    ensure(out.status.success(), || format!("root: apply eth1: {}", text(&out.stderr)))?;
    let bridge_nic = |nic: &str, opts: &str, flags: &str| c.mgr("InterfaceBridge", &[nic, "ctb0", opts, flags]);
    c.fails("InterfaceBridge per-user", &bridge_nic("eth1", "{}", "0"), "Unsupported")?;
    c.fails("InterfaceBridge: unknown option", &bridge_nic("eth1", "{'bogus': <1>}", "4"), "InvalidArgs")?;
    let modify_system = "org.freedesktop.NetworkManager.settings.modify.system";
    d.sb.polkit(a_uid, modify_system, "yes");
    c.fails("InterfaceBridge of no NIC", &bridge_nic("nosuch0", "{}", "4"), "NotFound")?;
    let out = bridge_nic("eth1", "{'stp': <false>, 'delay': <uint32 0>, 'start': <true>, 'timeout': <uint32 30>}", "4");
    c.ok("InterfaceBridge", &out)?;
    ensure(text(&out.stdout).contains("/org/nmiface/Interfaces1/"), || {
        format!("InterfaceBridge: {}", text(&out.stdout))
    })?;
    let port = text(&d.sb.exec(&["ip", "-d", "link", "show", "eth1"]).stdout);
    ensure(port.contains("master ctb0"), || format!("eth1 after InterfaceBridge: {port}"))?;
    let out = c.mgr("InterfaceUnbridge", &["ctb0", "4"]);
    c.ok("InterfaceUnbridge", &out)?;
    ensure(text(&out.stdout).contains("'eth1'"), || format!("InterfaceUnbridge: {}", text(&out.stdout)))?;
    c.fails("InterfaceUnbridge again", &c.mgr("InterfaceUnbridge", &["ctb0", "4"]), "NotFound")?;
    d.sb.polkit(a_uid, modify_system, "no");

    // Signals, as a client saw them.
    let ok_signal = |name: &str| wait_for(5, || monitor.log().contains(&format!(".{name} (")));
    for sig in ["InterfaceEvent", "ActivationProgress"] {
        if ok_signal(sig) {
            c.seen.lock().unwrap().insert((sig.to_string(), "ok".into()));
        }
    }

    // NoRuntimeDirectory needs a service without XDG_RUNTIME_DIR: user B's, started by hand.
    no_runtime_dir(&d, &c)?;

    // The contract: everything declared was called, with every documented error.
    ensure(decl.len() > 20, || format!("introspection parsed to {} members: {decl:?}", decl.len()))?;
    let seen = c.seen.lock().unwrap().clone();
    let mut missing = Vec::new();
    for ((kind, name), errors) in &decl {
        if let Some((_, file, why)) = ELSEWHERE.iter().find(|(m, _, _)| m == name) {
            let src = std::fs::read_to_string(format!("{}/tests/nm/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            ensure(src.contains(name), || {
                format!("{name} is said to be checked in {file} ({why}), which never names it")
            })?;
            continue;
        }
        for outcome in std::iter::once("ok").chain(errors.iter().map(String::as_str)) {
            if !seen.contains(&(name.clone(), outcome.to_string())) {
                missing.push(format!("{kind} {name}: {outcome}"));
            }
        }
    }
    ensure(missing.is_empty(), || format!("members without a trial: {missing:?}\n(called: {seen:?})"))?;

    cli_and_service_agree(&d)?;
    closed_pipes_are_not_errors(&d)?;
    adopt_through_the_service(&d)?;
    a_stopped_service_rolls_back(&d)
}

/// The service's `adopt` takes over by device the user's own hand-made profile (any name) and
/// keeps what the document cannot say: its UUID, its name, its DNS servers and search domain.
fn adopt_through_the_service(d: &Desk) -> R {
    let a = d.a.0.clone();
    let settings = [
        "bridge.stp",
        "no",
        "ipv4.method",
        "manual",
        "ipv4.addresses",
        "192.0.2.90/24",
        "ipv4.dns",
        "9.9.9.9",
        "ipv4.dns-search",
        "home.example",
        "ipv6.method",
        "disabled",
    ];
    private_bridge(&d.sb, &a, "abr9", "My bridge", &settings)?;
    let get = |prop: &str| text(&nmcli(&d.sb, &["-g", prop, "con", "show", "My bridge"]).stdout).trim().to_string();
    let uuid = get("connection.uuid");
    let doc = r#"<interface type="bridge" name="abr9"><start mode="none"/><protocol family="ipv4"><ip address="192.0.2.91" prefix="24"/></protocol><bridge stp="off"/></interface>"#;
    let out = d.mgr(&a, "Apply", &[&s(doc), "{'adopt': <true>}"]);
    ensure(out.status.success(), || format!("Apply with adopt: {}{}", text(&out.stdout), text(&out.stderr)))?;
    ensure(text(&out.stdout).contains("kept"), || format!("Apply did not report what it kept: {}", text(&out.stdout)))?;
    for (prop, want) in [
        ("connection.uuid", uuid.as_str()),
        ("ipv4.dns", "9.9.9.9"),
        ("ipv4.dns-search", "home.example"),
        ("ipv4.addresses", "192.0.2.91/24"),
    ] {
        let got = get(prop);
        ensure(got == want, || format!("after the service's adopt, {prop} is {got:?}, wanted {want:?}"))?;
    }
    let n = text(&nmcli(&d.sb, &["-g", "NAME", "con", "show"]).stdout).lines().filter(|l| l.contains("abr9")).count();
    ensure(n == 0, || "the service's adopt added a second profile for abr9".into())
}

/// systemd stopping the service (SIGTERM, as at logout) during a change: the change is
/// abandoned, the call answers `Interrupted`, and what it made is rolled back before the
/// service exits: no half-made bridge stays behind.
fn a_stopped_service_rolls_back(d: &Desk) -> R {
    let a = d.a.0.clone();
    // A DHCP bridge with no DHCP server: NetworkManager waits for a lease (45 s).
    let slow = r#"<interface type="bridge" name="ctslow"><start mode="none"/><protocol family="ipv4"><dhcp/></protocol><bridge stp="off"/></interface>"#;
    let pid = d.service_pid(&a).ok_or("A's service is not running")?;
    let (out, _) = std::thread::scope(|scope| {
        let call = scope.spawn(|| d.mgr(&a, "Apply", &[&s(slow), "{'timeout': <uint32 50>}"]));
        let seen = wait_for(10, || text(&nmcli(&d.sb, &["-g", "NAME", "con", "show"]).stdout).contains("ctslow"));
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        (call.join().unwrap(), seen)
    });
    let name = error_name(&out);
    ensure(name.ends_with(".Interrupted"), || {
        let log = std::fs::read_to_string(d.sb.dir().join(format!("session-{}.log", d.a.1))).unwrap_or_default();
        format!(
            "Apply when the service was stopped: {name:?}: {}{}\nservice log:\n{log}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })?;
    ensure(!text(&nmcli(&d.sb, &["-g", "NAME", "con", "show"]).stdout).contains("ctslow"), || {
        "the abandoned change left its profile".into()
    })?;
    ensure(wait_for(10, || d.service_pid(&a).as_deref() != Some(pid.as_str())), || "the service did not exit".into())
}

/// A reader that stops early (`| head`, `| true`) is not an error: `list --json` exits 0 however
/// early the pipe closes (it exited 2 with "Broken pipe" in 4 of 15 runs).
fn closed_pipes_are_not_errors(d: &Desk) -> R {
    let bin = env!("CARGO_BIN_EXE_nmiface");
    for reader in ["true", "head -c 1", "head -n 3"] {
        for _ in 0..5 {
            let pipe = format!("set -o pipefail; {bin} list --all --json | {reader} >/dev/null");
            let out = d.sb.exec(&["bash", "-c", &pipe]);
            ensure(out.status.success(), || {
                format!("list --json | {reader}: exit {:?}: {}", out.status.code(), text(&out.stderr))
            })?;
        }
    }
    Ok(())
}

/// Runs `change` while five clients each make ten `ListInterfaces` calls; no read may take
/// longer than a second (none waits for the change).
fn beside(d: &Desk, change: impl FnOnce() -> Output) -> (Output, R) {
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..5)
            .map(|_| {
                scope.spawn(|| {
                    let mut slowest = Duration::ZERO;
                    for _ in 0..10 {
                        let t = Instant::now();
                        let out = d.mgr(&d.a.0, "ListInterfaces", &["0"]);
                        slowest = slowest.max(t.elapsed());
                        if !out.status.success() {
                            return Err(format!("a read beside a change failed: {}", text(&out.stderr)));
                        }
                    }
                    Ok(slowest)
                })
            })
            .collect();
        let out = change();
        let mut r = Ok(());
        for h in readers {
            match h.join().unwrap() {
                Ok(slowest) if slowest > Duration::from_secs(1) => {
                    r = Err(format!("a read beside a change took {slowest:?}").into())
                }
                Ok(_) => {}
                Err(e) => r = Err(e.into()),
            }
        }
        (out, r)
    })
}

/// A service with no runtime directory answers reads and refuses changes with
/// `NoRuntimeDirectory` (not "NetworkManager is not running"); the CLI the same.
fn no_runtime_dir(d: &Desk, c: &Calls) -> R {
    let b = d.b.0.clone();
    d.sb.login(&b);
    // B's session bus runs (Desk) but nothing of B's has called the service yet: no activation.
    let bin = env!("CARGO_BIN_EXE_nmiface");
    let mut service =
        d.sb.as_user(&b, &["env", "-u", "XDG_RUNTIME_DIR", bin, "session", "--idle-exit", "30"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    // Asking the bus daemon who owns the name does not activate anything.
    let owner =
        ["gdbus", "call", "--session", "--dest", "org.freedesktop.DBus", "--object-path", "/org/freedesktop/DBus"];
    let owned = wait_for(10, || {
        let mut args = owner.to_vec();
        args.extend(["--method", "org.freedesktop.DBus.GetNameOwner", SVC]);
        d.sb.as_user(&b, &args).output().unwrap().status.success()
    });
    let r = (|| {
        ensure(owned, || "B's hand-started service never owned the name".into())?;
        let list = d.mgr(&b, "ListInterfaces", &["0"]);
        ensure(list.status.success(), || format!("ListInterfaces without a runtime dir: {}", text(&list.stderr)))?;
        let out = d.mgr(&b, "InterfaceDefineXML", &[&s(&bridge("ctb0", "192.0.2.50")), "0"]);
        c.record("InterfaceDefineXML", &out);
        c.fails("define without a runtime dir", &out, "NoRuntimeDirectory")?;
        // The CLI: a read works, a change names the cause.
        let list = d.sb.as_user(&b, &["env", "-u", "XDG_RUNTIME_DIR", bin, "list", "--all"]).output().unwrap();
        ensure(list.status.success(), || format!("CLI list without a runtime dir: {}", text(&list.stderr)))?;
        let f = d.sb.write("ctb0.xml", &bridge("ctb0", "192.0.2.50"));
        let def = d.sb.as_user(&b, &["env", "-u", "XDG_RUNTIME_DIR", bin, "define", &f, "--json"]).output().unwrap();
        ensure(def.status.code() == Some(2) && text(&def.stdout).contains("\"NoRuntimeDirectory\""), || {
            format!("CLI define without a runtime dir: {}{}", text(&def.stdout), text(&def.stderr))
        })
    })();
    let _ = service.kill();
    let _ = service.wait();
    r
}

/// The same requests through the CLI (as user A, `--json`) and the service: the same verdict,
/// ok or the same error kind.
fn cli_and_service_agree(d: &Desk) -> R {
    let a = d.a.0.clone();
    let bin = env!("CARGO_BIN_EXE_nmiface");
    let file = |name: &str, xml: &str| d.sb.write(name, xml);
    let (bad, nodev, good) =
        (file("bad.xml", "<interface"), file("nodev.xml", NO_DEVICE), file("cmp.xml", &bridge("cmp0", "192.0.2.60")));
    let ctf = file("ctf.xml", &bridge("ctf", "192.0.2.41"));
    let clash = "{'bridge': <'ctn2'>, 'subnet': <'10.42.61.0/24'>}";
    // (what, CLI arguments, Manager method and arguments)
    let table: Vec<(&str, Vec<&str>, &str, Vec<String>)> = vec![
        ("invalid XML", vec!["apply", &bad], "Apply", vec![s("<interface"), "{}".into()]),
        (
            "no device, no checkpoint",
            vec!["apply", "--no-checkpoint", &nodev],
            "Apply",
            vec![s(NO_DEVICE), "{'checkpoint': <false>}".into()],
        ),
        ("a bridge", vec!["apply", &good], "Apply", vec![s(&bridge("cmp0", "192.0.2.60")), "{}".into()]),
        (
            "define over another tool's profile",
            vec!["define", &ctf],
            "InterfaceDefineXML",
            vec![s(&bridge("ctf", "192.0.2.41")), "0".into()],
        ),
        ("commit without a transaction", vec!["commit"], "InterfaceChangeCommit", vec!["0".into()]),
        ("rollback without a transaction", vec!["rollback"], "InterfaceChangeRollback", vec!["0".into()]),
        (
            "a subnet in use",
            vec!["share", "--nat", "--bridge", "ctn2", "--subnet", "10.42.61.0/24"],
            "ShareNat",
            vec![clash.into()],
        ),
    ];
    let mut differ = Vec::new();
    for (what, cli, method, args) in &table {
        let mut full = vec!["env", bin];
        full.extend(cli.iter());
        full.push("--json");
        let out = d.sb.as_user(&a, &full).output().unwrap();
        let cli_kind = match out.status.code() {
            Some(0 | 1) => "ok".to_string(),
            _ => serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|v| v["error"]["kind"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("no error kind: {}{}", text(&out.stdout), text(&out.stderr))),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = d.mgr(&a, method, &args);
        let svc_kind = match out.status.success() {
            true => "ok".to_string(),
            false => error_name(&out).rsplit('.').next().unwrap_or("").to_string(),
        };
        if cli_kind != svc_kind {
            differ.push(format!("{what}: CLI {cli_kind}, service {svc_kind}"));
        }
    }
    ensure(differ.is_empty(), || format!("the CLI and the service disagree: {differ:?}"))
}
