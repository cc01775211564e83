//! The documented JSON output of `nmiface translate`, kept apart from the internal types so a
//! refactor cannot change what scripts read.
//!
//! ```json
//! {"source": "br0.xml", "target": "1.42.4",
//!  "interfaces": [{"interface": "br0",
//!                  "profiles": [{"id": "br0", "uuid": "…", "keyfile": "br0.nmconnection",
//!                                "settings": {"connection": {"id": {"s": "br0"}, …}, …}}]}],
//!  "findings": [{"severity": "approximated", "path": "/interface/bridge/@delay",
//!                "location": {"line": 3, "column": 20}, "message": "…"}]}
//! ```
//! Each property value is a one-entry object keyed by its D-Bus signature (`s`, `u`, `b`, `ay`,
//! `a{ss}`, `aa{sv}`, …).

use crate::finding::Finding;
use crate::nm::{Settings, Target, Translation};
use serde::Serialize;

/// One document's translation.
#[derive(Debug, Serialize)]
pub struct DocumentReport<'a> {
    /// The document's name as given.
    pub source: &'a str,
    /// The NetworkManager version translated for.
    pub target: String,
    /// Profiles per top-level interface.
    pub interfaces: Vec<InterfaceReport<'a>>,
    /// Findings from reading and translating.
    pub findings: &'a [Finding],
}

/// The profiles of one interface.
#[derive(Debug, Serialize)]
pub struct InterfaceReport<'a> {
    /// Kernel name.
    pub interface: &'a str,
    /// Its profiles, controller first.
    pub profiles: Vec<ProfileReport<'a>>,
}

/// One profile.
#[derive(Debug, Serialize)]
pub struct ProfileReport<'a> {
    /// `connection.id`.
    pub id: &'a str,
    /// `connection.uuid`.
    pub uuid: String,
    /// The keyfile name NetworkManager would give it.
    pub keyfile: String,
    /// The settings, each value tagged with its D-Bus signature.
    pub settings: &'a Settings,
}

impl<'a> DocumentReport<'a> {
    /// Builds the report of one translated document.
    pub fn new(source: &'a str, target: &Target, t: &'a Translation, findings: &'a [Finding]) -> Self {
        let interfaces = t
            .interfaces
            .iter()
            .map(|i| InterfaceReport {
                interface: i.interface.as_str(),
                profiles: i
                    .profiles
                    .iter()
                    .map(|p| ProfileReport {
                        id: &p.id,
                        uuid: p.uuid.to_string(),
                        keyfile: p.keyfile_name(),
                        settings: &p.settings,
                    })
                    .collect(),
            })
            .collect();
        Self { source, target: target.nm.to_string(), interfaces, findings }
    }
}
