//! Hostile input, deterministically: every file in `xml-samples/` mutated by a fixed-seed
//! xorshift generator (byte flips, truncations, deleted and duplicated lines, inserted markup
//! characters, NUL, 4-byte UTF-8, very long values, deep nesting), plus hand-made attacks
//! (deep nesting, oversize documents, entity expansion, external entities, huge attributes,
//! very many interfaces).
//!
//! For every input: `parse_document` does not panic, and either refuses it with an error that
//! names a line and column inside the document, or accepts it; then translation, keyfiles,
//! the canonical writer and the way back from profiles do not panic, and the canonical XML is
//! a fixed point (it parses and writes itself unchanged). `fuzz/` runs the same checks
//! coverage-guided.

mod common;

use common::Rng;
use nmiface::nm::{self, Target};
use nmiface::xml;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `*.xml` under `dir`, recursively, sorted.
fn xml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            xml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "xml") {
            out.push(p);
        }
    }
}

/// What `parse_document` returned, checked; `Some` with the canonical XML when accepted.
fn check(label: &str, text: &str) -> Option<String> {
    let run = || check_unguarded(text);
    match panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(_) => {
            let shown: String = text.chars().take(4000).collect();
            panic!("{label}: panicked on this input ({} bytes):\n{shown}", text.len());
        }
    }
}

fn check_unguarded(text: &str) -> Option<String> {
    let doc = match xml::parse_document("hostile.xml", text) {
        Ok(doc) => doc,
        Err(e) => {
            assert_located(text, &e);
            return None;
        }
    };
    let translation = nm::translate(&doc.host, &doc.sources, &Target::default());
    let profiles: Vec<nm::Profile> = translation.profiles().cloned().collect();
    for p in &profiles {
        let _ = nm::to_keyfile(p);
        let _ = p.keyfile_name();
    }
    let _ = nm::host_from_profiles(&profiles);
    let (canonical, _) = xml::write_host(&doc.host);
    let reread = xml::parse_document("canonical.xml", &canonical).unwrap_or_else(|e| {
        panic!("canonical XML refused: {e}\n--- input ---\n{text}\n--- canonical ---\n{canonical}")
    });
    let (again, _) = xml::write_host(&reread.host);
    assert!(
        again == canonical,
        "canonical XML is not a fixed point\n--- input ---\n{text}\n--- canonical ---\n{canonical}\n--- again ---\n{again}"
    );
    Some(canonical)
}

/// The error names `hostile.xml:LINE:COLUMN:` with a position inside the document.
fn assert_located(text: &str, e: &xml::XmlError) {
    let shown = e.to_string();
    let prefix = format!("hostile.xml:{}:{}: ", e.location.line, e.location.column);
    assert!(shown.starts_with(&prefix), "error without line:column: {shown}");
    let lines = text.split('\n').count() as u32;
    assert!(
        (1..=lines).contains(&e.location.line) && e.location.column >= 1,
        "error position {} outside the document ({lines} lines): {shown}",
        e.location
    );
    let line_text = text.split('\n').nth(e.location.line as usize - 1).unwrap_or("");
    assert!(
        e.location.column as usize <= line_text.chars().count() + 1,
        "error column {} past the end of line {}: {shown}",
        e.location.column,
        e.location.line
    );
}

/// The largest char boundary at or below `i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn insert_at(rng: &mut Rng, s: &str, what: &str) -> String {
    let at = floor_boundary(s, rng.below(s.len() + 1));
    format!("{}{what}{}", &s[..at], &s[at..])
}

/// Replaces the value of a random attribute (the text after `='`) with `value`.
fn replace_attr_value(rng: &mut Rng, s: &str, value: &str) -> Option<String> {
    let starts: Vec<usize> = s.match_indices("='").map(|(i, _)| i + 2).collect();
    let start = *starts.get(rng.below(starts.len().max(1)))?;
    let end = start + s[start..].find('\'')?;
    Some(format!("{}{value}{}", &s[..start], &s[end..]))
}

/// One random mutation of `s`, described for the failure message.
fn mutate(rng: &mut Rng, s: &str) -> (String, Option<String>) {
    const INSERTS: [&str; 12] = ["<", "&", "\"", "'", "\0", "\u{1F600}", ">", "/>", "&amp;", "]]>", "<!--", "&#0;"];
    match rng.below(8) {
        0 => {
            // Flip a few bits: may give invalid UTF-8, which is the caller's job (skipped).
            let mut b = s.as_bytes().to_vec();
            for _ in 0..=rng.below(3) {
                let i = rng.below(b.len().max(1));
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << rng.below(8);
                }
            }
            ("bit flips".into(), String::from_utf8(b).ok())
        }
        1 | 2 => {
            let what = INSERTS[rng.below(INSERTS.len())];
            (format!("insert {what:?}"), Some(insert_at(rng, s, what)))
        }
        3 => {
            let mut lines: Vec<&str> = s.split('\n').collect();
            let i = rng.below(lines.len());
            lines.remove(i);
            (format!("delete line {}", i + 1), Some(lines.join("\n")))
        }
        4 => {
            let mut lines: Vec<&str> = s.split('\n').collect();
            let i = rng.below(lines.len());
            lines.insert(i, lines[i]);
            (format!("duplicate line {}", i + 1), Some(lines.join("\n")))
        }
        5 => {
            let fill = ["A", "\u{1F600}", "&amp;", " ", "1"][rng.below(5)];
            let value = fill.repeat(1 + rng.below(20_000));
            ("long attribute value".into(), replace_attr_value(rng, s, &value))
        }
        6 => {
            let depth = 1 + rng.below(64);
            let (open, close) = ["<interface>", "<bridge>", "<a>", "<protocol family='ipv4'>"]
                .map(|t| (t, format!("</{}>", t[1..].split(['>', ' ']).next().unwrap())))[rng.below(4)]
            .clone();
            let nested = format!("{}{}", open.repeat(depth), close.repeat(depth));
            (format!("nest {depth} x {open}"), Some(insert_at(rng, s, &nested)))
        }
        _ => {
            // Swap a random character for a 4-byte one or a NUL.
            let at = floor_boundary(s, rng.below(s.len().max(1)));
            let next = s[at..].chars().next().map_or(0, char::len_utf8);
            let with = if rng.below(2) == 0 { "\u{10FFFF}" } else { "\0" };
            ("replace a character".into(), Some(format!("{}{with}{}", &s[..at], &s[at + next..])))
        }
    }
}

const MUTATIONS_PER_FILE: usize = 60;
/// About this many truncations per file, evenly spaced.
const TRUNCATIONS_PER_FILE: usize = 24;

#[test]
fn mutated_samples() {
    let mut files = Vec::new();
    xml_files(&root().join("xml-samples"), &mut files);
    assert!(files.len() > 50, "xml-samples/ holds only {} documents", files.len());
    let mut rng = Rng(0x6E6D_6966_6163_6521);
    let (mut accepted, mut refused, mut skipped) = (0usize, 0usize, 0usize);
    let mut tally = |r: Option<Option<String>>| match r {
        Some(Some(_)) => accepted += 1,
        Some(None) => refused += 1,
        None => skipped += 1,
    };
    for f in &files {
        let name = f.strip_prefix(root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        tally(Some(check(&name, &text)));
        let step = (text.len() / TRUNCATIONS_PER_FILE).max(1);
        for cut in (0..text.len()).step_by(step) {
            let cut = floor_boundary(&text, cut);
            tally(Some(check(&format!("{name} truncated at byte {cut}"), &text[..cut])));
        }
        for i in 0..MUTATIONS_PER_FILE {
            // Stack two or three mutations now and then.
            let (mut what, mut cur) = mutate(&mut rng, &text);
            for _ in 0..rng.below(3).saturating_sub(1) {
                if let Some(c) = &cur {
                    let (w, next) = mutate(&mut rng, c);
                    what = format!("{what}, {w}");
                    cur = next;
                }
            }
            tally(cur.map(|m| check(&format!("{name} mutation {i} ({what})"), &m)));
        }
    }
    eprintln!("mutated samples: {accepted} accepted, {refused} refused, {skipped} not UTF-8 (skipped)");
    assert!(accepted > 100 && refused > 1000, "mutations too tame or too wild: {accepted} accepted, {refused} refused");
}

/// Parses `text`, which must be refused with a located error; returns the message.
fn refused(label: &str, text: &str) -> String {
    assert!(check(label, text).is_none(), "{label}: accepted");
    xml::parse_document("hostile.xml", text).unwrap_err().to_string()
}

/// Debug builds are ~10-30x slower than release; bounds here are for the test's build.
fn bound(release: Duration) -> Duration {
    if cfg!(debug_assertions) {
        release * 10
    } else {
        release
    }
}

fn timed<T>(label: &str, limit: Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let r = f();
    let took = start.elapsed();
    assert!(took < bound(limit), "{label}: took {took:?} (bound {:?})", bound(limit));
    r
}

#[test]
fn deep_nesting_100000() {
    let n = 100_000;
    for (open, close) in [("<interface>", "</interface>"), ("<interfaces>", "</interfaces>"), ("<a>", "</a>")] {
        let text = format!("{}{}", open.repeat(n), close.repeat(n));
        timed("deep nesting", Duration::from_secs(2), || refused("deep nesting", &text));
        // Unclosed, too: no closing tags at all.
        timed("deep nesting, unclosed", Duration::from_secs(2), || refused("unclosed", &open.repeat(n)));
    }
    // Nested inside a valid interface.
    let text = format!(
        "<interface type='ethernet' name='eth0'>{}{}</interface>",
        "<protocol family='ipv4'>".repeat(n),
        "</protocol>".repeat(n)
    );
    let msg = timed("deep protocol", Duration::from_secs(2), || refused("deep protocol", &text));
    assert!(msg.contains("nested"), "{msg}");
}

/// See: issue 11. A 4 MiB document on one line with a finding per element (~174k `<ip>`s
/// without a prefix) took ~20 s in a release build: each finding's column was counted from the
/// line's start, and every finding was kept. Linear now (well under 1 s in release); the bound
/// here is 10 s in a debug build, which the quadratic version misses by minutes.
#[test]
fn four_mib_one_line_with_a_finding_per_element() {
    let (head, tail) = ("<interface type='ethernet' name='eth0'><protocol family='ipv4'>", "</protocol></interface>");
    let ip = "<ip address='10.0.0.1'/>";
    let n = (xml::MAX_DOCUMENT_BYTES - head.len() - tail.len()) / ip.len();
    let text = format!("{head}{}{tail}", ip.repeat(n));
    assert!(text.len() <= xml::MAX_DOCUMENT_BYTES && !text.contains('\n'));
    let doc = timed("4 MiB on one line", Duration::from_secs(1), || xml::parse_document("hostile.xml", &text).unwrap());
    assert_eq!(doc.host.interfaces[0].ipv4.as_ref().map(|v| v.addresses.len()), Some(n));
    // The first 100 findings, then one counting the rest.
    assert_eq!(doc.findings.len(), 101);
    assert!(doc.findings[100].message.starts_with(&format!("{} more findings", n - 100)), "{}", doc.findings[100]);
    // The last ones kept are positioned on line 1, far to the right, in characters.
    let last = doc.findings[99].location.unwrap();
    assert_eq!((last.line, last.column as usize), (1, head.len() + 99 * ip.len() + 1));
}

#[test]
fn five_mib_document() {
    // A valid interface padded to 5 MiB: refused as a whole, at 1:1.
    let pad = " ".repeat(5 << 20);
    let text = format!("<interface type='ethernet' name='eth0'>{pad}<start mode='onboot'/></interface>");
    let msg = timed("5 MiB", Duration::from_secs(2), || refused("5 MiB", &text));
    assert!(msg.starts_with("hostile.xml:1:1: "), "{msg}");
    // Just under the limit it is read in full: a comment of almost 4 MiB inside an interface.
    let comment = format!("<!--{}-->", "x".repeat((4 << 20) - 200));
    let text = format!("<interface type='ethernet' name='eth0'>\n{comment}\n<start mode='onboot'/>\n</interface>\n");
    let canonical = timed("4 MiB", Duration::from_secs(5), || check("almost 4 MiB", &text));
    assert!(canonical.is_some_and(|c| !c.contains("xxx")), "the comment leaked into the canonical XML");
}

#[test]
fn billion_laughs() {
    let mut dtd = String::from("<!DOCTYPE interface [\n<!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        let prev = if i == 1 { "lol".to_string() } else { format!("lol{}", i - 1) };
        dtd.push_str(&format!("<!ENTITY lol{i} \"{}\">\n", format!("&{prev};").repeat(10)));
    }
    dtd.push_str("]>\n");
    for body in
        ["<interface type='ethernet' name='&lol9;'/>", "<interface type='ethernet' name='eth0'>&lol9;</interface>"]
    {
        let msg = timed("billion laughs", Duration::from_secs(1), || refused("billion laughs", &(dtd.clone() + body)));
        assert!(msg.contains("DOCTYPE"), "{msg}");
    }
    // Without the DTD, the entity is unknown.
    refused("undeclared entity", "<interface type='ethernet' name='&lol9;'/>");
    refused("undeclared entity in text", "<interface type='ethernet' name='eth0'>&lol9;</interface>");
}

#[test]
fn external_entities() {
    for dtd in [
        "<!DOCTYPE interface [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>",
        "<!DOCTYPE interface [<!ENTITY xxe PUBLIC \"-//x//y\" \"http://127.0.0.1/x.dtd\">]>",
        "<!DOCTYPE interface SYSTEM \"file:///etc/passwd\">",
        "<!DOCTYPE interface [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>",
    ] {
        for body in
            ["<interface type='ethernet' name='&xxe;'/>", "<interface device='eth0'><uuid>&xxe;</uuid></interface>"]
        {
            let msg = refused("external entity", &format!("{dtd}\n{body}"));
            assert!(!msg.contains("root:"), "file contents leaked: {msg}");
        }
    }
    // `<!ENTITY` where no DTD may be: inside the root, as text.
    refused("entity declaration in the root", "<interface type='ethernet' name='eth0'><!ENTITY x 'y'></interface>");
}

#[test]
fn one_mib_attribute_values() {
    let big = "a".repeat(1 << 20);
    let cases = [
        format!("<interface type='ethernet' name='{big}'/>"),
        format!("<interface type='ethernet' name='eth0'><mac address='{big}'/></interface>"),
        format!("<interface type='bridge' name='br0'><bridge stp='on' delay='{}'/></interface>", "9".repeat(1 << 20)),
        format!("<interface type='ethernet' name='eth0'><mtu size='{}'/></interface>", "1".repeat(1 << 20)),
        format!("<interface device='eth0'><uuid>{big}</uuid></interface>"),
        format!("<interface type='ethernet' name='eth0' {big}='x'/>"),
        format!("<interface type='ethernet' name='eth0' x='{}'/>", "&amp;".repeat(1 << 18)),
        format!("<interface type='ethernet' name='eth0'><!--{big}--></interface>"),
    ];
    for (i, text) in cases.iter().enumerate() {
        timed("1 MiB attribute", Duration::from_secs(2), || check(&format!("1 MiB case {i}"), text));
    }
    // A big value that is valid: a long delay with a fraction (1 MiB of digits after "2.").
    let text =
        format!("<interface type='bridge' name='br0'><bridge stp='on' delay='2.{}'/></interface>", "0".repeat(1 << 20));
    timed("1 MiB delay", Duration::from_secs(2), || check("1 MiB valid delay", &text));
}

/// `n` interfaces of all four kinds in one `<interfaces>` root (a quarter are bonds with a port,
/// a quarter VLANs), so `n * 5 / 4` interface elements in the canonical XML.
fn many_interfaces(n: usize) -> String {
    let mut text = String::from("<interfaces>\n");
    for i in 0..n {
        let item = match i % 4 {
            0 => format!(
                "<interface type='ethernet' name='e{i}'><protocol family='ipv4'><dhcp/></protocol></interface>\n"
            ),
            1 => format!(
                "<interface device='d{i}' onboot='no'><static ipaddr='10.0.{}.{}' netmask='255.255.0.0'/></interface>\n",
                i / 256 % 256,
                i % 256
            ),
            2 => format!(
                "<interface type='bond' name='b{i}'><bond mode='active-backup'><interface type='ethernet' name='p{i}'/></bond></interface>\n"
            ),
            _ => format!(
                "<interface type='vlan' name='v{i}'><vlan tag='{}'><interface name='e{}'/></vlan></interface>\n",
                i % 4000 + 1,
                i - 3
            ),
        };
        text.push_str(&item);
    }
    text.push_str("</interfaces>\n");
    text
}

#[test]
fn ten_thousand_interfaces() {
    let text = many_interfaces(10_000);
    // Everything `check` does but reading the profiles back, which is quadratic in src/nm/reverse.rs
    // (see `regression_reverse_is_quadratic`); that part runs on a tenth of the host below.
    let canonical = timed("10,000 interfaces", Duration::from_secs(10), || {
        let doc = xml::parse_document("hostile.xml", &text).unwrap();
        let translation = nm::translate(&doc.host, &doc.sources, &Target::default());
        for p in translation.profiles() {
            let _ = nm::to_keyfile(p);
        }
        let (canonical, _) = xml::write_host(&doc.host);
        let reread = xml::parse_document("canonical.xml", &canonical).unwrap();
        assert!(xml::write_host(&reread.host).0 == canonical, "10,000 interfaces: canonical XML is not a fixed point");
        canonical
    });
    assert_eq!(canonical.matches("<interface type=").count(), 12_500);
    check("1,000 interfaces", &many_interfaces(1_000)).unwrap();

    // The same count with a duplicate at the end: refused, with its position.
    let dup = text.replace("</interfaces>\n", "<interface type='ethernet' name='e0'/>\n</interfaces>\n");
    let msg = timed("duplicate among 10,000", Duration::from_secs(5), || refused("duplicate", &dup));
    assert!(msg.starts_with("hostile.xml:10002:1: "), "{msg}");
}

// ---- Regressions: bugs in src/ found by this file and by fuzz/, fixed. The time bounds guard
// against quadratic blow-ups (seconds before the fixes), not speed, so they are generous.

#[test]
fn regression_netmask_zero_fixed_point() {
    check("netmask 0.0.0.0", "<interface device='eth0'><static ipaddr='10.0.0.1' netmask='0.0.0.0'/></interface>");
}

#[test]
fn regression_duplicate_uuid_accepted() {
    let u = "<uuid>5f1b3d9e-0c2a-4c1e-9d0b-6a7f2b1c3d4e</uuid>";
    let text = format!("<interfaces><interface device='eth0'>{u}<shared bridge='br0'/></interface><bridge name='br1'>{u}</bridge></interfaces>");
    // Refused: NetworkManager keeps one profile per UUID (accepting it made eth0 a port of both
    // bridges when the profiles were read back).
    let msg = refused("duplicate uuid", &text);
    assert!(msg.contains("5f1b3d9e"), "{msg}");
}

#[test]
fn regression_reverse_is_quadratic() {
    let doc = xml::parse_document("hostile.xml", &many_interfaces(10_000)).unwrap();
    let profiles: Vec<nm::Profile> =
        nm::translate(&doc.host, &doc.sources, &Target::default()).profiles().cloned().collect();
    timed("host_from_profiles, 12,500 profiles", Duration::from_secs(3), || nm::host_from_profiles(&profiles).unwrap());
}

#[test]
fn regression_many_attributes_is_quadratic() {
    // 40,000 attributes, 390 KB; a document at the 4 MiB limit holds ten times as many.
    let attrs: String = (0..40_000).map(|i| format!(" a{i}=''")).collect();
    let text = format!("<interface type='ethernet' name='eth0'{attrs}/>");
    timed("40,000 attributes", Duration::from_secs(2), || refused("many attributes", &text));
}

#[test]
fn regression_port_merging_is_quadratic() {
    let mut text = String::from("<interfaces>\n");
    for i in 0..5_000 {
        text.push_str(&format!("<bridge name='b{i}'><member device='e{i}'/></bridge><interface device='e{i}'/>\n"));
    }
    text.push_str("</interfaces>\n");
    timed("5,000 merged ports", Duration::from_secs(2), || xml::parse_document("hostile.xml", &text).unwrap());
}

#[test]
fn regression_attribute_found_inside_another_value() {
    let doc = xml::parse_document("hostile.xml", "<interface xmlns:x=\"a name='eth1' \" type='ethernet' name='eth0'/>")
        .unwrap();
    assert_eq!(doc.host.interfaces[0].name.as_str(), "eth0");
}

#[test]
fn odd_but_legal_xml() {
    // Whatever these do, the checks above hold.
    for text in [
        "\u{feff}<interface type='ethernet' name='eth0'/>",
        "<?xml version='1.0' encoding='UTF-16'?><interface type='ethernet' name='eth0'/>",
        "<interface type='ethernet' name='eth0'><![CDATA[<start mode='none'/>]]></interface>",
        "<interface type='ethernet' name='e&#x74;h0'/>",
        "<interface type='ethernet' name='e\u{1F600}'/>",
        "<interface type='ethernet' name='a&apos;b&quot;c'/>",
        "<interface type='ethernet' name='&#xFEFF;x'/>",
        "<interface type='ethernet' name='x' xmlns='urn:x' xmlns:n='urn:n'/>",
        "<n:interface xmlns:n='urn:n' type='ethernet' name='eth0'/>",
        "<interface\ttype='ethernet'\nname='eth0'\r\n/>",
        "<interface type = 'ethernet' name= \"eth0\" ></interface >",
        "<interface type='ethernet' name='eth0'/><!-- trailing -->\n\n",
        "<interface type='ethernet' name='eth0'></interface><?pi x?>",
        "<interface device='eth0'><mtu> 1500 </mtu><uuid>\n5f1b3d9e-0c2a-4c1e-9d0b-6a7f2b1c3d4e\n</uuid></interface>",
        "<interfaces><interface type='ethernet' name='eth0'/>text</interfaces>",
        "\0",
        "",
        "\r\n\r\n<",
    ] {
        check(&format!("{text:?}"), text);
    }
}
