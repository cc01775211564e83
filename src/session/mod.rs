//! The session service: nmiface on the user's session bus as `org.nmiface.Interfaces1`, for the
//! tools acting for the person at the desk (VM managers, settings panels, scripts).
//!
//! A thin D-Bus layer over [`crate::verbs`], shaped after libvirt-dbus (`org.libvirt.Connect`,
//! `org.libvirt.Interface`). It has no privileges of its own: it talks to NetworkManager on the
//! system bus as the user who runs it, so NetworkManager's polkit checks and
//! `connection.permissions` are the only authority. Profiles it makes are the user's own unless a
//! call asks for system-wide ones (the `SYSTEM` flag), and then NetworkManager decides.
//!
//! - `manager.rs`: `/org/nmiface/Interfaces1`, the Manager interface (define, lookup, list,
//!   apply, check, transactions; events);
//! - `object.rs`: one object per interface (`Create`, `Destroy`, `Undefine`, `GetXMLDesc`,
//!   properties);
//! - `share.rs`: a user's NAT bridge for VMs (`…/share/BRIDGE`): taps, leases, `LeaseAdded`;
//! - `state.rs`: what the service shares between calls: the contexts per scope, the callers it
//!   admits, the objects it exports; one call's path (admit, scope, sync, explain);
//! - `sync.rs`: NetworkManager's changes turned into objects and events;
//! - `life.rs`: start, following NetworkManager (signals, restarts), the idle exit;
//! - `args.rs`: flags, `a{sv}` options and findings on the wire;
//! - `error.rs`: one D-Bus error name per cause.

mod args;
mod error;
mod life;
mod manager;
mod object;
mod share;
mod state;
mod sync;

pub use error::{ErrorKind, ServiceError};
pub use share::SHARE_PATH;

use std::time::Duration;

/// The service's well-known name on the session bus.
pub const BUS_NAME: &str = "org.nmiface.Interfaces1";
/// The Manager's D-Bus interface.
pub const MANAGER_INTERFACE: &str = "org.nmiface.Interfaces1.Manager";
/// The Manager object (also the ObjectManager root).
pub const MANAGER_PATH: &str = "/org/nmiface/Interfaces1";
/// Where interface objects live: `…/interface/UUID` (the UUID of the interface's own profile, so
/// a path is stable for the life of the profile).
pub const INTERFACE_PATH: &str = "/org/nmiface/Interfaces1/interface";

/// Flags of the Manager's methods (libvirt's `u flags` argument).
pub mod flags {
    /// Take over conflicting profiles nmiface did not create.
    pub const ADOPT: u32 = 1;
    /// Go on despite capability gaps.
    pub const FORCE: u32 = 2;
    /// System-wide profiles instead of the user's own (NetworkManager decides).
    pub const SYSTEM: u32 = 4;
    /// `ListInterfaces`: inactive ones (with `ACTIVE`, or neither: all).
    pub const LIST_INACTIVE: u32 = 1;
    /// `ListInterfaces`: active ones.
    pub const LIST_ACTIVE: u32 = 2;
    /// `GetXMLDesc`: the definition, not the live state.
    pub const XML_INACTIVE: u32 = 1;
}

/// libvirt's lifecycle events (`virInterfaceEventLifecycleType` has none; these are its
/// network and storage events' numbers), the `event` argument of `InterfaceEvent`.
pub mod event {
    /// Defined (a new interface of this user).
    pub const DEFINED: i32 = 0;
    /// Undefined (its profiles are gone).
    pub const UNDEFINED: i32 = 1;
    /// Started (its profile became active).
    pub const STARTED: i32 = 2;
    /// Stopped (its profile is no longer active: stopped, or the user logged out).
    pub const STOPPED: i32 = 3;
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Exit after this long with no client connected and no call in flight.
    pub idle_exit: Duration,
}

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The session bus could not be reached, or the name could not be owned.
    #[error("session bus: {0}")]
    Bus(#[from] zbus::Error),
    /// NetworkManager could not be reached at start.
    #[error(transparent)]
    Verb(#[from] crate::verbs::VerbError),
    /// Who runs the service is unknown.
    #[error(transparent)]
    User(#[from] crate::identity::UnknownUser),
    /// The signal handlers (SIGTERM, SIGHUP, SIGINT) could not be installed.
    #[error("signal handlers: {0}")]
    Signals(#[from] std::io::Error),
    /// Another process owns the name already.
    #[error("{BUS_NAME} is owned by another process on this session bus")]
    NameTaken,
}

/// Runs the service until it has been idle for [`Options::idle_exit`].
pub async fn serve(o: Options) -> Result<(), ServeError> {
    life::run(o).await
}

#[cfg(test)]
mod tests {
    use super::BUS_NAME;

    /// The installed files name the service the way the code does, and each other.
    #[test]
    fn activation_files_agree() {
        let activation = include_str!("../../data/org.nmiface.Interfaces1.service");
        let unit = include_str!("../../data/nmiface-session.service");
        assert!(activation.lines().any(|l| l == format!("Name={BUS_NAME}")));
        assert!(activation.lines().any(|l| l == "SystemdService=nmiface-session.service"));
        assert!(activation.lines().any(|l| l == "Exec=/usr/bin/nmiface session"));
        assert!(unit.lines().any(|l| l == format!("BusName={BUS_NAME}")));
        assert!(unit.lines().any(|l| l == "Type=dbus"));
        assert!(unit.lines().any(|l| l == "ExecStart=/usr/bin/nmiface session"));
    }
}
