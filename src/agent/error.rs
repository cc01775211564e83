//! Why NetworkManager work failed: one variant per cause a user can meet, so front ends (the CLI,
//! the session service) decide by variant, never by message text.

use crate::model::Mac;
use crate::nm;
use crate::nm_client::{ActivationFailure, NmError, RollbackFailure};
use crate::plan::NotOwned;

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Talking to NetworkManager failed, or it refused.
    #[error(transparent)]
    Nm(#[from] NmError),
    /// A profile in the way is not nmiface's.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// No interface of that name was defined by nmiface.
    #[error("no interface '{name}' is defined by nmiface{}", foreign.as_ref().map(|f| format!(" (profile '{f}' exists but was not created by nmiface)")).unwrap_or_default())]
    NotDefined {
        /// The name asked for.
        name: String,
        /// A profile for that device that nmiface did not create, if there is one.
        foreign: Option<String>,
    },
    /// Several profiles of others could be meant, none active.
    #[error("'{name}' has several NetworkManager profiles, none active: {}; nmiface shows one only when it is active or alone", profiles.join(", "))]
    AmbiguousProfile {
        /// The name asked for.
        name: String,
        /// The profiles' names.
        profiles: Vec<String>,
    },
    /// A profile libvirt's interface format cannot describe (Wi-Fi, VPN, …): listed only.
    #[error("'{name}' is a {kind} profile: libvirt's interface format cannot describe it (`nmiface list` shows it)")]
    NotExpressible {
        /// The name asked for.
        name: String,
        /// Its type.
        kind: String,
    },
    /// The interface is not active.
    #[error("interface '{0}' is not active")]
    NotActive(String),
    /// A tap was asked on a bridge that is not up (a VM on it would have no network).
    #[error("bridge {0} is not up: start it first (nmiface start {0}; a share made without --persist lives with the login that made it)")]
    BridgeDown(String),
    /// Activation did not reach ACTIVATED.
    #[error("starting {interface}: {failure}{}", hint.as_ref().map(|h| format!("\n  {h}")).unwrap_or_default())]
    Activation {
        /// The interface.
        interface: String,
        /// What happened (boxed: NetworkManager's errors are large, and every result carries
        /// this type).
        failure: Box<ActivationFailure>,
        /// What it likely means.
        hint: Option<String>,
    },
    /// The journal could not be written ahead of a change (nothing was changed).
    #[error(transparent)]
    Journal(#[from] crate::transaction::TxError),
    /// A stored profile could not be read back.
    #[error(transparent)]
    Reverse(#[from] nm::ReverseError),
    /// A name given on the command line or over D-Bus is not a valid interface name.
    #[error("{0}")]
    InvalidName(String),
    /// No network device has that name.
    #[error("no network device named {0}")]
    NoSuchDevice(String),
    /// A change only system-wide profiles may make, asked for per-user profiles.
    #[error("{what} is for system-wide profiles only: it takes the NIC from every user of this computer; ask for system-wide profiles (--system, or the SYSTEM flag) and NetworkManager decides whether you may")]
    SystemScopeOnly {
        /// What was asked.
        what: String,
    },
    /// A tap was asked on a bridge that is not for VMs: neither a NAT bridge (NetworkManager's
    /// shared method) nor a NIC bridged by `nmiface bridge`.
    #[error("{0} is not a bridge for VMs: a VM needs its bridge to give it a network, and a bridge with only an address of its own gives no DHCP, no DNS and no way out; a tap goes on your NAT bridge (NetworkManager's shared method: `nmiface share --nat --bridge {0}`, or <nmi:nat/> in the bridge's ipv4 protocol) or on a NIC's bridge (`nmiface bridge NIC {0}`, the VM on the LAN)")]
    NotAVmBridge(String),
    /// No profile of any tool, and no device, answers to the name `dumpxml` was given.
    #[error("no NetworkManager profile or interface '{0}' on this host (`nmiface list --all` shows them)")]
    NoSuchProfile(String),
    /// `tap remove` of a tap this caller does not have (gone already, or never made).
    #[error("no tap '{0}' of yours (`nmiface tap list` shows them)")]
    NoSuchTap(String),
    /// A tap was asked on a bridge that is not the caller's (another user's, or none).
    #[error("no bridge {0} of yours: make one with nmiface share --nat --bridge {0}")]
    NotYourBridge(String),
    /// The kernel's random source could not be read (for a fresh UUID).
    #[error("/dev/urandom: {0}")]
    Randomness(#[source] std::io::Error),
    /// A per-user change would take a device or a name root or another user holds.
    #[error("{name} is not yours to change: {holder}; your own profiles need a name nobody else uses (root's and other users' devices and profiles are theirs)")]
    HeldByOthers {
        /// The device or interface name.
        name: String,
        /// Who holds it, in words.
        holder: String,
    },
    /// The name asked for is taken by a device or a profile.
    #[error("the name {0} is in use (a network device or a NetworkManager profile has it)")]
    NameInUse(String),
    /// The kernel refused to open a tap, or to make it go with its descriptor.
    #[error(transparent)]
    Tun(#[from] crate::host_tun::TunError),
    /// The kernel's neighbour table (where VMs are) could not be read.
    #[error("the neighbour table: {0}")]
    Neighbours(#[from] crate::host_neigh::NeighError),
    /// Every subnet nmiface would choose for NAT collides with a network of the host.
    #[error("no 10.42.N.0/24 is free of the host's networks: give one with --subnet")]
    NoFreeSubnet,
    /// The subnet asked for collides with a network of the host.
    #[error("subnet {asked} collides with {taken}, already on this host: choose another (or leave --subnet out: nmiface picks a free one)")]
    SubnetCollides {
        /// The subnet asked for.
        asked: String,
        /// The network it overlaps.
        taken: String,
    },
    /// The NIC to bridge is a Wi-Fi station.
    #[error("{0} is a Wi-Fi station: bridging a station does not work (802.11 carries no frames for other MACs); share it with NAT instead: nmiface share --nat")]
    WifiStation(String),
    /// The bridge to create exists already as a device.
    #[error("network device {0} already exists")]
    DeviceExists(String),
    /// The bridge to create has a profile already.
    #[error("a profile for {0} already exists")]
    ProfileExists(String),
    /// The NIC to bridge has no profile to take its configuration from.
    #[error("{0} has no profile to take its IP configuration from: define it first (nmiface define) or activate one")]
    NoProfileToTake(String),
    /// The NIC to bridge is a port already.
    #[error("{nic} is already a port of {controller} (profile '{profile}')")]
    AlreadyPort {
        /// The NIC.
        nic: String,
        /// Its controller, as its profile names it.
        controller: String,
        /// Its profile.
        profile: String,
    },
    /// The NIC's own profile was taken over by a running bridge (`nmiface bridge`): activating
    /// it would pull the NIC out of the bridge and leave both with the same addresses.
    #[error("{nic}'s own profile was taken over by bridge {bridge} (`nmiface bridge {nic} {bridge}`): starting it would pull {nic} out of {bridge}, which is running; `nmiface unbridge {bridge}` gives {nic} its own profile back")]
    TakenOverByBridge {
        /// The NIC.
        nic: String,
        /// The bridge that took it over.
        bridge: String,
    },
    /// The NIC's profile is not an ethernet profile.
    #[error("{nic}'s profile '{profile}' is not an ethernet profile")]
    NotEthernetProfile {
        /// The NIC.
        nic: String,
        /// Its profile.
        profile: String,
    },
    /// `unbridge` of an interface that is not a bridge.
    #[error("{name} is a {kind}, not a bridge")]
    NotABridge {
        /// The interface.
        name: String,
        /// What it is.
        kind: &'static str,
    },
    /// `unbridge` of a bridge whose ports are not one ethernet NIC.
    #[error("{bridge} has {ports}: unbridge takes a bridge with exactly one ethernet NIC")]
    NotOneNic {
        /// The bridge.
        bridge: String,
        /// What it has, in words (`no port`, `2 ports`, `a bond port`).
        ports: String,
    },
    /// No interface has that MAC.
    #[error("no interface defined by nmiface has MAC {0}")]
    NoSuchMac(Mac),
    /// Several interfaces have that MAC.
    #[error("MAC {mac} is not unique: {}", names.join(", "))]
    AmbiguousMac {
        /// The MAC.
        mac: Mac,
        /// The interfaces that have it.
        names: Vec<String>,
    },
    /// The interface's device does not exist yet, so it has no MAC.
    #[error("interface '{0}' has no MAC yet (its device does not exist)")]
    NoMacYet(String),
    /// `begin` while a transaction is open.
    #[error("there is another transaction running ({}begun {age} s ago); commit or rollback it first", match checkpoint.as_str() { "" => String::new(), c => format!("checkpoint {c}, ") })]
    TransactionRunning {
        /// Its checkpoints (comma-separated; empty before any change took one).
        checkpoint: String,
        /// Seconds since it began.
        age: u64,
    },
    /// `commit`/`rollback` with no transaction open.
    #[error("no transaction running, nothing to {what}{}", leftover_hint(leftovers))]
    NoTransaction {
        /// `commit` or `rollback`.
        what: &'static str,
        /// Checkpoints NetworkManager has that no nmiface transaction records.
        leftovers: Vec<String>,
    },
    /// NetworkManager has checkpoints nmiface did not record (a crashed run, another tool).
    #[error("NetworkManager already has a checkpoint{}", leftover_hint(.0))]
    LeftoverCheckpoints(Vec<String>),
    /// The transaction's checkpoint no longer exists (or, none taken, its timeout passed).
    #[error("the transaction's checkpoint {0} is gone: NetworkManager rolled it back when its timeout passed")]
    CheckpointGone(String),
    /// A started interface lacks addresses it was given.
    #[error("{interface} is up but lacks {}", missing.join(", "))]
    AddressMissing {
        /// The interface.
        interface: String,
        /// The addresses it lacks, `ADDRESS/PREFIX`.
        missing: Vec<String>,
    },
    /// An atomic change failed and the host was put back.
    #[error("{cause}\n  {}", restored_text(problems, *checkpoint))]
    RolledBack {
        /// What failed.
        cause: Box<AgentError>,
        /// What the rollback could not restore (empty: everything was).
        problems: Vec<RestoreProblem>,
        /// Devices were put back too (a NetworkManager checkpoint over those the change bound
        /// to, and the undo disconnecting those it created); else only the journal's profiles
        /// were restored (NetworkManager does not let this caller take checkpoints).
        checkpoint: bool,
    },
}

/// Something a rollback could not restore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreProblem {
    /// NetworkManager could not put a device back.
    #[error("device {}: {}", .0.device, .0.reason)]
    Device(RollbackFailure),
    /// The checkpoint rollback itself failed.
    #[error("checkpoint rollback: {0}")]
    Checkpoint(NmError),
    /// The journal could not be removed after the rollback.
    #[error("journal: {0}")]
    Journal(crate::transaction::TxError),
    /// A device the change created could not be disconnected.
    #[error("device {device}: could not disconnect it: {error}")]
    Disconnect {
        /// The interface name.
        device: String,
        /// What NetworkManager said.
        error: NmError,
    },
    /// A journalled profile could not be written back.
    #[error("profile '{id}': {error}")]
    Profile {
        /// The profile's `connection.id`.
        id: String,
        /// What NetworkManager said.
        error: NmError,
    },
}

fn leftover_hint(l: &[String]) -> String {
    match l {
        [] => String::new(),
        _ => format!(
            " (NetworkManager has checkpoint {}, which this nmiface did not record: another user's or another tool's open transaction, or a crashed run. NetworkManager rolls it back by itself when its timeout passes; if it is a crashed run of yours, `nmiface rollback --checkpoint PATH` restores it and `nmiface commit --checkpoint PATH` drops it)",
            l.join(", ")
        ),
    }
}

fn restored_text(problems: &[RestoreProblem], checkpoint: bool) -> String {
    if problems.is_empty() && checkpoint {
        "the host was restored to its state before the change (the devices it touched put back, changed profiles restored)"
            .to_string()
    } else if problems.is_empty() {
        "the profiles the change touched were restored and those it added deleted (nmiface's journal; \
         NetworkManager does not let you take checkpoints, so device state was not rolled back)"
            .to_string()
    } else {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        format!(
            "rolled back, but not everything was restored: {}; the journal is kept: `nmiface rollback` (or the next change) finishes it",
            list.join("; ")
        )
    }
}
