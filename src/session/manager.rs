//! `/org/nmiface/Interfaces1`, `org.nmiface.Interfaces1.Manager`: libvirt-dbus's
//! `org.libvirt.Connect` interface methods (define, look up, list, transactions), plus `Apply` and
//! `Check`, NetworkManager's version and this user's permissions, and lifecycle events.

use super::args::{bridge_options, open_tap_options, options, parse, share_options, wire, WireFinding};
use super::state::{object_path, Service};
use super::{flags, ErrorKind, ServiceError};
use crate::gaps::Status;
use crate::verbs::{ApplyOptions, DefineOptions};
use crate::xml::Document;
use std::collections::HashMap;
use std::sync::Arc;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};

/// The Manager object.
pub(super) struct Manager {
    svc: Arc<Service>,
}

impl Manager {
    pub(super) fn new(svc: Arc<Service>) -> Self {
        Self { svc }
    }

    /// The names of `doc`'s interfaces when `flags` asks for system-wide profiles (the sync
    /// after the change exports their objects).
    fn system_names(&self, doc: &Document, flags: u32) -> Vec<String> {
        match flags & flags::SYSTEM != 0 {
            true => doc.host.interfaces.iter().map(|i| i.name.to_string()).collect(),
            false => Vec::new(),
        }
    }

    /// The objects of interfaces just defined, exported by the sync that ran before the reply
    /// (the lookup by name, which also explains what is missing, otherwise).
    async fn objects(&self, names: &[String], flags: u32) -> Result<Vec<OwnedObjectPath>, ServiceError> {
        let scope = match flags & flags::SYSTEM != 0 {
            true => crate::nm::Scope::System,
            false => self.svc.me.clone(),
        };
        let exported = self.svc.exported().await;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match exported.iter().find(|(_, s, p)| *s == scope && &p.name == name) {
                Some(e) => out.push(e.0.clone()),
                None => out.push(self.object_of(name, flags).await?),
            }
        }
        Ok(out)
    }

    /// The objects of `names` (as [`Manager::objects`]), each given the findings about it as
    /// its `Findings` property.
    async fn reporting(
        &self,
        names: &[String],
        flags: u32,
        findings: &[WireFinding],
    ) -> Result<Vec<(String, OwnedObjectPath)>, ServiceError> {
        let paths = self.objects(names, flags).await?;
        let objects: Vec<(String, OwnedObjectPath)> = names.iter().cloned().zip(paths).collect();
        self.svc.report(&objects, findings);
        Ok(objects)
    }

    /// The object of interface `name` in the scope of `flags`, exported if it is system-wide.
    async fn object_of(&self, name: &str, flags: u32) -> Result<OwnedObjectPath, ServiceError> {
        let ctx = self.svc.contexts()?;
        let listed = ctx.pick(flags).list().await?;
        let mine = listed.iter().find(|l| l.nmiface && l.name == name);
        match mine {
            Some(l) if flags & flags::SYSTEM != 0 => self.svc.export_system(l).await,
            Some(l) => Ok(object_path(l.uuid)),
            None => {
                // Not this scope's: say whether something else has that name.
                let other = listed.iter().find(|l| l.name == name).map(|l| l.profile.clone());
                let system = if flags & flags::SYSTEM == 0 {
                    ctx.system.list().await?.into_iter().find(|l| l.nmiface && l.name == name).map(|l| l.profile)
                } else {
                    None
                };
                Err(match (other.or(system.clone()), system.is_some()) {
                    (Some(p), true) => ServiceError::new(
                        ErrorKind::NotOwned,
                        format!("'{name}' is a system-wide interface (profile '{p}'), not yours: use the SYSTEM flag (4) to work on it"),
                    ),
                    (Some(p), false) => ServiceError::new(
                        ErrorKind::NotOwned,
                        format!("'{name}' exists (profile '{p}') but is not an nmiface interface of yours"),
                    ),
                    (None, _) => ServiceError::new(ErrorKind::NotFound, format!("no interface '{name}'")),
                })
            }
        }
    }
}

#[zbus::interface(name = "org.nmiface.Interfaces1.Manager")]
impl Manager {
    /// Creates or updates the profiles of the interfaces in `xml` (`virsh iface-define`);
    /// `flags`: 1 ADOPT, 2 FORCE, 4 SYSTEM. Returns the first interface's object.
    ///
    /// Errors: InvalidXml, NotOwned, InUse, NoRuntimeDirectory.
    #[zbus(name = "InterfaceDefineXML")]
    async fn interface_define_xml(
        &self,
        xml: String,
        flags: u32,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let doc = parse("InterfaceDefineXML", &xml)?;
        let o = DefineOptions { adopt: flags & flags::ADOPT != 0, force: flags & flags::FORCE != 0 };
        let names = self.system_names(&doc, flags);
        let out = self.svc.call(&hdr, flags, true, &names, async |c| c.define(&doc, o).await).await?;
        let all: Vec<String> = doc.host.interfaces.iter().map(|i| i.name.to_string()).collect();
        let objects = self.reporting(&all, flags, &wire(&out.findings)).await?;
        Ok(objects.into_iter().next().map(|(_, p)| p).unwrap_or_default())
    }

    /// The object of the user's interface `name` (`virsh iface-…` by name).
    ///
    /// Errors: NotFound, NotOwned.
    async fn interface_lookup_by_name(
        &self,
        name: String,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let _busy = self.svc.admit(&hdr).await?;
        self.object_of(&name, 0).await
    }

    /// The object of the user's interface with this MAC.
    ///
    /// Errors: InvalidArgs, NotFound.
    #[zbus(name = "InterfaceLookupByMAC")]
    async fn interface_lookup_by_mac(
        &self,
        mac: String,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let mac = crate::model::Mac::parse(&mac)
            .map_err(|e| ServiceError::new(ErrorKind::InvalidArgs, format!("MAC '{mac}': {e}")))?;
        let name = self.svc.call(&hdr, 0, false, &[], async |c| c.name_of(&mac).await).await?;
        self.object_of(&name, 0).await
    }

    /// The user's interfaces (`virsh iface-list`); `flags`: 1 inactive, 2 active (neither:
    /// both), 4 SYSTEM (also nmiface's system-wide ones).
    async fn list_interfaces(
        &self,
        flags: u32,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<OwnedObjectPath>, ServiceError> {
        let _busy = self.svc.admit(&hdr).await?;
        let want = |active: bool| match flags & (flags::LIST_ACTIVE | flags::LIST_INACTIVE) {
            flags::LIST_ACTIVE => active,
            flags::LIST_INACTIVE => !active,
            _ => true,
        };
        if flags & flags::SYSTEM != 0 {
            let ctx = self.svc.contexts()?;
            for l in ctx.system.list().await?.iter().filter(|l| l.nmiface) {
                self.svc.export_system(l).await?;
            }
        }
        let exported = self.svc.exported().await;
        Ok(exported
            .into_iter()
            .filter(|(_, scope, p)| want(p.active) && (flags & flags::SYSTEM != 0 || *scope == self.svc.me))
            .map(|(path, _, _)| path)
            .collect())
    }

    /// Opens a transaction (`virsh iface-begin`): a NetworkManager checkpoint if it lets this
    /// user take one, else nmiface's journal of the user's own profiles (the `Transaction`
    /// property says which). `flags`: 0.
    ///
    /// Errors: Busy.
    async fn interface_change_begin(&self, _flags: u32, #[zbus(header)] hdr: Header<'_>) -> Result<(), ServiceError> {
        self.svc
            .call(&hdr, 0, false, &[], async |c| c.begin(crate::verbs::defaults::TRANSACTION_TIMEOUT).await.map(|_| ()))
            .await?;
        self.svc.announce("Transaction").await;
        Ok(())
    }

    /// Keeps the transaction's changes (`virsh iface-commit`).
    ///
    /// Errors: NoTransaction.
    async fn interface_change_commit(&self, _flags: u32, #[zbus(header)] hdr: Header<'_>) -> Result<(), ServiceError> {
        self.svc.call(&hdr, 0, false, &[], async |c| c.commit(None).await.map(|_| ())).await?;
        self.svc.announce("Transaction").await;
        Ok(())
    }

    /// Puts back what the transaction changed (`virsh iface-rollback`).
    ///
    /// Errors: NoTransaction.
    async fn interface_change_rollback(
        &self,
        _flags: u32,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), ServiceError> {
        self.svc.call(&hdr, 0, true, &[], async |c| c.rollback(None).await).await?;
        self.svc.announce("Transaction").await;
        Ok(())
    }

    /// Defines and starts everything in `xml` as one step (`nmiface apply`). Options: `adopt`,
    /// `force`, `system` (b), `timeout` (u seconds), `checkpoint` (b). Returns the interfaces'
    /// objects and the findings (severity, path, line, column, message).
    ///
    /// Errors: InvalidXml, InvalidArgs, ActivationFailed (also without a checkpoint: an interface
    /// that did not start is never a success).
    async fn apply(
        &self,
        xml: String,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(Vec<OwnedObjectPath>, Vec<WireFinding>), ServiceError> {
        let o = self::options(&options)?;
        let doc = parse("Apply", &xml)?;
        let ao = ApplyOptions {
            adopt: o.flags & flags::ADOPT != 0,
            force: o.flags & flags::FORCE != 0,
            timeout: o.timeout,
            checkpoint: o.checkpoint,
            ..ApplyOptions::default()
        };
        // Progress goes out as signals from its own task: the callback cannot wait.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, u64)>();
        let emitter = emitter.to_owned();
        let signals = tokio::spawn(async move {
            while let Some((name, what, ms)) = rx.recv().await {
                let _ = Manager::activation_progress(&emitter, &name, &what, ms).await;
            }
        });
        let mut progress = |name: &str, p: crate::nm_client::Progress| {
            let _ = tx.send((name.to_string(), p.what, p.elapsed.as_millis() as u64));
        };
        let names = self.system_names(&doc, o.flags);
        let r = self.svc.call(&hdr, o.flags, true, &names, async |c| c.apply(&doc, ao, &mut progress).await).await;
        drop(tx);
        let _ = signals.await;
        let out = r?;
        let names: Vec<String> = doc.host.interfaces.iter().map(|i| i.name.to_string()).collect();
        let findings = wire(&out.findings);
        let objects = self.reporting(&names, o.flags, &findings).await?;
        Ok((objects.into_iter().map(|(_, p)| p).collect(), findings))
    }

    /// What `xml` would need from this NetworkManager and kernel, and what it approximates:
    /// the findings, and the capability gaps as `unsupported` findings. Changes nothing.
    ///
    /// Errors: InvalidXml.
    async fn check(
        &self,
        xml: String,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<WireFinding>, ServiceError> {
        let o = self::options(&options)?;
        let doc = parse("Check", &xml)?;
        let (findings, report) =
            self.svc.call(&hdr, o.flags, false, &[], async |c| Ok((c.findings(&doc), c.check(&doc).await?))).await?;
        let mut out = wire(&findings);
        for (iface, item) in report.items() {
            let severity = match item.status {
                Status::Supported => continue,
                Status::Approximated => "approximated",
                Status::Unsupported => "unsupported",
            };
            let what = format!("{}: {}", item.feature, item.detail);
            out.push((severity.into(), iface.unwrap_or("-").to_string(), 0, 0, what));
        }
        Ok(out)
    }

    /// A NAT bridge for the user's VMs (what `nmiface share` does with NAT): per-user, behind whatever
    /// uplink is active. Options: `bridge` (s, default `virbr1`), `subnet` (s, e.g.
    /// `10.42.7.0/24`; default: the bridge's own, else the first free 10.42.N.0/24), `persist`
    /// (b: come back at each login). Returns its `org.nmiface.Interfaces1.Share` object.
    ///
    /// Errors: InvalidArgs, InUse.
    async fn share_nat(
        &self,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let r = share_options(&options)?;
        let out = self.svc.call(&hdr, 0, true, &[], async |c| c.share(&r, &mut |_, _| {}).await).await?;
        let subnet = out.subnet.map(|(n, _)| format!("{}/{}", n.address, n.prefix)).unwrap_or_default();
        self.svc.export_share(&r.bridge, subnet).await
    }

    /// Shares NIC `nic` with VMs through a new bridge `bridge` (`nmiface bridge`, virsh
    /// iface-bridge): the bridge takes over the NIC's configuration and MAC, the NIC becomes its
    /// port, in one step; the NIC's profile is kept for `InterfaceUnbridge`. System-wide only:
    /// `flags` needs SYSTEM (4; NetworkManager's polkit rules decide), FORCE (2) goes on despite
    /// capability gaps. Options: `stp` (b, default true), `delay` (u seconds), `start` (b,
    /// default true), `timeout` (u seconds). Returns the bridge's object.
    ///
    /// Errors: InvalidArgs, Unsupported, NotFound.
    async fn interface_bridge(
        &self,
        nic: String,
        bridge: String,
        options: HashMap<String, OwnedValue>,
        flags: u32,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let r = bridge_options(&nic, &bridge, &options, flags)?;
        let names = [bridge.clone()];
        let out = self.svc.call(&hdr, flags, true, &names, async |c| c.bridge(&r, &mut |_, _| {}).await).await?;
        let objects = self.reporting(&names, flags, &wire(&out.findings)).await?;
        Ok(objects.into_iter().next().map(|(_, p)| p).unwrap_or_default())
    }

    /// Undoes `InterfaceBridge` (`nmiface unbridge`, virsh iface-unbridge): the bridge goes, the
    /// NIC gets its own profile back and is started. `flags`: SYSTEM (4), as for the bridge.
    /// Returns the NIC's name.
    ///
    /// Errors: NotFound.
    async fn interface_unbridge(
        &self,
        bridge: String,
        flags: u32,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<String, ServiceError> {
        let (timeout, rollback) =
            (crate::verbs::defaults::ACTIVATION_TIMEOUT, crate::verbs::defaults::ROLLBACK_TIMEOUT);
        self.svc
            .call(&hdr, flags, true, std::slice::from_ref(&bridge), async |c| {
                c.unbridge(&bridge, true, timeout, rollback).await
            })
            .await
    }

    /// A tap of the caller's on `bridge` (the user's NAT bridge, or a NIC's bridge), opened
    /// and handed over for a VM the caller launches itself: what `nmiface bridge-helper` does
    /// for libvirt and qemu. Give the descriptor to qemu (`-netdev tap,fd=N`) and close it
    /// here; NetworkManager deletes the tap and its profile when the last copy closes (the VM
    /// stops, is destroyed or crashes). Options: `vnet_hdr` (b, default true: frames with a
    /// virtio-net header). Returns the descriptor and the tap's name.
    ///
    /// Errors: InvalidArgs, NotOwned, Unsupported.
    async fn open_tap(
        &self,
        bridge: String,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(zbus::zvariant::OwnedFd, String), ServiceError> {
        let (r, vnet_hdr) = open_tap_options(&bridge, &options)?;
        let out = self.svc.call(&hdr, 0, true, &[], async |c| c.open_tap(&r, vnet_hdr).await).await?;
        Ok((zbus::zvariant::OwnedFd::from(out.fd), out.tap))
    }

    /// nmiface's version.
    #[zbus(property)]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    /// NetworkManager's version (empty while it is not running).
    #[zbus(property)]
    fn network_manager_version(&self) -> String {
        self.svc.nm_version()
    }

    /// NetworkManager's `GetPermissions` answer for this user: polkit action -> `yes`, `auth`,
    /// `no`; refreshed when NetworkManager signals `CheckPermissions`.
    #[zbus(property)]
    fn permissions(&self) -> HashMap<String, String> {
        self.svc.permissions().into_iter().collect()
    }

    /// How the open transaction protects the user: `none` (no transaction), `checkpoint`
    /// (NetworkManager's, devices and profiles) or `journal` (nmiface's journal of the user's
    /// own profiles: NetworkManager does not let this user take checkpoints).
    #[zbus(property)]
    fn transaction(&self) -> String {
        self.svc.transaction_label().to_string()
    }

    /// An interface of this user was defined (0), undefined (1), started (2) or stopped (3):
    /// libvirt's lifecycle-event shape.
    #[zbus(signal)]
    pub(super) async fn interface_event(
        emitter: &SignalEmitter<'_>,
        interface: ObjectPath<'_>,
        event: i32,
        detail: i32,
    ) -> zbus::Result<()>;

    /// An `Apply` is waiting on an activation: the interface, what changed (`br0: ip-config`),
    /// and the milliseconds since it began.
    #[zbus(signal)]
    async fn activation_progress(
        emitter: &SignalEmitter<'_>,
        interface: &str,
        step: &str,
        elapsed_ms: u64,
    ) -> zbus::Result<()>;
}
