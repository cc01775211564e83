//! The service's life: start (NetworkManager, objects, then the name), following NetworkManager
//! (signals, permissions, restarts), forgetting callers that left, and the idle exit.

use super::manager::Manager;
use super::state::{Contexts, Service};
use super::{Options, ServeError, BUS_NAME, MANAGER_PATH};
use crate::nm_client::{NmClient, NmError};
use crate::verbs::VerbError;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

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
        reported: Default::default(),
        permissions: Default::default(),
        in_flight: 0.into(),
        last_activity: Mutex::new(Instant::now()),
        sync_wanted: tokio::sync::Notify::new(),
        last_sync: Mutex::new(Instant::now()),
        leases_seen: Default::default(),
        stop: tokio::sync::watch::channel(false).0,
    });
    let server = session.object_server();
    server.at(MANAGER_PATH, zbus::fdo::ObjectManager).await?;
    server.at(MANAGER_PATH, Manager::new(svc.clone())).await?;
    svc.refresh_permissions().await;
    if let Err(e) = svc.sync(false).await {
        warn!("first sync: {e}");
    }
    // Shares made before (by this service before an idle exit, or by the CLI): their objects
    // again, before the name is taken, so that a path a client holds still answers.
    if let Ok(ctx) = svc.contexts() {
        match ctx.user.vm_bridges().await {
            Ok(bridges) => {
                for (bridge, subnet) in bridges {
                    if let Err(e) = svc.export_share(&bridge, subnet).await {
                        warn!("share {bridge}: {e}");
                    }
                }
            }
            Err(e) => warn!("the shares already made: {e}"),
        }
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
        () = leases(svc.clone()) => {}
        () = idle(svc.clone(), o.idle_exit) => {}
        r = terminated(svc.clone()) => r?,
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
                svc.announce("NetworkManagerVersion").await;
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
        let signalled = Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A call's own sync (before its reply) began after the signal: nothing new to see.
        if *svc.last_sync.lock().unwrap_or_else(|e| e.into_inner()) > signalled {
            continue;
        }
        if let Err(e) = svc.sync(true).await {
            debug!("sync: {e}");
        }
    }
}

/// `LeaseAdded` from neighbour events: the kernel's neighbour and FDB events (read on a thread
/// of their own, [`crate::host_neigh::watch`]) make the exported shares' leases be read again,
/// shortly after the event (20 ms: a lease's neighbour and FDB changes come together); a slow
/// read every [`super::share::LEASE_FALLBACK`] catches what events miss. Without the events
/// (the socket could not be opened) the slow read is all there is, and the log says so.
async fn leases(svc: Arc<Service>) {
    use crate::host_neigh::Change;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let watching = crate::host_neigh::watch(move |change| {
        let news = match change {
            Change::Lost => true,
            Change::Entries(e) => e.iter().any(|n| !n.deleted),
        };
        // Full: a read is pending already, which will see this change too.
        if news {
            let _ = tx.try_send(());
        }
        !tx.is_closed()
    });
    if let Err(e) = watching {
        warn!("neighbour events: {e}: leases are read every {:?}", super::share::LEASE_FALLBACK);
    }
    loop {
        tokio::select! {
            Some(()) = rx.recv() => tokio::time::sleep(Duration::from_millis(20)).await,
            () = tokio::time::sleep(super::share::LEASE_FALLBACK) => {}
        }
        while rx.try_recv().is_ok() {}
        super::share::announce_leases(&svc).await;
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

/// Returns when the service is told to stop (SIGTERM: systemd at logout or `systemctl stop`;
/// SIGHUP; SIGINT), once the changes in flight have been abandoned and rolled back (their calls
/// answer `Interrupted`), at most 30 s later: a half-made bridge must not stay behind.
async fn terminated(svc: Arc<Service>) -> Result<(), ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut hup, mut int) =
        (signal(SignalKind::terminate())?, signal(SignalKind::hangup())?, signal(SignalKind::interrupt())?);
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        _ = hup.recv() => info!("SIGHUP: stopping"),
        _ = int.recv() => info!("SIGINT: stopping"),
    }
    svc.stop.send_replace(true);
    let end = Instant::now() + Duration::from_secs(30);
    while svc.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    end_open_transaction(&svc).await;
    Ok(())
}

/// The session ends (systemd stops the service at logout): the user's open transaction, begun
/// here or with the CLI, is rolled back now. Its journal lives in `$XDG_RUNTIME_DIR`, which
/// logind deletes once the user's last session is over: nobody could roll it back later.
async fn end_open_transaction(svc: &Arc<Service>) {
    let Ok(ctx) = svc.contexts() else { return };
    match ctx.user.open_transaction() {
        // In the scope it was begun in (a user's `--system begin` is system-wide).
        Ok(Some(j)) => match ctx
            .pick(if j.scope == crate::nm::Scope::System { super::flags::SYSTEM } else { 0 })
            .rollback(None)
            .await
        {
            Ok(()) => info!("the session ended with a transaction open: rolled back"),
            Err(e) => warn!("the session ended with a transaction open; rolling it back failed: {e}"),
        },
        Ok(None) => {}
        Err(e) => warn!("the journal could not be read at the session's end: {e}"),
    }
}

/// Returns once no client has been connected, no call in flight and no transaction open for
/// `delay`.
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
        // An open transaction keeps the service: it rolls it back when the session ends.
        let open = svc.transaction_label() != "none";
        if calls == 0 && clients.is_empty() && quiet >= delay && !open {
            info!("idle for {quiet:?}: exiting");
            return;
        }
    }
}
