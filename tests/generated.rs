//! Host files built from a grammar of both dialects, thousands per run: libvirt's
//! `<interface type=…>` with nested ports, the 2009 draft's `<interface device=…>` (plain, with
//! `<bond>`, `<bridge>`, `<vlan>` or `<shared bridge=…/>`), and its top-level `<bond>`,
//! `<bridge>` and `<vlan>` with `<slave>`/`<member>`. Names come from a small pool, so repeated
//! names, self-references and cycles are common.
//!
//! For every document: `parse_document` neither panics nor takes more than 2 s (a watchdog
//! fails the test and prints the document), and every refusal is located (line and column
//! inside the document, a path or a message naming the element); what is accepted translates,
//! writes keyfiles and canonical XML without panicking. See: issue 11 ("Never hang, never
//! panic").
//!
//! The seed is printed; `NMIFACE_GEN_SEED=N` repeats a run, `NMIFACE_GEN_COUNT=N` changes its
//! length.

mod common;

use common::Rng;
use nmiface::nm::{self, Target};
use nmiface::xml;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Few names, so that definitions, ports and parents collide often.
const NAMES: [&str; 7] = ["eth0", "eth1", "eth2", "br0", "bond0", "eth0.10", "vlan10"];
const MACS: [&str; 2] = ["52:54:00:00:00:01", "52:54:00:00:00:02"];

/// One top-level item of either dialect.
fn item(r: &mut Rng, out: &mut String) {
    let n = r.pick(&NAMES);
    match r.below(12) {
        0 => {
            out.push_str(&format!("<interface type='ethernet' name='{n}'>"));
            if r.chance(30) {
                out.push_str(&format!("<mac address='{}'/>", r.pick(&MACS)));
            }
            protocol(r, out);
            out.push_str("</interface>");
        }
        1 => {
            out.push_str(&format!("<interface type='bridge' name='{n}'>"));
            protocol(r, out);
            out.push_str("<bridge>");
            for _ in 0..r.below(4) {
                libvirt_bridge_port(r, out);
            }
            out.push_str("</bridge></interface>");
        }
        2 => {
            out.push_str(&format!("<interface type='bond' name='{n}'>"));
            protocol(r, out);
            libvirt_bond(r, out);
            out.push_str("</interface>");
        }
        3 => {
            let named = if r.chance(70) { format!(" name='{n}'") } else { String::new() };
            out.push_str(&format!("<interface type='vlan'{named}>"));
            protocol(r, out);
            out.push_str(&format!("<vlan tag='{}'><interface name='{}'/></vlan></interface>", tag(r), r.pick(&NAMES)));
        }
        4 => {
            out.push_str(&format!("<interface device='{n}'>"));
            if r.chance(30) {
                out.push_str(&format!("<hwaddr>{}</hwaddr>", r.pick(&MACS)));
            }
            draft_ip(r, out);
            out.push_str("</interface>");
        }
        5 => {
            out.push_str(&format!("<interface device='{n}'><bond mode='active-backup'/>"));
            for _ in 0..r.below(3) + 1 {
                out.push_str(&format!("<slave device='{}'/>", r.pick(&NAMES)));
            }
            draft_ip(r, out);
            out.push_str("</interface>");
        }
        6 => out.push_str(&format!("<interface device='{n}'><vlan tag='{}'/></interface>", tag(r))),
        7 => {
            let mode = if r.chance(20) { " mode='nat'" } else { "" };
            out.push_str(&format!("<interface device='{n}'><shared bridge='{}'{mode}/>", r.pick(&NAMES)));
            if mode.is_empty() {
                draft_ip(r, out);
            }
            out.push_str("</interface>");
        }
        8 => {
            out.push_str(&format!("<interface device='{n}'><bridge stp='off'/>"));
            for _ in 0..r.below(3) {
                out.push_str(&format!("<member device='{}'/>", r.pick(&NAMES)));
            }
            draft_ip(r, out);
            out.push_str("</interface>");
        }
        9 => {
            out.push_str(&format!("<bond name='{n}' mode='balance-rr'>"));
            for _ in 0..r.below(3) + 1 {
                out.push_str(&format!("<slave device='{}'/>", r.pick(&NAMES)));
            }
            draft_ip(r, out);
            out.push_str("</bond>");
        }
        10 => {
            out.push_str(&format!("<bridge name='{n}' stp='on'>"));
            for _ in 0..r.below(3) {
                out.push_str(&format!("<member device='{}'/>", r.pick(&NAMES)));
            }
            draft_ip(r, out);
            out.push_str("</bridge>");
        }
        _ => out.push_str(&format!("<vlan device='{n}' tag='{}'/>", tag(r))),
    }
}

/// Tags that make `eth0.10` and `vlan10`-style names collide with defined ones.
fn tag(r: &mut Rng) -> &'static str {
    r.pick(&["10", "20", "4095"])
}

fn protocol(r: &mut Rng, out: &mut String) {
    match r.below(4) {
        0 => out.push_str("<protocol family='ipv4'><dhcp/></protocol>"),
        1 => out.push_str("<protocol family='ipv4'><ip address='10.0.0.1' prefix='24'/></protocol>"),
        _ => {}
    }
}

fn draft_ip(r: &mut Rng, out: &mut String) {
    match r.below(4) {
        0 => out.push_str("<dhcp/>"),
        1 => out.push_str("<static ipaddr='10.0.0.2' netmask='255.255.255.0'/>"),
        _ => {}
    }
}

fn libvirt_bond(r: &mut Rng, out: &mut String) {
    out.push_str("<bond mode='active-backup'>");
    for _ in 0..r.below(3) + 1 {
        out.push_str(&format!("<interface type='ethernet' name='{}'/>", r.pick(&NAMES)));
    }
    out.push_str("</bond>");
}

fn libvirt_bridge_port(r: &mut Rng, out: &mut String) {
    let n = r.pick(&NAMES);
    match r.below(3) {
        0 => out.push_str(&format!("<interface type='ethernet' name='{n}'/>")),
        1 => {
            out.push_str(&format!("<interface type='bond' name='{n}'>"));
            libvirt_bond(r, out);
            out.push_str("</interface>");
        }
        _ => out.push_str(&format!(
            "<interface type='vlan' name='{n}'><vlan tag='{}'><interface name='{}'/></vlan></interface>",
            tag(r),
            r.pick(&NAMES)
        )),
    }
}

/// A host file of 1–5 items, one per line (so that line numbers in errors mean something);
/// a single item is sometimes a document of its own.
fn document(r: &mut Rng) -> String {
    let n = r.below(5) + 1;
    let mut out = String::new();
    let wrap = n > 1 || r.chance(50);
    if wrap {
        out.push_str("<interfaces>\n");
    }
    for _ in 0..n {
        item(r, &mut out);
        out.push('\n');
    }
    if wrap {
        out.push_str("</interfaces>\n");
    }
    out
}

/// What one document did.
enum Outcome {
    Accepted,
    Refused,
}

/// Parses and, when accepted, runs everything downstream; panics on a broken promise.
fn check(text: &str) -> Outcome {
    let doc = match xml::parse_document("gen.xml", text) {
        Ok(doc) => doc,
        Err(e) => {
            assert_located(text, &e);
            return Outcome::Refused;
        }
    };
    let t = nm::translate(&doc.host, &doc.sources, &Target::default());
    for p in t.profiles() {
        let _ = nm::to_keyfile(p);
        let _ = p.keyfile_name();
    }
    let _ = xml::write_host(&doc.host);
    Outcome::Accepted
}

/// The error names a line and column inside the document, and a path or an element.
fn assert_located(text: &str, e: &xml::XmlError) {
    let lines = text.split('\n').count() as u32;
    let shown = e.to_string();
    assert!(
        (1..=lines).contains(&e.location.line) && e.location.column >= 1,
        "error position {} outside the document ({lines} lines): {shown}",
        e.location
    );
    assert!(!e.path.is_empty() || e.message.contains('<'), "error names no element: {shown}");
    assert!(shown.starts_with(&format!("gen.xml:{}:{}: ", e.location.line, e.location.column)), "{shown}");
}

/// Runs `work` on its own thread and watches it: the thread reports each document before
/// parsing it, and one that takes longer than `limit` fails the test with the document.
/// (A hung thread cannot be stopped; it is left behind and dies with the test process.)
fn watched(limit: Duration, work: impl FnOnce(&mpsc::Sender<Option<String>>) + Send + 'static) {
    let (tx, rx) = mpsc::channel::<Option<String>>();
    let worker = std::thread::spawn(move || work(&tx));
    let mut current: Option<(String, Instant)> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(doc)) => current = Some((doc, Instant::now())),
            Ok(None) => current = None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some((doc, since)) = &current {
            assert!(since.elapsed() < limit, "no answer after {limit:?} (a hang?) on this document:\n{doc}");
        }
    }
    if let Err(p) = worker.join() {
        panic::resume_unwind(p);
    }
}

/// Parses `text` under the watchdog and the panic guard; the document is in every failure.
fn parse_watched(text: &str) -> Result<xml::Document, xml::XmlError> {
    let owned = text.to_string();
    let (out_tx, out_rx) = mpsc::channel();
    watched(Duration::from_secs(2), move |tx| {
        tx.send(Some(owned.clone())).unwrap();
        let r = panic::catch_unwind(AssertUnwindSafe(|| xml::parse_document("gen.xml", &owned)));
        tx.send(None).unwrap();
        match r {
            Ok(r) => out_tx.send(r).unwrap(),
            Err(_) => panic!("parse_document panicked on this document:\n{owned}"),
        }
    });
    out_rx.recv().unwrap()
}

fn seed() -> u64 {
    match std::env::var("NMIFACE_GEN_SEED") {
        Ok(s) => s.parse().expect("NMIFACE_GEN_SEED is a number"),
        Err(_) => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            // xorshift needs a non-zero state.
            (nanos.as_nanos() as u64) | 1
        }
    }
}

#[test]
fn generated_host_files_never_hang_panic_or_go_unlocated() {
    let seed = seed();
    let count: usize = std::env::var("NMIFACE_GEN_COUNT").ok().and_then(|c| c.parse().ok()).unwrap_or(4000);
    eprintln!("generated host files: seed {seed} (repeat with NMIFACE_GEN_SEED={seed}), {count} documents");
    let (stats_tx, stats_rx) = mpsc::channel();
    watched(Duration::from_secs(2), move |tx| {
        let mut r = Rng(seed);
        let (mut accepted, mut refused) = (0usize, 0usize);
        for _ in 0..count {
            let text = document(&mut r);
            tx.send(Some(text.clone())).unwrap();
            match panic::catch_unwind(AssertUnwindSafe(|| check(&text))) {
                Ok(Outcome::Accepted) => accepted += 1,
                Ok(Outcome::Refused) => refused += 1,
                Err(_) => panic!("panicked (seed {seed}) on this document:\n{text}"),
            }
            tx.send(None).unwrap();
        }
        stats_tx.send((accepted, refused)).unwrap();
    });
    let (accepted, refused) = stats_rx.recv().unwrap();
    eprintln!("generated host files: {accepted} accepted, {refused} refused");
    // The grammar must reach both sides, or it tests nothing.
    assert!(accepted > count / 20 && refused > count / 20, "{accepted} accepted, {refused} refused");
}

/// See: issue 11. The draft's `<bridge>` named like the NIC it holds, next to that NIC: the
/// port merge followed "eth0 merged into eth0" forever at 100% CPU.
#[test]
fn name_defined_twice_and_used_as_its_own_port_is_refused_not_a_hang() {
    let text = "<interfaces>\n<interface type='ethernet' name='eth0'/>\n<bridge name='eth0'><member device='eth0'/></bridge>\n</interfaces>\n";
    let e = parse_watched(text).unwrap_err();
    assert_located(text, &e);
    assert_eq!(e.location.line, 3, "{e}");
    assert!(e.message.contains("'eth0' is defined twice"), "{e}");
}

/// See: issue 11. A bridge whose port has the bridge's own name, and that name defined again:
/// `merge` reached an `unreachable!` (exit 101).
#[test]
fn bridge_port_named_like_its_bridge_is_refused_not_a_panic() {
    let text = "<interfaces>\n<interface type='bridge' name='br0'><bridge><interface type='ethernet' name='br0'/></bridge></interface>\n<interface type='ethernet' name='br0'/>\n</interfaces>\n";
    let e = parse_watched(text).unwrap_err();
    assert_located(text, &e);
    // Alone, the self-port is refused as such, pointing at the port element.
    let alone = "<interface type='bridge' name='br0'>\n<bridge>\n<interface type='ethernet' name='br0'/>\n</bridge>\n</interface>\n";
    let e = parse_watched(alone).unwrap_err();
    assert_eq!((e.location.line, e.location.column), (3, 1), "{e}");
    assert!(e.message.contains("'br0' lists itself as one of its ports"), "{e}");
}

/// A draft NIC defined twice and claimed once: before, the second definition was merged into
/// the same port as the first and accepted silently.
#[test]
fn nic_defined_twice_next_to_its_bridge_is_refused() {
    let text = "<interfaces>\n<interface device='eth0'/>\n<bridge name='br0'><member device='eth0'/></bridge>\n<interface device='eth0'/>\n</interfaces>\n";
    let e = parse_watched(text).unwrap_err();
    assert_eq!(e.location.line, 4, "{e}");
    assert!(e.message.contains("'eth0' is defined twice"), "{e}");
}
