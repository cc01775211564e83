//! User-owned taps for VMs: a NetworkManager `tun` profile (tap mode, owned by the user, vnet_hdr
//! on) that is a port of a VM bridge, and what a VM needs to use it (libvirt's `<interface
//! type='ethernet'>` with an unmanaged target, qemu's `-netdev tap` words).
//!
//! The tap is owned by the user's uid, so the user's qemu opens it without privileges (the
//! kernel refuses everyone else with EPERM), and NetworkManager keeps it a port of the bridge.

use super::profile::{user_key, Profile, Settings};
use super::translate::profile_uuid;
use super::value::Value;
use std::collections::BTreeMap;

/// `user.data` key on a tap's profile: the bridge it is a port of.
pub const TAP_OF: &str = "nmiface.tap-of";

/// NetworkManager's `tun.mode` for a tap (1 is tun).
pub const TUN_MODE_TAP: u32 = 2;

/// What a tap profile is made from.
#[derive(Debug, Clone)]
pub struct TapSpec<'a> {
    /// The tap's kernel name.
    pub name: &'a str,
    /// The bridge's name and its profile's UUID (the tap's controller).
    pub bridge: &'a str,
    /// The bridge profile's UUID.
    pub bridge_uuid: uuid::Uuid,
    /// The uid that may open the tap.
    pub owner: u32,
    /// One queue per vCPU (qemu `queues=N`).
    pub multi_queue: bool,
    /// Frames carry a virtio-net header (what qemu's virtio-net wants).
    pub vnet_hdr: bool,
}

/// The UUID nmiface gives tap `name`'s profile (system-wide; a user's scope derives its own).
pub fn tap_uuid(name: &str) -> uuid::Uuid {
    profile_uuid(None, "tap", name, None)
}

/// The tap's profile (system-wide form: a user's [`super::Scope`] stamps it as theirs). It is
/// not autoconnected by itself: it comes up with its bridge (`autoconnect-slaves` is not
/// needed: ports of an active bridge follow it) or when started.
pub fn tap_profile(t: &TapSpec<'_>) -> Profile {
    let uuid = tap_uuid(t.name);
    let mut s: Settings = BTreeMap::new();
    let mut put = |setting: &'static str, key: &'static str, v: Value| {
        s.entry(setting.into()).or_default().insert(key.into(), v);
    };
    put("connection", "id", Value::Str(t.name.to_string()));
    put("connection", "uuid", Value::Str(uuid.to_string()));
    put("connection", "type", Value::Str("tun".into()));
    put("connection", "interface-name", Value::Str(t.name.to_string()));
    put("connection", "master", Value::Str(t.bridge_uuid.to_string()));
    put("connection", "slave-type", Value::Str("bridge".into()));
    put("tun", "mode", Value::U32(TUN_MODE_TAP));
    put("tun", "owner", Value::I64(i64::from(t.owner)));
    put("tun", "vnet-hdr", Value::Bool(t.vnet_hdr));
    put("tun", "multi-queue", Value::Bool(t.multi_queue));
    let user = BTreeMap::from([
        (user_key::MANAGED.to_string(), "1".to_string()),
        (user_key::INTERFACE.to_string(), t.name.to_string()),
        (TAP_OF.to_string(), t.bridge.to_string()),
    ]);
    put("user", "data", Value::StrDict(user));
    Profile { id: t.name.to_string(), uuid, settings: s }
}

/// The libvirt `<interface>` for a domain using the tap (libvirt 5.8+ lets an unprivileged
/// libvirt use a pre-made tap: `managed='no'`).
pub fn libvirt_interface(tap: &str, mac: Option<&str>) -> String {
    // Linux allows quotes and angle brackets in a link's name: escaped, they stay a name.
    let esc = crate::xml::escape_attr;
    let mac = mac.map(|m| format!("\n  <mac address='{}'/>", esc(m))).unwrap_or_default();
    let tap = esc(tap);
    format!("<interface type='ethernet'>{mac}\n  <target dev='{tap}' managed='no'/>\n  <model type='virtio'/>\n</interface>\n")
}

/// The qemu words for the tap (no scripts: the tap exists and is a port already).
pub fn qemu_words(tap: &str, multi_queue: bool) -> String {
    let queues = if multi_queue { ",queues=2" } else { "" };
    let mq = if multi_queue { ",mq=on,vectors=6" } else { "" };
    // qemu doubles a comma inside an option's value; the shell must see one word.
    let netdev = format!("tap,id=net0,ifname={},script=no,downscript=no{queues}", tap.replace(',', ",,"));
    format!("-netdev {} -device virtio-net-pci,netdev=net0{mq}", shell_word(&netdev))
}

/// `w` as one shell word: as it is when it holds nothing a shell would read, else in single
/// quotes (a quote inside as `'\''`).
pub fn shell_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,=/:+@%".contains(c);
    match !w.is_empty() && w.chars().all(plain) {
        true => w.to_string(),
        false => format!("'{}'", w.replace('\'', "'\\''")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nm::Scope;

    /// A name Linux allows (quotes, angle brackets, commas) stays one name in the XML, in
    /// qemu's option and in the shell.
    #[test]
    fn odd_tap_names_are_escaped() {
        let xml = libvirt_interface("v'><b>,x", None);
        assert!(xml.contains("<target dev='v&apos;&gt;&lt;b&gt;,x' managed='no'/>"), "{xml}");
        let q = qemu_words("v'><b>,x", false);
        assert_eq!(
            q,
            "-netdev 'tap,id=net0,ifname=v'\\''><b>,,x,script=no,downscript=no' -device virtio-net-pci,netdev=net0"
        );
        assert_eq!(
            qemu_words("vtap0", false),
            "-netdev tap,id=net0,ifname=vtap0,script=no,downscript=no -device virtio-net-pci,netdev=net0"
        );
    }

    #[test]
    fn a_tap_is_the_users_port_of_the_bridge() {
        let bridge_uuid = uuid::Uuid::from_u128(0x1234);
        let spec =
            TapSpec { name: "vtap0", bridge: "nat0", bridge_uuid, owner: 1000, multi_queue: false, vnet_hdr: true };
        let mut p = vec![tap_profile(&spec)];
        let alice = Scope::User("alice".into());
        alice.stamp(&mut p);
        let p = &p[0];
        assert!(alice.owns(p));
        assert_eq!(p.uuid, alice.uuid(tap_uuid("vtap0")));
        assert_eq!(p.master(), Some(bridge_uuid.to_string().as_str()), "the bridge is not one of the stamped profiles");
        assert_eq!(p.get("tun", "owner"), Some(&Value::I64(1000)));
        assert_eq!(p.get("tun", "mode"), Some(&Value::U32(TUN_MODE_TAP)));
        assert_eq!(p.get("tun", "vnet-hdr"), Some(&Value::Bool(true)));
        assert_eq!(p.user_data(TAP_OF), Some("nat0"));
    }

    #[test]
    fn what_a_vm_needs() {
        let x = libvirt_interface("vtap0", None);
        assert!(x.contains("<target dev='vtap0' managed='no'/>") && x.contains("type='ethernet'"));
        assert!(qemu_words("vtap0", false).contains("ifname=vtap0,script=no,downscript=no"));
        assert!(qemu_words("vtap0", true).contains("queues="));
    }
}
