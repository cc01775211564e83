//! Argument parsing, logging setup, and the one place that turns outcomes into exit codes.

mod bridge_helper;
mod check;
mod daemon;
mod diff;
mod lifecycle;
mod output;
mod query;
mod session;
mod share;
mod shell;
mod tap;
mod transaction;
mod translate;

use daemon::{block_on, connect, interruptible};
use output::{clear_progress, print_forced, progress_printer, say, say_json};

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

/// Configure host network interfaces from libvirt interface XML, through NetworkManager.
///
/// nmiface reads libvirt's interface XML (what `virsh iface-dumpxml` prints) and the 2009 draft
/// dialect (`<interface device=…>`, `<bond>`, `<bridge>`, `<vlan>`, `<shared bridge=…/>`),
/// and turns it into NetworkManager connection profiles.
#[derive(Debug, Parser)]
#[command(name = "nmiface", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "Exit status: 0 ok; 1 finished, but something was approximated or is unsupported \
(findings on stderr); 2 error (bad input, usage), nothing changed.\n\n\
Logging: -v (or RUST_LOG=nmiface=debug) logs every NetworkManager call on stderr; -vv traces more.")]
pub struct Cli {
    /// More log output on stderr (-v: every NetworkManager call and what nmiface does, -vv:
    /// trace, also zbus's own). Colours only on a terminal.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Work on system-wide profiles. Root always does; run as a desktop user, nmiface makes and
    /// changes only that user's own profiles (connection.permissions=user:NAME: NetworkManager
    /// lets only that user use them, and takes them down at logout) unless this is given, and
    /// then NetworkManager's polkit rules decide (settings.modify.system).
    #[arg(long, global = true)]
    system: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Translate(translate::Args),
    Check(check::Args),
    /// Create or update the NetworkManager profiles of the interfaces in FILE (virsh iface-define).
    #[command(after_help = "Profiles are added or updated in place (same UUIDs on every define); ports no longer \
in the definition are deleted. Nothing is activated: use start or apply.\nProfiles nmiface did not create are \
never changed: one with the same UUID or name is refused unless --adopt; other profiles for the same device are left alone.")]
    Define(lifecycle::DefineArgs),
    /// Delete an interface's profiles; only profiles nmiface created (virsh iface-undefine).
    Undefine(lifecycle::NameArgs),
    /// Activate an interface and its ports, and wait for the outcome (virsh iface-start).
    Start(lifecycle::StartArgs),
    /// Deactivate an interface (virsh iface-destroy).
    Stop(lifecycle::StopArgs),
    /// Define and start everything in FILE, controllers with their ports, as one step.
    #[command(after_help = "apply is one step for the host: it takes a NetworkManager checkpoint, defines, starts \
and checks every interface, and on any failure rolls back to the checkpoint and restores the profiles it \
changed. If nmiface dies meanwhile, NetworkManager rolls back by itself after --rollback-timeout seconds \
without a keep-alive. Inside a transaction (nmiface begin) the transaction protects the host instead.\n\n\
--confirm SECONDS tries the change (like netplan try): it asks to keep it, and rolls it back unless it \
reads `commit` on stdin in time; with --json it prints the result, then a line {\"confirm\": {…}}, and \
waits for the answer on stdin.\n\n\
Exit status: 0 ok; 1 finished, but something was approximated or is unsupported (findings on stderr); \
2 error, and the host is as before; 3 with --check: changes are pending (0: none).\n\n\
--check changes nothing; --check --json prints {\"changed\", \"profiles\": [{\"profile\", \"interface\", \"action\", \
\"changes\": [{\"property\", \"before\", \"after\"}]}]} with D-Bus-typed values.")]
    Apply(lifecycle::ApplyArgs),
    /// List the host's interfaces: name, state, MAC, profile (virsh iface-list); profiles nmiface
    /// did not define are listed read-only.
    List(query::ListArgs),
    /// Print an interface as libvirt XML (virsh iface-dumpxml); another profile's too, with what
    /// the format cannot say on stderr.
    Dumpxml(query::DumpArgs),
    /// The interface with a MAC address (virsh iface-name).
    Name(query::MacArg),
    /// The MAC address of an interface (virsh iface-mac).
    Mac(lifecycle::NameArgs),
    Bridge(share::BridgeArgs),
    /// Undo bridge: the bridge goes, the NIC gets its configuration back (virsh iface-unbridge).
    Unbridge(share::UnbridgeArgs),
    Share(share::ShareArgs),
    Tap(tap::Args),
    Leases(tap::LeasesArgs),
    BridgeHelper(bridge_helper::Args),
    /// Open a transaction on a NetworkManager checkpoint (virsh iface-begin).
    Begin(transaction::BeginArgs),
    /// Keep the transaction's changes (virsh iface-commit).
    Commit(transaction::EndArgs),
    /// Put the host back as it was at begin (virsh iface-rollback).
    Rollback(transaction::EndArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on standard output.
    ///
    /// The Debian package installs the bash, zsh and fish ones; by hand, e.g. for bash:
    /// `nmiface completions bash > ~/.local/share/bash-completion/completions/nmiface`.
    Completions(shell::CompletionsArgs),
    /// Write the manual pages into a directory: nmiface.1, and nmiface-COMMAND.1 for each command.
    ///
    /// The pages are roff source, uncompressed, generated from the same definitions as --help;
    /// `man -l DIR/nmiface.1` reads one in place.
    Man(shell::ManArgs),
    Session(session::Args),
}

/// What a command achieved, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything as asked.
    Clean,
    /// Done, but with findings that lose meaning.
    Findings,
    /// `apply --check`: changes are pending (exit 3, like `diff`'s 1, which nmiface's exit
    /// status already gives to findings).
    Pending,
}

/// Parses arguments, runs the command, and returns the exit code.
pub fn main() -> ExitCode {
    // Called by the helper's name (libvirt's `bridge_helper` is a path, with its own arguments).
    let cli = match bridge_helper::called_as_helper() {
        true => {
            Cli::parse_from(["nmiface".into(), "bridge-helper".into()].into_iter().chain(std::env::args_os().skip(1)))
        }
        false => Cli::parse(),
    };
    init_logging(cli.verbose);
    daemon::set_system(cli.system);
    let result = match cli.command {
        Command::Translate(args) => translate::run(args),
        Command::Check(a) => check::run(a, cli.verbose > 0),
        Command::Define(a) => lifecycle::define(a),
        Command::Undefine(a) => lifecycle::undefine(a),
        Command::Start(a) => lifecycle::start(a),
        Command::Stop(a) => lifecycle::stop(a),
        Command::Apply(a) => lifecycle::apply(a),
        Command::List(a) => query::list(a),
        Command::Dumpxml(a) => query::dumpxml(a),
        Command::Name(a) => query::name(a),
        Command::Mac(a) => query::mac(a),
        Command::Bridge(a) => share::bridge(a),
        Command::Unbridge(a) => share::unbridge(a),
        Command::Share(a) => share::share(a),
        Command::Begin(a) => transaction::begin(a),
        Command::Commit(a) => transaction::commit(a),
        Command::Rollback(a) => transaction::rollback(a),
        Command::Completions(a) => shell::completions(a),
        Command::Man(a) => shell::man(a),
        Command::Session(a) => session::run(a),
        Command::Tap(a) => tap::run(a),
        Command::Leases(a) => tap::leases(a),
        Command::BridgeHelper(a) => bridge_helper::run(a),
    };
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Ok(Outcome::Pending) => ExitCode::from(3),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<daemon::Interrupted>().is_some() => {
            let status = e.downcast_ref::<daemon::Interrupted>().map_or(2, |i| i.status);
            let _ = writeln!(std::io::stderr(), "nmiface: {}", said_once(&e));
            ExitCode::from(status)
        }
        Err(e) => {
            let message = said_once(&e);
            let _ = writeln!(std::io::stderr(), "nmiface: error: {message}");
            if std::env::args().any(|a| a == "--json") {
                say_json(&serde_json::json!({"error": {"kind": error_kind(&e), "message": message}}));
            }
            ExitCode::from(2)
        }
    }
}

/// An error with its causes, each said once: anyhow's `{:#}` appends every cause after the
/// message, but many messages already embed their cause (thiserror's `{source}`, zbus's
/// "Failed to connect …: <io error>"), which made a missing bus read three times. A cause
/// whose text is already in what was said adds nothing and is left out.
fn said_once(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The kind of a failed command, as the session service would name it: a verb's own, else
/// what the CLI itself refused (the document, an argument).
fn error_kind(e: &anyhow::Error) -> nmiface::verbs::ErrorKind {
    use nmiface::verbs::{ErrorKind, VerbError};
    for c in e.chain() {
        if let Some(v) = c.downcast_ref::<VerbError>() {
            return v.kind();
        }
        if c.downcast_ref::<nmiface::xml::XmlError>().is_some() {
            return ErrorKind::InvalidXml;
        }
    }
    // What is left is the CLI's own refusal of its arguments: an unreadable file, a malformed
    // MAC or name, a missing user record.
    ErrorKind::InvalidArgs
}

/// A reader closing our stdout early (`| head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let pipe = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == pipe
            // serde_json's error keeps the io error's kind but not the io error in the chain.
            || c.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind) == pipe
    })
}

fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    // Every NetworkManager call is logged at debug (house style), so -v starts there: README
    // and --help promise that -v shows every call.
    let default = match verbose {
        0 => "warn",
        1 => "nmiface=debug",
        _ => "nmiface=trace,zbus=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Escape codes only where a terminal reads them, not in a pipe or a log file.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Reads a document from a path, or standard input for `-`. Returns the name to show in
/// messages and the text.
pub fn read_input(path: &str) -> anyhow::Result<(String, String)> {
    Ok(nmiface::xml::read_input(path)?)
}

/// Prints findings to stderr, one per line, prefixed with the document name.
pub fn print_findings(source: &str, findings: &[nmiface::finding::Finding]) {
    let mut err = std::io::stderr().lock();
    for f in findings {
        let _ = writeln!(err, "{source}:{f}");
    }
}
