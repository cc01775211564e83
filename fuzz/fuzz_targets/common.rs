//! The checks both fuzz targets run on a document (a module of each target, not a target).
//!
//! `tests/hostile.rs` runs the same checks on deterministic mutations of `xml-samples/`.

#![allow(dead_code)] // each target uses part of it

use nmiface::nm::{self, Target};
use nmiface::xml;

/// How much to demand of a document that parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Nothing panics; the canonical XML parses again and writes itself unchanged.
    FixedPoint,
    /// Also: when NetworkManager can take everything (no translation findings), reading the
    /// profiles back gives the same model and the same canonical XML, with no findings.
    RoundTrip,
}

/// Parses `text` and, when it is accepted, runs everything downstream of the parser.
pub fn check(text: &str, depth: Depth) {
    let Ok(doc) = xml::parse_document("fuzz.xml", text) else {
        return;
    };
    let translation = nm::translate(&doc.host, &doc.sources, &Target::default());
    let profiles: Vec<nm::Profile> = translation.profiles().cloned().collect();
    for p in &profiles {
        let _ = nm::to_keyfile(p);
        let _ = p.keyfile_name();
    }
    let (canonical, _) = xml::write_host(&doc.host);
    let back = nm::host_from_profiles(&profiles);

    let reread = match xml::parse_document("canonical.xml", &canonical) {
        Ok(d) => d,
        Err(e) => panic!("canonical XML refused: {e}\n--- input ---\n{text}\n--- canonical ---\n{canonical}"),
    };
    let (again, _) = xml::write_host(&reread.host);
    assert!(
        again == canonical,
        "canonical XML is not a fixed point\n--- input ---\n{text}\n--- canonical ---\n{canonical}\n--- again ---\n{again}"
    );

    if depth == Depth::RoundTrip && translation.findings.is_empty() {
        let back = match back {
            Ok(b) => b,
            Err(e) => panic!("our own profiles refused: {e}\n--- input ---\n{text}"),
        };
        assert!(
            back.findings.is_empty(),
            "reading our own profiles gave findings: {:?}\n--- input ---\n{text}",
            back.findings
        );
        let (rt, _) = xml::write_host(&back.host);
        assert!(
            rt == canonical,
            "XML -> NM -> XML differs\n--- input ---\n{text}\n--- canonical ---\n{canonical}\n--- round trip ---\n{rt}"
        );
        assert!(back.host == doc.host, "models differ after XML -> NM -> model\n--- input ---\n{text}");
    }
}
