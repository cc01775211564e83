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

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let (source, text) = read_input(&args.file)?;
    let doc = xml::parse_document(&source, &text)?;
    let report = if args.offline || args.nm_version.is_some() {
        verbs::check_offline(&doc, args.nm_version, args.offline)
    } else {
        block_on(async {
            let ctx = Context::connect()
                .await
                .context("cannot reach NetworkManager (use --offline, or --nm-version X.Y, to check without it)")?;
            Ok(ctx.check(&doc).await?)
        })?
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &report)?;
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

/// The human table: one line per feature, details and remedies indented below gaps.
pub fn print_table(out: &mut impl Write, r: &CheckReport) -> std::io::Result<()> {
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
    let rows: Vec<(String, &gaps::Item)> = r.items().map(|(i, item)| (i.unwrap_or("-").to_string(), item)).collect();
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
