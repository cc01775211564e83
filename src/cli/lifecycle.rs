//! The `virsh iface-*` verbs against the running NetworkManager: define, undefine, start, stop,
//! apply, list, dumpxml, name, mac (begin, commit, rollback: `transaction.rs`). Each parses, calls one entry of
//! [`nmiface::verbs`], and prints.

use super::{
    block_on, clear_progress, connect, interruptible, print_findings, print_forced, progress_printer, read_input, say,
    say_json, Outcome,
};
use nmiface::agent::How;
use nmiface::finding::{any_loses_meaning, Finding};
use nmiface::nm_client::Progress;
use nmiface::verbs::{defaults, ApplyOptions, DefineOptions};
use nmiface::xml;
use std::time::{Duration, Instant};

/// Options shared by the commands that wait for activation.
#[derive(Debug, clap::Args)]
pub struct Wait {
    /// Seconds to wait for activation before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::ACTIVATION_TIMEOUT.as_secs())]
    timeout: u64,
}

/// `define`: create or update the profiles of the interfaces in FILE (`virsh iface-define`).
#[derive(Debug, clap::Args)]
pub struct DefineArgs {
    /// Interface XML (libvirt format, 2009 draft, or an <interfaces> host file); - reads stdin.
    #[arg(value_hint = clap::ValueHint::FilePath)]
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
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::ROLLBACK_TIMEOUT, value_parser = clap::value_parser!(u32).range(1..))]
    rollback_timeout: u32,
    /// Do not take a checkpoint: a failure leaves what was done so far.
    #[arg(long, conflicts_with = "confirm")]
    no_checkpoint: bool,
    /// Print what apply would change, profile by profile (NetworkManager settings as
    /// `bridge.stp: no → yes`, the stored XML as a line diff) and which interfaces would be
    /// re-activated, and change nothing. Exits 3 when changes are pending, 0 when none.
    #[arg(long, conflicts_with_all = ["confirm", "no_checkpoint"])]
    check: bool,
    /// Try the change: keep it only if confirmed (type `commit`) within SECONDS, else roll it
    /// back; if nmiface is gone by then (the SSH session died with the network),
    /// NetworkManager rolls the devices back by itself.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    confirm: Option<u32>,
}

/// An interface name argument.
#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// Interface name (as defined by nmiface).
    pub(super) name: String,
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

fn parse(file: &str) -> anyhow::Result<(String, xml::Document)> {
    let (source, text) = read_input(file)?;
    let doc = xml::parse_document(&source, &text)?;
    Ok((source, doc))
}

fn exit_for(findings: &[Finding]) -> Outcome {
    if any_loses_meaning(findings) {
        Outcome::Findings
    } else {
        Outcome::Clean
    }
}

pub fn define(args: DefineArgs) -> anyhow::Result<Outcome> {
    let (source, doc) = parse(&args.file)?;
    block_on(async {
        let ctx = connect().await?;
        let out = interruptible(&ctx, async {
            Ok(ctx.define(&doc, DefineOptions { adopt: args.adopt, force: args.force }).await?)
        })
        .await?;
        print_forced(&out.forced);
        print_findings(&source, &out.findings);
        if args.json {
            say_json(&serde_json::json!({ "defined": out.defined, "findings": out.findings }));
        } else {
            for d in &out.defined {
                say(&format!(
                    "Interface {} defined from {source} ({} added, {} updated, {} deleted)",
                    d.interface, d.added, d.updated, d.deleted
                ));
            }
        }
        Ok(exit_for(&out.findings))
    })
}

pub fn apply(args: ApplyArgs) -> anyhow::Result<Outcome> {
    let (source, doc) = parse(&args.define.file)?;
    block_on(async {
        let ctx = connect().await?;
        if args.check {
            return super::diff::print_diff(&ctx.diff(&doc, args.define.adopt).await?, args.define.json);
        }
        let t0 = Instant::now();
        // One line for every interface the change starts, created at the first event (a change
        // that starts nothing shows none).
        let mut printer: Option<Box<dyn FnMut(Progress) + Send>> = None;
        let mut progress =
            |_: &str, p: Progress| printer.get_or_insert_with(|| Box::new(progress_printer("applying".into())))(p);
        let o = ApplyOptions {
            adopt: args.define.adopt,
            force: args.define.force,
            timeout: Duration::from_secs(args.wait.timeout),
            rollback_timeout: args.rollback_timeout,
            checkpoint: !args.no_checkpoint,
        };
        let (out, pending) = match args.confirm {
            None => (interruptible(&ctx, async { Ok(ctx.apply(&doc, o, &mut progress).await?) }).await, None),
            Some(secs) => {
                match interruptible(&ctx, async { Ok(ctx.apply_confirm(&doc, o, secs, &mut progress).await?) }).await {
                    Ok((out, p)) => (Ok(out), Some((p, secs))),
                    Err(e) => (Err(e), None),
                }
            }
        };
        clear_progress();
        let out = out?;
        print_forced(&out.forced);
        print_findings(&source, &out.findings);
        let changed = out.changed();
        if args.define.json {
            let started: Vec<_> = out
                .started
                .iter()
                .filter_map(|(name, r)| r.as_ref().ok().map(|(how, d)| (name, how, d)))
                .map(|(name, how, d)| {
                    serde_json::json!({"interface": name, "started": true, "outcome": how, "ms": d.as_millis()})
                })
                .collect();
            say_json(&serde_json::json!({
                "changed": changed, "defined": out.defined, "started": started, "findings": out.findings,
                "protection": out.protection, "ms": t0.elapsed().as_millis(),
            }));
        } else if !changed {
            say(&format!("Nothing to do: the host already matches {source}"));
        } else {
            for (name, r) in &out.started {
                match r {
                    Ok((How::Unchanged, _)) => say(&format!("Interface {name} unchanged")),
                    Ok((How::Reapplied, d)) => {
                        say(&format!("Interface {name} updated in place, link kept up ({} ms)", d.as_millis()))
                    }
                    Ok((How::Reactivated, d)) => {
                        say(&format!("Interface {name} updated and re-activated ({} ms)", d.as_millis()))
                    }
                    Ok((How::Started, d)) => {
                        say(&format!("Interface {name} defined and started ({} ms)", d.as_millis()))
                    }
                    // The verb fails when one did not start (VerbError::NotStarted).
                    Err(_) => {}
                }
            }
        }
        if let Some((pending, secs)) = pending {
            let answer = ask_to_keep(secs, pending.checkpoint(), args.define.json).await;
            ctx.settle(pending, answer == Answer::Keep).await?;
            let why = match answer {
                Answer::Keep => None,
                Answer::Silence => Some(format!("not confirmed within {secs} s")),
                Answer::Closed => {
                    Some("standard input was closed before `commit` came (--confirm reads the answer there)".into())
                }
                Answer::Other(a) => Some(format!("the answer was '{a}', not `commit`")),
                Answer::Interrupted => Some("interrupted at the question".into()),
            };
            if let Some(why) = why {
                anyhow::bail!("{why}: the change was rolled back; the host is as before");
            }
            say(if args.define.json { r#"{"confirmed": true}"# } else { "Changes kept" });
        }
        Ok(exit_for(&out.findings))
    })
}

/// The answer to `--confirm`'s question.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// `commit` (or `yes`, `y`).
    Keep,
    /// Nothing within the time.
    Silence,
    /// End of input: stdin is closed (`</dev/null`, a finished pipe).
    Closed,
    /// Another answer.
    Other(String),
    /// SIGINT at the question.
    Interrupted,
}

/// Asks on stdin whether to keep a tried change: `commit` (or `yes`, `y`) within `secs` keeps it;
/// anything else, end of input, or silence rolls it back. With `json`, a machine answers the same
/// way after reading the JSON result.
async fn ask_to_keep(secs: u32, checkpoint: &str, json: bool) -> Answer {
    if json {
        say(&serde_json::json!({"confirm": {"checkpoint": checkpoint, "seconds": secs, "answer": "commit"}})
            .to_string());
    } else {
        eprint!("Keep these changes? Type 'commit' within {secs} s, or they are rolled back: ");
    }
    // A plain thread, not tokio's stdin: the runtime would wait for a blocked read at exit, and
    // an unanswered question must not keep the process alive.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let n = std::io::stdin().read_line(&mut line).unwrap_or(0);
        let _ = tx.send((n, line));
    });
    let read = tokio::time::timeout(Duration::from_secs(u64::from(secs)), rx);
    // Ctrl-C at the question is a "no" (the signal handlers of the change are still installed).
    let answer = tokio::select! {
        r = read => match r {
            Ok(Ok((n, line))) if n > 0 => match line.trim() {
                "commit" | "yes" | "y" => Answer::Keep,
                other => Answer::Other(other.chars().take(40).collect()),
            },
            // End of input, or an unreadable stdin (read_line's error counts as 0 bytes).
            Ok(_) => Answer::Closed,
            Err(_) => Answer::Silence,
        },
        _ = tokio::signal::ctrl_c() => Answer::Interrupted,
    };
    if !json && matches!(answer, Answer::Silence | Answer::Closed | Answer::Interrupted) {
        eprintln!();
    }
    answer
}

pub fn undefine(args: NameArgs) -> anyhow::Result<Outcome> {
    block_on(async {
        let ctx = connect().await?;
        let n = interruptible(&ctx, async { Ok(ctx.undefine(&args.name).await?) }).await?;
        if args.json {
            say_json(&serde_json::json!({"undefined": args.name, "profiles": n}));
        } else {
            let profiles = if n == 1 { "profile" } else { "profiles" };
            say(&format!("Interface {} undefined ({n} {profiles} deleted)", args.name));
        }
        Ok(Outcome::Clean)
    })
}

pub fn start(args: StartArgs) -> anyhow::Result<Outcome> {
    block_on(async {
        let ctx = connect().await?;
        let t0 = Instant::now();
        let mut progress = progress_printer(format!("starting {}", args.name.name));
        let timeout = Duration::from_secs(args.wait.timeout);
        let out = ctx.start(&args.name.name, timeout, args.force, &mut progress).await;
        clear_progress();
        let out = out?;
        print_forced(&out.forced);
        let ms = t0.elapsed().as_millis();
        if args.name.json {
            say_json(&serde_json::json!({"started": args.name.name, "changed": !out.already, "ms": ms}));
        } else if out.already {
            say(&format!("Interface {} is running already: nothing to do", args.name.name));
        } else {
            say(&format!("Interface {} started ({ms} ms)", args.name.name));
        }
        Ok(Outcome::Clean)
    })
}

pub fn stop(args: StopArgs) -> anyhow::Result<Outcome> {
    block_on(async {
        connect().await?.stop(&args.name.name, Duration::from_secs(args.wait.timeout)).await?;
        if args.name.json {
            say_json(&serde_json::json!({"stopped": args.name.name}));
        } else {
            say(&format!("Interface {} stopped", args.name.name));
        }
        Ok(Outcome::Clean)
    })
}
