//! Issue 24, "What a new user hits": what a person following only README.md and `--help` ran
//! into, against a real NetworkManager.
// See: issue 24.

use super::{ensure, nmcli, text, R};
use crate::sandbox::Sandbox;

const ETH1_STATIC: &str =
    "<interface type='ethernet' name='eth1'><protocol family='ipv4'><ip address='192.168.88.5' prefix='24'/></protocol></interface>";

/// The kernel's controller of `dev`, if any.
fn master(sb: &Sandbox, dev: &str) -> Option<String> {
    sb.ip_json(&["link", "show", dev])[0]["master"].as_str().map(str::to_string)
}

/// Item 1: after `bridge eth1 br1`, `start eth1` refuses and names `unbridge br1`; when eth1
/// leaves br1 anyway (another tool activates its own profile), live `dumpxml br1` no longer
/// lists it and `bridge eth1 br1` puts it back instead of "nothing to do".
pub fn bridge_drift_is_seen_and_repaired() -> R {
    let sb = Sandbox::up(false);
    let f = sb.write("eth1.xml", ETH1_STATIC);
    let out = sb.nmiface(&["apply", &f]);
    ensure(out.status.success(), || format!("apply eth1: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["bridge", "--no-stp", "eth1", "br1"]);
    ensure(out.status.success(), || format!("bridge: {}", text(&out.stderr)))?;
    ensure(master(&sb, "eth1").as_deref() == Some("br1"), || "eth1 is not a port of br1".into())?;

    let out = sb.nmiface(&["start", "eth1"]);
    let err = text(&out.stderr);
    ensure(out.status.code() == Some(2) && err.contains("nmiface unbridge br1"), || {
        format!("start eth1 inside br1: exit {:?}: {err}", out.status.code())
    })?;
    ensure(master(&sb, "eth1").as_deref() == Some("br1"), || "the refused start moved eth1 anyway".into())?;

    // Drift made behind nmiface's back: eth1's own profile taken up by another tool.
    let up = nmcli(&sb, &["con", "up", "eth1"]);
    ensure(up.status.success(), || format!("nmcli con up eth1: {}", text(&up.stderr)))?;
    ensure(master(&sb, "eth1").is_none(), || "nmcli did not take eth1 out of br1".into())?;
    let out = sb.nmiface(&["dumpxml", "br1"]);
    let xml = text(&out.stdout);
    ensure(out.status.success() && !xml.contains("name='eth1'"), || {
        format!("live dumpxml br1 still lists eth1:\n{xml}")
    })?;
    let out = sb.nmiface(&["dumpxml", "--inactive", "br1"]);
    ensure(text(&out.stdout).contains("name='eth1'"), || "the definition of br1 lost its port".into())?;

    let out = sb.nmiface(&["bridge", "--no-stp", "eth1", "br1"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    ensure(out.status.success() && !said.contains("nothing to do"), || {
        format!("bridge again after drift: exit {:?}: {said}", out.status.code())
    })?;
    ensure(master(&sb, "eth1").as_deref() == Some("br1"), || "bridge again did not put eth1 back into br1".into())
}

/// Item 2: `check` against the daemon knows the host's devices: a port that names no device,
/// or a NIC that is another controller's port now, is a gap (exit 1), which `apply` would
/// fail on; the same bridge over its own port is fine.
pub fn check_knows_the_hosts_devices() -> R {
    let sb = Sandbox::up(false);
    let missing = sb.write(
        "eth9.xml",
        "<interface type='bridge' name='br2'><bridge><interface type='ethernet' name='eth9'/></bridge></interface>",
    );
    let out = sb.nmiface(&["check", &missing]);
    let table = text(&out.stdout);
    ensure(out.status.code() == Some(1) && table.contains("no network device eth9"), || {
        format!("check of a port eth9 that does not exist: exit {:?}\n{table}", out.status.code())
    })?;
    let br1 =
        "<interface type='bridge' name='br1'><bridge><interface type='ethernet' name='eth2'/></bridge></interface>";
    let f = sb.write("br1.xml", br1);
    let out = sb.nmiface(&["apply", &f]);
    ensure(out.status.success(), || format!("apply br1: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["check", &f]);
    ensure(out.status.code() == Some(0), || {
        format!("check of br1 as it is: exit {:?}\n{}", out.status.code(), text(&out.stdout))
    })?;
    let taken = sb.write(
        "br3.xml",
        "<interface type='bridge' name='br3'><bridge><interface type='ethernet' name='eth2'/></bridge></interface>",
    );
    let out = sb.nmiface(&["check", "--json", &taken]);
    let json = text(&out.stdout);
    ensure(
        out.status.code() == Some(1) && json.contains("eth2 is a port of br1") && json.contains("\"by\": \"host\""),
        || format!("check of a port br1 holds: exit {:?}\n{json}", out.status.code()),
    )?;
    let out = sb.nmiface(&["apply", &taken]);
    ensure(out.status.code() == Some(2), || format!("apply of a port br1 holds: exit {:?}", out.status.code()))?;
    ensure(master(&sb, "eth2").as_deref() == Some("br1"), || "the refused apply took eth2 from br1".into())
}
