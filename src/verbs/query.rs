//! What is defined, how it runs, and what this host can do: check, list, dumpxml, name, mac.

use super::{Context, VerbError};
use crate::agent::{AgentError, Listed};
use crate::finding::Finding;
use crate::gaps::{self, CheckReport};
use crate::model::{IfName, Mac};
use crate::nm::{self, NmVersion, Target};
use crate::xml::Document;

impl Context {
    /// What this NetworkManager (asked directly where a version number cannot tell) and this
    /// kernel can do for `doc`, before anything changes.
    pub async fn check(&self, doc: &Document) -> Result<CheckReport, VerbError> {
        Ok(self.agent.check(&doc.host, &self.findings(doc), true).await?)
    }

    /// What `apply`/`define` of `doc` would write, profile by profile (`apply --check`); changes
    /// nothing.
    pub async fn diff(&self, doc: &Document, adopt: bool) -> Result<Vec<crate::agent::ProfileDiff>, VerbError> {
        Ok(self.agent.diff(doc, adopt).await?)
    }

    /// Interfaces defined by nmiface, with state and MAC (`virsh iface-list`), sorted by name.
    pub async fn list(&self) -> Result<Vec<Listed>, VerbError> {
        Ok(self.agent.list().await?)
    }

    /// An interface as libvirt XML (`virsh iface-dumpxml`): live state when active, unless
    /// `inactive`. For a profile nmiface did not define, also what the format cannot say.
    pub async fn dumpxml(&self, name: &str, inactive: bool) -> Result<(String, Vec<Finding>), VerbError> {
        match self.agent.find(name).await {
            Ok(found) => Ok((self.agent.dumpxml(&found, inactive).await?, Vec::new())),
            Err(AgentError::NotDefined { .. }) => Ok(self.agent.dumpxml_foreign(name, inactive).await?),
            Err(e) => Err(e.into()),
        }
    }

    /// The interface with this MAC (`virsh iface-name`).
    pub async fn name_of(&self, mac: &Mac) -> Result<String, VerbError> {
        Ok(self.agent.name_of(mac).await?)
    }

    /// The MAC of an interface (`virsh iface-mac`).
    pub async fn mac_of(&self, name: &IfName) -> Result<String, VerbError> {
        Ok(self.agent.mac_of(name).await?)
    }
}

/// `check` without a daemon: against the table for `nm` (`None`: the oldest version nmiface
/// supports), reading the kernel and runtime programs unless `offline`.
pub fn check_offline(doc: &Document, nm: Option<NmVersion>, offline: bool) -> CheckReport {
    let version = nm.unwrap_or(nm::BASELINE);
    let mut findings = doc.findings.clone();
    findings.extend(nm::translate(&doc.host, &doc.sources, &Target { nm: version }).findings);
    let facts = gaps::Facts {
        nm: version,
        nm_source: if nm.is_some() { "--nm-version" } else { "baseline" },
        kernel: (!offline).then(crate::host_probe::kernel),
        probed: Vec::new(),
        runtime: (!offline).then(crate::host_probe::runtime),
        devices: None,
    };
    gaps::assess(&doc.host, &findings, &facts)
}
