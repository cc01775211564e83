//! What an atomic change binds to, and the devices that follow from it: the existing ones its
//! checkpoint covers, and those it may create, which the undo disconnects itself (a checkpoint
//! cannot cover a device that did not exist, and NetworkManager's DISCONNECT_NEW_DEVICES would
//! disconnect every new device, other users' too).

use super::{Agent, AgentError, RestoreProblem};
use crate::nm::Profile;
use crate::nm_client::{bounded, StoredProfile};
use crate::transaction::Journal;
use std::collections::BTreeSet;
use std::time::Duration;

/// What an atomic change binds to, known before it runs: its checkpoint covers the existing
/// devices these name, and no other.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceScope {
    /// Interface names the change's profiles bind to.
    pub names: BTreeSet<String>,
    /// Object paths of stored profiles the change updates or deletes: the device one is active
    /// on is covered whatever its name.
    pub profiles: BTreeSet<String>,
}

impl DeviceScope {
    /// The devices a change binds to, for its checkpoint: the interface names of every profile it
    /// wants (a port names its NIC, a bridge or a takeover its own name, a re-defined interface its
    /// existing device) and of those its plan would update or delete, and the profiles it would
    /// update or delete (the device one runs is covered whatever its name). `planned` is the plan
    /// `define` will refine; without one `define` refuses before changing anything, and the
    /// wanted names are enough.
    pub(super) fn of(
        desired: &[Profile],
        planned: Option<&crate::plan::Plan>,
        stored: &[StoredProfile],
    ) -> DeviceScope {
        let mut scope = DeviceScope {
            names: desired.iter().filter_map(Profile::interface_name).map(str::to_string).collect(),
            ..DeviceScope::default()
        };
        if let Some(plan) = planned {
            let existing: Vec<Profile> = stored.iter().map(|s| s.profile.clone()).collect();
            let touches = plan.touches(&existing);
            scope.names.extend(touches.names);
            scope.profiles.extend(touches.held.into_iter().map(|i| stored[i].path.to_string()));
        }
        scope
    }
}

/// How long the undo waits for a device it disconnects.
const DISCONNECT_WAIT: Duration = Duration::from_secs(10);

impl Agent {
    /// The object paths of the existing devices `scope` binds to (by name, or running a
    /// profile the change updates or deletes), and the names it binds to that have no device
    /// yet (the change may create them). A device named in `made` (created by the same
    /// transaction) is neither.
    pub(super) async fn covered(
        &self,
        scope: &DeviceScope,
        made: &BTreeSet<String>,
    ) -> Result<(Vec<String>, BTreeSet<String>), AgentError> {
        let (devices, active) = tokio::join!(self.nm.devices(), async {
            match scope.profiles.is_empty() {
                true => Ok(Vec::new()),
                false => self.nm.active_profiles().await,
            }
        });
        let (devices, active) = (devices?, active?);
        let runs_touched = |ac: &Option<String>| {
            ac.as_ref().is_some_and(|ac| active.iter().any(|(a, p)| a == ac && scope.profiles.contains(p)))
        };
        let covered = devices
            .iter()
            .filter(|d| !made.contains(&d.interface))
            .filter(|d| d.real && (scope.names.contains(&d.interface) || runs_touched(&d.active_connection)))
            .map(|d| d.path.clone())
            .collect();
        let new = scope
            .names
            .iter()
            .filter(|n| !made.contains(*n) && !devices.iter().any(|d| d.real && &d.interface == *n))
            .cloned()
            .collect();
        Ok((covered, new))
    }

    /// Disconnects the devices named in `j.new_devices` (none existed when the change began)
    /// that run one of the scope's profiles: what the change started there. A device of such a
    /// name running someone else's profile is not the change's, and stays.
    pub(super) async fn disconnect_new(&self, j: &Journal) -> Vec<RestoreProblem> {
        if j.new_devices.is_empty() {
            return Vec::new();
        }
        let (devices, profiles) = tokio::join!(self.nm.devices(), self.nm.profiles());
        let (devices, profiles) = match (devices, profiles) {
            (Ok(d), Ok(p)) => (d, p),
            (Err(e), _) | (_, Err(e)) => return vec![RestoreProblem::Checkpoint(e)],
        };
        let running: Vec<(String, String)> = devices
            .into_iter()
            .filter(|d| j.new_devices.contains(&d.interface))
            .filter_map(|d| Some((d.interface, d.active_connection?)))
            .collect();
        let profiles = &profiles;
        let done = bounded(&running, |(device, ac)| async move {
            let failed = |error| RestoreProblem::Disconnect { device: device.clone(), error };
            let ours = match self.nm.active_profile(ac).await.map_err(failed)? {
                Some(p) => profiles.iter().any(|s| s.path.as_str() == p && self.scope.owns(&s.profile)),
                None => false,
            };
            match ours {
                true => self.nm.deactivate_and_wait(ac, DISCONNECT_WAIT).await.map_err(failed),
                false => Ok(()),
            }
        })
        .await;
        done.into_iter().filter_map(Result::err).collect()
    }
}
