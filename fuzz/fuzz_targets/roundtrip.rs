//! Structure-aware: the fuzzer's bytes choose a document from a grammar of both dialects
//! (mostly valid names and values, sometimes edge cases), so the inputs get past the syntax and
//! schema checks that stop almost every random byte string in `parse`. Checks the fixed point
//! and, when the translation has no findings, that XML -> NM -> XML is the identity.
#![no_main]

mod common;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut g = Gen { u: Unstructured::new(data), out: String::new() };
    g.document();
    common::check(&g.out, common::Depth::RoundTrip);
});

/// Writes one document, choosing with the fuzzer's bytes (zeros once they run out).
struct Gen<'a> {
    u: Unstructured<'a>,
    out: String,
}

const NAMES: &[&str] = &[
    "eth0",
    "eth1",
    "eth2",
    "eth3",
    "bond0",
    "bond1",
    "br0",
    "br1",
    "eth0.10",
    "vlan5",
    "eth1.4095",
    "em1",
    // edge cases: 15 bytes, escapes, non-ASCII, a character the writer must escape
    "abcdefghijklmno",
    "a&amp;b",
    "x&apos;y",
    "n&lt;1",
    "\u{e9}th0",
    "e\u{feff}0",
    "a\"b",
    "&#x41;",
];
const MACS: &[&str] =
    &["52:54:00:12:34:56", "52:54:00:AB:CD:EF", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "5:4:0:1:2:3"];
const V4: &[&str] = &["192.168.1.10", "10.0.0.1", "172.16.5.4", "1.2.3.4", "0.0.0.0", "255.255.255.255", "224.0.0.1"];
const V6: &[&str] = &["2001:db8::1", "fe80::1", "::1", "::", "2001:db8:0:0:0:0:0:2", "::ffff:1.2.3.4"];
const MASKS: &[&str] = &["255.255.255.0", "255.0.0.0", "255.255.255.255", "0.0.0.0", "255.255.0.0", "255.255.255.128"];
const NUMS: &[&str] = &["0", "1", "2", "15", "30", "31", "100", "1500", "4094", "4095", "65535", "4294967295", "007"];
const DELAYS: &[&str] = &["0", "0.5", "1", "1.5", "2", "2.4999", "15", "30", "31", "1e3", "-0", "0.0"];
const MODES: &[&str] =
    &["balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"];
const UUIDS: &[&str] = &["5f1b3d9e-0c2a-4c1e-9d0b-6a7f2b1c3d4e", "00000000-0000-0000-0000-000000000000"];

impl Gen<'_> {
    fn n(&mut self, max: usize) -> usize {
        self.u.int_in_range(0..=max).unwrap_or(0)
    }
    fn yes(&mut self, one_in: u8) -> bool {
        self.u.ratio(1, one_in).unwrap_or(false)
    }
    fn pick(&mut self, from: &[&'static str]) -> &'static str {
        from[self.n(from.len() - 1)]
    }
    fn w(&mut self, s: &str) {
        self.out.push_str(s);
    }
    /// ` name='value'` (or double quotes), sometimes.
    fn attr(&mut self, name: &str, from: &[&'static str], one_in: u8) {
        if self.yes(one_in) {
            let v = self.pick(from);
            let q = if self.yes(2) || v.contains('\'') { '"' } else { '\'' };
            if v.contains(q) {
                return;
            }
            self.out.push_str(&format!(" {name}={q}{v}{q}"));
        }
    }

    fn document(&mut self) {
        if self.yes(3) {
            self.w("<?xml version='1.0'?>\n");
        }
        if self.yes(2) {
            self.w("<interfaces>\n");
            for _ in 0..=self.n(4) {
                self.top();
            }
            self.w("</interfaces>\n");
        } else {
            self.top();
        }
    }

    fn top(&mut self) {
        match self.n(5) {
            0..=2 => self.libvirt(),
            3 => self.draft_interface(),
            _ => self.draft_controller(),
        }
        self.w("\n");
    }

    // ---- libvirt's format ----

    fn libvirt(&mut self) {
        let ty = self.pick(&["ethernet", "bridge", "bond", "vlan"]);
        self.w(&format!("<interface type='{ty}'"));
        self.attr("name", NAMES, if ty == "vlan" { 2 } else { 1 });
        self.w(">");
        if self.yes(2) {
            self.attr_el("start", "mode", &["onboot", "none", "hotplug"]);
        }
        if self.yes(3) {
            self.attr_el("mtu", "size", &["68", "576", "1280", "1500", "9000", "65535", "65536", "0"]);
        }
        if ty == "ethernet" && self.yes(2) {
            self.attr_el("mac", "address", MACS);
        }
        if ty != "bridge" && self.yes(6) {
            self.link();
        }
        if self.yes(2) {
            self.protocol_v4();
        }
        if self.yes(3) {
            self.protocol_v6();
        }
        match ty {
            "bridge" => self.lv_bridge(),
            "bond" => self.lv_bond(),
            "vlan" => self.lv_vlan(),
            _ => {}
        }
        self.w("</interface>");
    }

    fn attr_el(&mut self, el: &str, attr: &str, from: &[&'static str]) {
        self.w(&format!("<{el}"));
        self.attr(attr, from, 1);
        self.w("/>");
    }

    fn link(&mut self) {
        self.w("<link");
        self.attr("speed", NUMS, 2);
        self.attr("state", &["up", "down", "unknown", "dormant"], 2);
        self.w("/>");
    }

    fn protocol_v4(&mut self) {
        self.w("<protocol family='ipv4'>");
        if self.yes(2) {
            self.w("<dhcp");
            self.attr("peerdns", &["yes", "no"], 2);
            self.w("/>");
        }
        for _ in 0..self.n(2) {
            self.w("<ip");
            self.attr("address", V4, 1);
            self.attr("prefix", &["0", "1", "8", "16", "24", "31", "32"], 1);
            self.w("/>");
        }
        if self.yes(3) {
            self.attr_el("route", "gateway", V4);
        }
        self.w("</protocol>");
    }

    fn protocol_v6(&mut self) {
        self.w("<protocol family='ipv6'>");
        if self.yes(2) {
            self.w("<autoconf/>");
        }
        if self.yes(3) {
            self.w("<dhcp/>");
        }
        for _ in 0..self.n(2) {
            self.w("<ip");
            self.attr("address", V6, 1);
            self.attr("prefix", &["0", "1", "64", "127", "128"], 1);
            self.w("/>");
        }
        if self.yes(3) {
            self.attr_el("route", "gateway", V6);
        }
        self.w("</protocol>");
    }

    fn lv_bridge(&mut self) {
        self.w("<bridge");
        self.attr("stp", &["on", "off"], 2);
        self.attr("delay", DELAYS, 2);
        self.w(">");
        for _ in 0..self.n(3) {
            match self.n(3) {
                0 | 1 => self.lv_port(),
                2 => {
                    self.w("<interface type='bond'");
                    self.attr("name", NAMES, 1);
                    self.w(">");
                    self.lv_bond();
                    self.w("</interface>");
                }
                _ => {
                    self.w("<interface type='vlan'");
                    self.attr("name", NAMES, 3);
                    self.w(">");
                    self.lv_vlan();
                    self.w("</interface>");
                }
            }
        }
        self.w("</bridge>");
    }

    fn lv_port(&mut self) {
        self.w("<interface type='ethernet'");
        self.attr("name", NAMES, 1);
        self.w(">");
        if self.yes(2) {
            self.attr_el("mac", "address", MACS);
        }
        self.w("</interface>");
    }

    fn lv_bond(&mut self) {
        self.w("<bond");
        self.attr("mode", MODES, 2);
        self.w(">");
        match self.n(2) {
            0 => {
                self.w("<miimon");
                self.attr("freq", NUMS, 1);
                self.attr("downdelay", NUMS, 2);
                self.attr("updelay", NUMS, 2);
                self.attr("carrier", &["ioctl", "netif"], 2);
                self.w("/>");
            }
            1 => {
                self.w("<arpmon");
                self.attr("interval", NUMS, 1);
                self.attr("target", V4, 1);
                self.attr("validate", &["none", "active", "backup", "all"], 2);
                self.w("/>");
            }
            _ => {}
        }
        for _ in 0..=self.n(2) {
            self.lv_port();
        }
        self.w("</bond>");
    }

    fn lv_vlan(&mut self) {
        self.w("<vlan");
        self.attr("tag", NUMS, 1);
        self.w(">");
        self.w("<interface");
        self.attr("name", NAMES, 1);
        self.w("/></vlan>");
    }

    // ---- the 2009 draft ----

    fn draft_common(&mut self) {
        if self.yes(3) {
            self.w("<dhcp");
            self.attr("peerdns", &["yes", "no"], 2);
            self.w("/>");
        }
        for _ in 0..self.n(2) {
            self.w("<static");
            self.attr("ipaddr", V4, 1);
            self.attr("netmask", MASKS, 2);
            self.attr("gateway", V4, 3);
            self.w("/>");
        }
        if self.yes(4) {
            let m = self.pick(&["1500", "9000", "68", " 1500 ", "0"]);
            self.w(&format!("<mtu>{m}</mtu>"));
        }
        if self.yes(5) {
            let u = self.pick(UUIDS);
            self.w(&format!("<uuid>{u}</uuid>"));
        }
    }

    fn draft_interface(&mut self) {
        self.w("<interface");
        self.attr("device", NAMES, 1);
        self.attr("onboot", &["yes", "no"], 2);
        self.w(">");
        let variant = self.n(4);
        if matches!(variant, 0 | 3) && self.yes(2) {
            let m = self.pick(MACS);
            self.w(&format!("<hwaddr>{m}</hwaddr>"));
        }
        self.draft_common();
        match variant {
            1 => {
                self.w("<bond");
                self.attr("mode", MODES, 2);
                self.w("/>");
                self.slaves();
            }
            2 => {
                self.w("<vlan");
                self.attr("tag", NUMS, 1);
                self.attr("reorder_hdr", &["yes", "no"], 2);
                self.w("/>");
            }
            3 => {
                self.w("<shared");
                self.attr("bridge", NAMES, 1);
                self.w("/>");
            }
            4 => {
                self.w("<bridge");
                self.attr("stp", &["on", "off"], 2);
                self.w("/>");
                self.members();
            }
            _ => {}
        }
        self.w("</interface>");
    }

    fn slaves(&mut self) {
        for _ in 0..=self.n(2) {
            self.w("<slave");
            self.attr("device", NAMES, 1);
            self.attr("primary", &["yes", "no"], 3);
            self.w("/>");
        }
    }

    fn members(&mut self) {
        for _ in 0..self.n(3) {
            self.w("<member");
            self.attr("device", NAMES, 1);
            self.w("/>");
        }
    }

    fn draft_controller(&mut self) {
        match self.n(2) {
            0 => {
                self.w("<bond");
                self.attr("name", NAMES, 1);
                self.attr("mode", MODES, 2);
                self.attr("onboot", &["yes", "no"], 2);
                self.w(">");
                self.draft_common();
                self.slaves();
                self.w("</bond>");
            }
            1 => {
                self.w("<bridge");
                self.attr("name", NAMES, 1);
                self.attr("stp", &["on", "off"], 2);
                self.attr("onboot", &["yes", "no"], 2);
                self.w(">");
                self.draft_common();
                self.members();
                self.w("</bridge>");
            }
            _ => {
                self.w("<vlan");
                self.attr("device", NAMES, 1);
                self.attr("tag", NUMS, 1);
                self.attr("reorder_hdr", &["yes", "no"], 2);
                self.attr("onboot", &["yes", "no"], 2);
                self.w(">");
                self.draft_common();
                self.w("</vlan>");
            }
        }
    }
}
