//! The command line on hostile input (issue 11): what reaches the user, and the exit status.

mod common;

use common::{nmiface, text};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A fresh scratch directory under the system's temporary directory.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nmiface-cli-input-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// See: issue 11. This document looped forever at 100% CPU.
#[test]
fn repeated_name_exits_2_with_its_position() {
    let doc = "<interfaces>\n<interface type='ethernet' name='eth0'/>\n<bridge name='eth0'><member device='eth0'/></bridge>\n</interfaces>\n";
    let start = Instant::now();
    let out = nmiface(&["translate", "-"], Some(doc));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("<stdin>:3:1: /interfaces/bridge[2]: interface 'eth0' is defined twice"), "{err}");
}

/// See: issue 11. `nmiface translate /dev/zero` grew until memory ran out.
#[test]
fn endless_input_is_refused() {
    let out = nmiface(&["translate", "/dev/zero"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("/dev/zero: larger than 4194304 bytes, the limit for a document"), "{err}");
}

/// See: issue 11. A byte-order mark on standard input was "unknown element <>".
#[test]
fn byte_order_mark_on_stdin_is_accepted() {
    let out = nmiface(&["translate", "-"], Some("\u{feff}<interface type='ethernet' name='eth0'/>\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// See: issue 11. The extension's prefix bound to another URI: `ipv4.method=disabled`, exit 0.
#[test]
fn extension_in_a_wrong_namespace_exits_2() {
    let doc = "<interface type='ethernet' name='eth0' xmlns:nmi='urn:nmiface:interface:2'>\n<protocol family='ipv4'><nmi:nat/></protocol>\n</interface>\n";
    let out = nmiface(&["translate", "-"], Some(doc));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("<stdin>:2:25: unknown element <nmi:nat>"), "{}", text(&out.stderr));
}

/// See: issue 11. A symlink planted at the keyfile's name redirected the write to its target.
#[test]
fn keyfile_output_does_not_follow_a_planted_symlink() {
    let d = scratch("symlink");
    let victim = d.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let out_dir = d.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::os::unix::fs::symlink(&victim, out_dir.join("eth0.nmconnection")).unwrap();
    let out = nmiface(
        &["translate", "--format", "keyfile", "--output-dir", out_dir.to_str().unwrap(), "-"],
        Some("<interface type='ethernet' name='eth0'/>"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let meta = std::fs::symlink_metadata(out_dir.join("eth0.nmconnection")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    std::fs::remove_dir_all(&d).unwrap();
}

/// See: issue 11. The port profile `br0-port-eth0` and an interface of that name wrote one
/// file, the second silently replacing the first.
#[test]
fn colliding_keyfile_names_exit_2_and_write_nothing() {
    let d = scratch("collide");
    let out_dir = d.join("out");
    let doc = "<interfaces>\n<interface type='bridge' name='br0'><bridge><interface type='ethernet' name='eth0'/></bridge></interface>\n<interface type='ethernet' name='br0-port-eth0'/>\n</interfaces>\n";
    let out = nmiface(&["translate", "--format", "keyfile", "--output-dir", out_dir.to_str().unwrap(), "-"], Some(doc));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("two profiles are called 'br0-port-eth0' and would both be written to br0-port-eth0.nmconnection"),
        "{err}"
    );
    assert!(!out_dir.exists() || std::fs::read_dir(&out_dir).unwrap().next().is_none());
    std::fs::remove_dir_all(&d).unwrap();
}

/// The same file twice in one run: both documents' `eth0` profiles would be one keyfile.
#[test]
fn colliding_keyfile_names_across_documents_exit_2() {
    let d = scratch("across");
    let out_dir = d.join("out");
    let doc = d.join("eth0.xml");
    std::fs::write(&doc, "<interface type='ethernet' name='eth0'/>").unwrap();
    let (o, f) = (out_dir.to_str().unwrap(), doc.to_str().unwrap());
    let out = nmiface(&["translate", "--format", "keyfile", "--output-dir", o, f, f], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("would both be written to eth0.nmconnection"), "{}", text(&out.stderr));
    assert!(!out_dir.exists());
    std::fs::remove_dir_all(&d).unwrap();
}
