//! `bridge-helper`: qemu's bridge-helper protocol on NetworkManager's authority, for VMs run by
//! a user (libvirt's session mode, GNOME Boxes, virt-manager, plain qemu): no setuid, no
//! capability, no file root edits.
//!
//! libvirt runs its `bridge_helper` by path with arguments of its own, so the helper is this
//! binary called as `nmiface-bridge-helper` (a link to it) as well as `nmiface bridge-helper`.

use super::{block_on, connect, interruptible, Outcome};
use nmiface::verbs::TapRequest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The name the binary answers to as libvirt's bridge helper.
pub const HELPER_NAME: &str = "nmiface-bridge-helper";

/// A bridge helper for VMs you run yourself: a tap of yours on BRIDGE, opened and handed to
/// qemu, gone when the VM is.
///
/// Called by libvirt's session mode (`<interface type='bridge'>` in a `qemu:///session`
/// domain) as `nmiface-bridge-helper --use-vnet --br=BRIDGE --fd=N`, and by qemu's
/// `-netdev bridge,br=BRIDGE,helper="nmiface bridge-helper"`. It makes a tap owned by you, a
/// port of BRIDGE (your NAT bridge from `nmiface share --nat`, or a NIC's bridge from `nmiface
/// bridge`, as `tap add`), opens it and sends it over the UNIX socket N (one byte,
/// SCM_RIGHTS), then exits 0. NetworkManager deletes the tap and its profile when the VM closes
/// it (it stops, is destroyed or crashes); nothing is written to disk. NetworkManager's polkit
/// rules and the bridge's owner decide, as for `tap add`; on a refusal it exits 2 with one line
/// on stderr, which libvirt shows.
///
/// For libvirt: `nmiface bridge-helper --install-libvirt` sets `bridge_helper` in your
/// ~/.config/libvirt/qemu.conf (`--libvirt-config` prints the line instead).
#[derive(Debug, clap::Args)]
#[command(after_help = "Exit status: 0 the tap was sent; 2 refused or failed, nothing left behind (one line \
on stderr).")]
pub struct Args {
    /// Open the tap with a virtio-net header (qemu and libvirt ask for it).
    #[arg(long)]
    use_vnet: bool,
    /// The bridge the tap becomes a port of.
    #[arg(long = "br", value_name = "BRIDGE", required_unless_present_any = ["libvirt_config", "install_libvirt"])]
    br: Option<String>,
    /// The UNIX socket (an inherited descriptor) to send the open tap over.
    #[arg(long, value_name = "N", required_unless_present_any = ["libvirt_config", "install_libvirt"])]
    fd: Option<i32>,
    /// Seconds to wait for the tap to come up.
    #[arg(long, value_name = "SECONDS", default_value_t = nmiface::verbs::defaults::TAP_TIMEOUT.as_secs())]
    timeout: u64,
    /// Print the qemu.conf line that makes libvirt's session mode use this helper.
    #[arg(long, conflicts_with_all = ["br", "fd", "use_vnet", "install_libvirt"])]
    libvirt_config: bool,
    /// Write that line into your ~/.config/libvirt/qemu.conf (replacing any bridge_helper
    /// there; the rest of the file is kept).
    #[arg(long, conflicts_with_all = ["br", "fd", "use_vnet"])]
    install_libvirt: bool,
}

/// Whether this process was started under the helper's name (libvirt's `bridge_helper`).
pub fn called_as_helper() -> bool {
    std::env::args_os().next().and_then(|a| Path::new(&a).file_name().map(|n| n == HELPER_NAME)).unwrap_or(false)
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    if a.libvirt_config || a.install_libvirt {
        return libvirt_config(a.install_libvirt);
    }
    let (Some(bridge), Some(fd)) = (a.br, a.fd) else {
        anyhow::bail!("--br=BRIDGE and --fd=N are needed (see --help)");
    };
    // A bad --fd is refused before anything changes.
    let socket = nmiface::host_tun::caller_socket(fd)?;
    match hand_over(&socket, bridge, a.use_vnet, a.timeout) {
        Ok(o) => Ok(o),
        Err(e) => {
            // One line, written while the socket is still open: libvirt reads the helper's
            // stderr for its message once the socket closes, and a line written after that
            // was missing from it ("failed to communicate with bridge helper: : …").
            eprintln!("nmiface: error: {}", super::said_once(&e).replace('\n', " "));
            drop(socket);
            std::process::exit(2);
        }
    }
}

fn hand_over(socket: &std::os::fd::OwnedFd, bridge: String, vnet_hdr: bool, timeout: u64) -> anyhow::Result<Outcome> {
    block_on(async {
        let ctx = connect().await?;
        let mut r = TapRequest::new(bridge);
        r.timeout = Duration::from_secs(timeout);
        let opened = interruptible(&ctx, async { Ok(ctx.open_tap(&r, vnet_hdr).await?) }).await?;
        use std::os::fd::AsFd;
        nmiface::host_tun::send_fd(socket.as_fd(), opened.fd.as_fd())?;
        tracing::debug!(tap = %opened.tap, bridge = %opened.bridge, "tap handed over");
        Ok(Outcome::Clean)
    })
}

/// The helper's path for libvirt: a link named [`HELPER_NAME`] to this binary (the one it was
/// called by, one beside it, or where the Debian package puts it); `make`: one under ~/.local/lib/nmiface when there is none.
fn helper_path(make: bool) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?.canonicalize()?;
    let beside = exe.with_file_name(HELPER_NAME);
    // The link this process was called by, when it is one (an absolute path).
    let called = std::env::args_os().next().map(PathBuf::from).filter(|p| p.is_absolute() && called_as_helper());
    let candidates = called.into_iter().chain([beside.clone(), PathBuf::from("/usr/libexec").join(HELPER_NAME)]);
    if let Some(p) = candidates.into_iter().find(|p| p.canonicalize().is_ok_and(|c| c == exe)) {
        return Ok(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let own = home.map(|h| h.join(".local/lib/nmiface").join(HELPER_NAME));
    match (make, own) {
        (true, Some(link)) => {
            if let Some(dir) = link.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A stale link (an older build's path) is replaced.
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&exe, &link)?;
            Ok(link)
        }
        _ => anyhow::bail!(
            "there is no {HELPER_NAME} for {}: libvirt runs its bridge helper by path, and nmiface is the helper when \
             called by that name; make one with `ln -s {} {}` (or run --install-libvirt, which makes one under \
             ~/.local/lib/nmiface)",
            exe.display(),
            exe.display(),
            beside.display()
        ),
    }
}

fn libvirt_config(write: bool) -> anyhow::Result<Outcome> {
    let line = format!("bridge_helper = \"{}\"", helper_path(write)?.display());
    if !write {
        println!("{line}");
        return Ok(Outcome::Clean);
    }
    let dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("libvirt"),
        None => PathBuf::from(std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("HOME is not set"))?)
            .join(".config/libvirt"),
    };
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("qemu.conf");
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
    };
    let new = with_bridge_helper(&old, &line);
    if new != old {
        // Written whole, then renamed: libvirt never reads half a file.
        let tmp = dir.join(".qemu.conf.nmiface");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(new.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    }
    println!("{}: {line}", path.display());
    println!(
        "libvirt's session daemon reads it when it starts: one that runs now stops by itself when idle, or restart it \
         (pkill -u \"$USER\" -x libvirtd)"
    );
    Ok(Outcome::Clean)
}

/// `conf` with `line` as its only `bridge_helper` setting: the setting's place kept if it
/// had one, else appended; everything else as it was.
fn with_bridge_helper(conf: &str, line: &str) -> String {
    let is_setting =
        |l: &str| l.trim_start().strip_prefix("bridge_helper").is_some_and(|r| r.trim_start().starts_with('='));
    let mut out = String::new();
    let mut placed = false;
    for l in conf.lines() {
        if is_setting(l) {
            if !placed {
                out.push_str(line);
                out.push('\n');
                placed = true;
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    if !placed {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_bridge_helper;

    #[test]
    fn the_setting_is_replaced_or_added_and_the_rest_kept() {
        let line = "bridge_helper = \"/x/nmiface-bridge-helper\"";
        assert_eq!(with_bridge_helper("", line), format!("{line}\n"));
        let conf = "# mine\nvnc_listen = \"0.0.0.0\"\nbridge_helper = \"/usr/lib/qemu/qemu-bridge-helper\"\nuser = \"me\"\nbridge_helper=\"/old\"\n";
        assert_eq!(
            with_bridge_helper(conf, line),
            format!("# mine\nvnc_listen = \"0.0.0.0\"\n{line}\nuser = \"me\"\n")
        );
        // A comment that mentions it is not the setting.
        assert_eq!(with_bridge_helper("#bridge_helper = \"/a\"", line), format!("#bridge_helper = \"/a\"\n{line}\n"));
        // Idempotent.
        let once = with_bridge_helper(conf, line);
        assert_eq!(with_bridge_helper(&once, line), once);
    }
}
