//! Activating a profile and waiting for the outcome without races.
//!
//! NetworkManager can fail an activation within milliseconds, before a client has even built a
//! proxy for the active connection it was handed. So the signal streams (path-less match rules
//! for `Connection.Active.StateChanged` and `Device.StateChanged`) are opened *before*
//! `ActivateConnection`, and events are filtered by path afterwards; nothing is polled.

use super::{proxies, NmClient, NmError};
use crate::nm::{reasons, ActiveState, DeviceState};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tracing::debug;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};
use zbus::{MatchRule, MessageStream};

/// Why an activation did not end in ACTIVATED.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationFailure {
    /// NetworkManager refused to start (e.g. the kernel cannot create the device).
    #[error(transparent)]
    Refused(#[from] NmError),
    /// The activation ended in DEACTIVATED.
    #[error("NetworkManager gave up: {reason}{}", device.as_ref().map(|d| format!(" (device: {d})")).unwrap_or_default())]
    Deactivated {
        /// The active connection's reason, in words.
        reason: &'static str,
        /// The device's last failure reason, in words, when known.
        device: Option<&'static str>,
        /// The kernel could not create (realize) the device.
        realize_failed: bool,
    },
    /// A port's device failed.
    #[error("port {port} failed: {reason}")]
    PortFailed {
        /// The port's interface name.
        port: String,
        /// The device's reason, in words.
        reason: &'static str,
    },
    /// An Ethernet port's device does not exist.
    #[error("no network device named {0}")]
    NoDevice(String),
    /// NetworkManager stopped or restarted while nmiface waited.
    #[error("NetworkManager stopped or restarted during the activation")]
    NmRestarted,
    /// Nothing decisive happened in time.
    #[error("timed out after {secs} s waiting for {waiting}")]
    Timeout {
        /// The timeout.
        secs: u64,
        /// What was still pending.
        waiting: String,
    },
}

/// A progress event for a spinner or log line.
#[derive(Debug, Clone)]
pub struct Progress {
    /// What changed, e.g. `br0: ip-config` or `eth0: activated`.
    pub what: String,
    /// Time since the start.
    pub elapsed: Duration,
    /// The device whose state changed.
    pub device: String,
    /// Its new state, NetworkManager's name (`ip-config`, `activated`, …).
    pub state: &'static str,
}

fn rule(interface: &'static str) -> Result<MatchRule<'static>, zbus::Error> {
    Ok(MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(proxies::BUS_NAME)?
        .interface(interface)?
        .member("StateChanged")?
        .build())
}

/// `NameOwnerChanged` for NetworkManager's bus name: it stopped or restarted.
fn owner_rule() -> Result<MatchRule<'static>, zbus::Error> {
    Ok(MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.DBus")?
        .interface("org.freedesktop.DBus")?
        .member("NameOwnerChanged")?
        .add_arg(proxies::BUS_NAME)?
        .build())
}

/// What an activation waits for.
#[derive(Debug, Clone, Copy)]
pub struct Awaited<'a> {
    /// The interface's own device.
    pub main: &'a str,
    /// Its ports' interface names (activated through `autoconnect-slaves`).
    pub ports: &'a [String],
    /// The Ethernet devices among them (and the main one, if Ethernet): they must exist.
    pub ethernet: &'a [String],
    /// The main device counts as up once it reaches IP configuration: for a controller with no
    /// ports, which has no carrier, NetworkManager holds static addresses there for 2 s although
    /// they are already on the device (the caller checks them).
    pub ready_at_ip_config: bool,
}

impl NmClient {
    /// Activates `profile` (a top-level interface's profile) and waits until it is ACTIVATED (or,
    /// see [`Awaited::ready_at_ip_config`], in IP configuration) and every port has an ACTIVATED
    /// device, or until something fails or `timeout` passes.
    pub async fn activate_and_wait(
        &self,
        profile: &ObjectPath<'_>,
        w: Awaited<'_>,
        timeout: Duration,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), ActivationFailure> {
        let (main_ifname, ports, ethernet_ports) = (w.main, w.ports, w.ethernet);
        let start = Instant::now();
        let conn = self.connection();
        let mut ac_stream = MessageStream::for_match_rule(
            rule("org.freedesktop.NetworkManager.Connection.Active").map_err(NmError::from)?,
            conn,
            Some(256),
        )
        .await
        .map_err(NmError::from)?;
        let mut dev_stream = MessageStream::for_match_rule(
            rule("org.freedesktop.NetworkManager.Device").map_err(NmError::from)?,
            conn,
            Some(1024),
        )
        .await
        .map_err(NmError::from)?;
        // If NetworkManager goes away, no state signal will ever come: watch its bus name.
        let mut owner_stream = MessageStream::for_match_rule(owner_rule().map_err(NmError::from)?, conn, Some(8))
            .await
            .map_err(NmError::from)?;

        // Devices that exist already (Ethernet ports must).
        let mut names: HashMap<String, String> = HashMap::new();
        for port in ethernet_ports {
            debug!(call = "GetDeviceByIpIface", port);
            match self.nm.get_device_by_ip_iface(port).await {
                Ok(p) => {
                    names.insert(p.to_string(), port.clone());
                }
                Err(e) => {
                    return Err(match NmError::from(e) {
                        NmError::UnknownDevice { .. } => ActivationFailure::NoDevice(port.clone()),
                        e => e.into(),
                    })
                }
            }
        }

        debug!(call = "ActivateConnection", %profile);
        let root = ObjectPath::from_static_str_unchecked("/");
        let ac: OwnedObjectPath = self.change(self.nm.inner(), "ActivateConnection", &(profile, &root, &root)).await?;
        let mut main_done = false;
        let mut pending: HashSet<&str> = ports.iter().map(String::as_str).collect();
        let mut main_device_reason: Option<u32> = None;
        // The state right now, in case the outcome came before our stream saw it.
        if let Ok(proxy) = proxies::build::<proxies::ActiveProxy<'_>>(conn, ac.clone()).await {
            if let Ok(s) = proxy.state().await {
                main_done = ActiveState::from_code(s) == ActiveState::Activated;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        // Ports already ACTIVATED before we started may stay so; check them once the controller is up.
        let mut checked_ports = false;
        loop {
            if main_done && !checked_ports {
                checked_ports = true;
                for (path, name) in names.clone() {
                    if pending.contains(name.as_str()) && self.device_state(&path).await == Some(DeviceState::Activated)
                    {
                        pending.remove(name.as_str());
                    }
                }
            }
            if main_done && pending.is_empty() {
                return Ok(());
            }
            tokio::select! {
                Some(_) = owner_stream.next() => return Err(ActivationFailure::NmRestarted),
                _ = &mut deadline => {
                    let mut waiting: Vec<&str> = pending.iter().copied().collect();
                    if !main_done { waiting.insert(0, main_ifname); }
                    return Err(ActivationFailure::Timeout { secs: timeout.as_secs(), waiting: waiting.join(", ") });
                }
                Some(Ok(msg)) = ac_stream.next() => {
                    if msg.header().path().map(|p| p.as_str()) != Some(ac.as_str()) { continue; }
                    let Ok((state, reason)) = msg.body().deserialize::<(u32, u32)>() else { continue };
                    debug!(signal = "ActiveConnection.StateChanged", state, reason);
                    match ActiveState::from_code(state) {
                        ActiveState::Activated => main_done = true,
                        ActiveState::Deactivated => return Err(ActivationFailure::Deactivated {
                            reason: reasons::active_reason(reason),
                            device: main_device_reason.map(reasons::device_reason),
                            realize_failed: reason == reasons::ACTIVE_REASON_DEVICE_REALIZE_FAILED,
                        }),
                        _ => {}
                    }
                }
                Some(Ok(msg)) = dev_stream.next() => {
                    let Some(path) = msg.header().path().map(|p| p.to_string()) else { continue };
                    let Ok((new, _old, reason)) = msg.body().deserialize::<(u32, u32, u32)>() else { continue };
                    let new = DeviceState::from_code(new);
                    let name = match names.get(&path) {
                        Some(n) => n.clone(),
                        None => {
                            // A device created by this activation (bridge, bond, VLAN): learn its name once.
                            let n = self.device_interface(&path).await.unwrap_or_default();
                            names.insert(path.clone(), n.clone());
                            n
                        }
                    };
                    debug!(signal = "Device.StateChanged", device = %name, new = new.as_str(), reason);
                    if name.is_empty() { continue; }
                    let what = format!("{name}: {}", new.as_str());
                    progress(Progress { what, elapsed: start.elapsed(), device: name.clone(), state: new.as_str() });
                    if name == main_ifname && w.ready_at_ip_config
                        && matches!(new, DeviceState::IpConfig | DeviceState::IpCheck | DeviceState::Secondaries) {
                        main_done = true;
                    }
                    if name == main_ifname && new == DeviceState::Failed {
                        main_device_reason = Some(reason);
                    }
                    if pending.contains(name.as_str()) {
                        match new {
                            DeviceState::Activated => { pending.remove(name.as_str()); }
                            DeviceState::Failed => return Err(ActivationFailure::PortFailed { port: name, reason: reasons::device_reason(reason) }),
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// Deactivates an active connection and waits until it is gone.
    pub async fn deactivate_and_wait(&self, ac: &str, timeout: Duration) -> Result<(), NmError> {
        let ac = ObjectPath::try_from(ac)?;
        let conn = self.connection();
        let mut stream =
            MessageStream::for_match_rule(rule("org.freedesktop.NetworkManager.Connection.Active")?, conn, Some(64))
                .await?;
        debug!(call = "DeactivateConnection", %ac);
        match self.change::<_, ()>(self.nm.inner(), "DeactivateConnection", &(&ac,)).await {
            Ok(()) => {}
            Err(NmError::NotActive) => return Ok(()),
            Err(e) => return Err(e),
        }
        let wait = async {
            while let Some(Ok(msg)) = stream.next().await {
                if msg.header().path().map(|p| p.as_str()) == Some(ac.as_str()) {
                    if let Ok((state, _)) = msg.body().deserialize::<(u32, u32)>() {
                        if ActiveState::from_code(state) == ActiveState::Deactivated {
                            return;
                        }
                    }
                }
            }
        };
        // The connection may be gone before our stream sees it; a short timeout covers that.
        let _ = tokio::time::timeout(timeout, wait).await;
        Ok(())
    }

    async fn device_state(&self, path: &str) -> Option<DeviceState> {
        u32::try_from(&self.device_property(path, "State").await?).ok().map(DeviceState::from_code)
    }

    async fn device_interface(&self, path: &str) -> Option<String> {
        String::try_from(self.device_property(path, "Interface").await?).ok()
    }
}
