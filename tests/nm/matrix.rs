//! Issue 21's trial table: realistic desktop profiles, written from NetworkManager's documented
//! settings (manual DNS, search and routes with a zone; DHCP with a hostname and its own DNS;
//! 802.1X PEAP and TLS with their secrets; ethtool, Wake-on-LAN and MTU; IPv6 with a token and
//! addr-gen-mode; metered; a proxy), each taken through every takeover verb: `define --adopt`,
//! `apply --adopt`, `dumpxml` then `define --adopt` of that XML, `bridge` then `unbridge`, and
//! a `<shared bridge>` document; by the CLI as root and through a user's session service.
//!
//! NetworkManager's settings are read as wire values (GetSettings, and GetSecrets for every
//! setting) before and after, and compared property by property. The rule for every verb: no
//! silent loss. A property changes only where the document governs it; every setting of the
//! user's that the document cannot say is kept in place (adopt) or found in its new place
//! (bridge: IP-level on the bridge, link-level on the port); and where the verb reports, each
//! such setting is named in a finding. A verb that fails (802.1X has no authenticator here, and
//! DHCP no server on the service's sandbox) must leave the profile exactly as it was.

use super::session::{paths, s, Desk};
use super::takeover::differences;
use super::{ensure, nmcli, text, R};
use crate::sandbox::Sandbox;
use serde_json::Value;
use std::collections::BTreeMap;

/// One profile's wire values: `setting.property` -> value.
type Settings = BTreeMap<String, Value>;

/// Every profile NetworkManager holds (by `connection.id`), flattened, secrets included.
const READ: &str = r#"
import dbus, json
bus = dbus.SystemBus()
NM = 'org.freedesktop.NetworkManager'
settings = dbus.Interface(bus.get_object(NM, '/org/freedesktop/NetworkManager/Settings'), NM + '.Settings')
out = {}
for path in settings.ListConnections():
    c = dbus.Interface(bus.get_object(NM, path), NM + '.Settings.Connection')
    s = c.GetSettings()
    for name in list(s.keys()):
        if name == 'connection':
            continue
        try:
            secrets = c.GetSecrets(name)
        except dbus.DBusException:
            continue
        for k, v in secrets.get(name, {}).items():
            s[name][k] = v
    out[str(s['connection']['id'])] = {f'{n}.{k}': v for n, props in s.items() for k, v in props.items()}
print(json.dumps(out, sort_keys=True))
"#;

fn read_all(sb: &Sandbox) -> Result<BTreeMap<String, Settings>, String> {
    let out = sb.exec(&["/usr/bin/python3", "-c", READ]);
    if !out.status.success() {
        return Err(format!("reading the settings: {}", text(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("reading the settings: {e}"))
}

/// A realistic profile: its name and the nmcli property/value words after
/// `con add type ethernet ifname eth0 con-name NAME autoconnect no` (`{dir}`: the sandbox's
/// directory, where the TLS case's certificate and key are).
struct Desktop {
    name: &'static str,
    add: &'static [&'static str],
    /// The protocol part of the document that takes it over: what a user would write for it.
    protocols: &'static str,
}

const STATIC_V4: &str =
    "<protocol family='ipv4'><ip address='192.168.77.21' prefix='24'/><route gateway='192.168.77.1'/></protocol>";

const MANUAL: [&str; 6] =
    ["ipv4.method", "manual", "ipv4.addresses", "192.168.77.20/24", "ipv4.gateway", "192.168.77.1"];

const DESKTOPS: &[Desktop] = &[
    Desktop {
        name: "Wired static",
        add: &[
            "ipv4.dns",
            "192.168.77.1 9.9.9.9",
            "ipv4.dns-search",
            "corp.example",
            "ipv4.dns-options",
            "rotate",
            "ipv4.routes",
            "10.99.0.0/16 192.168.77.1 50",
            "ipv4.route-metric",
            "200",
            "connection.zone",
            "work",
        ],
        protocols: STATIC_V4,
    },
    Desktop {
        name: "Wired DHCP",
        add: &[
            "ipv4.method",
            "auto",
            "ipv4.dhcp-hostname",
            "desk1",
            "ipv4.ignore-auto-dns",
            "yes",
            "ipv4.dns",
            "9.9.9.9",
            "ipv4.may-fail",
            "no",
        ],
        protocols: "<protocol family='ipv4'><dhcp/></protocol>",
    },
    Desktop {
        name: "Corp PEAP",
        add: &[
            "802-1x.eap",
            "peap",
            "802-1x.identity",
            "me",
            "802-1x.anonymous-identity",
            "anon",
            "802-1x.password",
            "s3cret",
            "802-1x.phase2-auth",
            "mschapv2",
        ],
        protocols: STATIC_V4,
    },
    Desktop {
        name: "Corp TLS",
        add: &[
            "802-1x.eap",
            "tls",
            "802-1x.identity",
            "me",
            "802-1x.client-cert",
            "{dir}/cert.pem",
            "802-1x.ca-cert",
            "{dir}/cert.pem",
            "802-1x.private-key",
            "{dir}/key.pem",
            "802-1x.private-key-password",
            "keypw",
        ],
        protocols: STATIC_V4,
    },
    Desktop {
        name: "Ethtool WoL",
        add: &[
            "ethtool.feature-tso",
            "off",
            "ethtool.feature-gro",
            "off",
            "802-3-ethernet.wake-on-lan",
            "magic",
            "802-3-ethernet.mtu",
            "1400",
        ],
        protocols: STATIC_V4,
    },
    Desktop {
        name: "IPv6 token",
        add: &[
            "ipv6.method",
            "auto",
            "ipv6.addr-gen-mode",
            "eui64",
            "ipv6.token",
            "::5",
            "ipv6.ip6-privacy",
            "0",
            "ipv6.dns-search",
            "v6.example",
        ],
        protocols: "<protocol family='ipv4'><ip address='192.168.77.21' prefix='24'/><route gateway='192.168.77.1'/></protocol><protocol family='ipv6'><autoconf/></protocol>",
    },
    Desktop { name: "Metered", add: &["connection.metered", "yes"], protocols: STATIC_V4 },
    Desktop {
        name: "Proxy",
        add: &["proxy.method", "auto", "proxy.pac-url", "http://wpad.example/wpad.dat"],
        protocols: STATIC_V4,
    },
];

/// The NIC every case is on (it has a DHCP server on the CLI's sandbox).
const NIC: &str = "eth0";

/// Wire properties the takeover documents govern (their addresses, start mode, the NIC), and
/// NetworkManager's and nmiface's bookkeeping: the only ones an adopt may change.
fn governed(prop: &str) -> bool {
    matches!(
        prop,
        "connection.autoconnect"
            | "connection.timestamp"
            | "connection.interface-name"
            | "ipv4.method"
            | "ipv4.addresses"
            | "ipv4.address-data"
            | "ipv4.gateway"
            | "ipv6.method"
            | "ipv6.addresses"
            | "ipv6.address-data"
            | "ipv6.gateway"
    ) || prop.starts_with("user.")
}

/// Properties that only say which profile it is.
fn identity(prop: &str) -> bool {
    matches!(prop, "connection.id" | "connection.uuid" | "connection.timestamp" | "connection.permissions")
}

/// The user's own settings in `p`: every property whose value differs from a profile nmcli
/// makes with no settings (`reference`), but which profile it is.
fn users_settings<'a>(p: &'a Settings, reference: &Settings) -> Vec<&'a String> {
    p.iter().filter(|(k, v)| !identity(k) && reference.get(*k) != Some(*v)).map(|(k, _)| k).collect()
}

fn setting(prop: &str) -> &str {
    prop.split_once('.').map_or(prop, |(s, _)| s)
}

/// Whether a finding names property `key` (`setting (prop, prop, …)`; a legacy property by
/// itself or by its successor: `dns` as `dns-data`, `routes` as `route-data`).
fn named(findings: &str, key: &str) -> bool {
    let Some((s, p)) = key.split_once('.') else { return false };
    let successor = match p {
        "addresses" => "address-data".to_string(),
        "routes" => "route-data".to_string(),
        other => format!("{other}-data"),
    };
    let opening = format!("{s} (");
    findings.match_indices(&opening).any(|(i, _)| {
        let inside = findings[i + opening.len()..].split(')').next().unwrap_or("");
        inside.split(", ").any(|x| x == p || x == successor)
    })
}

fn show(m: &Settings, k: &str) -> String {
    m.get(k).map_or("(none)".into(), Value::to_string)
}

/// The problems of an adopt of `before` (now `after`): a change the document did not ask
/// for, a new UUID, a kept setting `findings` do not name.
fn adopted(before: &Settings, after: &Settings, reference: &Settings, findings: &str) -> Vec<String> {
    let mut bad = Vec::new();
    if before.get("connection.uuid") != after.get("connection.uuid") {
        bad.push("the UUID changed".to_string());
    }
    for k in differences(before, after).iter().filter(|k| !governed(k)) {
        bad.push(format!("changed without being asked: {k}: {} -> {}", show(before, k), show(after, k)));
    }
    for k in users_settings(before, reference).into_iter().filter(|k| !governed(k)) {
        if !named(findings, k) {
            bad.push(format!("kept {k} without saying so"));
        }
    }
    bad
}

/// The problems of a change that failed: it must have put everything back.
fn restored(before: &Settings, after: Option<&Settings>) -> Vec<String> {
    let Some(after) = after else { return vec!["the profile is gone".into()] };
    differences(before, after)
        .into_iter()
        .filter(|k| k != "connection.timestamp")
        .map(|k| format!("not restored: {k}: {} -> {}", show(before, &k), show(after, &k)))
        .collect()
}

/// The problems of a round trip (its own XML defined back): nothing of the user's changes.
fn unchanged(before: &Settings, after: &Settings) -> Vec<String> {
    differences(before, after)
        .into_iter()
        .filter(|k| !k.starts_with("user.") && k != "connection.timestamp")
        .map(|k| format!("the round trip changed {k}: {} -> {}", show(before, &k), show(after, &k)))
        .collect()
}

/// The problems of a bridge taking over the NIC's profile `nic` (read before): the NIC's
/// profile untouched; each of the user's settings on the bridge or on the port with its value,
/// or named in a finding; and each one it moved named too.
/// `doc`: what the document says itself (not the NIC's any more); `verb`: what the verb says it
/// carries (`bridge`: the NIC's IP configuration and MTU), which need not be named again.
fn moved(
    all: &BTreeMap<String, Settings>,
    name: &str,
    nic: &Settings,
    bridge: &str,
    reference: &Settings,
    (doc, verb): Carries,
    findings: &str,
) -> Vec<String> {
    let mut bad = restored(nic, all.get(name));
    let (Some(br), Some(port)) = (all.get(bridge), all.values().find(|p| is_port_of(p, all.get(bridge)))) else {
        return vec![format!("no bridge {bridge} with a port: {:?}", all.keys().collect::<Vec<_>>())];
    };
    for k in users_settings(nic, reference).into_iter().filter(|k| !doc(k)) {
        let carried = br.get(k) == nic.get(k) || port.get(k) == nic.get(k);
        match (carried, named(findings, k)) {
            (false, false) => {
                bad.push(format!("lost {k} ({}): not on the bridge or the port, not reported", show(nic, k)))
            }
            (true, false) if !verb(k) => bad.push(format!("moved {k} without saying so")),
            _ => {}
        }
    }
    bad
}

fn is_port_of(p: &Settings, bridge: Option<&Settings>) -> bool {
    bridge.is_some_and(|b| p.get("connection.master") == b.get("connection.uuid"))
}

/// What the shared-bridge document says itself: the address and its start mode.
fn shared_asks(prop: &str) -> bool {
    governed(prop) && prop != "connection.interface-name"
}

fn nothing(_: &str) -> bool {
    false
}

/// What `bridge` says it carries (its help, after virsh iface-bridge): the NIC's IP
/// configuration and MTU.
fn bridge_carries(prop: &str) -> bool {
    matches!(setting(prop), "ipv4" | "ipv6") || prop == "802-3-ethernet.mtu"
}

/// What a takeover's document says itself, and what its verb says it carries.
type Carries = (fn(&str) -> bool, fn(&str) -> bool);

/// The `bridge` verb: its document is the NIC's own; it carries the IP configuration and MTU.
const BRIDGE: Carries = (nothing, bridge_carries);
/// A `<shared bridge>` document: it says the address; everything else it carries is reported.
const SHARED: Carries = (shared_asks, nothing);

/// `con add` words for `d`, on NIC, in `dir`, with `more` words.
fn add_words(d: &Desktop, dir: &str, more: &[&str]) -> Vec<String> {
    let mut w: Vec<String> = ["con", "add", "type", "ethernet", "ifname", NIC, "con-name", d.name, "autoconnect", "no"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if !d.add.contains(&"ipv4.method") {
        w.extend(MANUAL.iter().map(|s| s.to_string()));
    }
    w.extend(d.add.iter().map(|a| a.replace("{dir}", dir)));
    w.extend(more.iter().map(|s| s.to_string()));
    w
}

/// A host with `d` on the NIC (and nmcli's empty reference profile), nothing else.
fn fresh(sb: &Sandbox, d: &Desktop, more: &[&str]) -> Result<Settings, String> {
    let listed = text(&nmcli(sb, &["-g", "UUID,NAME", "con", "show"]).stdout);
    for (uuid, name) in listed.lines().filter_map(|l| l.split_once(':')) {
        if name != "lo" {
            nmcli(sb, &["con", "delete", uuid]);
        }
    }
    let dir = sb.dir().to_string_lossy().into_owned();
    let words = add_words(d, &dir, more);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let out = nmcli(sb, &words);
    if !out.status.success() {
        return Err(format!("nmcli add {}: {}", d.name, text(&out.stderr)));
    }
    read_all(sb)?.remove(d.name).ok_or_else(|| format!("{} not read back", d.name))
}

/// A certificate and an encrypted key for the TLS case, and the reference profile.
fn prepare(sb: &Sandbox) -> Result<Settings, String> {
    let dir = sb.dir();
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-days", "2", "-subj", "/CN=me", "-passout", "pass:keypw"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!("openssl: {}", text(&out.stderr)));
    }
    let out = nmcli(sb, &["con", "add", "type", "ethernet", "ifname", NIC, "con-name", "ref", "autoconnect", "no"]);
    if !out.status.success() {
        return Err(format!("nmcli add ref: {}", text(&out.stderr)));
    }
    let reference = read_all(sb)?.remove("ref").ok_or("ref not read back")?;
    nmcli(sb, &["con", "delete", "ref"]);
    Ok(reference)
}

fn document(d: &Desktop) -> String {
    format!("<interface type='ethernet' name='{NIC}'><start mode='none'/>{}</interface>", d.protocols)
}

/// The 2009 draft's shared NIC: a bridge takes over the NIC, with the document's address.
fn shared_document(bridge: &str) -> String {
    format!(
        "<interface device='{NIC}' onboot='no'><shared bridge='{bridge}'/><static ipaddr='192.168.77.22' netmask='255.255.255.0' gateway='192.168.77.1'/></interface>"
    )
}

/// How many profiles there are besides the loopback's and `name`.
fn others(all: &BTreeMap<String, Settings>, name: &str) -> usize {
    all.keys().filter(|k| *k != "lo" && *k != name).count()
}

/// Collects one case's problems under its label.
fn tally(failures: &mut Vec<String>, label: &str, problems: Result<Vec<String>, String>) {
    match problems {
        Ok(p) if p.is_empty() => {}
        Ok(p) => failures.push(format!("{label}:\n  {}", p.join("\n  "))),
        Err(e) => failures.push(format!("{label}: {e}")),
    }
}

fn report(failures: Vec<String>) -> R {
    ensure(failures.is_empty(), || {
        format!("{} case(s) lost or hid something:\n\n{}", failures.len(), failures.join("\n\n"))
    })
}

/// Every profile through every verb of the CLI, as root.
pub fn every_profile_through_every_cli_verb() -> R {
    let sb = Sandbox::up(true);
    let reference = prepare(&sb)?;
    let mut failures = Vec::new();
    for d in DESKTOPS {
        let doc = sb.write("takeover.xml", &document(d));
        for (verb, args) in [("define --adopt", &["define", "--adopt"][..]), ("apply --adopt", &["apply", "--adopt"])] {
            let problems = fresh(&sb, d, &[]).and_then(|before| {
                let mut full = args.to_vec();
                if verb.starts_with("apply") {
                    full.extend(["--timeout", "15"]);
                }
                full.push(&doc);
                let out = sb.nmiface(&full);
                let all = read_all(&sb)?;
                match out.status.code() {
                    Some(0 | 1) => {
                        let after = all.get(d.name).ok_or("the profile is gone")?;
                        // The findings as a person reads them.
                        let mut bad = adopted(&before, after, &reference, &text(&out.stderr));
                        let extra = others(&all, d.name);
                        if extra > 0 {
                            bad.push(format!("profiles were added beside it: {:?}", all.keys().collect::<Vec<_>>()));
                        }
                        Ok(bad)
                    }
                    _ if verb.starts_with("apply") => Ok(restored(&before, all.get(d.name))),
                    _ => Err(format!("exit {:?}: {}", out.status.code(), text(&out.stderr))),
                }
            });
            tally(&mut failures, &format!("{} / {verb}", d.name), problems);
        }

        let problems = fresh(&sb, d, &[]).and_then(|before| {
            let out = sb.nmiface(&["dumpxml", "--inactive", d.name]);
            if !matches!(out.status.code(), Some(0 | 1)) {
                return Err(format!("dumpxml: {}", text(&out.stderr)));
            }
            let xml = sb.write("dumped.xml", &text(&out.stdout));
            let out = sb.nmiface(&["define", "--adopt", "--json", &xml]);
            if !matches!(out.status.code(), Some(0 | 1)) {
                return Err(format!("define --adopt of its dump: {}", text(&out.stderr)));
            }
            let all = read_all(&sb)?;
            Ok(unchanged(&before, all.get(d.name).ok_or("the profile is gone")?))
        });
        tally(&mut failures, &format!("{} / dumpxml then define --adopt", d.name), problems);

        let problems = fresh(&sb, d, &[]).and_then(|before| {
            let out = sb.nmiface(&["bridge", "--no-start", "--no-stp", NIC, "brm"]);
            if !out.status.success() {
                return Err(format!("bridge: {}", text(&out.stderr)));
            }
            let mut bad = moved(&read_all(&sb)?, d.name, &before, "brm", &reference, BRIDGE, &text(&out.stderr));
            let out = sb.nmiface(&["unbridge", "--no-start", "brm"]);
            if !out.status.success() {
                return Err(format!("unbridge: {}", text(&out.stderr)));
            }
            let all = read_all(&sb)?;
            bad.extend(restored(&before, all.get(d.name)).into_iter().map(|p| format!("after unbridge: {p}")));
            if others(&all, d.name) > 0 {
                bad.push(format!("unbridge left {:?}", all.keys().collect::<Vec<_>>()));
            }
            Ok(bad)
        });
        tally(&mut failures, &format!("{} / bridge, unbridge", d.name), problems);

        let problems = fresh(&sb, d, &[]).and_then(|before| {
            let doc = sb.write("shared.xml", &shared_document("brs"));
            let out = sb.nmiface(&["define", &doc]);
            if !matches!(out.status.code(), Some(0 | 1)) {
                return Err(format!("define: {}", text(&out.stderr)));
            }
            let all = read_all(&sb)?;
            Ok(moved(&all, d.name, &before, "brs", &reference, SHARED, &text(&out.stderr)))
        });
        tally(&mut failures, &format!("{} / <shared bridge>", d.name), problems);
    }
    report(failures)
}

/// The `Findings` property of `object`, as A sees it.
fn findings_of(d: &Desk, user: &str, object: &str) -> Result<String, String> {
    let args = ["org.nmiface.Interfaces1.Interface", "Findings"];
    let out = d.call(user, false, object, "org.freedesktop.DBus.Properties.Get", &args);
    match out.status.success() {
        true => Ok(text(&out.stdout)),
        false => Err(format!("Findings of {object}: {}", text(&out.stderr))),
    }
}

/// Every profile through the session service's takeover methods, as desktop user A: adopt
/// (`InterfaceDefineXML` and `Apply` with ADOPT) and the round trip (`GetXMLDesc`, defined
/// back) on A's own private profile; `InterfaceBridge` and a `<shared bridge>` document with
/// SYSTEM on a system-wide one (polkit lets A modify system-wide profiles here).
pub fn every_profile_through_the_service() -> R {
    let d = Desk::new(true, 60);
    let (a, a_uid) = d.a.clone();
    d.sb.at_desk(&a, a_uid);
    d.sb.polkit(a_uid, "org.freedesktop.NetworkManager.settings.modify.system", "yes");
    let sb = &d.sb;
    let reference = prepare(sb)?;
    let owner = format!("user:{a}");
    let private = ["connection.permissions", owner.as_str()];
    let mut failures = Vec::new();
    for p in DESKTOPS {
        let doc = document(p);
        let problems = fresh(sb, p, &private).and_then(|before| {
            let out = d.mgr(&a, "InterfaceDefineXML", &[&s(&doc), "1"]);
            if !out.status.success() {
                return Err(format!("InterfaceDefineXML: {}", text(&out.stderr)));
            }
            let object = paths(&out).first().cloned().ok_or("no object")?;
            let all = read_all(sb)?;
            let after = all.get(p.name).ok_or("the profile is gone")?.clone();
            let mut bad = adopted(&before, &after, &reference, &findings_of(&d, &a, &object)?);
            // Its XML, defined back: nothing changes.
            let get = "import dbus, sys\nobj = dbus.SessionBus().get_object('org.nmiface.Interfaces1', sys.argv[1])\nprint(dbus.Interface(obj, 'org.nmiface.Interfaces1.Interface').GetXMLDesc(dbus.UInt32(1)), end='')";
            let out = sb.as_user(&a, &["python3", "-c", get, &object]).output().map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!("GetXMLDesc: {}", text(&out.stderr)));
            }
            let out = d.mgr(&a, "InterfaceDefineXML", &[&s(&text(&out.stdout)), "1"]);
            if !out.status.success() {
                return Err(format!("InterfaceDefineXML of its own XML: {}", text(&out.stderr)));
            }
            let again = read_all(sb)?;
            bad.extend(unchanged(&after, again.get(p.name).ok_or("the profile is gone")?));
            Ok(bad)
        });
        tally(&mut failures, &format!("{} / service InterfaceDefineXML ADOPT, GetXMLDesc back", p.name), problems);

        let problems = fresh(sb, p, &private).and_then(|before| {
            let out = d.mgr(&a, "Apply", &[&s(&doc), "{'adopt': <true>, 'timeout': <uint32 10>}"]);
            let all = read_all(sb)?;
            match out.status.success() {
                true => {
                    Ok(adopted(&before, all.get(p.name).ok_or("the profile is gone")?, &reference, &text(&out.stdout)))
                }
                false => Ok(restored(&before, all.get(p.name))),
            }
        });
        tally(&mut failures, &format!("{} / service Apply adopt", p.name), problems);

        let problems = fresh(sb, p, &[]).and_then(|before| {
            let out = d.mgr(&a, "InterfaceBridge", &[NIC, "brv", "{'stp': <false>, 'start': <false>}", "4"]);
            if !out.status.success() {
                return Err(format!("InterfaceBridge: {}", text(&out.stderr)));
            }
            let said = findings_of(&d, &a, text(&out.stdout).split('\'').nth(1).unwrap_or(""))?;
            let mut bad = moved(&read_all(sb)?, p.name, &before, "brv", &reference, BRIDGE, &said);
            let out = d.mgr(&a, "InterfaceUnbridge", &["brv", "4"]);
            let all = read_all(sb)?;
            bad.extend(restored(&before, all.get(p.name)).into_iter().map(|x| format!("after InterfaceUnbridge: {x}")));
            if out.status.success() && others(&all, p.name) > 0 {
                bad.push(format!("InterfaceUnbridge left {:?}", all.keys().collect::<Vec<_>>()));
            }
            Ok(bad)
        });
        tally(&mut failures, &format!("{} / service InterfaceBridge, InterfaceUnbridge", p.name), problems);

        let problems = fresh(sb, p, &[]).and_then(|before| {
            let out = d.mgr(&a, "InterfaceDefineXML", &[&s(&shared_document("brw")), "4"]);
            if !out.status.success() {
                return Err(format!("InterfaceDefineXML: {}", text(&out.stderr)));
            }
            let said = findings_of(&d, &a, &paths(&out).first().cloned().ok_or("no object")?)?;
            Ok(moved(&read_all(sb)?, p.name, &before, "brw", &reference, SHARED, &said))
        });
        tally(&mut failures, &format!("{} / service <shared bridge>", p.name), problems);
    }
    report(failures)
}
