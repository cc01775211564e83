//! What the service shares between calls: the contexts per scope (rebuilt when NetworkManager
//! restarts), the callers it admits, the objects it exports, and the sync that turns
//! NetworkManager's changes into events.

use super::{ErrorKind, ServiceError, INTERFACE_PATH, MANAGER_INTERFACE, MANAGER_PATH};
use crate::nm::Scope;
use crate::nm_client::NmClient;
use crate::verbs::{Context, VerbError, CHECKPOINT_ACTION};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::{debug, warn};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedObjectPath;

/// The two scopes a call can work in, over one NetworkManager connection.
pub(super) struct Contexts {
    /// The user's own profiles (the default).
    pub user: Context,
    /// System-wide profiles (the `SYSTEM` flag).
    pub system: Context,
    /// NetworkManager's version, as it says it.
    pub nm_version: String,
}

impl Contexts {
    pub(super) async fn new(nm: NmClient, me: &Scope) -> Result<Self, VerbError> {
        let (user, system) = tokio::join!(Context::with_client(nm.clone()), Context::with_client(nm));
        let user = user?.with_scope(me.clone()).await?;
        // A user's system-wide changes are protected as NetworkManager lets this user: asked.
        let system = system?.with_scope(Scope::System).await?;
        let nm_version = user.version().to_string();
        Ok(Self { user, system, nm_version })
    }

    /// The context for a call's flags.
    pub fn pick(&self, flags: u32) -> &Context {
        if flags & super::flags::SYSTEM != 0 {
            &self.system
        } else {
            &self.user
        }
    }
}

/// An exported interface object, as last seen.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Exported {
    /// Whose.
    pub scope: Scope,
    /// As last seen.
    pub props: Props,
}

/// An interface's state as the object shows it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Props {
    /// `Name`.
    pub name: String,
    /// `MAC` (empty: unknown).
    pub mac: String,
    /// `Active`.
    pub active: bool,
    /// `Type`.
    pub kind: String,
    /// The UUID of the interface's own profile (its object path).
    pub uuid: uuid::Uuid,
}

impl From<&crate::agent::Listed> for Props {
    fn from(l: &crate::agent::Listed) -> Self {
        Props {
            name: l.name.clone(),
            mac: l.mac.clone().unwrap_or_default(),
            active: l.active,
            kind: l.kind.clone(),
            uuid: l.uuid,
        }
    }
}

/// The leases seen so far per shared bridge (`LeaseAdded` is sent for what is new).
pub(super) type SeenLeases = BTreeMap<String, BTreeSet<(String, String)>>;

/// The service's shared state.
pub(super) struct Service {
    pub(super) contexts: Mutex<Option<Arc<Contexts>>>,
    pub(super) nm: NmClient,
    /// The user the service runs as, and works for.
    pub me: Scope,
    pub(super) uid: u32,
    /// The session bus connection.
    pub session: zbus::Connection,
    pub(super) exported: tokio::sync::Mutex<BTreeMap<String, Exported>>,
    pub(super) admitted: Mutex<HashMap<String, bool>>,
    pub(super) permissions: Mutex<BTreeMap<String, String>>,
    pub(super) in_flight: std::sync::atomic::AtomicUsize,
    pub(super) last_activity: Mutex<Instant>,
    pub(super) sync_wanted: tokio::sync::Notify,
    /// When the last complete sync began: a change NetworkManager signalled before that is in
    /// it already, so the background sync can skip it.
    pub(super) last_sync: Mutex<Instant>,
    /// The leases seen per exported share, for `LeaseAdded`.
    pub(super) leases_seen: tokio::sync::Mutex<SeenLeases>,
    /// Set when the service is told to stop (SIGTERM from systemd at logout, SIGHUP, SIGINT):
    /// changes in flight are abandoned and what they left rolled back before it exits.
    pub(super) stop: tokio::sync::watch::Sender<bool>,
    /// What the last call that changed or dumped an interface reported about it, per object
    /// path (its `Findings` property): what was kept, moved, not carried or left out.
    pub(super) reported: Mutex<HashMap<String, Vec<super::args::WireFinding>>>,
}

/// Held while a call runs: the service does not count as idle.
pub(super) struct Busy<'a>(&'a Service);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        *self.0.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// True when the caller allowed interactive authorization on its message.
pub(super) fn interactive(hdr: &zbus::message::Header<'_>) -> bool {
    hdr.primary().flags().contains(zbus::message::Flags::AllowInteractiveAuth)
}

/// An interface object's path: from its own profile's UUID, stable for the life of the profile.
pub(super) fn object_path(uuid: uuid::Uuid) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{INTERFACE_PATH}/{}", uuid.simple())).expect("hex digits make a valid path")
}

impl Service {
    /// Records `findings` on the objects of the interfaces they are about (`objects`: interface
    /// name and object path); an object the call was about but nothing was said of gets none.
    pub(super) fn report(&self, objects: &[(String, OwnedObjectPath)], findings: &[super::args::WireFinding]) {
        let mut r = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        for (name, path) in objects {
            let mine = findings.iter().filter(|f| &f.1 == name).cloned().collect();
            r.insert(path.to_string(), mine);
        }
    }

    /// What [`Service::report`] recorded for `path`.
    pub(super) fn reported(&self, path: &str) -> Vec<super::args::WireFinding> {
        self.reported.lock().unwrap_or_else(|e| e.into_inner()).get(path).cloned().unwrap_or_default()
    }

    /// The contexts, or NetworkManagerUnavailable while NetworkManager is away.
    pub fn contexts(&self) -> Result<Arc<Contexts>, ServiceError> {
        self.contexts.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| {
            ServiceError::new(ErrorKind::NetworkManagerUnavailable, "NetworkManager is not running on the system bus")
        })
    }

    /// Admits a call: only the service's own user may use it (the session bus admits only that
    /// user too; this holds even on a bus configured otherwise). Counts the call as in flight.
    pub async fn admit(&self, hdr: &zbus::message::Header<'_>) -> Result<Busy<'_>, ServiceError> {
        self.in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let busy = Busy(self);
        let Some(sender) = hdr.sender().map(|s| s.to_string()) else {
            return Err(ServiceError::new(ErrorKind::AccessDenied, "a call without a sender"));
        };
        let known = self.admitted.lock().unwrap_or_else(|e| e.into_inner()).get(&sender).copied();
        let ok = match known {
            Some(ok) => ok,
            None => {
                let dbus = zbus::fdo::DBusProxy::new(&self.session).await?;
                let name = zbus::names::BusName::try_from(sender.as_str()).map_err(zbus::Error::from)?;
                let uid = dbus.get_connection_unix_user(name).await.map_err(zbus::Error::from)?;
                let ok = uid == self.uid;
                self.admitted.lock().unwrap_or_else(|e| e.into_inner()).insert(sender.clone(), ok);
                ok
            }
        };
        if !ok {
            return Err(ServiceError::new(
                ErrorKind::AccessDenied,
                format!("this service works for uid {} only", self.uid),
            ));
        }
        Ok(busy)
    }

    /// Runs one call's verb: the caller admitted; a change whose polkit answer is `auth`
    /// refused unless the caller allowed interaction (else the change is sent with that flag);
    /// the context of the scope `flags` asks for; after a change, the objects and events brought
    /// in line before the reply (exporting the system-wide interfaces `wanted` names); and
    /// NetworkManager's refusals explained.
    pub async fn call<T>(
        self: &Arc<Self>,
        hdr: &zbus::message::Header<'_>,
        flags: u32,
        changes: bool,
        wanted: &[String],
        f: impl AsyncFnOnce(&crate::verbs::Context) -> Result<T, VerbError>,
    ) -> Result<T, ServiceError> {
        let _busy = self.admit(hdr).await?;
        let interactive = interactive(hdr);
        let system = flags & super::flags::SYSTEM != 0;
        if changes {
            self.precheck(system, interactive)?;
        }
        let ctx = self.contexts()?;
        let own;
        let c = match interactive {
            true => {
                own = ctx.pick(flags).interactive();
                &own
            }
            false => ctx.pick(flags),
        };
        let r = match changes {
            true => {
                let mut stop = self.stop.subscribe();
                // Boxed, so that an abandoned change can be dropped (its lock freed) before the rollback.
                let mut change = Box::pin(f(c));
                tokio::select! {
                    r = change.as_mut() => r.map_err(ServiceError::from),
                    // The watch's guard must not live across an await (it is not Send).
                    () = async { drop(stop.wait_for(|s| *s).await) } => {
                        // A NetworkManager call in flight lands first; a change that finished
                        // meanwhile answers as it is.
                        match c.land_calls(change.as_mut(), crate::verbs::defaults::INTERRUPT_GRACE).await {
                            Some(r) => r.map_err(ServiceError::from),
                            None => {
                                drop(change);
                                self.abandon(c).await
                            }
                        }
                    }
                }
            }
            false => f(c).await.map_err(ServiceError::from),
        };
        if changes {
            let _ = self.sync_with(true, wanted).await;
        }
        match r {
            Ok(t) => Ok(t),
            Err(e) => Err(self.explain(e, system, interactive).await),
        }
    }

    /// After a change was abandoned because the service is stopping (its future dropped, so
    /// its lock is free): rolls back what its journal, written ahead, says it left.
    async fn abandon<T>(&self, c: &Context) -> Result<T, ServiceError> {
        let outcome = match c.recover().await {
            Ok(_) => "what it had changed was rolled back".to_string(),
            Err(e) => format!("rolling it back failed ({e}); the next change finishes it"),
        };
        Err(ServiceError::new(
            ErrorKind::Interrupted,
            format!("the service is stopping: the change was abandoned, {outcome}"),
        ))
    }

    /// NetworkManager's answers for this user, as last read.
    pub fn permissions(&self) -> BTreeMap<String, String> {
        self.permissions.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// After NetworkManager refused: if it would have allowed the change after authentication
    /// (polkit's answer, read again now, is `auth`) and the caller did not allow interaction,
    /// say so with D-Bus's own error name; otherwise NetworkManager's refusal as it is.
    pub async fn explain(&self, e: ServiceError, system: bool, interactive: bool) -> ServiceError {
        if e.kind != ErrorKind::PermissionDenied || interactive {
            return e;
        }
        self.refresh_permissions().await;
        match self.needs_auth(system) {
            Some(a) => ServiceError::new(
                ErrorKind::InteractiveAuthorizationRequired,
                format!("NetworkManager needs you to authenticate for {a} ({}); call again allowing interactive authorization", e.message),
            ),
            None => e,
        }
    }

    /// Refuses, before NetworkManager is asked, a change whose polkit answer for this user is
    /// `auth` when the caller did not allow interactive authorization: NetworkManager 1.42 asks
    /// polkit with user interaction allowed for every settings change whatever the caller's
    /// message said, so without this a desktop's authentication agent would prompt on behalf of
    /// a client that asked not to.
    fn precheck(&self, system: bool, interactive: bool) -> Result<(), ServiceError> {
        match self.needs_auth(system).filter(|_| !interactive) {
            Some(a) => Err(ServiceError::new(
                ErrorKind::InteractiveAuthorizationRequired,
                format!(
                    "NetworkManager needs you to authenticate for {a}; call again allowing interactive authorization"
                ),
            )),
            None => Ok(()),
        }
    }

    /// The polkit action a change (system-wide or the user's own) needs for which NetworkManager's
    /// last answer was `auth`, if any.
    fn needs_auth(&self, system: bool) -> Option<String> {
        let modify = if system { "settings.modify.system" } else { "settings.modify.own" };
        let p = self.permissions();
        [modify, "network-control"]
            .iter()
            .map(|a| format!("org.freedesktop.NetworkManager.{a}"))
            .find(|a| p.get(a).map(String::as_str) == Some("auth"))
    }

    /// Reads NetworkManager's permissions for this user again; updates the protection changes
    /// get and tells clients.
    pub async fn refresh_permissions(&self) {
        let Ok(ctx) = self.contexts() else { return };
        match self.nm.permissions().await {
            Ok(p) => {
                let allowed = p.get(CHECKPOINT_ACTION).map(String::as_str) == Some("yes");
                ctx.user.set_checkpoints_allowed(allowed);
                ctx.system.set_checkpoints_allowed(allowed);
                let changed = *self.permissions.lock().unwrap_or_else(|e| e.into_inner()) != p;
                *self.permissions.lock().unwrap_or_else(|e| e.into_inner()) = p;
                if changed {
                    self.announce("Permissions").await;
                }
            }
            Err(e) => warn!("GetPermissions: {e}"),
        }
    }

    /// Tells clients that Manager property `name` (`Permissions`, `Transaction`,
    /// `NetworkManagerVersion`) changed, with its value.
    pub async fn announce(&self, name: &'static str) {
        let value: zbus::zvariant::Value<'_> = match name {
            "Permissions" => self.permissions().into_iter().collect::<HashMap<String, String>>().into(),
            "Transaction" => self.transaction_label().into(),
            _ => self.nm_version().into(),
        };
        let Ok(emitter) = SignalEmitter::new(&self.session, MANAGER_PATH) else { return };
        let interface = zbus::names::InterfaceName::from_static_str_unchecked(MANAGER_INTERFACE);
        let changed = HashMap::from([(name, value)]);
        if let Err(e) = zbus::fdo::Properties::properties_changed(&emitter, interface, changed, (&[][..]).into()).await
        {
            debug!("PropertiesChanged: {e}");
        }
    }

    /// How the open transaction protects the user: `none`, `checkpoint` or `journal`.
    pub fn transaction_label(&self) -> &'static str {
        match self.contexts().ok().and_then(|c| c.user.open_transaction().ok().flatten()) {
            None => "none",
            Some(j) if j.protects_devices() => "checkpoint",
            Some(_) => "journal",
        }
    }

    /// NetworkManager's version (empty while it is away).
    pub fn nm_version(&self) -> String {
        self.contexts().map(|c| c.nm_version.clone()).unwrap_or_default()
    }

    /// The paths exported now, with their scope and properties.
    pub async fn exported(&self) -> Vec<(OwnedObjectPath, Scope, Props)> {
        let exported = self.exported.lock().await;
        exported
            .iter()
            .filter_map(|(p, e)| Some((OwnedObjectPath::try_from(p.as_str()).ok()?, e.scope.clone(), e.props.clone())))
            .collect()
    }
}
