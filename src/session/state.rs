//! What the service shares between calls, and its life: the contexts per scope (rebuilt when
//! NetworkManager restarts), the callers it admits, the objects it exports, the sync that turns
//! NetworkManager's changes into events, and the idle exit.

use super::manager::Manager;
use super::object::{InterfaceObject, Props};
use super::{event, ErrorKind, Options, ServeError, ServiceError, BUS_NAME, INTERFACE_PATH, MANAGER_PATH};
use crate::nm::Scope;
use crate::nm_client::{NmClient, NmError};
use crate::verbs::{Context, VerbError, CHECKPOINT_ACTION};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};
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
    async fn new(nm: NmClient, me: &Scope) -> Result<Self, VerbError> {
        let (user, system) = tokio::join!(Context::with_client(nm.clone()), Context::with_client(nm));
        let user = user?.with_scope(me.clone()).await?;
        let system = system?;
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
struct Exported {
    scope: Scope,
    props: Props,
}

/// The service's shared state.
pub(super) struct Service {
    contexts: Mutex<Option<Arc<Contexts>>>,
    nm: NmClient,
    /// The user the service runs as, and works for.
    pub me: Scope,
    uid: u32,
    /// The session bus connection.
    pub session: zbus::Connection,
    exported: tokio::sync::Mutex<BTreeMap<String, Exported>>,
    admitted: Mutex<HashMap<String, bool>>,
    permissions: Mutex<BTreeMap<String, String>>,
    in_flight: std::sync::atomic::AtomicUsize,
    last_activity: Mutex<Instant>,
    sync_wanted: tokio::sync::Notify,
}

/// Held while a call runs: the service does not count as idle.
pub(super) struct Busy<'a>(&'a Service);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        *self.0.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// An interface object's path: from its own profile's UUID, stable for the life of the profile.
pub(super) fn object_path(uuid: uuid::Uuid) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{INTERFACE_PATH}/{}", uuid.simple())).expect("hex digits make a valid path")
}

impl Service {
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

    /// NetworkManager's answers for this user, as last read.
    pub fn permissions(&self) -> BTreeMap<String, String> {
        self.permissions.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// After NetworkManager refused: if it would have allowed the action after authentication
    /// (polkit said `auth`) and the caller did not allow interaction, say so with D-Bus's own
    /// error name; otherwise NetworkManager's refusal as it is.
    pub async fn explain(&self, e: ServiceError, system: bool, interactive: bool) -> ServiceError {
        if e.kind != ErrorKind::PermissionDenied || interactive {
            return e;
        }
        self.refresh_permissions().await;
        let modify = if system { "system" } else { "own" };
        let actions = [
            format!("org.freedesktop.NetworkManager.settings.modify.{modify}"),
            "org.freedesktop.NetworkManager.network-control".to_string(),
        ];
        let p = self.permissions();
        match actions.iter().find(|a| p.get(a.as_str()).map(String::as_str) == Some("auth")) {
            Some(a) => ServiceError::new(
                ErrorKind::InteractiveAuthorizationRequired,
                format!("NetworkManager needs you to authenticate for {a} ({}); call again allowing interactive authorization", e.message),
            ),
            None => e,
        }
    }

    /// Reads NetworkManager's permissions for this user again; updates the protection changes
    /// get and tells clients.
    pub async fn refresh_permissions(&self) {
        let Ok(ctx) = self.contexts() else { return };
        match self.nm.permissions().await {
            Ok(p) => {
                ctx.user.set_checkpoints_allowed(p.get(CHECKPOINT_ACTION).map(String::as_str) == Some("yes"));
                let changed = *self.permissions.lock().unwrap_or_else(|e| e.into_inner()) != p;
                *self.permissions.lock().unwrap_or_else(|e| e.into_inner()) = p;
                if changed {
                    self.manager_changed(|m, e| Box::pin(async move { m.permissions_changed(&e).await })).await;
                }
            }
            Err(e) => warn!("GetPermissions: {e}"),
        }
    }

    /// Emits a Manager property change.
    pub async fn manager_changed(
        &self,
        f: impl for<'a> FnOnce(
            &'a Manager,
            SignalEmitter<'a>,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = zbus::Result<()>> + Send + 'a>>,
    ) {
        let Ok(iface) = self.session.object_server().interface::<_, Manager>(MANAGER_PATH).await else { return };
        let emitter = iface.signal_emitter().clone();
        let m = iface.get().await;
        if let Err(e) = f(&m, emitter).await {
            debug!("property change signal: {e}");
        }
    }

    /// Brings the exported objects in line with NetworkManager: the user's interfaces appear
    /// (defined) and vanish (undefined), start and stop, with `InterfaceEvent` and
    /// `PropertiesChanged` for each change when `announce`. System-wide objects are exported
    /// only when a call asked for them (`SYSTEM`), then kept in line the same way.
    pub async fn sync(self: &Arc<Self>, announce: bool) -> Result<(), ServiceError> {
        let ctx = self.contexts()?;
        let mut exported = self.exported.lock().await;
        let with_system = self.me != Scope::System && exported.values().any(|e| e.scope == Scope::System);
        let (user, system) = tokio::join!(ctx.user.list(), async {
            if with_system {
                ctx.system.list().await.map(Some)
            } else {
                Ok(None)
            }
        });
        let mut now: BTreeMap<String, Exported> = BTreeMap::new();
        // The user's own appear by themselves; system-wide ones only once a call asked for them.
        for (listed, scope, on_demand) in user?
            .into_iter()
            .map(|l| (l, self.me.clone(), false))
            .chain(system?.unwrap_or_default().into_iter().map(|l| (l, Scope::System, true)))
        {
            let path = object_path(listed.uuid).to_string();
            if !listed.nmiface || (on_demand && !exported.contains_key(&path)) || now.contains_key(&path) {
                continue;
            }
            now.insert(path, Exported { scope, props: Props::from(&listed) });
        }
        let emitter = SignalEmitter::new(&self.session, MANAGER_PATH)?;
        let server = self.session.object_server();
        for (path, was) in exported.iter() {
            if !now.contains_key(path) {
                let _ = server.remove::<InterfaceObject, _>(path.as_str()).await;
                if announce {
                    self.event(&emitter, path, event::UNDEFINED).await;
                }
            } else if let Some(is) = now.get(path).filter(|is| *is != was) {
                if let Ok(iface) = server.interface::<_, InterfaceObject>(path.as_str()).await {
                    iface.get_mut().await.props = is.props.clone();
                    let o = iface.get().await;
                    o.changed(&was.props, iface.signal_emitter()).await;
                }
                if announce && is.props.active != was.props.active {
                    let ev = if is.props.active { event::STARTED } else { event::STOPPED };
                    self.event(&emitter, path, ev).await;
                }
            }
        }
        for (path, is) in &now {
            if exported.contains_key(path) {
                continue;
            }
            let object = InterfaceObject::new(self.clone(), is.scope.clone(), is.props.clone());
            server.at(path.as_str(), object).await?;
            if announce {
                self.event(&emitter, path, event::DEFINED).await;
                if is.props.active {
                    self.event(&emitter, path, event::STARTED).await;
                }
            }
        }
        *exported = now;
        Ok(())
    }

    /// Exports a system-wide interface a call asked for (`SYSTEM`); returns its path.
    pub async fn export_system(
        self: &Arc<Self>,
        listed: &crate::agent::Listed,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let path = object_path(listed.uuid);
        let mut exported = self.exported.lock().await;
        if !exported.contains_key(path.as_str()) {
            let props = Props::from(listed);
            let object = InterfaceObject::new(self.clone(), Scope::System, props.clone());
            self.session.object_server().at(path.as_str(), object).await?;
            exported.insert(path.to_string(), Exported { scope: Scope::System, props });
        }
        Ok(path)
    }

    /// The paths exported now, with their scope and properties.
    pub async fn exported(&self) -> Vec<(OwnedObjectPath, Scope, Props)> {
        let exported = self.exported.lock().await;
        exported
            .iter()
            .filter_map(|(p, e)| Some((OwnedObjectPath::try_from(p.as_str()).ok()?, e.scope.clone(), e.props.clone())))
            .collect()
    }

    async fn event(&self, emitter: &SignalEmitter<'_>, path: &str, ev: i32) {
        let Ok(o) = zbus::zvariant::ObjectPath::try_from(path) else { return };
        if let Err(e) = Manager::interface_event(emitter, o, ev, 0).await {
            debug!("InterfaceEvent: {e}");
        }
    }
}

/// Runs the service: NetworkManager on the system bus as this user, the objects on the session
/// bus, the name last (so D-Bus activation answers only once everything is in place).
pub(super) async fn run(o: Options) -> Result<(), ServeError> {
    let uid = crate::identity::current_uid()
        .ok_or_else(|| crate::identity::UnknownUser("/proc/self/status has no Uid line".into()))?;
    let me = crate::identity::caller_scope(false)?;
    let nm = NmClient::connect_system()
        .await
        .map_err(|source| VerbError::Connect { address: crate::nm_client::system_bus_address(), source })?;
    let contexts = match Contexts::new(nm.clone(), &me).await {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            warn!("NetworkManager: {e}");
            None
        }
    };
    let session =
        zbus::connection::Builder::session()?.method_timeout(crate::nm_client::method_timeout()).build().await?;
    let svc = Arc::new(Service {
        contexts: Mutex::new(contexts),
        nm: nm.clone(),
        me,
        uid,
        session: session.clone(),
        exported: Default::default(),
        admitted: Default::default(),
        permissions: Default::default(),
        in_flight: 0.into(),
        last_activity: Mutex::new(Instant::now()),
        sync_wanted: tokio::sync::Notify::new(),
    });
    let server = session.object_server();
    server.at(MANAGER_PATH, zbus::fdo::ObjectManager).await?;
    server.at(MANAGER_PATH, Manager::new(svc.clone())).await?;
    svc.refresh_permissions().await;
    if let Err(e) = svc.sync(false).await {
        warn!("first sync: {e}");
    }
    let flags = zbus::fdo::RequestNameFlags::DoNotQueue.into();
    if session.request_name_with_flags(BUS_NAME, flags).await? != zbus::fdo::RequestNameReply::PrimaryOwner {
        return Err(ServeError::NameTaken);
    }
    info!("serving {BUS_NAME} for {:?}", svc.me);
    tokio::select! {
        r = watch_nm(svc.clone()) => r?,
        r = syncer(svc.clone()) => r,
        r = watch_clients(svc.clone()) => r?,
        () = idle(svc.clone(), o.idle_exit) => {}
    }
    let _ = session.release_name(BUS_NAME).await;
    Ok(())
}

/// Follows NetworkManager: any signal of it asks for a sync (debounced), `CheckPermissions`
/// re-reads the permissions, a restart rebuilds the contexts (version, features) and says so.
async fn watch_nm(svc: Arc<Service>) -> Result<(), ServeError> {
    let conn = svc.nm.connection().clone();
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(crate::nm_client::proxies::BUS_NAME)?
        .build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, &conn, Some(256)).await?;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
    let mut owners = dbus.receive_name_owner_changed_with_args(&[(0, crate::nm_client::proxies::BUS_NAME)]).await?;
    loop {
        tokio::select! {
            Some(Ok(m)) = signals.next() => {
                if m.header().member().is_some_and(|n| n.as_str() == "CheckPermissions") {
                    svc.refresh_permissions().await;
                }
                svc.sync_wanted.notify_one();
            }
            Some(change) = owners.next() => {
                let Ok(args) = change.args() else { continue };
                if args.new_owner().is_none() {
                    info!("NetworkManager left the bus");
                    *svc.contexts.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    continue;
                }
                info!("NetworkManager (re)started");
                restart(&svc).await;
            }
            else => return Ok(()),
        }
    }
}

/// After NetworkManager came (back): new contexts (its version may differ), permissions, and
/// the objects brought in line, with the changes announced.
async fn restart(svc: &Arc<Service>) {
    // It owns its name before it has read its profiles: give it a moment, bounded.
    for _ in 0..50 {
        match Contexts::new(svc.nm.clone(), &svc.me).await {
            Ok(c) => {
                *svc.contexts.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(c));
                svc.manager_changed(|m, e| Box::pin(async move { m.network_manager_version_changed(&e).await })).await;
                svc.refresh_permissions().await;
                svc.sync_wanted.notify_one();
                return;
            }
            Err(VerbError::Agent(crate::agent::AgentError::Nm(NmError::NotRunning))) | Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    warn!("NetworkManager came back but does not answer");
}

/// Runs a sync when one is wanted, at most every 50 ms.
async fn syncer(svc: Arc<Service>) {
    loop {
        svc.sync_wanted.notified().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Err(e) = svc.sync(true).await {
            debug!("sync: {e}");
        }
    }
}

/// Forgets callers that left the bus (they no longer keep the service alive).
async fn watch_clients(svc: Arc<Service>) -> Result<(), ServeError> {
    let dbus = zbus::fdo::DBusProxy::new(&svc.session).await?;
    let mut changes = dbus.receive_name_owner_changed().await?;
    while let Some(change) = changes.next().await {
        let Ok(args) = change.args() else { continue };
        if args.new_owner().is_none() {
            let name = args.name().to_string();
            if svc.admitted.lock().unwrap_or_else(|e| e.into_inner()).remove(&name).is_some() {
                *svc.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            }
        }
    }
    Ok(())
}

/// Returns once no client has been connected and no call in flight for `delay`.
async fn idle(svc: Arc<Service>, delay: Duration) {
    let tick = (delay / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        tokio::time::sleep(tick).await;
        let calls = svc.in_flight.load(std::sync::atomic::Ordering::SeqCst);
        let clients: HashSet<String> = svc
            .admitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, ok)| **ok)
            .map(|(n, _)| n.clone())
            .collect();
        let quiet = svc.last_activity.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
        if calls == 0 && clients.is_empty() && quiet >= delay {
            info!("idle for {quiet:?}: exiting");
            return;
        }
    }
}
