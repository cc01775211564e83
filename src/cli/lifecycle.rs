//! The `virsh iface-*` verbs against the running NetworkManager: define, undefine, start, stop,
//! apply, list, dumpxml, name, mac.

use super::{print_findings, read_input, Outcome};
use anyhow::Context;
use nmiface::agent::{Agent, Listed, Safety};
use nmiface::finding::{any_loses_meaning, Finding};
use nmiface::model::{IfName, Mac};
use nmiface::nm;
use nmiface::nm_client::{NmClient, Progress};
use nmiface::transaction::{Lock, Store};
use nmiface::xml;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Options shared by the commands that wait for activation.
#[derive(Debug, clap::Args)]
pub struct Wait {
    /// Seconds to wait for activation before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

/// `define`: create or update the profiles of the interfaces in FILE (`virsh iface-define`).
#[derive(Debug, clap::Args)]
pub struct DefineArgs {
    /// Interface XML (libvirt format, 2009 draft, or an <interfaces> host file); - reads stdin.
    file: String,
    /// Take over conflicting profiles nmiface did not create (they are updated in place).
    #[arg(long)]
    adopt: bool,
    /// Go on despite capability gaps that would make the result wrong (they are printed).
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `apply`: define, then start every interface in FILE, controllers with their ports.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    define: DefineArgs,
    #[command(flatten)]
    wait: Wait,
    /// Seconds NetworkManager waits for nmiface's keep-alive before rolling back by itself.
    #[arg(long, value_name = "SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    rollback_timeout: u32,
    /// Do not take a checkpoint: a failure leaves what was done so far.
    #[arg(long)]
    no_checkpoint: bool,
}

/// `begin`: open a transaction (virsh iface-begin).
#[derive(Debug, clap::Args)]
#[command(after_help = "Takes a NetworkManager checkpoint over all devices. Until commit or rollback, define, \
undefine and apply record what they change. If neither comes within --timeout seconds, NetworkManager \
rolls the devices back by itself (0: never).")]
pub struct BeginArgs {
    /// Seconds before NetworkManager rolls back by itself (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    timeout: u32,
}

/// `commit` / `rollback`.
#[derive(Debug, clap::Args)]
pub struct EndArgs {
    /// Act on this NetworkManager checkpoint (one left by a crashed run) instead of the
    /// transaction nmiface recorded.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<String>,
}

/// An interface name argument.
#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// Interface name (as defined by nmiface).
    name: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `start`: activate an interface and wait for the outcome (`virsh iface-start`).
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    #[command(flatten)]
    name: NameArgs,
    #[command(flatten)]
    wait: Wait,
    /// Go on despite capability gaps (e.g. a kernel without bonding); they are printed.
    #[arg(long)]
    force: bool,
}

/// `stop`: deactivate an interface (`virsh iface-destroy`).
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    #[command(flatten)]
    name: NameArgs,
    #[command(flatten)]
    wait: Wait,
}

/// `list`: interfaces defined by nmiface (`virsh iface-list`).
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Also list inactive interfaces.
    #[arg(long, conflicts_with = "inactive")]
    all: bool,
    /// List only inactive interfaces.
    #[arg(long)]
    inactive: bool,
    /// Print JSON: [{"name", "type", "active", "mac"}].
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

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: a CLI waits on one daemon; a pool would only add start-up time.
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into())
}

/// The transaction store for this bus, and its lock, taken for a change. Another nmiface
/// changing the same NetworkManager makes this one wait, saying for whom.
pub(super) fn lock(what: String) -> anyhow::Result<(Store, Lock)> {
    let store = Store::for_bus(&bus_address());
    let lock = store.lock(&what, true, |holder| {
        eprintln!("nmiface: waiting for another nmiface ({holder}) to finish");
    })?;
    Ok((store, lock))
}

pub(super) async fn agent() -> anyhow::Result<Agent> {
    let nm = NmClient::connect_system().await.with_context(|| {
        format!(
            "cannot reach NetworkManager (system bus {})",
            std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into())
        )
    })?;
    Ok(Agent::new(nm).await?)
}

fn parse(file: &str) -> anyhow::Result<(String, xml::Document)> {
    let (source, text) = read_input(file)?;
    let doc = xml::parse_document(&source, &text)?;
    Ok((source, doc))
}

/// A progress line on stderr while waiting, only when stderr is a terminal.
pub(super) fn progress_printer(label: String) -> impl FnMut(Progress) + Send {
    let tty = std::io::stderr().is_terminal();
    let frames = ['|', '/', '-', '\\'];
    let mut n = 0usize;
    move |p: Progress| {
        if tty {
            n += 1;
            let _ = write!(
                std::io::stderr(),
                "\r\x1b[2K{} {label}: {} ({:.1} s)",
                frames[n % frames.len()],
                p.what,
                p.elapsed.as_secs_f64()
            );
        }
    }
}

pub(super) fn clear_progress() {
    if std::io::stderr().is_terminal() {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}

/// Findings of reading and translating, for the daemon's version.
fn findings_for(agent: &Agent, doc: &xml::Document) -> Vec<Finding> {
    let mut f = doc.findings.clone();
    f.extend(nm::translate(&doc.host, &doc.sources, &agent.target()).findings);
    f
}

pub fn define(args: DefineArgs) -> anyhow::Result<Outcome> {
    let (source, doc) = parse(&args.file)?;
    runtime()?.block_on(async {
        let agent = agent().await?;
        let findings = findings_for(&agent, &doc);
        super::check::gate(&agent.check(&doc.host, &findings, false).await?, false, args.force, "define")?;
        let (store, _lock) = lock(format!("define {}", args.file))?;
        let mut journal = store.load()?;
        let report = agent.define(&doc, args.adopt, journal.as_mut()).await;
        if let Some(j) = &journal {
            store.save(j)?;
        }
        let report = report?;
        print_findings(&source, &findings);
        let mut out = std::io::stdout().lock();
        if args.json {
            serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "defined": report, "findings": findings }))?;
            writeln!(out)?;
        } else {
            for d in &report {
                writeln!(
                    out,
                    "Interface {} defined from {source} ({} added, {} updated, {} deleted)",
                    d.interface, d.added, d.updated, d.deleted
                )?;
            }
        }
        Ok(if any_loses_meaning(&findings) { Outcome::Findings } else { Outcome::Clean })
    })
}

pub fn apply(args: ApplyArgs) -> anyhow::Result<Outcome> {
    let (source, doc) = parse(&args.define.file)?;
    runtime()?.block_on(async {
        let agent = agent().await?;
        let findings = findings_for(&agent, &doc);
        let started = Instant::now();
        let mut printers: std::collections::HashMap<String, Box<dyn FnMut(Progress) + Send>> = Default::default();
        let mut progress = |name: &str, p: Progress| {
            printers.entry(name.to_string()).or_insert_with(|| Box::new(progress_printer(format!("starting {name}"))))(p)
        };
        super::check::gate(&agent.check(&doc.host, &findings, true).await?, true, args.define.force, "apply")?;
        let (store, _lock) = lock(format!("apply {}", args.define.file))?;
        let mut journal = store.load()?;
        let safety = match (&mut journal, args.no_checkpoint) {
            (Some(j), _) => Safety::Transaction(j),
            (None, true) => Safety::Unprotected,
            (None, false) => Safety::Checkpoint { rollback_timeout: args.rollback_timeout },
        };
        let result = agent.apply(&doc, args.define.adopt, Duration::from_secs(args.wait.timeout), safety, &mut progress).await;
        clear_progress();
        if let Some(j) = &journal {
            store.save(j)?;
        }
        let (report, outcomes) = result?;
        clear_progress();
        print_findings(&source, &findings);
        let failed = outcomes.iter().filter(|(_, r)| r.is_err()).count();
        let mut out = std::io::stdout().lock();
        if args.define.json {
            let started_json: Vec<_> = outcomes
                .iter()
                .map(|(name, r)| match r {
                    Ok(d) => serde_json::json!({"interface": name, "started": true, "ms": d.as_millis()}),
                    Err(e) => serde_json::json!({"interface": name, "started": false, "error": e.to_string()}),
                })
                .collect();
            serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({"defined": report, "started": started_json, "findings": findings, "ms": started.elapsed().as_millis()}),
            )?;
            writeln!(out)?;
        } else {
            for (name, r) in &outcomes {
                match r {
                    Ok(d) => writeln!(out, "Interface {name} defined and started ({} ms)", d.as_millis())?,
                    Err(e) => eprintln!("nmiface: error: {e}"),
                }
            }
        }
        if failed > 0 {
            anyhow::bail!("{failed} of {} interfaces did not start (their profiles stay defined)", outcomes.len());
        }
        Ok(if any_loses_meaning(&findings) { Outcome::Findings } else { Outcome::Clean })
    })
}

pub fn undefine(args: NameArgs) -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let agent = agent().await?;
        let (store, _lock) = lock(format!("undefine {}", args.name))?;
        let mut journal = store.load()?;
        let n = agent.undefine(&args.name, journal.as_mut()).await;
        if let Some(j) = &journal {
            store.save(j)?;
        }
        let n = n?;
        if args.json {
            println!("{}", serde_json::json!({"undefined": args.name, "profiles": n}));
        } else {
            println!("Interface {} undefined ({n} profiles deleted)", args.name);
        }
        Ok(Outcome::Clean)
    })
}

pub fn start(args: StartArgs) -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let agent = agent().await?;
        let found = agent.startable(&args.name.name).await?;
        super::check::gate(
            &agent.check(&found.host, &[], true).await?,
            true,
            args.force,
            &format!("start {}", args.name.name),
        )?;
        let _lock = lock(format!("start {}", args.name.name))?;
        let t0 = Instant::now();
        let mut progress = progress_printer(format!("starting {}", args.name.name));
        let r = agent.start_found(&found, Duration::from_secs(args.wait.timeout), &mut progress).await;
        clear_progress();
        r?;
        let ms = t0.elapsed().as_millis();
        if args.name.json {
            println!("{}", serde_json::json!({"started": args.name.name, "ms": ms}));
        } else {
            println!("Interface {} started ({ms} ms)", args.name.name);
        }
        Ok(Outcome::Clean)
    })
}

pub fn stop(args: StopArgs) -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let agent = agent().await?;
        let _lock = lock(format!("stop {}", args.name.name))?;
        agent.stop(&args.name.name, Duration::from_secs(args.wait.timeout)).await?;
        if args.name.json {
            println!("{}", serde_json::json!({"stopped": args.name.name}));
        } else {
            println!("Interface {} stopped", args.name.name);
        }
        Ok(Outcome::Clean)
    })
}

pub fn list(args: ListArgs) -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let all = agent().await?.list().await?;
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
        writeln!(out, " {:<w$}   {:<8}   MAC Address", "Name", "State")?;
        writeln!(out, "{}", "-".repeat(w + 34))?;
        for l in shown {
            let state = if l.active { "active" } else { "inactive" };
            writeln!(out, " {:<w$}   {:<8}   {}", l.name, state, l.mac.as_deref().unwrap_or(""))?;
        }
        Ok(Outcome::Clean)
    })
}

pub fn dumpxml(args: DumpArgs) -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let xml = agent().await?.dumpxml(&args.name, args.inactive).await?;
        std::io::stdout().lock().write_all(xml.as_bytes())?;
        Ok(Outcome::Clean)
    })
}

pub fn name(args: MacArg) -> anyhow::Result<Outcome> {
    let mac = Mac::parse(&args.mac).map_err(anyhow::Error::msg)?;
    runtime()?.block_on(async {
        println!("{}", agent().await?.name_of(&mac).await?);
        Ok(Outcome::Clean)
    })
}

pub fn mac(args: NameArgs) -> anyhow::Result<Outcome> {
    let name = IfName::new(&args.name).map_err(anyhow::Error::msg)?;
    runtime()?.block_on(async {
        println!("{}", agent().await?.mac_of(&name).await?);
        Ok(Outcome::Clean)
    })
}

pub fn begin(args: BeginArgs) -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let agent = agent().await?;
        let (store, _lock) = lock("begin".into())?;
        let j = agent.begin(&store, args.timeout).await?;
        let auto = if args.timeout == 0 { "never".to_string() } else { format!("after {} s", args.timeout) };
        println!(
            "Network config change transaction started (checkpoint {}; NetworkManager rolls back by itself {auto})",
            j.checkpoint
        );
        Ok(Outcome::Clean)
    })
}

pub fn commit(args: EndArgs) -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let agent = agent().await?;
        let (store, _lock) = lock("commit".into())?;
        let cp = agent.commit(&store, args.checkpoint.as_deref()).await?;
        println!("Network config change transaction committed (checkpoint {cp} destroyed)");
        Ok(Outcome::Clean)
    })
}

pub fn rollback(args: EndArgs) -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let agent = agent().await?;
        let (store, _lock) = lock("rollback".into())?;
        let problems = agent.rollback(&store, args.checkpoint.as_deref()).await?;
        if problems.is_empty() {
            println!("Network config change transaction rolled back");
            Ok(Outcome::Clean)
        } else {
            anyhow::bail!("rolled back, but not everything was restored: {}", problems.join("; "))
        }
    })
}
