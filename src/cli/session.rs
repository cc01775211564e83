//! `nmiface session`: the session service, normally started by D-Bus activation.

use super::Outcome;
use std::time::Duration;

/// Run the session service on your session bus (org.nmiface.Interfaces1).
///
/// Session tools acting for you (VM managers, settings panels, scripts) call it over D-Bus. It has
/// no privileges of its own: it talks to NetworkManager as you, so NetworkManager's polkit rules
/// and connection.permissions decide everything. Profiles it makes are yours alone
/// (connection.permissions=user:YOU) unless a call asks for system-wide ones (flag SYSTEM = 4).
///
/// You do not normally start it: the D-Bus activation file starts it on the first call, and it
/// exits after --idle-exit seconds with no client and no call in flight. Install for your user:
///
///   install -Dm644 data/org.nmiface.Interfaces1.service ~/.local/share/dbus-1/services/
///   install -Dm644 data/nmiface-session.service ~/.config/systemd/user/
///
/// Try it: busctl --user call org.nmiface.Interfaces1 /org/nmiface/Interfaces1
/// org.nmiface.Interfaces1.Manager ListInterfaces u 0
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Exit after this many seconds with no client connected and no call in flight.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    idle_exit: u64,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    super::block_on(async {
        nmiface::session::serve(nmiface::session::Options { idle_exit: Duration::from_secs(args.idle_exit) }).await?;
        Ok(Outcome::Clean)
    })
}
