//! Tests against a real NetworkManager in a namespace sandbox (integration/nm-sandbox.sh); no
//! mocks. One trial per valid sample, plus DHCP, kernel gaps and ownership.
//!
//! Per sample: our keyfiles, loaded by NetworkManager (LoadConnections), give back the settings
//! we would send; `nmiface define` gives the same over D-Bus; a second define updates in place;
//! `dumpxml --inactive` prints the canonical XML; where this kernel and sandbox can run the
//! sample (ethernet and bridges on eth0-eth3, DHCP only where the wire has a server), `start`
//! brings it up and the kernel state is checked with `ip -j`, then `stop`; `undefine` removes
//! every profile and keyfile.
//!
//! Without root or NetworkManager these trials are skipped with a banner; under CI=true they
//! fail instead.

mod ansible;
mod contract;
mod faithful;
mod gaps;
mod hardening;
mod helper;
mod idempotent;
mod interleave;
mod isolation;
mod matrix;
mod newuser;
mod sandbox;
mod session;
mod share;
mod takeover;
mod taps;
mod transactions;
mod users;

use libtest_mimic::{Arguments, Failed, Trial};
use nmiface::model::{Host, Interface, Kind, Member};
use nmiface::nm::{self, Profile, Target};
use nmiface::xml;
use sandbox::Sandbox;
use std::path::{Path, PathBuf};

type R = Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let unavailable = sandbox::unavailable();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if let Some(why) = &unavailable {
        let what = if ci { "FAILING (CI=true)" } else { "SKIPPING" };
        eprintln!("\n*** {what} the real-NetworkManager tests: {why} ***\n");
    }
    let mut trials: Vec<(String, Box<dyn FnOnce() -> R + Send>)> = Vec::new();
    for s in samples() {
        let name = format!("sample::{}", s.file_stem().unwrap().to_string_lossy());
        trials.push((name, Box::new(move || sample_lifecycle(&s))));
    }
    trials.extend(TRIALS.iter().map(|&(name, f)| (name.to_string(), Box::new(f) as Box<dyn FnOnce() -> R + Send>)));
    let trials = trials
        .into_iter()
        .map(|(name, f)| match (&unavailable, ci) {
            (None, _) => Trial::test(name, f),
            (Some(why), true) => {
                let why = why.clone();
                Trial::test(name, move || Err(format!("cannot run under CI: {why}").into()))
            }
            (Some(_), false) => Trial::test(name, || Ok(())).with_ignored_flag(true),
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// A trial: its name and its function.
type Named = (&'static str, fn() -> R);

/// Every trial besides one per sample.
const TRIALS: &[Named] = &[
    ("dhcp_lease_from_the_wire", dhcp_lease),
    ("bond_and_vlan_report_the_kernel_gap", kernel_gap),
    ("foreign_profiles_are_never_touched", ownership),
    ("faithful::foreign_profiles_are_dumped_faithfully", faithful::foreign_profiles_are_dumped_faithfully),
    ("gaps::bond_and_vlan_report_the_kernel_gap", gaps::bond_and_vlan_report_the_kernel_gap),
    ("gaps::apply_with_a_kernel_gap_changes_nothing", gaps::apply_with_a_kernel_gap_changes_nothing),
    ("gaps::the_daemon_is_asked_what_a_version_cannot_settle", gaps::the_daemon_is_asked_what_a_version_cannot_settle),
    ("share::l2_bridge_for_vms_and_unbridge", share::l2_bridge_for_vms_and_unbridge),
    ("share::nat_share_for_vms", share::nat_share_for_vms),
    ("share::failed_sharing_changes_nothing", share::failed_sharing_changes_nothing),
    ("tx::failing_apply_changes_nothing", transactions::failing_apply_changes_nothing),
    ("tx::sigkill_mid_apply_is_rolled_back_by_nm", transactions::sigkill_mid_apply_is_rolled_back_by_nm),
    ("tx::nm_restart_during_apply_does_not_hang", transactions::nm_restart_during_apply_does_not_hang),
    ("tx::begin_rollback_and_commit", transactions::begin_rollback_and_commit),
    (
        "tx::leftover_checkpoint_is_reported_and_rolled_back",
        transactions::leftover_checkpoint_is_reported_and_rolled_back,
    ),
    ("tx::concurrent_applies_do_not_interleave", transactions::concurrent_applies_do_not_interleave),
    ("hardening::one_lock_per_bus_whatever_the_address", hardening::one_lock_per_bus_whatever_the_address),
    ("hardening::an_expired_transaction_is_noticed", hardening::an_expired_transaction_is_noticed),
    ("hardening::an_interrupted_adopt_is_undone_exactly", hardening::an_interrupted_adopt_is_undone_exactly),
    ("hardening::an_interrupted_apply_rolls_back", hardening::an_interrupted_apply_rolls_back),
    ("hardening::rollback_keeps_what_others_added", hardening::rollback_keeps_what_others_added),
    ("hardening::a_hung_networkmanager_is_bounded", hardening::a_hung_networkmanager_is_bounded),
    ("hardening::forged_marks_are_not_ownership", hardening::forged_marks_are_not_ownership),
    ("hardening::an_unwritable_stdout_is_not_a_crash", hardening::an_unwritable_stdout_is_not_a_crash),
    ("hosts::every_host_interface_is_listed", hardening::every_host_interface_is_listed),
    (
        "idempotent::apply_twice_changes_nothing_then_only_what_differs",
        idempotent::apply_twice_changes_nothing_then_only_what_differs,
    ),
    ("idempotent::bridge_twice_changes_nothing", idempotent::bridge_twice_changes_nothing),
    ("ansible::playbook_on_the_apply_contract", ansible::playbook_on_the_apply_contract),
    ("confirm::apply_confirm_keeps_only_what_is_confirmed", hardening::apply_confirm_keeps_only_what_is_confirmed),
    ("users::polkit_and_logins_decide_what_users_may_do", users::polkit_and_logins_decide_what_users_may_do),
    (
        "users::login_brings_private_profiles_up_and_logout_down",
        users::login_brings_private_profiles_up_and_logout_down,
    ),
    (
        "session::user_profiles_are_private_and_networkmanager_decides",
        session::user_profiles_are_private_and_networkmanager_decides,
    ),
    ("session::activation_restart_and_idle_exit", session::activation_restart_and_idle_exit),
    ("session::cli_run_by_a_user", session::cli_run_by_a_user),
    (
        "session::a_transaction_open_at_the_end_of_the_session_is_rolled_back",
        session::a_transaction_open_at_the_end_of_the_session_is_rolled_back,
    ),
    ("taps::user_owned_taps_without_root", taps::user_owned_taps_without_root),
    ("taps::a_vm_run_by_a_user", taps::a_vm_run_by_a_user),
    ("taps::an_interrupted_tap_add_leaves_no_tap", taps::an_interrupted_tap_add_leaves_no_tap),
    ("helper::a_tap_handed_over_goes_with_its_descriptor", helper::a_tap_handed_over_goes_with_its_descriptor),
    ("helper::a_libvirt_session_vm_on_the_helper", helper::a_libvirt_session_vm_on_the_helper),
    ("contract::every_member_is_called_and_the_cli_agrees", contract::every_member_is_called_and_the_cli_agrees),
    ("matrix::every_profile_through_every_cli_verb", matrix::every_profile_through_every_cli_verb),
    ("matrix::every_profile_through_the_service", matrix::every_profile_through_the_service),
    ("takeover::adopt_keeps_what_the_document_cannot_say", takeover::adopt_keeps_what_the_document_cannot_say),
    ("takeover::the_service_takes_over_without_loss", takeover::the_service_takes_over_without_loss),
    ("takeover::bridge_moves_the_nics_configuration", takeover::bridge_moves_the_nics_configuration),
    ("takeover::dumpxml_then_adopt_changes_nothing", takeover::dumpxml_then_adopt_changes_nothing),
    ("isolation::users_cannot_take_each_others_devices", isolation::users_cannot_take_each_others_devices),
    ("isolation::a_user_cannot_squat_roots_next_uuid", isolation::a_user_cannot_squat_roots_next_uuid),
    (
        "isolation::roots_rollback_leaves_a_users_new_bridge_alone",
        isolation::roots_rollback_leaves_a_users_new_bridge_alone,
    ),
    (
        "isolation::roots_transaction_rollback_leaves_a_users_bridge_alone",
        isolation::roots_transaction_rollback_leaves_a_users_bridge_alone,
    ),
    ("newuser::bridge_drift_is_seen_and_repaired", newuser::bridge_drift_is_seen_and_repaired),
    ("newuser::check_knows_the_hosts_devices", newuser::check_knows_the_hosts_devices),
    ("newuser::list_says_whose_profiles_are", newuser::list_says_whose_profiles_are),
    ("newuser::interrupts_and_confirm_say_what_happened", newuser::interrupts_and_confirm_say_what_happened),
    (
        "newuser::verbose_logs_every_call_without_colours_in_a_pipe",
        newuser::verbose_logs_every_call_without_colours_in_a_pipe,
    ),
    ("newuser::apply_check_reads_plainly", newuser::apply_check_reads_plainly),
    ("newuser::messages_name_the_right_cause", newuser::messages_name_the_right_cause),
    ("newuser::small_outputs_read_right", newuser::small_outputs_read_right),
    ("interleave::a_generated_mix_keeps_parties_apart", interleave::a_generated_mix_keeps_parties_apart),
];

fn samples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("xml-samples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> R {
    if cond {
        Ok(())
    } else {
        Err(msg().into())
    }
}

/// Every property we send must come back unchanged from NetworkManager (which adds defaults
/// and leaves out what equals its default).
fn compare_sent(ours: &Profile, theirs: &Profile) -> R {
    let mut bad = Vec::new();
    for (setting, props) in &ours.settings {
        for (k, v) in props {
            let got = theirs.get(setting, k).cloned().or_else(|| nm::compare::nm_default(setting, k));
            if got.as_ref() != Some(v) {
                bad.push(format!("{setting}.{k}: sent {v:?}, NetworkManager has {got:?}"));
            }
        }
    }
    ensure(bad.is_empty(), || format!("{}: {}", ours.id, bad.join("; ")))
}

/// The MACs a sample pins on eth0-eth3, for the sandbox to give those NICs.
fn pinned_macs(host: &Host) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for i in &host.interfaces {
        match &i.kind {
            Kind::Ethernet(e) => v.extend(e.mac.map(|m| (i.name.to_string(), m.to_string()))),
            Kind::Bridge(b) => {
                for m in &b.ports {
                    if let Member::Ethernet(p) = m {
                        v.extend(p.mac.map(|m| (p.name.to_string(), m.to_string())));
                    }
                }
            }
            Kind::Bond(b) => v.extend(b.ports.iter().filter_map(|p| Some((p.name.to_string(), p.mac?.to_string())))),
            Kind::Vlan(_) => {}
        }
    }
    v.retain(|(n, _)| matches!(n.as_str(), "eth0" | "eth1" | "eth2" | "eth3"));
    v
}

/// Whether this sandbox can activate the sample: ethernet and bridges over eth0-eth3 (MAC
/// pins are given to the NICs), DHCP only where the wire has a server (eth0), and IPv6
/// methods that need a router only next to IPv4 (IPv6 may fail then).
fn startable(host: &Host) -> Result<(), String> {
    let nic = |n: &str| matches!(n, "eth0" | "eth1" | "eth2" | "eth3");
    for i in &host.interfaces {
        let ports: Vec<String> = match &i.kind {
            Kind::Ethernet(_) if nic(i.name.as_str()) => vec![i.name.to_string()],
            Kind::Bridge(b) => {
                let mut v = Vec::new();
                for m in &b.ports {
                    match m {
                        Member::Ethernet(p) if nic(p.name.as_str()) => v.push(p.name.to_string()),
                        _ => {
                            return Err(format!(
                                "{}: port {} is a bond or VLAN (no kernel support here)",
                                i.name,
                                m.name()
                            ))
                        }
                    }
                }
                v
            }
            _ => return Err(format!("{}: {} (no kernel support here)", i.name, i.kind.type_name())),
        };
        let dhcp4 = i.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some());
        if dhcp4 && !ports.iter().any(|p| p == "eth0") {
            return Err(format!("{}: DHCP without a server on its wire", i.name));
        }
        if let Kind::Bridge(b) = &i.kind {
            if dhcp4 && b.stp && b.forward_delay > 5 {
                return Err(format!("{}: STP holds ports {} s before DHCP can pass", i.name, 2 * b.forward_delay));
            }
        }
        let v6_needs_router = i.ipv6.as_ref().is_some_and(|v| v.autoconf || v.dhcp.is_some());
        if v6_needs_router && i.ipv4.is_none() {
            return Err(format!("{}: IPv6 autoconf/DHCP needs a router", i.name));
        }
    }
    Ok(())
}

/// Kernel state after start: addresses, MTU, bridge ports.
fn check_kernel(sb: &Sandbox, iface: &Interface) -> R {
    let name = iface.name.as_str();
    let addr = sb.ip_json(&["addr", "show", "dev", name]);
    let dev = &addr[0];
    ensure(dev.is_object(), || format!("{name}: no such device in the kernel"))?;
    let has = |a: &str, p: u8| {
        dev["addr_info"].as_array().is_some_and(|l| l.iter().any(|x| x["local"] == a && x["prefixlen"] == p))
    };
    if let Some(v4) = &iface.ipv4 {
        for a in &v4.addresses {
            ensure(has(&a.address.to_string(), a.prefix), || {
                format!("{name}: {}/{} missing: {dev}", a.address, a.prefix)
            })?;
        }
    }
    if let Some(v6) = &iface.ipv6 {
        for a in &v6.addresses {
            ensure(has(&a.address.to_string(), a.prefix), || {
                format!("{name}: {}/{} missing: {dev}", a.address, a.prefix)
            })?;
        }
    }
    if let Some(mtu) = iface.mtu {
        ensure(dev["mtu"] == mtu, || format!("{name}: MTU {} in the kernel, {mtu} asked", dev["mtu"]))?;
    }
    if let Kind::Bridge(b) = &iface.kind {
        if let Some(mac) = b.mac {
            ensure(dev["address"] == mac.to_string(), || {
                format!("{name}: MAC {} in the kernel, {mac} asked", dev["address"])
            })?;
        }
        for m in &b.ports {
            let link = sb.ip_json(&["link", "show", "dev", m.name().as_str()]);
            ensure(link[0]["master"] == name, || format!("{} is not a port of {name}: {}", m.name(), link[0]))?;
        }
    }
    Ok(())
}

/// `dumpxml` of an active interface shows live state, as libvirt does: the addresses it has,
/// `<link state='up'>` on non-bridges, and the device's MAC on ethernet; and `mac`/`name` agree
/// with the kernel.
fn check_live_xml(sb: &Sandbox, iface: &Interface) -> R {
    let name = iface.name.as_str();
    let live = sb.nmiface(&["dumpxml", name]);
    let xml = text(&live.stdout);
    ensure(live.status.success(), || format!("live dumpxml {name}: {}", text(&live.stderr)))?;
    if let Some(v4) = &iface.ipv4 {
        for a in &v4.addresses {
            let want = format!("<ip address='{}' prefix='{}'/>", a.address, a.prefix);
            ensure(xml.contains(&want), || format!("live dumpxml {name} lacks {want}:\n{xml}"))?;
        }
    }
    let kernel_mac = sb.ip_json(&["link", "show", "dev", name])[0]["address"].as_str().unwrap_or_default().to_string();
    if !matches!(iface.kind, Kind::Bridge(_)) {
        ensure(xml.contains("<link") && xml.contains("state='up'"), || {
            format!("live dumpxml {name} lacks <link state='up'>:\n{xml}")
        })?;
    }
    if matches!(iface.kind, Kind::Ethernet(_)) {
        ensure(xml.contains(&format!("<mac address='{kernel_mac}'/>")), || {
            format!("live dumpxml {name} lacks the MAC {kernel_mac}:\n{xml}")
        })?;
    }
    let mac = text(&sb.nmiface(&["mac", name]).stdout);
    ensure(mac.trim() == kernel_mac, || format!("nmiface mac {name} = {mac:?}, the kernel says {kernel_mac}"))?;
    if matches!(iface.kind, Kind::Ethernet(_)) {
        let back = text(&sb.nmiface(&["name", &kernel_mac]).stdout);
        ensure(back.trim() == name, || format!("nmiface name {kernel_mac} = {back:?}, want {name}"))?;
    }
    Ok(())
}

fn sample_lifecycle(path: &Path) -> R {
    let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().to_string_lossy().into_owned();
    let doc = xml::parse_document(&rel, &std::fs::read_to_string(path).unwrap()).map_err(|e| e.to_string())?;
    let t = nm::translate(&doc.host, &doc.sources, &Target::default());
    let ours: Vec<Profile> = t.profiles().cloned().collect();
    let sb = Sandbox::up_with_macs(true, &pinned_macs(&doc.host));
    let rt = rt();
    let client = rt.block_on(sb.client());

    // 1. Our keyfiles, loaded by NetworkManager, give what we would send over D-Bus.
    let mut files = Vec::new();
    for p in &ours {
        use std::os::unix::fs::OpenOptionsExt;
        let f = sb.keyfile_dir().join(p.keyfile_name());
        let mut o = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&f).unwrap();
        std::io::Write::write_all(&mut o, nm::to_keyfile(p).as_bytes()).unwrap();
        files.push(f.to_string_lossy().into_owned());
    }
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let failures = rt.block_on(client.load_keyfiles(&refs)).map_err(|e| e.to_string())?;
    ensure(failures.is_empty(), || format!("NetworkManager could not load our keyfiles: {failures:?}"))?;
    for p in &ours {
        let got = rt.block_on(client.profile_by_uuid(&p.uuid.to_string())).map_err(|e| e.to_string())?;
        let got = got.ok_or_else(|| format!("keyfile {} not loaded", p.keyfile_name()))?;
        compare_sent(p, &got.profile).map_err(|e| format!("from our keyfile: {}", e.message().unwrap_or("")))?;
        rt.block_on(client.delete(&got.path)).map_err(|e| e.to_string())?;
    }

    // 2. define over D-Bus gives the same settings; a second define updates in place.
    // --force: this test is about what NetworkManager stores; the gate has its own tests.
    let out = sb.nmiface(&["define", "--force", &rel]);
    ensure(matches!(out.status.code(), Some(0 | 1)), || format!("define failed: {}", text(&out.stderr)))?;
    for p in &ours {
        let got = rt.block_on(client.profile_by_uuid(&p.uuid.to_string())).map_err(|e| e.to_string())?;
        compare_sent(p, &got.ok_or_else(|| format!("{} not defined", p.id))?.profile)?;
    }
    let count = rt.block_on(client.profiles()).map_err(|e| e.to_string())?.len();
    let out = sb.nmiface(&["define", "--force", &rel]);
    ensure(text(&out.stdout).contains("(0 added"), || format!("second define added profiles: {}", text(&out.stdout)))?;
    let again = rt.block_on(client.profiles()).map_err(|e| e.to_string())?.len();
    ensure(count == again, || format!("{count} profiles before the second define, {again} after"))?;

    // 3. dumpxml --inactive is the canonical form of what this NetworkManager (1.42.4) keeps:
    // the model read back from our own translation, so features it lacks are left out here too.
    let kept = nm::host_from_profiles(&ours).map_err(|e| e.to_string())?.host;
    for iface in &kept.interfaces {
        let out = sb.nmiface(&["dumpxml", "--inactive", iface.name.as_str()]);
        let want = xml::write_interface(iface).0;
        ensure(text(&out.stdout) == want, || {
            format!("dumpxml {}:\n{}\nwanted:\n{want}{}", iface.name, text(&out.stdout), text(&out.stderr))
        })?;
    }

    // 4. start, kernel state, live dumpxml, stop.
    match startable(&doc.host) {
        Ok(()) => {
            for iface in doc.host.dependency_order() {
                let name = iface.name.as_str();
                let out = sb.nmiface(&["start", "--timeout", "30", name]);
                ensure(out.status.success(), || format!("start {name}: {}", text(&out.stderr)))?;
                check_kernel(&sb, iface)?;
                check_live_xml(&sb, iface)?;
            }
            for iface in &doc.host.interfaces {
                let out = sb.nmiface(&["stop", iface.name.as_str()]);
                ensure(out.status.success(), || format!("stop {}: {}", iface.name, text(&out.stderr)))?;
            }
        }
        Err(why) => eprintln!("{rel}: not started in the sandbox: {why}"),
    }

    // 5. undefine removes every profile and keyfile.
    for i in &t.interfaces {
        let out = sb.nmiface(&["undefine", i.interface.as_str()]);
        ensure(out.status.success(), || format!("undefine {}: {}", i.interface, text(&out.stderr)))?;
    }
    for p in &ours {
        let got = rt.block_on(client.profile_by_uuid(&p.uuid.to_string())).map_err(|e| e.to_string())?;
        ensure(got.is_none(), || format!("{} still exists after undefine", p.id))?;
    }
    let left: Vec<_> = std::fs::read_dir(sb.keyfile_dir()).unwrap().flatten().map(|e| e.file_name()).collect();
    ensure(left.is_empty(), || format!("keyfiles left after undefine: {left:?}"))
}

fn dhcp_lease() -> R {
    let sb = Sandbox::up(true);
    let f = std::env::temp_dir().join(format!("{}-dhcp.xml", sb.name));
    std::fs::write(&f, "<interface type='ethernet' name='eth0'><protocol family='ipv4'><dhcp/></protocol></interface>")
        .unwrap();
    let out = sb.nmiface(&["apply", f.to_str().unwrap()]);
    ensure(out.status.success(), || format!("apply: {}{}", text(&out.stdout), text(&out.stderr)))?;
    let addr = sb.ip_json(&["-4", "addr", "show", "dev", "eth0"]);
    let leased = addr[0]["addr_info"].as_array().is_some_and(|l| {
        l.iter().any(|a| a["local"].as_str().is_some_and(|s| s.starts_with("192.168.77.")) && a["dynamic"] == true)
    });
    let _ = std::fs::remove_file(&f);
    ensure(leased, || format!("no lease from the wire-side dnsmasq: {addr}"))
}

fn kernel_gap() -> R {
    let sb = Sandbox::up(false);
    for (sample, name, words) in [
        ("xml-samples/libvirt-bond-active-backup-miimon-ioctl.xml", "bond0", "no bonding support"),
        ("xml-samples/libvirt-vlan-on-ethernet.xml", "eth0.42", "no 802.1Q VLAN support"),
    ] {
        let out = sb.nmiface(&["define", sample]);
        ensure(matches!(out.status.code(), Some(0 | 1)), || format!("define {sample}: {}", text(&out.stderr)))?;
        let listed = text(&sb.nmiface(&["list", "--all"]).stdout);
        let vlan_name = listed.lines().find(|l| l.contains(".42")).and_then(|l| l.split_whitespace().next());
        let name = if name == "eth0.42" { vlan_name.unwrap_or(name).to_string() } else { name.to_string() };
        // Refused up front by the capability check, and with --force by NetworkManager itself
        // (CreationFailed): both name the missing kernel support, neither shows a raw D-Bus error.
        for args in [vec!["start", name.as_str()], vec!["start", "--force", name.as_str()]] {
            let out = sb.nmiface(&args);
            let err = text(&out.stderr);
            ensure(out.status.code() == Some(2), || format!("{args:?}: exit {:?}, {err}", out.status.code()))?;
            ensure(err.contains(words), || {
                format!("{args:?}: the message does not name the kernel gap ({words}): {err}")
            })?;
            ensure(!err.contains("org.freedesktop"), || format!("raw D-Bus error shown: {err}"))?;
        }
    }
    Ok(())
}

fn nmcli(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    std::process::Command::new("nmcli").args(args).env("DBUS_SYSTEM_BUS_ADDRESS", sb.bus()).output().unwrap()
}

/// A bridge profile private to `user` (`connection.permissions=user:USER`), made by that user
/// with nmcli, as a desktop's own tools make one; `settings`: more nmcli property/value words.
fn private_bridge(sb: &Sandbox, user: &str, ifname: &str, name: &str, settings: &[&str]) -> R {
    let permissions = format!("user:{user}");
    let mut args = vec!["nmcli", "con", "add", "type", "bridge", "ifname", ifname, "con-name", name];
    args.extend(["connection.permissions", permissions.as_str()]);
    args.extend_from_slice(settings);
    let out = sb.as_user(user, &args).output().unwrap();
    ensure(out.status.success(), || format!("{user}: nmcli add {name}: {}", text(&out.stderr)))
}

/// The names of the active profiles, as root sees them.
fn active(sb: &Sandbox) -> Vec<String> {
    text(&nmcli(sb, &["-g", "NAME", "con", "show", "--active"]).stdout).lines().map(str::to_string).collect()
}

/// `connection.permissions` of profile `id`, as root sees it (None: no such profile).
fn permissions(sb: &Sandbox, id: &str) -> Option<String> {
    let out = nmcli(sb, &["-g", "connection.permissions", "con", "show", id]);
    out.status.success().then(|| text(&out.stdout).trim().replace("\\:", ":"))
}

/// Waits up to `secs` for `cond`; whether it came true.
fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    cond()
}

fn ownership() -> R {
    let sb = Sandbox::up(false);
    let rt = rt();
    let client = rt.block_on(sb.client());
    let find = |id: &str| {
        rt.block_on(client.profiles())
            .unwrap()
            .into_iter()
            .find(|s| s.profile.id == id && !nmiface::nm::Scope::System.owns(&s.profile))
            .map(|s| s.profile)
    };
    // A hand-made profile with the name nmiface wants (a conflict), and a stock-style one that
    // only shares a device (no conflict: NetworkManager keeps several profiles per device).
    for args in [
        ["con", "add", "type", "ethernet", "ifname", "eth3", "con-name", "eth3", "autoconnect", "no"],
        ["con", "add", "type", "ethernet", "ifname", "eth2", "con-name", "Wired connection 1", "autoconnect", "no"],
    ] {
        let out = nmcli(&sb, &args);
        ensure(out.status.success(), || format!("nmcli: {}", text(&out.stderr)))?;
    }
    let stock_before = find("Wired connection 1").ok_or("stock profile missing")?;
    let f2 = std::env::temp_dir().join(format!("{}-eth2.xml", sb.name));
    std::fs::write(&f2, "<interface type='ethernet' name='eth2'><protocol family='ipv4'><ip address='192.0.2.9' prefix='24'/></protocol></interface>").unwrap();
    let out = sb.nmiface(&["apply", f2.to_str().unwrap()]);
    let _ = std::fs::remove_file(&f2);
    ensure(out.status.success(), || format!("apply next to a stock profile: {}", text(&out.stderr)))?;
    ensure(find("Wired connection 1") == Some(stock_before), || "the stock profile was changed".into())?;

    let before = find("eth3").ok_or("hand-made profile missing")?;
    let keyfile = sb.keyfile_dir().join("eth3.nmconnection");
    let bytes = std::fs::read(&keyfile).unwrap_or_default();
    let f = std::env::temp_dir().join(format!("{}-eth3.xml", sb.name));
    std::fs::write(&f, "<interface type='ethernet' name='eth3'><protocol family='ipv4'><dhcp/></protocol></interface>")
        .unwrap();
    let file = f.to_str().unwrap();
    let out = sb.nmiface(&["define", file]);
    ensure(out.status.code() == Some(2) && text(&out.stderr).contains("not created by nmiface"), || {
        format!("define over a foreign profile: exit {:?} {}", out.status.code(), text(&out.stderr))
    })?;
    for args in [["undefine", "eth3"], ["stop", "eth3"]] {
        let out = sb.nmiface(&args);
        ensure(out.status.code() == Some(2), || {
            format!("{args:?} on a foreign profile: exit {:?}", out.status.code())
        })?;
    }
    ensure(find("eth3").as_ref() == Some(&before), || "hand-made profile changed or deleted".into())?;
    ensure(std::fs::read(&keyfile).unwrap_or_default() == bytes, || "hand-made keyfile changed".into())?;

    // With --adopt the user asks: the profile is taken over in place, keeping its UUID.
    let out = sb.nmiface(&["define", "--adopt", file]);
    let _ = std::fs::remove_file(&f);
    ensure(out.status.success(), || format!("define --adopt: {}", text(&out.stderr)))?;
    let adopted = rt
        .block_on(client.profile_by_uuid(&before.uuid.to_string()))
        .unwrap()
        .map(|s| s.profile)
        .ok_or("adopted profile missing")?;
    ensure(nmiface::nm::Scope::System.owns(&adopted), || format!("not adopted in place: {adopted:?}"))
}
