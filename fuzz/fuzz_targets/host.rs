//! Host files: the fuzzer's bytes choose an `<interfaces>` document of 1-5 items from both
//! dialects (libvirt's `<interface type=…>` with nested ports, the draft's
//! `<interface device=…>` with `<bond>`, `<bridge>`, `<vlan>` or `<shared>`, and its top-level
//! `<bond>`, `<bridge>`, `<vlan>` with `<slave>`/`<member>`), over a handful of names, so that
//! repeated names, self-references and cycles are common. Port resolution must be total: no
//! panic, no hang, every refusal located; what is accepted goes through the fixed-point checks.
//! `tests/generated.rs` runs the same grammar, seeded, in `cargo test`.
#![no_main]

mod common;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use nmiface::xml;

fuzz_target!(|data: &[u8]| {
    let mut g = Gen { u: Unstructured::new(data), out: String::new() };
    g.document();
    if let Err(e) = xml::parse_document("host.xml", &g.out) {
        let lines = g.out.split('\n').count() as u32;
        assert!(
            (1..=lines).contains(&e.location.line) && e.location.column >= 1,
            "error outside the document: {e}\n{}",
            g.out
        );
        assert!(!e.path.is_empty() || e.message.contains('<'), "error names no element: {e}\n{}", g.out);
        return;
    }
    common::check(&g.out, common::Depth::FixedPoint);
});

/// Few names, so that definitions, ports and parents collide.
const NAMES: &[&str] = &["eth0", "eth1", "eth2", "br0", "bond0", "eth0.10", "vlan10"];
const MACS: &[&str] = &["52:54:00:00:00:01", "52:54:00:00:00:02"];
const TAGS: &[&str] = &["10", "20", "4095"];

/// Writes one document, choosing with the fuzzer's bytes (zeros once they run out).
struct Gen<'a> {
    u: Unstructured<'a>,
    out: String,
}

impl Gen<'_> {
    fn n(&mut self, max: usize) -> usize {
        self.u.int_in_range(0..=max).unwrap_or(0)
    }
    fn pick(&mut self, from: &[&'static str]) -> &'static str {
        from[self.n(from.len() - 1)]
    }
    fn w(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn document(&mut self) {
        let items = self.n(4) + 1;
        let wrap = items > 1 || self.n(1) == 0;
        if wrap {
            self.w("<interfaces>\n");
        }
        for _ in 0..items {
            self.item();
            self.w("\n");
        }
        if wrap {
            self.w("</interfaces>\n");
        }
    }

    fn item(&mut self) {
        let n = self.pick(NAMES);
        match self.n(11) {
            0 => {
                self.w(&format!("<interface type='ethernet' name='{n}'>"));
                if self.n(2) == 0 {
                    let m = self.pick(MACS);
                    self.w(&format!("<mac address='{m}'/>"));
                }
                self.protocol();
                self.w("</interface>");
            }
            1 => {
                self.w(&format!("<interface type='bridge' name='{n}'>"));
                self.protocol();
                self.w("<bridge>");
                for _ in 0..self.n(3) {
                    self.bridge_port();
                }
                self.w("</bridge></interface>");
            }
            2 => {
                self.w(&format!("<interface type='bond' name='{n}'>"));
                self.protocol();
                self.bond();
                self.w("</interface>");
            }
            3 => {
                let (t, p) = (self.pick(TAGS), self.pick(NAMES));
                self.w(&format!(
                    "<interface type='vlan' name='{n}'><vlan tag='{t}'><interface name='{p}'/></vlan></interface>"
                ));
            }
            4 => {
                self.w(&format!("<interface device='{n}'>"));
                if self.n(2) == 0 {
                    let m = self.pick(MACS);
                    self.w(&format!("<hwaddr>{m}</hwaddr>"));
                }
                self.draft_ip();
                self.w("</interface>");
            }
            5 => {
                self.w(&format!("<interface device='{n}'><bond mode='active-backup'/>"));
                self.children("slave", 1);
                self.w("</interface>");
            }
            6 => {
                let t = self.pick(TAGS);
                self.w(&format!("<interface device='{n}'><vlan tag='{t}'/></interface>"));
            }
            7 => {
                let b = self.pick(NAMES);
                let mode = if self.n(4) == 0 { " mode='nat'" } else { "" };
                self.w(&format!("<interface device='{n}'><shared bridge='{b}'{mode}/></interface>"));
            }
            8 => {
                self.w(&format!("<interface device='{n}'><bridge stp='off'/>"));
                self.children("member", 0);
                self.w("</interface>");
            }
            9 => {
                self.w(&format!("<bond name='{n}' mode='balance-rr'>"));
                self.children("slave", 1);
                self.draft_ip();
                self.w("</bond>");
            }
            10 => {
                self.w(&format!("<bridge name='{n}' stp='on'>"));
                self.children("member", 0);
                self.draft_ip();
                self.w("</bridge>");
            }
            _ => {
                let t = self.pick(TAGS);
                self.w(&format!("<vlan device='{n}' tag='{t}'/>"));
            }
        }
    }

    /// `<slave device=…/>` or `<member device=…/>`, at least `min`, at most 3.
    fn children(&mut self, element: &str, min: usize) {
        for _ in 0..min + self.n(3 - min) {
            let d = self.pick(NAMES);
            self.w(&format!("<{element} device='{d}'/>"));
        }
    }

    fn protocol(&mut self) {
        match self.n(3) {
            0 => self.w("<protocol family='ipv4'><dhcp/></protocol>"),
            1 => self.w("<protocol family='ipv4'><ip address='10.0.0.1' prefix='24'/></protocol>"),
            _ => {}
        }
    }

    fn draft_ip(&mut self) {
        match self.n(3) {
            0 => self.w("<dhcp/>"),
            1 => self.w("<static ipaddr='10.0.0.2' netmask='255.255.255.0'/>"),
            _ => {}
        }
    }

    fn bond(&mut self) {
        self.w("<bond mode='active-backup'>");
        for _ in 0..self.n(2) + 1 {
            let p = self.pick(NAMES);
            self.w(&format!("<interface type='ethernet' name='{p}'/>"));
        }
        self.w("</bond>");
    }

    fn bridge_port(&mut self) {
        let n = self.pick(NAMES);
        match self.n(2) {
            0 => self.w(&format!("<interface type='ethernet' name='{n}'/>")),
            1 => {
                self.w(&format!("<interface type='bond' name='{n}'>"));
                self.bond();
                self.w("</interface>");
            }
            _ => {
                let (t, p) = (self.pick(TAGS), self.pick(NAMES));
                self.w(&format!(
                    "<interface type='vlan' name='{n}'><vlan tag='{t}'><interface name='{p}'/></vlan></interface>"
                ));
            }
        }
    }
}
