//! NetworkManager work for each verb: fetch, plan (pure, in [`crate::plan`]), execute. The only
//! module that mixes the pure core with D-Bus. Policy (the capability gate, the lock, the
//! journal on disk, which protection a change gets) is the caller's: [`crate::verbs`].
//!
//! - [`define`](Agent::define), undefine, the settings diff: `define.rs`;
//! - [`apply`](Agent::apply), in waves, idempotent: `apply.rs`;
//! - checkpoints, the guard around one atomic change, undo: `guard.rs`;
//! - finding an interface's profiles: `lookup.rs`;
//! - start and stop: `activate.rs`;
//! - list, dumpxml, name, mac, the capability check: `query.rs`;
//! - sharing with VMs (bridge, unbridge, NAT): `share.rs`.

mod activate;
mod apply;
mod define;
mod error;
mod guard;
mod lookup;
mod query;
mod share;

pub use apply::{Applied, How, Started, ACTIVATIONS};
pub use define::{Defined, ProfileDiff};
pub use error::{AgentError, RestoreProblem};
pub use guard::{Held, Safety};
pub use lookup::StoredInterface;
pub use query::Listed;
pub use share::{subnet_address, BridgeOptions};

use crate::nm::{NmVersion, Target};
use crate::nm_client::NmClient;

/// The lifecycle over one NetworkManager client.
pub struct Agent {
    nm: NmClient,
    version: NmVersion,
}

impl Agent {
    /// An agent over `nm`; reads the daemon's version once (which also proves it runs).
    pub async fn new(nm: NmClient) -> Result<Self, AgentError> {
        let version = nm.version().await?;
        Ok(Self { nm, version })
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
