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
/// exits after --idle-exit seconds with no client and no call in flight. The Debian package
/// installs both files system-wide; for your user alone (a build from source):
///
///   nmiface session --install-user     # this very binary, by its absolute path
///   systemctl --user daemon-reload
///
/// `nmiface session --uninstall` removes them again.
///
/// Try it: busctl --user call org.nmiface.Interfaces1 /org/nmiface/Interfaces1
/// org.nmiface.Interfaces1.Manager ListInterfaces u 0
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Exit after this many seconds with no client connected and no call in flight.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    idle_exit: u64,
    /// Write the D-Bus activation file and the systemd user unit for this binary (its absolute
    /// path) under ~/.local/share/dbus-1/services/ and ~/.config/systemd/user/, then exit.
    #[arg(long, conflicts_with = "uninstall")]
    install_user: bool,
    /// Remove the files --install-user wrote, then exit.
    #[arg(long)]
    uninstall: bool,
}

/// The D-Bus activation file and the systemd user unit, as the package installs them
/// (`/usr/bin/nmiface`).
const ACTIVATION: &str = include_str!("../../data/org.nmiface.Interfaces1.service");
const UNIT: &str = include_str!("../../data/nmiface-session.service");
const PACKAGED: &str = "/usr/bin/nmiface";

/// Where the user's files go: (activation file, unit), by the XDG base directories.
fn user_files() -> anyhow::Result<[std::path::PathBuf; 2]> {
    use std::path::PathBuf;
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    let base = |var: &str, fallback: &str| -> anyhow::Result<PathBuf> {
        match std::env::var_os(var).filter(|v| !v.is_empty()) {
            Some(d) => Ok(PathBuf::from(d)),
            None => Ok(home.clone().ok_or_else(|| anyhow::anyhow!("neither {var} nor HOME is set"))?.join(fallback)),
        }
    };
    Ok([
        base("XDG_DATA_HOME", ".local/share")?.join("dbus-1/services/org.nmiface.Interfaces1.service"),
        base("XDG_CONFIG_HOME", ".config")?.join("systemd/user/nmiface-session.service"),
    ])
}

/// Writes both files for the running binary. The path comes from the kernel
/// (`std::env::current_exe`), never from PATH: a file naming no program cannot be written.
fn install_user() -> anyhow::Result<()> {
    use anyhow::Context as _;
    let exe = std::env::current_exe().context("cannot tell where this nmiface binary is")?;
    let exe = exe.to_str().filter(|p| !p.contains(char::is_whitespace) && !p.contains(['%', '"', '\\'])).ok_or_else(
        || anyhow::anyhow!("this binary's path {} cannot be written into an Exec= line; move it", exe.display()),
    )?;
    for (path, template) in user_files()?.iter().zip([ACTIVATION, UNIT]) {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(path, template.replace(PACKAGED, exe))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {} (runs {exe} session)", path.display());
    }
    println!("Run `systemctl --user daemon-reload` so systemd sees the unit; the first call starts the service.");
    Ok(())
}

/// Removes what [`install_user`] wrote; a file already gone is fine.
fn uninstall() -> anyhow::Result<()> {
    for path in user_files()? {
        match std::fs::remove_file(&path) {
            Ok(()) => println!("removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("{} was not there", path.display()),
            Err(e) => return Err(anyhow::anyhow!("cannot remove {}: {e}", path.display())),
        }
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    if args.install_user {
        install_user()?;
        return Ok(Outcome::Clean);
    }
    if args.uninstall {
        uninstall()?;
        return Ok(Outcome::Clean);
    }
    super::block_on(async {
        nmiface::session::serve(nmiface::session::Options { idle_exit: Duration::from_secs(args.idle_exit) }).await?;
        Ok(Outcome::Clean)
    })
}
