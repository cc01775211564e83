//! `start` and `stop` of a defined interface.

use super::{Agent, AgentError, StoredInterface};
use crate::nm::conn_type;
use crate::nm_client::{ActivationFailure, NmError, Progress};
use std::time::Duration;
use tracing::instrument;

impl Agent {
    /// Activates an interface and waits until it and its ports are ACTIVATED.
    #[instrument(skip_all, fields(interface = %s.name))]
    pub async fn start(
        &self,
        s: &StoredInterface,
        timeout: Duration,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), AgentError> {
        let port_names: Vec<String> =
            s.ports.iter().filter_map(|p| p.profile.interface_name().map(str::to_string)).collect();
        // Ethernet devices must exist already; software devices are created by the activation.
        let ethernet: Vec<String> = s
            .profiles()
            .filter(|p| p.profile.conn_type() == Some(conn_type::ETHERNET))
            .filter_map(|p| p.profile.interface_name().map(str::to_string))
            .collect();
        self.nm.activate_and_wait(&s.main.path, &s.name, &port_names, &ethernet, timeout, progress).await.map_err(
            |failure| {
                let hint = hint_for(&failure, s.main.profile.conn_type());
                AgentError::Activation { interface: s.name.clone(), failure: Box::new(failure), hint }
            },
        )
    }

    /// Deactivates an interface (and so its ports).
    #[instrument(skip_all, fields(interface = %s.name))]
    pub async fn stop(&self, s: &StoredInterface, timeout: Duration) -> Result<(), AgentError> {
        let active = self.nm.active_profiles().await?;
        let main = s.main.path.as_str();
        let Some((ac, _)) = active.iter().find(|(_, p)| p == main) else {
            return Err(AgentError::NotActive(s.name.clone()));
        };
        self.nm.deactivate_and_wait(ac, timeout).await?;
        Ok(())
    }
}

/// A one-line explanation of an activation failure, where the cause is known.
fn hint_for(f: &ActivationFailure, kind: Option<&str>) -> Option<String> {
    match f {
        ActivationFailure::Refused(NmError::CreationFailed { kind: k, .. }) => Some(match k.as_str() {
            "bond" => {
                "this kernel has no bonding support: the 'bonding' module is neither built in nor loadable".into()
            }
            "vlan" => {
                "this kernel has no 802.1Q VLAN support: the '8021q' module is neither built in nor loadable".into()
            }
            other => format!("this kernel cannot create {other} devices"),
        }),
        ActivationFailure::Deactivated { realize_failed: true, .. } => {
            Some(format!("the kernel could not create the {} device", kind.unwrap_or("software")))
        }
        ActivationFailure::NoDevice(d) => Some(format!("is {d} plugged in? `ip link` lists the host's devices")),
        _ => None,
    }
}
