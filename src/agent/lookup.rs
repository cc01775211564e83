//! Finding the profiles of an interface nmiface defined.

use super::{Agent, AgentError};
use crate::model::Host;
use crate::nm::{self, profile_uuid, user_key, Profile};
use crate::nm_client::StoredProfile;
use crate::plan;
use futures_util::future::try_join_all;

/// An interface's profiles as stored in NetworkManager: its own first, then its ports. What
/// every verb on a defined interface (start, stop, undefine, dumpxml, unbridge) works from, so
/// none looks it up twice.
#[derive(Debug, Clone)]
pub struct StoredInterface {
    /// The interface name.
    pub name: String,
    /// Its own profile.
    pub main: StoredProfile,
    /// Its ports' profiles.
    pub ports: Vec<StoredProfile>,
}

impl StoredInterface {
    /// Its profiles, its own first.
    pub fn profiles(&self) -> impl Iterator<Item = &StoredProfile> {
        std::iter::once(&self.main).chain(self.ports.iter())
    }

    /// Its model, read back from its profiles.
    pub fn model(&self) -> Result<Host, nm::ReverseError> {
        let profiles: Vec<Profile> = self.profiles().map(|s| s.profile.clone()).collect();
        Ok(nm::host_from_profiles(&profiles)?.host)
    }
}

impl Agent {
    /// Finds an interface's profiles: first by the UUIDs nmiface derives (a few lookups), else by
    /// reading every profile (an interface defined with its own `<uuid>`).
    pub async fn find(&self, name: &str) -> Result<StoredInterface, AgentError> {
        // A user's profiles have random UUIDs (`Agent::unsquat`): the derived ones never match,
        // so a user goes straight to reading the profiles.
        let uuids: Vec<String> = match self.scope {
            crate::nm::Scope::System => crate::model::Kind::TYPE_NAMES
                .iter()
                .map(|k| self.scope.uuid(profile_uuid(None, k, name, None)).to_string())
                .collect(),
            crate::nm::Scope::User(_) => Vec::new(),
        };
        let found = try_join_all(uuids.iter().map(|u| self.nm.profile_by_uuid(u))).await?;
        let main = found.into_iter().flatten().find(|s| {
            self.scope.owns(&s.profile)
                && s.profile.user_data(user_key::INTERFACE) == Some(name)
                && s.profile.master().is_none()
        });
        if let Some(main) = main {
            let port_uuids: Vec<&str> = main
                .profile
                .user_data(user_key::PORTS)
                .map(|p| p.split(' ').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            let ports = try_join_all(port_uuids.iter().map(|u| self.nm.profile_by_uuid(u))).await?;
            let ports: Vec<StoredProfile> = ports
                .into_iter()
                .flatten()
                .filter(|s| self.scope.owns(&s.profile) && s.profile.user_data(user_key::INTERFACE) == Some(name))
                .collect();
            if ports.len() == port_uuids.len() {
                return Ok(StoredInterface { name: name.to_string(), main, ports });
            }
        }
        self.find_in(&self.nm.profiles().await?, name)
    }

    /// [`Agent::find`] among profiles read already (every profile NetworkManager shows this
    /// caller): for a verb that needs the list anyway, one read instead of two.
    pub fn find_in(&self, all: &[StoredProfile], name: &str) -> Result<StoredInterface, AgentError> {
        let profiles: Vec<Profile> = all.iter().map(|s| s.profile.clone()).collect();
        let owned = plan::owned_by_interface(&profiles, name, &self.scope);
        let pick = |p: &Profile| all.iter().find(|s| s.profile.uuid == p.uuid).cloned();
        if let Some((first, ports)) = owned.split_first() {
            if let (true, Some(main)) = (first.master().is_none(), pick(first)) {
                let ports = ports.iter().filter_map(|p| pick(p)).collect();
                return Ok(StoredInterface { name: name.to_string(), main, ports });
            }
        }
        let foreign = profiles.iter().find(|p| p.interface_name() == Some(name) || p.id == name).map(|p| p.id.clone());
        Err(AgentError::NotDefined { name: name.to_string(), foreign })
    }
}
