//! The command line as a user runs it: exit codes, stdin, output formats.

mod common;

use common::{nmiface, text};

#[test]
fn clean_translation_exits_0_with_json() {
    let out = nmiface(&["translate", "xml-samples/libvirt-ethernet-static-gateway.xml"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["documents"][0]["interfaces"][0]["profiles"][0];
    assert_eq!(p["settings"]["ipv4"]["method"]["s"], "manual");
    assert_eq!(p["settings"]["connection"]["type"]["s"], "802-3-ethernet");
}

#[test]
fn approximations_exit_1_and_are_printed() {
    let out = nmiface(&["translate", "xml-samples/libvirt-ethernet-static-no-prefix.xml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("approximated"), "{}", text(&out.stderr));
}

#[test]
fn bad_input_exits_2_with_position() {
    let out = nmiface(
        &["translate", "-"],
        Some("<interface type='bridge' name='br0'>\n  <bridge stp='yes'/>\n</interface>\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("<stdin>:2:11: /interface/bridge/@stp: invalid value 'yes' for 'stp' (allowed: on, off)"),
        "{err}"
    );
    assert!(out.stdout.is_empty() || text(&out.stdout).contains("\"documents\": []"));
}

#[test]
fn draft_to_libvirt_xml() {
    let draft = "<interface device=\"eth2\" onboot=\"yes\">\n<hwaddr>52:54:00:12:34:56</hwaddr>\n<shared bridge=\"br0\"/>\n<dhcp/>\n</interface>\n";
    let out = nmiface(&["translate", "--to-xml", "-"], Some(draft));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "<interface type='bridge' name='br0'>\n  <start mode='onboot'/>\n  <protocol family='ipv4'>\n    <dhcp/>\n  </protocol>\n  \
<bridge stp='on' delay='2'>\n    <interface type='ethernet' name='eth2'>\n      <mac address='52:54:00:12:34:56'/>\n    \
</interface>\n  </bridge>\n</interface>\n"
    );
}

#[test]
fn keyfiles_into_a_directory_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("nmiface-cli-{}", std::process::id()));
    let out = nmiface(
        &[
            "translate",
            "--format",
            "keyfile",
            "--output-dir",
            dir.to_str().unwrap(),
            "xml-samples/libvirt-bridge-bond-port.xml",
        ],
        None,
    );
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", text(&out.stderr));
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert!(files.len() >= 4, "bridge + bond + ethernet ports expected, got {}", files.len());
    for f in &files {
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn output_dir_needs_keyfile_format() {
    let out = nmiface(&["translate", "--output-dir", "/tmp/x", "xml-samples/libvirt-ethernet-minimal.xml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--format keyfile"));
}

#[test]
fn missing_file_exits_2() {
    let out = nmiface(&["translate", "no-such-file.xml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no-such-file.xml"));
}

// See: issue 24, item 2. The table opens with the document's interfaces, not nmiface's own
// needs of NetworkManager (those with -v), and files a bond's finding under the bond.
#[test]
fn check_table_shows_plumbing_only_with_v_and_files_findings_by_interface() {
    let f = "xml-samples/libvirt-bond-balance-alb-arpmon-no-validate.xml";
    let out = nmiface(&["check", "--offline", f], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(!table.contains("AddConnection2") && !table.contains("user.data"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("bond0") && l.contains("<bond><arpmon>")), "{table}");
    assert!(!table.lines().any(|l| l.starts_with("- ")), "{table}");
    let out = nmiface(&["-v", "check", "--offline", f], None);
    assert!(text(&out.stdout).contains("Settings.AddConnection2"), "{}", text(&out.stdout));
}

// See: issue 24, item 4. A missing bus is said once, with one path.
#[test]
fn no_bus_is_said_once() {
    for bus in [Some("unix:path=/nonexistent/nmiface-test-bus"), None] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_nmiface"));
        cmd.arg("list").env_remove("RUST_LOG");
        match bus {
            Some(b) => cmd.env("DBUS_SYSTEM_BUS_ADDRESS", b),
            None => cmd.env_remove("DBUS_SYSTEM_BUS_ADDRESS"),
        };
        let out = cmd.output().unwrap();
        let err = text(&out.stderr);
        if bus.is_none() && err.is_empty() {
            continue; // a host with a system bus: nothing to see
        }
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for once in ["cannot reach NetworkManager", "cannot connect", "Failed to connect", "(os error 2)"] {
            assert!(err.matches(once).count() <= 1, "'{once}' more than once: {err}");
        }
        assert!(!err.contains("/var/run/dbus"), "{err}");
    }
}

// See: issue 24, item 3. The session service's files name this very binary, whatever PATH
// holds, and --uninstall takes them away.
#[test]
fn session_install_user_names_this_binary() {
    let home = std::env::temp_dir().join(format!("nmiface-home-{}", std::process::id()));
    let run = |arg: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nmiface"))
            .args(["session", arg])
            .env("HOME", &home)
            .env("PATH", "/nonexistent")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap()
    };
    let out = run("--install-user");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let activation = home.join(".local/share/dbus-1/services/org.nmiface.Interfaces1.service");
    let unit = home.join(".config/systemd/user/nmiface-session.service");
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_nmiface")).unwrap();
    let a = std::fs::read_to_string(&activation).unwrap();
    assert!(a.contains(&format!("\nExec={} session\n", exe.display())), "{a}");
    let u = std::fs::read_to_string(&unit).unwrap();
    assert!(u.contains(&format!("\nExecStart={} session", exe.display())), "{u}");
    let out = run("--uninstall");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!activation.exists() && !unit.exists());
    let _ = std::fs::remove_dir_all(&home);
}

// See: issue 24, item 12. A misspelt `type` is named, not only "needs a 'type' attribute".
#[test]
fn a_misspelt_type_attribute_is_named() {
    let out = nmiface(&["translate", "-"], Some("<interface typ='bridge' name='br0'>\n</interface>\n"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("<stdin>:1:12: /interface/@typ: unknown attribute 'typ'"), "{err}");
}

// See: issue 24, item 13. translate has a readable form; piped without a format, it stays JSON.
#[test]
fn translate_reads_as_text_and_stays_json_when_piped() {
    let f = "xml-samples/libvirt-bridge-stp-off-fractional-delay.xml";
    let out = nmiface(&["translate", "--format", "text", f], None);
    let t = text(&out.stdout);
    assert!(t.contains("bridge.stp: no") && t.contains("profile '") && !t.contains("{\"b\""), "{t}");
    let out = nmiface(&["translate", f], None);
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok(), "piped default is not JSON");
    let out = nmiface(&["translate", "--json", f], None);
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok(), "--json is not JSON");
}
