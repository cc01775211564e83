//! `bridge`, `unbridge` and `share --nat`: sharing the host's network with virtual machines.

use super::{block_on, clear_progress, connect, interruptible, print_forced, progress_printer, say, Outcome};
use nmiface::agent::{subnet_address, BridgeOptions};
use nmiface::finding::any_loses_meaning;
use nmiface::nm_client::Progress;
use nmiface::verbs::{defaults, BridgeRequest, ShareRequest};
use std::time::Duration;

/// How long to wait, and how soon NetworkManager rolls back by itself if nmiface dies.
#[derive(Debug, clap::Args)]
pub struct Steps {
    /// Seconds to wait for activation.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::ACTIVATION_TIMEOUT.as_secs())]
    timeout: u64,
    /// Seconds NetworkManager waits for nmiface's keep-alive before rolling back by itself.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::ROLLBACK_TIMEOUT)]
    rollback_timeout: u32,
}

/// Share a NIC with virtual machines: a new bridge takes over its configuration (virsh iface-bridge).
///
/// The bridge gets the NIC's start mode, MTU, IP configuration and MAC (so DHCP leases and static
/// bindings survive), and the NIC becomes its port, in one step for the host. The NIC's own
/// profile is kept, untouched, and goes inactive; `nmiface unbridge BRIDGE` brings it back.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: nmiface bridge eth0 br0   # then attach VMs to br0\n\n\
Refused: a Wi-Fi NIC (a station cannot be bridged; use nmiface share --nat), a NIC that is already a \
port, a NIC without a profile to take the configuration from.")]
pub struct BridgeArgs {
    /// The NIC to share.
    nic: String,
    /// The bridge to create.
    bridge: String,
    /// Spanning tree off (it is on by default, as in libvirt).
    #[arg(long)]
    no_stp: bool,
    /// Forward delay in seconds; by default the smallest the kernel takes: 2 with STP on
    /// (libvirt's 0 is impossible then), 0 with --no-stp.
    #[arg(long, value_name = "SECONDS")]
    delay: Option<u16>,
    /// Define only; do not activate.
    #[arg(long)]
    no_start: bool,
    #[command(flatten)]
    steps: Steps,
    /// Go on despite capability gaps.
    #[arg(long)]
    force: bool,
}

/// Undo `bridge`: the bridge goes, the NIC gets its configuration back (virsh iface-unbridge).
#[derive(Debug, clap::Args)]
pub struct UnbridgeArgs {
    /// The bridge to remove.
    bridge: String,
    /// Do not activate the NIC's profile afterwards.
    #[arg(long)]
    no_start: bool,
    #[command(flatten)]
    steps: Steps,
}

/// Share the host's uplink with virtual machines through NAT (for laptops: Wi-Fi, or an uplink
/// that changes).
///
/// Creates a bridge for the VMs with NetworkManager's shared method: NetworkManager serves DHCP
/// and DNS on it (its dnsmasq) and masquerades to whichever uplink is active. Attach VMs to the
/// bridge (libvirt: <interface type='bridge'><source bridge='virbr1'/>).
///
/// To undo it: `nmiface undefine virbr1` (the bridge, its profile, and your taps on it go).
/// Running it again with another --subnet re-addresses the bridge, and says so (its VMs need new
/// leases).
#[derive(Debug, clap::Args)]
pub struct ShareArgs {
    /// NAT sharing (the only mode of `share`; L2 sharing of a NIC is `nmiface bridge`).
    #[arg(long, required = true)]
    nat: bool,
    /// The VMs' bridge.
    #[arg(long, default_value = "virbr1")]
    bridge: String,
    /// The VMs' subnet, e.g. 10.42.7.0/24; the bridge takes its first address (default: the
    /// bridge's own if it exists, else the first 10.42.N.0/24 free of this host's networks;
    /// one that collides is refused).
    #[arg(long, value_name = "A.B.C.D/N", value_parser = subnet_address)]
    subnet: Option<nmiface::model::Ipv4Net>,
    /// Define only; do not activate.
    #[arg(long)]
    no_start: bool,
    /// Run by a user: keep the share across logins (NetworkManager brings it up at each login).
    /// Without it a user's share lives with this login: NetworkManager takes it down at logout
    /// and it does not come back. Root's shares always persist (they come up at boot).
    #[arg(long)]
    persist: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    steps: Steps,
    /// Go on despite capability gaps (e.g. no dnsmasq).
    #[arg(long)]
    force: bool,
}

fn printer() -> impl FnMut(&str, Progress) + Send {
    let mut p = progress_printer("starting".into());
    move |name: &str, pr: Progress| p(Progress { what: format!("{name}: {}", pr.what), ..pr })
}

impl Steps {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

pub fn bridge(a: BridgeArgs) -> anyhow::Result<Outcome> {
    let r = BridgeRequest {
        nic: a.nic.clone(),
        bridge: a.bridge.clone(),
        options: BridgeOptions { stp: !a.no_stp, delay: a.delay },
        start: !a.no_start,
        timeout: a.steps.timeout(),
        rollback_timeout: a.steps.rollback_timeout,
        force: a.force,
    };
    block_on(async {
        let ctx = connect().await?;
        let out = interruptible(&ctx, async { Ok(ctx.bridge(&r, &mut printer()).await?) }).await;
        clear_progress();
        let out = out?;
        print_forced(&out.forced);
        super::print_findings("bridge", &out.findings);
        if !out.changed {
            say(&format!("Bridge {} already shares {}: nothing to do", a.bridge, a.nic));
            return Ok(Outcome::Clean);
        }
        let how = if r.start { "created and started" } else { "defined" };
        say(&format!("Bridge {} {how} with {} attached (its profile is kept for unbridge)", a.bridge, a.nic));
        Ok(if any_loses_meaning(&out.findings) { Outcome::Findings } else { Outcome::Clean })
    })
}

pub fn unbridge(a: UnbridgeArgs) -> anyhow::Result<Outcome> {
    block_on(async {
        let timeout = a.steps.timeout();
        let ctx = connect().await?;
        let nic = interruptible(&ctx, async {
            Ok(ctx.unbridge(&a.bridge, !a.no_start, timeout, a.steps.rollback_timeout).await?)
        })
        .await?;
        say(&format!("Bridge {} removed; {nic} has its configuration back", a.bridge));
        Ok(Outcome::Clean)
    })
}

pub fn share(a: ShareArgs) -> anyhow::Result<Outcome> {
    let r = ShareRequest {
        bridge: a.bridge.clone(),
        subnet: a.subnet,
        persist: a.persist,
        start: !a.no_start,
        timeout: a.steps.timeout(),
        rollback_timeout: a.steps.rollback_timeout,
        force: a.force,
    };
    block_on(async {
        let ctx = connect().await?;
        let out = interruptible(&ctx, async { Ok(ctx.share(&r, &mut printer()).await?) }).await;
        clear_progress();
        let out = out?;
        print_forced(&out.forced);
        super::print_findings(&a.bridge, &out.findings);
        let outcome = if any_loses_meaning(&out.findings) { Outcome::Findings } else { Outcome::Clean };
        let (net, chosen) =
            out.subnet.map_or((String::new(), false), |(n, c)| (format!("{}/{}", n.address, n.prefix), c));
        if a.json {
            super::say_json(&serde_json::json!({
                "bridge": a.bridge, "subnet": net, "subnet_chosen": chosen, "changed": out.changed,
                "protection": out.protection, "scope": ctx.agent().scope().label(), "findings": out.findings,
            }));
            return Ok(outcome);
        }
        let why = if chosen { " (chosen by nmiface: free of this host's networks)" } else { "" };
        say(&format!(
            "NAT sharing on bridge {} at {net}{why}: attach VMs to it (nmiface tap add {}); NetworkManager serves DHCP and DNS there",
            a.bridge, a.bridge
        ));
        Ok(outcome)
    })
}
