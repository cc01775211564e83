//! `tap add`, `tap remove`, `tap list`, `leases`: VMs on your NAT bridge without root.

use super::{block_on, connect, interruptible, say, say_json, Outcome};
use nmiface::verbs::TapRequest;
use std::time::Duration;

/// User-owned taps for VMs: a tap you own, a port of your bridge; qemu opens it without root.
///
/// `tap add nat0` makes a tap device owned by you (NetworkManager's tun profile: tap mode,
/// owner = your uid, vnet_hdr on) and a port of bridge nat0, your NAT bridge (`nmiface share
/// --nat --bridge nat0`) or a NIC's bridge made by `nmiface bridge` (the VM is then on the LAN).
/// It prints the libvirt `<interface>` and the qemu options that use it: no setuid helper, no
/// file under /etc. Nobody else can open the tap (the kernel answers EPERM).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TapCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TapCommand {
    /// Make a tap owned by you, a port of BRIDGE, up and ready for a VM.
    Add(AddArgs),
    /// Remove one of your taps.
    Remove(RemoveArgs),
    /// Your taps.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// The bridge: yours (share --nat) or a NIC's (bridge).
    bridge: String,
    /// The tap's name (default: the first free vtapN).
    #[arg(long)]
    name: Option<String>,
    /// One queue per vCPU (qemu queues=N, virtio-net mq=on).
    #[arg(long)]
    multi_queue: bool,
    /// Seconds to wait for the tap to come up.
    #[arg(long, value_name = "SECONDS", default_value_t = nmiface::verbs::defaults::TAP_TIMEOUT.as_secs())]
    timeout: u64,
    /// Print the tap, the libvirt XML and the qemu words as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct RemoveArgs {
    /// The tap.
    tap: String,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only the taps of this bridge.
    bridge: Option<String>,
    /// As a JSON array.
    #[arg(long)]
    json: bool,
}

/// The leases NetworkManager's DHCP server gave on your NAT bridge: where your VMs are.
///
/// From NetworkManager's dnsmasq lease file where you may read it (root; it has host names and
/// expiry), and from the kernel's neighbour table, which anyone may read: on a stock host a
/// user sees the addresses of the VMs behind their own taps, without host names.
#[derive(Debug, clap::Args)]
pub struct LeasesArgs {
    /// The NAT bridge.
    bridge: String,
    /// As JSON: [{"mac", "ip", "hostname", "expiry" (null: unknown), "source" ("lease-file" or
    /// "neighbour")}].
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    block_on(async {
        let ctx = connect().await?;
        match a.command {
            TapCommand::Add(a) => {
                let r = TapRequest {
                    bridge: a.bridge,
                    name: a.name,
                    multi_queue: a.multi_queue,
                    timeout: Duration::from_secs(a.timeout),
                };
                // Ctrl-C or SIGTERM: the tap recorded ahead is removed, nothing leaks.
                let out = interruptible(&ctx, async { Ok(ctx.tap_add(&r).await?) }).await?;
                if a.json {
                    say_json(&serde_json::to_value(&out)?);
                } else {
                    let lan = if out.system_bridge { " (a NIC's bridge: the VM is on the LAN)" } else { "" };
                    say(&format!("Tap {} (owner uid {}) is a port of {}{lan}", out.tap, out.owner, out.bridge));
                    say(&format!("libvirt, in the domain's <devices>:\n{}", out.domain_xml.trim_end()));
                    say(&format!("qemu: {}", out.qemu));
                }
            }
            TapCommand::Remove(a) => {
                ctx.tap_remove(&a.tap).await?;
                say(&format!("Tap {} removed", a.tap));
            }
            TapCommand::List(a) => {
                if a.json {
                    say_json(&serde_json::json!(ctx.taps(a.bridge.as_deref()).await?));
                } else {
                    let rows = ctx.taps_with_bridges(a.bridge.as_deref()).await?;
                    match (rows.is_empty(), a.bridge.as_deref()) {
                        (true, Some(b)) => say(&format!("No taps of yours on {b} (nmiface tap add {b} makes one)")),
                        (true, None) => say("No taps of yours (nmiface tap add BRIDGE makes one)"),
                        (false, _) => {
                            let w = rows.iter().map(|(t, _)| t.len()).max().unwrap_or(3).max(3);
                            say(&format!("{:<w$}  BRIDGE", "TAP"));
                            for (tap, bridge) in rows {
                                say(&format!("{tap:<w$}  {bridge}"));
                            }
                        }
                    }
                }
            }
        }
        Ok(Outcome::Clean)
    })
}

pub fn leases(a: LeasesArgs) -> anyhow::Result<Outcome> {
    block_on(async {
        let leases = connect().await?.leases(&a.bridge).await?;
        if a.json {
            say_json(&serde_json::to_value(&leases)?);
        } else if leases.is_empty() {
            say(&format!("No leases on {} yet", a.bridge));
        } else {
            for l in leases {
                // Host names come escaped (nm::leases::escape_host): nothing here reaches the
                // terminal as a control sequence.
                let host = if l.hostname.is_empty() { "-" } else { &l.hostname };
                let expiry = match l.expiry {
                    Some(0) => "never expires".to_string(),
                    Some(t) => format!("expires {t}"),
                    None => "seen on the bridge (no lease file to read)".to_string(),
                };
                say(&format!("{}  {}  {host}  {expiry}", l.mac, l.ip));
            }
        }
        Ok(Outcome::Clean)
    })
}
