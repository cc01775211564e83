//! `nmiface translate`: XML to NetworkManager settings, keyfiles, or canonical libvirt XML,
//! without touching NetworkManager.

use super::{print_findings, read_input, Outcome};
use anyhow::bail;
use nmiface::finding::any_loses_meaning;
use nmiface::nm::{self, NmVersion, Target};
use nmiface::report::DocumentReport;
use nmiface::xml;
use std::io::Write;
use std::path::PathBuf;

/// Translate interface XML into NetworkManager profiles, offline.
///
/// Prints, for each FILE, the profiles NetworkManager would get, property by property, and the
/// findings: what was approximated or is unsupported. Nothing on the host changes.
///
/// On a terminal the profiles are printed as text (`bridge.stp: no`); piped, or with --json
/// (--format json), as JSON with the D-Bus type of each value, as scripts have always read it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
nmiface translate xml-samples/libvirt-bridge-dhcp-two-ports.xml\n  \
nmiface translate --format keyfile --output-dir /tmp/profiles host.xml\n  \
nmiface translate --to-xml draft.xml        # 2009 draft -> libvirt format\n  \
cat eth0.xml | nmiface translate -\n\n\
JSON output (--json, or piped): {\"documents\": [{\"source\", \"target\", \"interfaces\": [{\"interface\", \"profiles\": \
[{\"id\", \"uuid\", \"keyfile\", \"settings\": {SETTING: {PROPERTY: {SIGNATURE: VALUE}}}}]}], \
\"findings\": [{\"severity\", \"path\", \"location\", \"message\"}]}]}")]
pub struct Args {
    /// Interface XML files (libvirt format, 2009 draft, or an <interfaces> host file); - reads stdin.
    #[arg(required = true, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    files: Vec<String>,
    /// Output format: text (readable), json (D-Bus settings with type signatures) or keyfile
    /// (NetworkManager's files). Default: text on a terminal, json otherwise.
    #[arg(long, value_enum, conflicts_with = "to_xml")]
    format: Option<Format>,
    /// Same as --format json.
    #[arg(long, conflicts_with_all = ["format", "to_xml"])]
    json: bool,
    /// Write one keyfile per profile into DIR (mode 0600, named as NetworkManager names them).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Print the canonical libvirt XML instead (converts the 2009 draft to libvirt's format).
    #[arg(long)]
    to_xml: bool,
    /// Target this NetworkManager version (settings are limited to what it accepts).
    #[arg(long, value_name = "X.Y[.Z]", value_parser = parse_version, default_value = "1.42.4")]
    nm_version: NmVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Keyfile,
}

fn parse_version(s: &str) -> Result<NmVersion, String> {
    NmVersion::parse(s)
}

pub fn run(mut args: Args) -> anyhow::Result<Outcome> {
    use std::io::IsTerminal;
    let format = match (args.json, args.format) {
        (true, _) => Format::Json,
        (false, Some(f)) => f,
        // Scripts pipe and read JSON (the Ansible module, integration/vm); people read text.
        (false, None) if std::io::stdout().is_terminal() => Format::Text,
        (false, None) => Format::Json,
    };
    args.format = Some(format);
    let format = &format;
    if args.output_dir.is_some() && *format != Format::Keyfile {
        bail!("--output-dir writes keyfiles: add --format keyfile");
    }
    let target = Target { nm: args.nm_version };
    let mut docs = Vec::new();
    // Keyfiles for --output-dir are written after all documents are read, so that names
    // colliding across documents are refused too, before anything is written.
    let mut keyfiles = Vec::new();
    let mut lossy = false;
    let mut failed = 0usize;
    let mut stdout = std::io::stdout().lock();
    for path in &args.files {
        let (source, text) = read_input(path)?;
        let doc = match xml::parse_document(&source, &text) {
            Ok(d) => d,
            Err(e) => {
                // Keep going: every file's errors are worth seeing in one run.
                let _ = writeln!(std::io::stderr(), "nmiface: error: {e}");
                failed += 1;
                continue;
            }
        };
        let mut findings = doc.findings.clone();
        if args.to_xml {
            let (text, mut more) = xml::write_host(&doc.host);
            findings.append(&mut more);
            stdout.write_all(text.as_bytes())?;
        } else {
            let t = nm::translate(&doc.host, &doc.sources, &target);
            findings.extend(t.findings.iter().cloned());
            match (format, &args.output_dir) {
                (Format::Text, _) => write_text(&mut stdout, &source, &target, &t)?,
                // Kept as translations and serialised once at the end, straight to stdout: a
                // serde_json::Value copy of a big document took more memory than the document.
                (Format::Json, _) => {
                    print_findings(&source, &findings);
                    lossy |= any_loses_meaning(&findings);
                    docs.push((source, t, findings));
                    continue;
                }
                (Format::Keyfile, Some(_)) => keyfiles.push(t),
                (Format::Keyfile, None) => {
                    for p in t.profiles() {
                        writeln!(stdout, "# {}", p.keyfile_name())?;
                        stdout.write_all(nm::to_keyfile(p).as_bytes())?;
                        writeln!(stdout)?;
                    }
                }
            }
        }
        print_findings(&source, &findings);
        lossy |= any_loses_meaning(&findings);
    }
    if let (Some(dir), false) = (&args.output_dir, keyfiles.is_empty()) {
        write_keyfiles(dir, &keyfiles)?;
    }
    if !docs.is_empty() {
        #[derive(serde::Serialize)]
        struct Documents<'a> {
            documents: Vec<DocumentReport<'a>>,
        }
        let documents = docs.iter().map(|(s, t, f)| DocumentReport::new(s, &target, t, f)).collect();
        // Stdout is line-buffered; pretty JSON is many short lines.
        let mut out = std::io::BufWriter::new(&mut stdout);
        serde_json::to_writer_pretty(&mut out, &Documents { documents })?;
        writeln!(out)?;
        out.flush()?;
    }
    if failed > 0 {
        bail!("{failed} of {} documents could not be translated", args.files.len());
    }
    Ok(if lossy { Outcome::Findings } else { Outcome::Clean })
}

fn write_keyfiles(dir: &std::path::Path, translations: &[nm::Translation]) -> anyhow::Result<()> {
    // The library writes through temporary files and renames (no symlink followed, mode 0600)
    // and refuses colliding names before writing anything.
    for path in nm::write_keyfiles(dir, translations.iter().flat_map(|t| t.profiles()))? {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The readable form: each interface, its profiles, and their properties as `setting.property:
/// value` (the XML nmiface keeps in user.data is summarised, not repeated).
fn write_text(out: &mut impl Write, source: &str, target: &Target, t: &nm::Translation) -> std::io::Result<()> {
    writeln!(out, "{source}: for NetworkManager {}", target.nm)?;
    for i in &t.interfaces {
        let n = i.profiles.len();
        writeln!(out, "{}: {n} profile{}", i.interface, if n == 1 { "" } else { "s" })?;
        for p in &i.profiles {
            writeln!(out, "  profile '{}' {}", p.id, p.uuid)?;
            for (setting, props) in &p.settings {
                for (prop, v) in props {
                    let shown = match (setting.as_ref(), prop.as_ref(), v.as_str_dict()) {
                        ("user", "data", Some(d)) => d
                            .iter()
                            .map(|(k, v)| match k.as_str() {
                                nm::user_key::XML => format!("{k}=(this document, {} bytes)", v.len()),
                                _ => format!("{k}={v}"),
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                        _ => v.plain(),
                    };
                    writeln!(out, "    {setting}.{prop}: {shown}")?;
                }
            }
        }
    }
    Ok(())
}
