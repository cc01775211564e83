//! libvirt's own tools as the oracle for libvirt-format XML: the schema (`virt-xml-validate`),
//! the parser with validation (`virsh iface-define --validate` on the test driver), and its
//! formatter (`iface-dumpxml` must print our canonical form back unchanged).

use std::process::Command;

/// True when both tools are installed.
pub fn available() -> bool {
    ["virsh", "virt-xml-validate"]
        .iter()
        .all(|t| Command::new("sh").arg("-c").arg(format!("command -v {t}")).output().is_ok_and(|o| o.status.success()))
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(stdout)
}

/// Schema and parser checks of one `<interface>` document.
pub fn accepts(xml: &str, label: &str) -> Result<(), String> {
    let dir = tempdir(label)?;
    let file = dir.join("iface.xml");
    std::fs::write(&file, xml).map_err(|e| e.to_string())?;
    let f = file.to_str().unwrap();
    run(Command::new("virt-xml-validate").args([f, "interface"]))?;
    run(Command::new("virsh").args(["-q", "-c", "test:///default", &format!("iface-define --validate {f}")]))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// libvirt's parser without the schema (`virsh iface-define`, as `virsh` runs it by default)
/// takes `xml`: it ignores elements of other namespaces, such as nmiface's.
pub fn parser_accepts(xml: &str, label: &str) -> Result<(), String> {
    let dir = tempdir(label)?;
    let file = dir.join("iface-ext.xml");
    std::fs::write(&file, xml).map_err(|e| e.to_string())?;
    run(Command::new("virsh").args(["-q", "-c", "test:///default", &format!("iface-define {}", file.display())]))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `xml` without nmiface's extension elements and namespace declaration: what libvirt's schema
/// can judge. Line-based: the samples and nmiface's canonical XML put one element per line.
pub fn without_extensions(xml: &str) -> String {
    xml.lines()
        .filter(|l| !l.trim_start().starts_with("<nmi:"))
        .map(|l| l.replace(" xmlns:nmi='urn:nmiface:interface:1'", ""))
        .map(|l| l + "\n")
        .collect()
}

/// `accepts`, and libvirt's formatter prints `xml` back byte for byte: our canonical form is a
/// fixed point of libvirt's own parse + format.
pub fn round_trips(xml: &str, name: &str, label: &str) -> Result<(), String> {
    accepts(xml, label)?;
    let dir = tempdir(label)?;
    let file = dir.join("iface.xml");
    std::fs::write(&file, xml).map_err(|e| e.to_string())?;
    let script = format!("iface-define {}; iface-dumpxml {name}", file.display());
    let out = run(Command::new("virsh").args(["-q", "-c", "test:///default", &script]))?;
    let _ = std::fs::remove_dir_all(&dir);
    // virsh prints "Interface NAME defined from FILE" first, then the XML.
    let dumped = out.find("<interface").map(|i| &out[i..]).unwrap_or(&out);
    if dumped.trim_end() != xml.trim_end() {
        return Err(format!(
            "libvirt formats our canonical XML differently:\n{}",
            similar_asserts::SimpleDiff::from_str(xml.trim_end(), dumped.trim_end(), "ours", "libvirt")
        ));
    }
    Ok(())
}

/// A domain holding `devices` passes libvirt's domain schema (`virt-xml-validate FILE domain`).
pub fn domain_accepts(devices: &str, label: &str) -> Result<(), String> {
    let dir = tempdir(label)?;
    let file = dir.join("domain.xml");
    let xml = format!(
        "<domain type='kvm'>\n  <name>vm</name>\n  <memory unit='MiB'>512</memory>\n  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n  <devices>\n{devices}  </devices>\n</domain>\n"
    );
    std::fs::write(&file, xml).map_err(|e| e.to_string())?;
    run(Command::new("virt-xml-validate").args([file.to_str().unwrap(), "domain"]))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempdir(label: &str) -> Result<std::path::PathBuf, String> {
    let d = std::env::temp_dir().join(format!("nmiface-oracle-{}-{label}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    Ok(d)
}
