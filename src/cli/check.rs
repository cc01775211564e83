//! `nmiface check`: the capability report (the same check `define`, `start` and `apply` run
//! before they change anything, in [`nmiface::verbs`]).

use super::{block_on, read_input, Outcome};
use anyhow::Context as _;
use nmiface::gaps::{self, CheckReport, Status};
use nmiface::nm::NmVersion;
use nmiface::verbs::{self, Context};
use nmiface::xml;
use std::io::Write;

/// Report what this NetworkManager and this kernel can do for the interfaces in FILE, before
/// changing anything.
///
/// For each interface and each feature it uses: supported, approximated (how), or unsupported
/// (by the NetworkManager version, with the version that adds it; by the kernel, with the
/// missing module; by libvirt's format), with a one-line remedy.
#[derive(Debug, clap::Args)]
#[command(after_help = "Exit status: 0 no gaps, 1 gaps, 2 error.\n\n\
Run against the daemon, check also reads the host's devices: a port that names no device, or a \
device that is another controller's port now, is a gap. What nmiface itself needs of \
NetworkManager (Settings.AddConnection2, user.data) is listed with -v, or when it is missing.\n\n\
By default nmiface asks the running NetworkManager for its version (and, where a version number \
cannot tell because of backports, whether it knows a property, without creating anything) and reads \
the kernel's modules. --nm-version X.Y checks against that version's table instead; with --offline \
nothing on the host is read at all.\n\n\
JSON: {\"nm_version\", \"nm_source\", \"kernel\": {\"release\", \"bonding\", \"vlan\", \"bridge\"}, \
\"requirements\": [ITEM], \"interfaces\": [{\"interface\", \"items\": [ITEM]}], \"mapping\": [ITEM], \"gaps\"}; \
ITEM = {\"feature\", \"status\": supported|approximated|unsupported, \"by\": nm-version|kernel|runtime|mapping, \
\"detail\", \"remedy\"}.")]
pub struct Args {
    /// Interface XML (libvirt format, 2009 draft, or an <interfaces> host file); - reads stdin.
    #[arg(value_hint = clap::ValueHint::FilePath)]
    file: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Check against this NetworkManager version instead of the running daemon's.
    #[arg(long, value_name = "X.Y[.Z]", value_parser = NmVersion::parse)]
    nm_version: Option<NmVersion>,
    /// Read nothing from this host: no daemon, no kernel (the version table only).
    #[arg(long)]
    offline: bool,
}

pub fn run(args: Args, verbose: bool) -> anyhow::Result<Outcome> {
    let (source, text) = read_input(&args.file)?;
    let doc = xml::parse_document(&source, &text)?;
    let report = if args.offline || args.nm_version.is_some() {
        verbs::check_offline(&doc, args.nm_version, args.offline)
    } else {
        block_on(async {
            let ctx = Context::connect()
                .await
                .context("check asks the running NetworkManager (--offline, or --nm-version X.Y, checks without it)")?;
            Ok(ctx.check(&doc).await?)
        })?
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &report, verbose)?;
    }
    Ok(if report.gaps > 0 { Outcome::Findings } else { Outcome::Clean })
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Supported => "supported",
        Status::Approximated => "approximated",
        Status::Unsupported => "UNSUPPORTED",
    }
}

/// The human table: one line per feature, details and remedies indented below gaps. nmiface's
/// own needs (plumbing) only when `verbose` or missing; a reading finding of a one-interface
/// document is filed under that interface, by element.
pub fn print_table(out: &mut impl Write, r: &CheckReport, verbose: bool) -> std::io::Result<()> {
    let kernel = match &r.kernel {
        Some(k) => {
            let s = |m: gaps::ModuleState| {
                serde_json::to_value(m).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            };
            format!("kernel {}: bonding {}, 8021q {}, bridge {}", k.release, s(k.bonding), s(k.vlan), s(k.bridge))
        }
        None => "kernel not checked".to_string(),
    };
    writeln!(out, "NetworkManager {} ({}); {kernel}", r.nm_version, r.nm_source)?;
    let only = match r.interfaces.as_slice() {
        [one] => Some(one.interface.as_str()),
        _ => None,
    };
    let plumbing = r.requirements.iter().filter(|i| verbose || i.status != Status::Supported).map(|i| ("-", i));
    let own = r.interfaces.iter().flat_map(|c| c.items.iter().map(move |i| (c.interface.as_str(), i)));
    let mapping = r.mapping.iter().map(|i| (only.unwrap_or("-"), i));
    let rows: Vec<(String, gaps::Item)> = plumbing
        .chain(own)
        .map(|(n, i)| (n.to_string(), i.clone()))
        .chain(mapping.map(|(n, i)| {
            let mut i = i.clone();
            if only.is_some() {
                i.feature = element_of(&i.feature);
            }
            (n.to_string(), i)
        }))
        .collect();
    let w1 = rows.iter().map(|(i, _)| i.len()).max().unwrap_or(9).max(9);
    let w2 = rows.iter().map(|(_, it)| it.feature.len()).max().unwrap_or(7).clamp(7, 48);
    writeln!(out, "{:<w1$}  {:<w2$}  STATUS", "INTERFACE", "FEATURE")?;
    for (iface, it) in &rows {
        writeln!(out, "{iface:<w1$}  {:<w2$}  {}", it.feature, status_word(it.status))?;
        if it.status != Status::Supported {
            writeln!(out, "{:w1$}  {}", "", it.detail)?;
            if let Some(r) = &it.remedy {
                writeln!(out, "{:w1$}  remedy: {r}", "")?;
            }
        }
    }
    writeln!(out, "{} gap{}", r.gaps, if r.gaps == 1 { "" } else { "s" })
}

/// A reading finding's XPath in a one-interface document as the element it names:
/// `/interface/bond/arpmon (line 9)` is `<bond><arpmon> (line 9)`.
fn element_of(path: &str) -> String {
    let (path, line) = match path.split_once(" (") {
        Some((p, l)) => (p, format!(" ({l}")),
        None => (path, String::new()),
    };
    let steps: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .skip(1)
        .map(|s| match s.strip_prefix('@') {
            Some(attr) => format!("@{attr}"),
            None => format!("<{s}>"),
        })
        .collect();
    match steps.is_empty() {
        true => format!("<{}>{line}", path.trim_start_matches('/')),
        false => format!("{}{line}", steps.join("")),
    }
}
