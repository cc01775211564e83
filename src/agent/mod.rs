//! NetworkManager work for each verb: fetch, plan (pure, in [`crate::plan`]), execute. The only
//! module that mixes the pure core with D-Bus. Policy (the capability gate, the lock, the
//! journal on disk, which protection a change gets) is the caller's: [`crate::verbs`].
//!
//! - [`define`](Agent::define), undefine, the settings diff: `define.rs`;
//! - [`apply`](Agent::apply), in waves, idempotent: `apply.rs`;
//! - checkpoints, the guard around one atomic change, undo: `guard.rs`;
//! - what an atomic change binds to (the devices its checkpoint covers, those the undo
//!   disconnects): `touched.rs`;
//! - a transaction's checkpoints, one per change, and finding one a crash left unrecorded:
//!   `txcheckpoint.rs`;
//! - finding an interface's profiles: `lookup.rs`;
//! - start and stop: `activate.rs`;
//! - list, dumpxml, name, mac, the capability check: `query.rs`;
//! - sharing with VMs (bridge, unbridge, NAT): `share.rs`; user-owned taps: `tap.rs`; where
//!   the VMs are (lease file and neighbour table): `leases.rs`;
//! - what a device already has (adopt by device, a NIC's settings moving with it): `takeover.rs`;
//! - UUIDs another user squats: `squat.rs`.

mod activate;
mod apply;
mod define;
mod error;
mod guard;
mod leases;
mod lookup;
mod query;
mod share;
mod squat;
mod takeover;
mod tap;
mod touched;
mod txcheckpoint;

pub use apply::{Applied, How, Started, ACTIVATIONS};
pub use define::{Defined, ProfileDiff};
pub use error::{AgentError, RestoreProblem};
pub use guard::{Held, Safety};
pub use leases::{read_lease_file, LeaseFileError, LEASES_MAX};
pub use lookup::StoredInterface;
pub use query::Listed;
pub use share::{subnet_address, BridgeOptions};
pub use tap::{choose_subnet, overlaps, TapAdded, TapLife, TapOrder};
pub(crate) use txcheckpoint::expired_words;

use crate::nm::{self, NmVersion, Profile, Scope, Target};
use crate::nm_client::NmClient;
use crate::xml::Document;

/// The lifecycle over one NetworkManager client, for one [`Scope`] of profiles.
pub struct Agent {
    nm: NmClient,
    version: NmVersion,
    scope: Scope,
}

/// A document with its profiles, translated once (by the verb, for this daemon): what define,
/// apply and their plans work from.
pub struct Wanted<'d> {
    /// The document (its interfaces, for reports and the start order).
    pub doc: &'d Document,
    /// Its translation's profiles, before [`Agent::desired`] puts them in a scope.
    pub profiles: Vec<Profile>,
}

impl Agent {
    /// An agent over `nm`; reads the daemon's version once (which also proves it runs).
    pub async fn new(nm: NmClient) -> Result<Self, AgentError> {
        let version = nm.version().await?;
        Ok(Self { nm, version, scope: Scope::System })
    }

    /// The same agent working on `scope`'s profiles: those it creates, sees as its own and may
    /// change (system-wide by default).
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Whose profiles this agent works on.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// `doc` translated for this daemon: its profiles and what could not be carried over
    /// exactly. A change translates once, in the verb, and hands the profiles down.
    pub fn translate(&self, doc: &Document) -> nm::Translation {
        nm::translate(&doc.host, &doc.sources, &self.target())
    }

    /// The `translated` profiles of a document in this agent's scope: the one place translation
    /// output becomes what is written (per-user profiles get their permissions and UUIDs here).
    /// Bridging a physical NIC is refused for a user: it takes the NIC from everyone.
    pub fn desired(&self, translated: Vec<Profile>) -> Result<Vec<Profile>, AgentError> {
        let mut desired = translated;
        if matches!(self.scope, Scope::User(_)) {
            let nic_port =
                desired.iter().find(|p| p.conn_type() == Some(nm::conn_type::ETHERNET) && p.master().is_some());
            if let Some(p) = nic_port {
                return Err(AgentError::SystemScopeOnly {
                    what: format!("making NIC {} a port", p.interface_name().unwrap_or(&p.id)),
                });
            }
        }
        self.scope.stamp(&mut desired);
        Ok(desired)
    }

    /// The same agent over another client (e.g. [`NmClient::interactive`]).
    pub fn with_client(&self, nm: NmClient) -> Self {
        Self { nm, version: self.version, scope: self.scope.clone() }
    }

    /// The client.
    pub fn client(&self) -> &NmClient {
        &self.nm
    }

    /// The daemon's version.
    pub fn version(&self) -> NmVersion {
        self.version
    }

    /// The translation target for this daemon.
    pub fn target(&self) -> Target {
        Target { nm: self.version }
    }
}
