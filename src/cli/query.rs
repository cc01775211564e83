//! The read-only verbs: list, dumpxml, name, mac (`virsh iface-list`, `iface-dumpxml`,
//! `iface-name`, `iface-mac`).

use super::lifecycle::NameArgs;
use super::{block_on, connect, print_findings, Outcome};
use nmiface::agent::Listed;
use nmiface::model::{IfName, Mac};
use std::io::Write;

/// `list`: the host's interfaces (`virsh iface-list`): nmiface's, and NetworkManager's other
/// profiles, shown read-only.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Also list inactive interfaces.
    #[arg(long, conflicts_with = "inactive")]
    all: bool,
    /// List only inactive interfaces.
    #[arg(long)]
    inactive: bool,
    /// Print JSON: [{"name", "type", "active", "mac", "nmiface", "profile"}] ("nmiface": false for
    /// profiles nmiface did not define).
    #[arg(long)]
    json: bool,
}

/// `dumpxml`: an interface as libvirt XML (`virsh iface-dumpxml`).
#[derive(Debug, clap::Args)]
#[command(after_help = "Without --inactive, an active interface is shown as libvirt shows live state: \
its protocols list the addresses it has now (not how it got them), with <link> state and speed and MACs.")]
pub struct DumpArgs {
    /// Interface name.
    name: String,
    /// The definition, as define takes it back.
    #[arg(long)]
    inactive: bool,
}

/// `name`: the interface with this MAC (`virsh iface-name`).
#[derive(Debug, clap::Args)]
pub struct MacArg {
    /// MAC address, e.g. 52:54:00:12:34:56.
    mac: String,
}

pub fn list(args: ListArgs) -> anyhow::Result<Outcome> {
    block_on(async {
        let ctx = connect().await?;
        let all = ctx.list().await?;
        let me = match ctx.agent().scope() {
            nmiface::nm::Scope::User(me) => Some(me.clone()),
            nmiface::nm::Scope::System => None,
        };
        let shown: Vec<&Listed> = all
            .iter()
            .filter(|l| {
                if args.all {
                    true
                } else if args.inactive {
                    !l.active
                } else {
                    l.active
                }
            })
            .collect();
        let mut out = std::io::stdout().lock();
        if args.json {
            serde_json::to_writer_pretty(&mut out, &shown)?;
            writeln!(out)?;
            return Ok(Outcome::Clean);
        }
        let w = shown.iter().map(|l| l.name.len()).max().unwrap_or(4).max(4);
        writeln!(out, " {:<w$}   {:<8}   {:<17}   Profile", "Name", "State", "MAC Address")?;
        writeln!(out, "{}", "-".repeat(w + 48))?;
        for l in shown {
            let state = if l.active { "active" } else { "inactive" };
            // Profiles nmiface did not define, or defined for another scope, are shown
            // read-only, by their NetworkManager name and whose they are.
            let whose = match (l.scope, &l.user, &me) {
                (Some("system"), _, _) => "nmiface's, system-wide, read-only for you (--system changes it)".to_string(),
                (Some(_), Some(u), Some(me)) if u == me => "nmiface's, your own (without --system)".to_string(),
                (Some(_), Some(u), Some(_)) => format!("nmiface's, another user's ({u})"),
                (Some(_), Some(u), None) => format!("nmiface's, user {u}'s own, read-only"),
                _ => "not nmiface's".to_string(),
            };
            let profile = match l.nmiface {
                true => "(nmiface)".to_string(),
                false => format!("'{}' ({}, {whose})", l.profile, l.kind),
            };
            writeln!(out, " {:<w$}   {:<8}   {:<17}   {profile}", l.name, state, l.mac.as_deref().unwrap_or(""))?;
        }
        Ok(Outcome::Clean)
    })
}

pub fn dumpxml(args: DumpArgs) -> anyhow::Result<Outcome> {
    block_on(async {
        let (xml, findings) = connect().await?.dumpxml(&args.name, args.inactive).await?;
        print_findings(&args.name, &findings);
        std::io::stdout().lock().write_all(xml.as_bytes())?;
        // Exit 1 when the XML leaves something out, as for every other command.
        Ok(match nmiface::finding::any_loses_meaning(&findings) {
            true => Outcome::Findings,
            false => Outcome::Clean,
        })
    })
}

pub fn name(args: MacArg) -> anyhow::Result<Outcome> {
    let mac = Mac::parse(&args.mac).map_err(anyhow::Error::msg)?;
    block_on(async {
        let name = connect().await?.name_of(&mac).await?;
        writeln!(std::io::stdout(), "{name}")?;
        Ok(Outcome::Clean)
    })
}

pub fn mac(args: NameArgs) -> anyhow::Result<Outcome> {
    let name = IfName::new(&args.name).map_err(anyhow::Error::msg)?;
    block_on(async {
        let mac = connect().await?.mac_of(&name).await?;
        writeln!(std::io::stdout(), "{mac}")?;
        Ok(Outcome::Clean)
    })
}
