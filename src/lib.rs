//! nmiface: host network interfaces from libvirt interface XML, through NetworkManager.
//!
//! # Layout
//!
//! The pure core has no tokio and no zbus in it, so it can be tested, fuzzed and benchmarked
//! without a daemon:
//!
//! - [`xml`]: both XML dialects in (positioned errors, findings), canonical libvirt XML out.
//! - [`model`]: the neutral model both dialects read into.
//! - [`nm`]: NetworkManager settings (`a{sa{sv}}` with exact D-Bus types), the translation from
//!   the model, keyfile text, and the way back from profiles to the model.
//! - [`plan`]: what `define` does, decided without I/O.
//! - [`gaps`]: the capability report (what this NetworkManager, kernel and host can do).
//! - [`finding`]: what a translation approximated or dropped, as data.
//! - [`report`]: the documented JSON output types.
//!
//! Around it, the I/O:
//!
//! - [`nm_client`]: the only zbus code, a thin NetworkManager client.
//! - [`host_probe`]: kernel modules and programs, read from files.
//! - [`host_neigh`]: the kernel's neighbour table and bridge FDBs over rtnetlink (dumps and
//!   events, no privileges needed): where a user's VMs are.
//! - [`host_tun`]: the tun ioctls and descriptor passing of the bridge helper (the one module
//!   with `unsafe`).
//! - [`identity`]: who runs nmiface (uid, user name) and the scope of profiles that follows.
//! - [`transaction`]: the journal and the lock, in a private runtime directory.
//! - [`agent`]: NetworkManager work per verb: fetch, plan, execute.
//! - [`session`]: the session service on the user's session bus (`nmiface session`), a thin
//!   D-Bus layer over [`verbs`].
//! - [`verbs`]: the surface every front end calls, one entry per verb: it owns connecting, the
//!   capability gate, the lock, the journal and the choice of protection.
//!
//! The binary (`src/main.rs`, `src/cli/`) parses, calls [`verbs`] and prints; it is the only
//! place that uses `anyhow`.
//!
//! # Example
//!
//! ```
//! let doc = nmiface::xml::parse_document(
//!     "example.xml",
//!     "<interface type='ethernet' name='eth0'><protocol family='ipv4'><dhcp/></protocol></interface>",
//! ).unwrap();
//! let out = nmiface::nm::translate(&doc.host, &doc.sources, &nmiface::nm::Target::default());
//! assert_eq!(out.profiles().next().unwrap().id, "eth0");
//! ```

pub mod agent;
pub mod finding;
pub mod gaps;
pub mod host_neigh;
pub mod host_probe;
pub mod host_tun;
pub mod identity;
pub mod model;
pub mod nm;
pub mod nm_client;
pub mod plan;
pub mod report;
pub mod session;
pub mod transaction;
pub mod verbs;
pub mod xml;
