//! One object per interface, `org.nmiface.Interfaces1.Interface`, shaped after libvirt-dbus's
//! `org.libvirt.Interface`: `Create`, `Destroy`, `Undefine`, `GetXMLDesc`, and its state as
//! properties that signal their changes.

use super::state::{Props, Service};
use super::{flags, ServiceError};
use crate::nm::Scope;
use crate::verbs::defaults::ACTIVATION_TIMEOUT;
use std::sync::Arc;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

/// The object of one interface.
///
/// Its properties sit behind a lock of their own, never behind zbus's: zbus holds a read lock on
/// an object for the whole of a method call (`Create` waits up to a minute on an activation),
/// and the sync that runs at the end of that call must update the same object. Taking zbus's
/// write lock there (`get_mut`) waited for the call that was waiting for it: the service hung.
pub(super) struct InterfaceObject {
    svc: Arc<Service>,
    scope: Scope,
    props: std::sync::Mutex<Props>,
}

impl InterfaceObject {
    pub(super) fn new(svc: Arc<Service>, scope: Scope, props: Props) -> Self {
        Self { svc, scope, props: std::sync::Mutex::new(props) }
    }

    /// The properties as last synced.
    pub(super) fn props(&self) -> Props {
        self.props.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the properties (the sync, under zbus's read lock only).
    pub(super) fn set_props(&self, p: Props) {
        *self.props.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    fn path(&self) -> zbus::zvariant::OwnedObjectPath {
        super::state::object_path(self.props().uuid)
    }

    fn name_(&self) -> String {
        self.props().name
    }

    fn system(&self) -> bool {
        self.scope == Scope::System
    }

    /// Runs a verb that changes something, in this object's scope.
    async fn run<T>(
        &self,
        hdr: &Header<'_>,
        f: impl AsyncFnOnce(&crate::verbs::Context) -> Result<T, crate::verbs::VerbError>,
    ) -> Result<T, ServiceError> {
        self.svc.call(hdr, if self.system() { flags::SYSTEM } else { 0 }, true, &[], f).await
    }

    /// Emits `PropertiesChanged` for what differs from `was`.
    pub(super) async fn changed(&self, was: &Props, e: &SignalEmitter<'_>) {
        let p = self.props();
        let _ = async {
            if p.active != was.active {
                self.active_changed(e).await?;
                self.state_changed(e).await?;
            }
            if p.mac != was.mac {
                self.m_a_c_changed(e).await?;
            }
            if p.kind != was.kind {
                self.type_changed(e).await?;
            }
            zbus::Result::Ok(())
        }
        .await;
    }
}

#[zbus::interface(name = "org.nmiface.Interfaces1.Interface")]
impl InterfaceObject {
    /// Activates the interface and waits for it (`virsh iface-start`); `flags`: 2 FORCE.
    ///
    /// Errors: ActivationFailed.
    async fn create(&self, flags: u32, #[zbus(header)] hdr: Header<'_>) -> Result<(), ServiceError> {
        let name = self.name_();
        let force = flags & flags::FORCE != 0;
        self.run(&hdr, async |c| c.start(&name, ACTIVATION_TIMEOUT, force, &mut |_| {}).await.map(|_| ())).await
    }

    /// Deactivates the interface (`virsh iface-destroy`); `flags`: none yet (0).
    ///
    /// Errors: NotActive.
    async fn destroy(&self, _flags: u32, #[zbus(header)] hdr: Header<'_>) -> Result<(), ServiceError> {
        let name = self.name_();
        self.run(&hdr, async |c| c.stop(&name, ACTIVATION_TIMEOUT).await).await
    }

    /// Deletes the interface's profiles (`virsh iface-undefine`); the object goes away.
    async fn undefine(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), ServiceError> {
        let name = self.name_();
        self.run(&hdr, async |c| c.undefine(&name).await.map(|_| ())).await
    }

    /// The interface as libvirt XML; `flags`: 1 INACTIVE (the definition, not the live state).
    #[zbus(name = "GetXMLDesc")]
    async fn get_xml_desc(&self, flags: u32, #[zbus(header)] hdr: Header<'_>) -> Result<String, ServiceError> {
        let name = self.name_();
        let inactive = flags & flags::XML_INACTIVE != 0;
        let _busy = self.svc.admit(&hdr).await?;
        let ctx = self.svc.contexts()?;
        let c = ctx.pick(if self.system() { flags::SYSTEM } else { 0 });
        let (xml, findings) = c.dumpxml(&name, inactive).await.map_err(ServiceError::from)?;
        self.svc.report(&[(name, self.path())], &super::args::wire(&findings));
        Ok(xml)
    }

    /// What the last call about this interface reported (`InterfaceDefineXML`, `Apply`,
    /// `InterfaceBridge`, `GetXMLDesc`): what an update kept of a profile that the document
    /// does not say, what moved with a NIC or could not be carried, what the XML left out; each
    /// as (severity, interface, line, column, message), like `Apply`'s findings. Read it after
    /// the call returns (no change signal).
    #[zbus(property(emits_changed_signal = "false"))]
    fn findings(&self) -> Vec<super::args::WireFinding> {
        self.svc.reported(self.path().as_str())
    }

    /// The interface's name.
    #[zbus(property)]
    fn name(&self) -> String {
        self.name_()
    }

    /// Its MAC address (the device's, else the configured one; empty when unknown).
    #[zbus(property, name = "MAC")]
    fn mac(&self) -> String {
        self.props().mac
    }

    /// Whether its profile is active.
    #[zbus(property)]
    fn active(&self) -> bool {
        self.props().active
    }

    /// `ethernet`, `bridge`, `bond` or `vlan`.
    #[zbus(property, name = "Type")]
    fn kind(&self) -> String {
        self.props().kind
    }

    /// `user` (the caller's own profiles) or `system` (system-wide).
    #[zbus(property)]
    fn scope(&self) -> String {
        self.scope.label().to_string()
    }

    /// `active` or `inactive`.
    #[zbus(property)]
    fn state(&self) -> String {
        if self.props().active { "active" } else { "inactive" }.to_string()
    }
}
