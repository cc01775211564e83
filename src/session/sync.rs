//! The sync: NetworkManager's state turned into exported objects, `InterfaceEvent` and
//! `PropertiesChanged`, whoever made the change (a call, another tool, a logout).

use super::object::InterfaceObject;
use super::state::{object_path, Exported, Props, Service};
use super::{event, ServiceError, MANAGER_INTERFACE, MANAGER_PATH};
use crate::nm::Scope;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::debug;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedObjectPath;

impl Service {
    /// Brings the exported objects in line with NetworkManager: the user's interfaces appear
    /// (defined) and vanish (undefined), start and stop, with `InterfaceEvent` and
    /// `PropertiesChanged` for each change when `announce`. System-wide objects are exported
    /// only when a call asked for them (`SYSTEM`), then kept in line the same way.
    pub async fn sync(self: &Arc<Self>, announce: bool) -> Result<(), ServiceError> {
        self.sync_with(announce, &[]).await
    }

    /// [`Service::sync`], also exporting the system-wide interfaces named in `wanted` (a call
    /// with the `SYSTEM` flag just defined them): one read of NetworkManager for both.
    pub async fn sync_with(self: &Arc<Self>, announce: bool, wanted: &[String]) -> Result<(), ServiceError> {
        let ctx = self.contexts()?;
        let mut exported = self.exported.lock().await;
        let started = Instant::now();
        let with_system =
            self.me != Scope::System && (!wanted.is_empty() || exported.values().any(|e| e.scope == Scope::System));
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
            let asked = on_demand && wanted.contains(&listed.name);
            if !listed.nmiface || (on_demand && !asked && !exported.contains_key(&path)) || now.contains_key(&path) {
                continue;
            }
            now.insert(path, Exported { scope, props: Props::from(&listed) });
        }
        let emitter = SignalEmitter::new(&self.session, MANAGER_PATH)?;
        let server = self.session.object_server();
        for (path, was) in exported.iter() {
            if !now.contains_key(path) {
                let _ = server.remove::<InterfaceObject, _>(path.as_str()).await;
                self.reported.lock().unwrap_or_else(|e| e.into_inner()).remove(path.as_str());
                if announce {
                    self.event(&emitter, path, event::UNDEFINED).await;
                }
            } else if let Some(is) = now.get(path).filter(|is| *is != was) {
                if let Ok(iface) = server.interface::<_, InterfaceObject>(path.as_str()).await {
                    // Read lock only: a method of this very object may be running (see
                    // `InterfaceObject`).
                    let o = iface.get().await;
                    o.set_props(is.props.clone());
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
        *self.last_sync.lock().unwrap_or_else(|e| e.into_inner()) = started;
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

    async fn event(&self, emitter: &SignalEmitter<'_>, path: &str, ev: i32) {
        let Ok(o) = zbus::zvariant::ObjectPath::try_from(path) else { return };
        // The signal `Manager::interface_event` declares, sent from here so that this module
        // need not know the Manager object.
        if let Err(e) = emitter.emit(MANAGER_INTERFACE, "InterfaceEvent", &(o, ev, 0i32)).await {
            debug!("InterfaceEvent: {e}");
        }
    }
}
