//! One test per sample, generated from the files in `xml-samples/` and the compat corpus:
//!
//! - `golden::NAME`: the translation (JSON settings with D-Bus types and findings), the keyfiles
//!   and the canonical libvirt XML equal the files in `nm-fixtures/` (NMIFACE_BLESS=1 rewrites).
//! - `roundtrip::NAME`: XML -> model -> NM profiles -> model -> XML gives the canonical form.
//! - `oracle::NAME`: libvirt's schema and parser accept the sample (libvirt dialect) and our
//!   canonical XML, and libvirt's formatter prints our canonical XML back unchanged.
//! - `invalid::NAME`: the error names the line and contains the expected text.
//! - `compat::NAME`: every netcf/libvirt test document translates (findings allowed) and its
//!   canonical XML passes the oracle. Needs `../shared` (CI has it).
//! - `guard::*`: every golden belongs to a sample; there are enough samples.
//!
//! Checks whose tools are missing are skipped with a banner locally and fail under CI=true.

mod oracle;
mod support;

use libtest_mimic::{Arguments, Failed, Trial};
use nmiface::nm::{self, Target};
use nmiface::report::DocumentReport;
use nmiface::xml;
use std::path::{Path, PathBuf};
use support::*;

fn main() {
    let args = Arguments::from_args();
    let samples = xml_files(&root().join("xml-samples"));
    let invalid = xml_files(&root().join("xml-samples/invalid"));
    let have_oracle = oracle::available();
    if !have_oracle {
        let what = if under_ci() { "FAILING (CI=true)" } else { "SKIPPING" };
        eprintln!("\n*** {what} the libvirt oracle: virsh/virt-xml-validate not installed (integration/install-deps.sh) ***\n");
    }
    let mut trials = Vec::new();
    for s in &samples {
        let name = stem(s);
        let p = s.clone();
        trials.push(Trial::test(format!("golden::{name}"), move || golden_sample(&p)));
        let p = s.clone();
        trials.push(Trial::test(format!("roundtrip::{name}"), move || roundtrip(&p)));
        let p = s.clone();
        trials.push(oracle_trial(format!("oracle::{name}"), have_oracle, move || oracle_sample(&p)));
    }
    for s in &invalid {
        let p = s.clone();
        trials.push(Trial::test(format!("invalid::{}", stem(s)), move || invalid_sample(&p)));
    }
    let compat = root().join("../shared/compat/interface-xml");
    if compat.is_dir() {
        for s in xml_files(&compat) {
            let p = s.clone();
            trials.push(oracle_trial(format!("compat::{}", stem(&s)), have_oracle, move || compat_sample(&p)));
        }
    } else {
        let msg = format!("compat corpus not found at {}", compat.display());
        if under_ci() {
            trials.push(Trial::test("compat::corpus", move || Err(format!("{msg}; CI must run it").into())));
        } else {
            eprintln!("\n*** SKIPPING the compat corpus: {msg} ***\n");
            trials.push(Trial::test("compat::corpus", || Ok(())).with_ignored_flag(true));
        }
    }
    // What `tap add` prints for the VM must be a valid device of a libvirt domain.
    trials.push(oracle_trial("oracle::tap_interface_in_a_domain".into(), have_oracle, || {
        let snippet =
            nm::tap::libvirt_interface("vtap0", Some("52:54:00:4e:4d:20")) + &nm::tap::libvirt_interface("vtap1", None);
        Ok(oracle::domain_accepts(&snippet, "tap")?)
    }));
    let n = (samples.len(), invalid.len());
    trials.push(Trial::test("guard::enough_samples", move || {
        if n.0 < 30 || n.1 < 30 {
            return Err(format!("{} valid and {} invalid samples; at least 30 of each are required", n.0, n.1).into());
        }
        Ok(())
    }));
    trials.push(Trial::test("guard::no_orphan_goldens", move || orphans(&samples)));
    libtest_mimic::run(&args, trials).exit();
}

/// A trial that needs virsh: ignored locally without it, failing under CI.
fn oracle_trial(name: String, available: bool, f: impl FnOnce() -> Result<(), Failed> + Send + 'static) -> Trial {
    match (available, under_ci()) {
        (true, _) => Trial::test(name, f),
        (false, true) => Trial::test(name, || Err("virsh and virt-xml-validate are required under CI".into())),
        (false, false) => Trial::test(name, || Ok(())).with_ignored_flag(true),
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

fn parse(p: &Path) -> Result<xml::Document, Failed> {
    xml::parse_document(&rel(p), &read(p)).map_err(|e| format!("valid sample refused: {e}").into())
}

fn golden_sample(p: &Path) -> Result<(), Failed> {
    let doc = parse(p)?;
    let target = Target::default();
    let t = nm::translate(&doc.host, &doc.sources, &target);
    let mut findings = doc.findings.clone();
    findings.extend(t.findings.iter().cloned());
    let source = rel(p);
    let report = DocumentReport::new(&source, &target, &t, &findings);
    let fixtures = root().join("nm-fixtures");
    let name = stem(p);
    golden(&fixtures.join(format!("{name}.json")), &(serde_json::to_string_pretty(&report).unwrap() + "\n"))?;
    golden(&fixtures.join(format!("{name}.canonical.xml")), &xml::write_host(&doc.host).0)?;
    golden(&fixtures.join(format!("{name}.gaps.json")), &gap_table(&doc))?;
    let dir = fixtures.join(&name);
    let mut expected: Vec<String> = Vec::new();
    for prof in t.profiles() {
        expected.push(prof.keyfile_name());
        golden(&dir.join(prof.keyfile_name()), &nm::to_keyfile(prof))?;
    }
    // A keyfile golden that no profile produces any more is stale.
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    present.retain(|f| !expected.contains(f));
    if !present.is_empty() {
        if blessing() {
            for f in present {
                let _ = std::fs::remove_file(dir.join(f));
            }
        } else {
            return Err(format!("stale keyfile goldens in {}: {present:?}", dir.display()).into());
        }
    }
    Ok(())
}

fn roundtrip(p: &Path) -> Result<(), Failed> {
    let doc = parse(p)?;
    let canonical = xml::write_host(&doc.host).0;
    // The newest NetworkManager takes every extension; older targets leave some out (findings).
    let t = nm::translate(&doc.host, &doc.sources, &Target { nm: nm::NmVersion::new(1, 58, 0) });
    let profiles: Vec<_> = t.profiles().cloned().collect();
    let back = nm::host_from_profiles(&profiles).map_err(|e| e.to_string())?;
    if !back.findings.is_empty() {
        return Err(format!("reading our own profiles back gave findings: {:?}", back.findings).into());
    }
    let again = xml::write_host(&back.host).0;
    if again != canonical {
        return Err(format!(
            "XML -> NM -> XML differs from the canonical form:\n{}",
            similar_asserts::SimpleDiff::from_str(&canonical, &again, "canonical", "round trip")
        )
        .into());
    }
    if back.host != doc.host {
        return Err(format!("models differ:\n{:#?}\nvs\n{:#?}", doc.host, back.host).into());
    }
    // The canonical form is a fixed point: reading it again changes nothing.
    let reread = xml::parse_document("canonical", &canonical).map_err(|e| format!("canonical XML refused: {e}"))?;
    if xml::write_host(&reread.host).0 != canonical {
        return Err("canonical XML is not a fixed point".into());
    }
    Ok(())
}

/// The capability report offline for the NetworkManager versions distributions ship, from
/// Debian 11's 1.30 to 1.58: one golden table per sample.
fn gap_table(doc: &xml::Document) -> String {
    use nmiface::gaps;
    let mut table = serde_json::Map::new();
    for minor in [30, 36, 42, 46, 52, 58] {
        let nm = nm::NmVersion::new(1, minor, 0);
        let t = nm::translate(&doc.host, &doc.sources, &Target { nm });
        let mut findings = doc.findings.clone();
        findings.extend(t.findings);
        let facts = gaps::Facts {
            nm,
            nm_source: "--nm-version",
            kernel: None,
            probed: Vec::new(),
            runtime: None,
            devices: None,
        };
        table.insert(nm.to_string(), serde_json::to_value(gaps::assess(&doc.host, &findings, &facts)).unwrap());
    }
    serde_json::to_string_pretty(&table).unwrap() + "\n"
}

/// The interface without nmiface's extensions: what libvirt itself keeps of it.
fn plain(iface: &nmiface::model::Interface) -> nmiface::model::Interface {
    use nmiface::model::{Bond, Kind, Member, Monitor, Vlan};
    fn bond(b: &mut Bond) {
        b.options = Default::default();
        for p in &mut b.ports {
            p.port = Default::default();
        }
        if let Some(Monitor::Arp { more_targets, .. }) = &mut b.monitor {
            more_targets.clear();
        }
    }
    fn vlan(v: &mut Vlan) {
        v.ext = Default::default();
        v.reorder_hdr = true;
    }
    let mut i = iface.clone();
    if let Some(v6) = &mut i.ipv6 {
        v6.extra = Default::default();
    }
    if let Some(v4) = &mut i.ipv4 {
        v4.nat = false;
        v4.extra = Default::default();
        if v4.addresses.is_empty() && v4.dhcp.is_none() {
            i.ipv4 = None;
        }
    }
    match &mut i.kind {
        Kind::Bond(b) => bond(b),
        Kind::Vlan(v) => vlan(v),
        Kind::Bridge(br) => {
            for m in &mut br.ports {
                match m {
                    Member::Bond { bond: b, .. } => bond(b),
                    Member::Vlan { vlan: v, .. } => vlan(v),
                    Member::Ethernet(_) => {}
                }
            }
        }
        Kind::Ethernet(_) => {}
    }
    i
}

/// Each interface's canonical XML passes libvirt's schema, parser and formatter (without
/// nmiface's extensions, which libvirt's schema does not know; its parser ignores them).
fn oracle_canonical(doc: &xml::Document, label: &str) -> Result<(), Failed> {
    for iface in &doc.host.interfaces {
        let (text, _) = xml::write_interface(&plain(iface));
        oracle::round_trips(&text, iface.name.as_str(), label)
            .map_err(|e| format!("canonical XML of {}: {e}", iface.name))?;
    }
    Ok(())
}

fn oracle_sample(p: &Path) -> Result<(), Failed> {
    let name = stem(p);
    if name.starts_with("libvirt-") {
        let text = read(p);
        let plain = oracle::without_extensions(&text);
        if plain != text {
            // libvirt's schema knows no other namespace, so the sample passes it without
            // nmiface's elements; libvirt's parser (no --validate) takes it whole.
            oracle::parser_accepts(&text, &name).map_err(|e| format!("the sample itself: {e}"))?;
        }
        oracle::accepts(&plain, &name).map_err(|e| format!("the sample itself: {e}"))?;
    }
    oracle_canonical(&parse(p)?, &name)
}

fn compat_sample(p: &Path) -> Result<(), Failed> {
    let doc =
        xml::parse_document(&p.display().to_string(), &read(p)).map_err(|e| format!("compat document refused: {e}"))?;
    nm::translate(&doc.host, &doc.sources, &Target::default());
    oracle_canonical(&doc, &format!("compat-{}", stem(p)))
}

fn invalid_sample(p: &Path) -> Result<(), Failed> {
    let text = read(p);
    let first = text.lines().next().unwrap_or("");
    let spec = first
        .strip_prefix("<!-- expect:")
        .and_then(|s| s.strip_suffix("-->"))
        .ok_or_else(|| format!("first line must be <!-- expect: LINE: TEXT -->, found {first:?}"))?;
    let (line, token) = spec.trim().split_once(':').ok_or("expect needs LINE: TEXT")?;
    let line: u32 = line.trim().parse().map_err(|_| "expect LINE is not a number")?;
    let token = token.trim();
    match xml::parse_document(&rel(p), &text) {
        Ok(_) => Err(format!("accepted; expected an error at line {line} containing {token:?}").into()),
        Err(e) => {
            let msg = e.to_string();
            if e.location.line != line || !msg.contains(token) {
                return Err(format!("expected line {line} and {token:?}, got: {msg}").into());
            }
            Ok(())
        }
    }
}

fn orphans(samples: &[PathBuf]) -> Result<(), Failed> {
    let names: Vec<String> = samples.iter().map(|s| stem(s)).collect();
    let mut orphans = Vec::new();
    for e in std::fs::read_dir(root().join("nm-fixtures")).map_err(|e| e.to_string())?.flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        let base = f.trim_end_matches(".gaps.json").trim_end_matches(".json").trim_end_matches(".canonical.xml");
        if f != "README.md" && !names.iter().any(|n| n == base) {
            orphans.push(f);
        }
    }
    if orphans.is_empty() {
        Ok(())
    } else {
        Err(format!("golden files without a sample: {orphans:?}").into())
    }
}
