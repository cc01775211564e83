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

/// Item 5: `list` says whose an nmiface profile of another scope is, and `--json` has `scope`:
/// a user sees root's nmiface bridge as nmiface's, system-wide, read-only; root sees the user's
/// as that user's; another tool's profile has `scope: null`.
pub fn list_says_whose_profiles_are() -> R {
    let sb = Sandbox::up_users(false);
    let (a, _) = sb.user_a();
    let bridge = |name: &str, addr: &str| {
        format!("<interface type='bridge' name='{name}'><start mode='none'/><protocol family='ipv4'><ip address='{addr}' prefix='24'/></protocol><bridge stp='off' delay='0'/></interface>")
    };
    let sys = sb.write("sysbr.xml", &bridge("sysbr", "192.0.2.1"));
    let mine = sb.write("usrbr.xml", &bridge("usrbr", "192.0.2.2"));
    let _ = std::process::Command::new("chmod").args(["a+r", &sys, &mine]).status();
    let out = sb.nmiface(&["define", &sys]);
    ensure(out.status.success(), || format!("root: define sysbr: {}", text(&out.stderr)))?;
    let foreign = nmcli(&sb, &["con", "add", "type", "bridge", "ifname", "other0", "con-name", "other0"]);
    ensure(foreign.status.success(), || format!("nmcli: {}", text(&foreign.stderr)))?;
    let as_a = |args: &[&str]| {
        let mut full = vec![env!("CARGO_BIN_EXE_nmiface")];
        full.extend_from_slice(args);
        sb.as_user(&a, &full).current_dir("/").output().unwrap()
    };
    let out = as_a(&["define", &mine]);
    ensure(out.status.success(), || format!("A: define usrbr: {}", text(&out.stderr)))?;

    let row = |json: &serde_json::Value, name: &str| -> serde_json::Value {
        json.as_array().into_iter().flatten().find(|l| l["name"] == name).cloned().unwrap_or_default()
    };
    let out = as_a(&["list", "--all", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("A: list --json: {e}"))?;
    let (s, u, o) = (row(&json, "sysbr"), row(&json, "usrbr"), row(&json, "other0"));
    ensure(s["scope"] == "system" && s["nmiface"] == false, || format!("A sees sysbr as {s}"))?;
    ensure(u["scope"] == "user" && u["nmiface"] == true && u["user"] == a.as_str(), || format!("A sees usrbr as {u}"))?;
    ensure(o["scope"].is_null() && o["nmiface"] == false, || format!("A sees other0 as {o}"))?;
    let out = as_a(&["list", "--all"]);
    let table = text(&out.stdout);
    let line = |name: &str| table.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or("").to_string();
    ensure(line("sysbr").contains("nmiface's, system-wide, read-only for you"), || format!("A: list:\n{table}"))?;
    ensure(line("other0").contains("not nmiface's"), || format!("A: list:\n{table}"))?;

    let out = sb.nmiface(&["list", "--all"]);
    let table = text(&out.stdout);
    let line = table.lines().find(|l| l.trim_start().starts_with("usrbr")).unwrap_or("");
    ensure(line.contains(&format!("user {a}'s own")) && !line.contains("not nmiface's"), || {
        format!("root: list:\n{table}")
    })?;
    let out = sb.nmiface(&["list", "--all", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("root: list --json: {e}"))?;
    let u = row(&json, "usrbr");
    ensure(u["scope"] == "user" && u["nmiface"] == false, || format!("root sees usrbr as {u}"))
}

/// Item 6: SIGINT during `apply` says what became of the change without blaming "process N"
/// (nmiface itself) and names a transaction only when one is open; `--confirm` with a closed
/// stdin says so instead of "not confirmed within 5 s".
pub fn interrupts_and_confirm_say_what_happened() -> R {
    use std::time::{Duration, Instant};
    let sb = Sandbox::up(false);
    let f = sb.write(
        "eth1.xml",
        "<interface type='ethernet' name='eth1'><protocol family='ipv4'><dhcp/></protocol></interface>",
    );
    let interrupted = |sb: &Sandbox| -> Result<String, String> {
        let child = sb.spawn_nmiface(&["apply", "--timeout", "30", &f]);
        std::thread::sleep(Duration::from_secs(2));
        let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let err = text(&out.stderr);
        match out.status.code() {
            Some(130) => Ok(err),
            other => Err(format!("SIGINT'd apply: exit {other:?}: {err}")),
        }
    };
    let err = interrupted(&sb)?;
    ensure(!err.contains("process") && !err.contains("transaction") && err.contains("rolled back"), || {
        format!("SIGINT'd apply said: {err}")
    })?;
    let out = sb.nmiface(&["begin"]);
    ensure(out.status.success(), || format!("begin: {}", text(&out.stderr)))?;
    let err = interrupted(&sb)?;
    ensure(err.contains("open transaction") && err.contains("nmiface rollback") && !err.contains("process"), || {
        format!("SIGINT'd apply in a transaction said: {err}")
    })?;
    let out = sb.nmiface(&["rollback"]);
    ensure(out.status.success(), || format!("rollback: {}", text(&out.stderr)))?;

    let g = sb.write("eth2.xml", "<interface type='ethernet' name='eth2'><protocol family='ipv4'><ip address='192.0.2.2' prefix='24'/></protocol></interface>");
    let t0 = Instant::now();
    let out = sb.nmiface(&["apply", "--confirm", "5", &g]); // stdin: /dev/null
    let err = text(&out.stderr);
    ensure(
        out.status.code() == Some(2) && err.contains("standard input was closed") && !err.contains("not confirmed"),
        || format!("--confirm with stdin closed: exit {:?}: {err}", out.status.code()),
    )?;
    ensure(t0.elapsed() < Duration::from_secs(5), || format!("waited {:?} on a closed stdin", t0.elapsed()))
}

/// Item 7: `-v` logs every NetworkManager call of `list` and `apply`, and no log carries
/// terminal colours into a pipe.
pub fn verbose_logs_every_call_without_colours_in_a_pipe() -> R {
    let sb = Sandbox::up(false);
    let out = sb.nmiface(&["-v", "list"]);
    let err = text(&out.stderr);
    ensure(out.status.success() && err.contains("ListConnections") && err.contains("GetDevices"), || {
        format!("-v list logged: {err}")
    })?;
    let f = sb.write("eth2.xml", "<interface type='ethernet' name='eth2'><protocol family='ipv4'><ip address='192.0.2.2' prefix='24'/></protocol></interface>");
    let out = sb.nmiface(&["-v", "apply", &f]);
    let err = text(&out.stderr);
    ensure(out.status.success() && err.contains("AddConnection2") && err.contains("ActivateConnection"), || {
        format!("-v apply logged: {err}")
    })?;
    let out = sb.nmiface(&["-vv", "list"]);
    ensure(!out.stderr.contains(&0x1b), || format!("-vv list wrote escape codes into a pipe: {:?}", text(&out.stderr)))
}

/// Item 9: `apply --check` prints values in words, the stored XML as a line diff, what would be
/// re-activated, and exits 3 when changes are pending, 0 when none.
pub fn apply_check_reads_plainly() -> R {
    let sb = Sandbox::up(false);
    let br = |stp: &str| {
        format!("<interface type='bridge' name='br0'>\n<start mode='none'/>\n<protocol family='ipv4'><ip address='192.0.2.1' prefix='24'/></protocol>\n<bridge stp='{stp}' delay='2'/>\n</interface>\n")
    };
    let off = sb.write("off.xml", &br("off"));
    let on = sb.write("on.xml", &br("on"));
    let out = sb.nmiface(&["apply", &off]);
    ensure(out.status.success(), || format!("apply: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["apply", "--check", &off]);
    ensure(out.status.code() == Some(0), || format!("--check of what is there: exit {:?}", out.status.code()))?;
    let out = sb.nmiface(&["apply", "--check", &on]);
    let said = text(&out.stdout);
    ensure(out.status.code() == Some(3), || format!("--check with changes: exit {:?}\n{said}", out.status.code()))?;
    for want in [
        "bridge.stp: no → yes",
        "  - <bridge stp='off' delay='2'/>",
        "  + <bridge stp='on' delay='2'/>",
        "    <start mode='none'/>",
        "br0 would be re-activated",
    ] {
        ensure(said.contains(want), || format!("--check does not say '{want}':\n{said}"))?;
    }
    ensure(!said.contains("{\"b\""), || format!("--check prints D-Bus types:\n{said}"))?;
    let out = sb.nmiface(&["apply", "--check", "--json", &on]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("--json: {e}"))?;
    ensure(v["changed"] == true && v["profiles"][0]["changes"].is_array(), || format!("--check --json: {v}"))
}

/// Item 12: messages name the right cause: `dumpxml` and `mac` of a name nothing has serve every
/// profile (not only nmiface's), `tap remove` of a gone tap says so, and `tap add` on a bridge
/// with only a static address says what makes a bridge for VMs.
pub fn messages_name_the_right_cause() -> R {
    let sb = Sandbox::up(false);
    for args in [["dumpxml", "nosuch0"], ["mac", "nosuch0"]] {
        let out = sb.nmiface(&args);
        let err = text(&out.stderr);
        ensure(
            out.status.code() == Some(2) && !err.contains("defined by nmiface") && err.contains("list --all"),
            || format!("{args:?}: exit {:?}: {err}", out.status.code()),
        )?;
    }
    let out = sb.nmiface(&["tap", "remove", "vtap9"]);
    let err = text(&out.stderr);
    ensure(out.status.code() == Some(2) && err.contains("no tap 'vtap9' of yours"), || {
        format!("tap remove of a gone tap: exit {:?}: {err}", out.status.code())
    })?;
    let f = sb.write("vmbr0.xml", "<interface type='bridge' name='vmbr0'><start mode='none'/><protocol family='ipv4'><ip address='192.0.2.1' prefix='24'/></protocol><bridge stp='off'/></interface>");
    let out = sb.nmiface(&["define", &f]);
    ensure(out.status.success(), || format!("define vmbr0: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["tap", "add", "vmbr0"]);
    let err = text(&out.stderr);
    ensure(
        out.status.code() == Some(2) && err.contains("no DHCP") && err.contains("share --nat --bridge vmbr0"),
        || format!("tap add on a plain bridge: exit {:?}: {err}", out.status.code()),
    )
}

/// Item 13: "1 profile deleted", and `tap list` prints a table, or says there is none.
pub fn small_outputs_read_right() -> R {
    let sb = Sandbox::up(false);
    let f = sb.write("eth3.xml", "<interface type='ethernet' name='eth3'><start mode='none'/></interface>");
    let out = sb.nmiface(&["define", &f]);
    ensure(out.status.success(), || format!("define eth3: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["undefine", "eth3"]);
    ensure(text(&out.stdout).contains("(1 profile deleted)"), || format!("undefine: {}", text(&out.stdout)))?;
    let out = sb.nmiface(&["tap", "list"]);
    ensure(out.status.success() && text(&out.stdout).starts_with("No taps of yours"), || {
        format!("tap list with none: exit {:?}: {}{}", out.status.code(), text(&out.stdout), text(&out.stderr))
    })?;
    let out = sb.nmiface(&["share", "--nat", "--bridge", "nat0", "--subnet", "10.42.9.0/24"]);
    ensure(out.status.success(), || format!("share: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["tap", "add", "nat0", "--name", "vt0"]);
    ensure(out.status.success(), || format!("tap add: {}", text(&out.stderr)))?;
    let out = sb.nmiface(&["tap", "list"]);
    let table = text(&out.stdout);
    ensure(table.lines().next().is_some_and(|l| l.starts_with("TAP") && l.contains("BRIDGE")), || {
        format!("tap list:\n{table}")
    })?;
    ensure(table.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["vt0", "nat0"]), || {
        format!("tap list:\n{table}")
    })?;
    let out = sb.nmiface(&["tap", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("tap list --json: {e}"))?;
    ensure(v == serde_json::json!(["vt0"]), || format!("tap list --json changed shape: {v}"))
}
