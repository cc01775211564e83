//! The floor for `nmiface apply` of N port-less bridges in benches/thousand.sh: one bare D-Bus
//! client doing the minimum to reach the same end state (bridges pb0..pbN-1 with 10.x.y.1/24,
//! STP off, ACTIVATED): AddConnection2 and ActivateConnection for each, as many in flight as the
//! bus lets one connection have, and waiting on signals. No XML, no checks, no ownership, no
//! lookups. Uses zbus directly, not nmiface's client.
//!
//! `bare_bridges N` (default 1000). Exits once all N are ACTIVATED (at most 300 s).

use futures_util::{stream, StreamExt};
use std::collections::{HashMap, HashSet};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

/// dbus-daemon refuses more than 128 pending replies per connection (LimitsExceeded).
const IN_FLIGHT: usize = 120;
const ACTIVATED: u32 = 2;

fn bridge(run: &str, i: usize) -> HashMap<&'static str, HashMap<&'static str, Value<'static>>> {
    let (name, address) = (format!("pb{i}"), format!("10.{}.{}.1", 78 + i / 250, i % 250));
    let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{run} {i}").as_bytes());
    let addr = HashMap::from([("address", Value::from(address)), ("prefix", Value::from(24u32))]);
    HashMap::from([
        (
            "connection",
            HashMap::from([
                ("id", Value::from(name.clone())),
                ("uuid", Value::from(uuid.to_string())),
                ("type", Value::from("bridge")),
                ("interface-name", Value::from(name)),
            ]),
        ),
        ("bridge", HashMap::from([("stp", Value::from(false)), ("forward-delay", Value::from(0u32))])),
        ("ipv4", HashMap::from([("method", Value::from("manual")), ("address-data", Value::from(vec![addr]))])),
        ("ipv6", HashMap::from([("method", Value::from("disabled"))])),
    ])
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> zbus::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let conn = zbus::Connection::system().await?;
    let dest = "org.freedesktop.NetworkManager";
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(dest)?
        .interface("org.freedesktop.NetworkManager.Connection.Active")?
        .member("StateChanged")?
        .build();
    // Subscribed before the first call: no state change is missed.
    let mut signals = zbus::MessageStream::for_match_rule(rule, &conn, Some(4 * n)).await?;
    let settings = zbus::Proxy::new(
        &conn,
        dest,
        "/org/freedesktop/NetworkManager/Settings",
        "org.freedesktop.NetworkManager.Settings",
    )
    .await?;
    let nm = zbus::Proxy::new(&conn, dest, "/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager").await?;
    let (settings, nm) = (&settings, &nm);
    let root = ObjectPath::try_from("/")?;
    let root = &root;
    let mut activated: HashSet<String> = HashSet::new();
    // New UUIDs each run (the crate is built without random UUIDs).
    let run = format!("bare_bridges {} {:?}", std::process::id(), std::time::SystemTime::now());
    let run = &run;
    let started = stream::iter(0..n)
        .map(|i| async move {
            // TO_DISK | BLOCK_AUTOCONNECT, as nmiface adds them.
            let no_args: HashMap<&str, Value> = HashMap::new();
            let (path, _): (OwnedObjectPath, HashMap<String, OwnedValue>) =
                settings.call("AddConnection2", &(bridge(run, i), 0x21u32, no_args)).await?;
            let active: OwnedObjectPath = nm.call("ActivateConnection", &(&path, root, root)).await?;
            zbus::Result::Ok(active)
        })
        .buffer_unordered(IN_FLIGHT);
    let mut started = std::pin::pin!(started);
    let mut all_started = false;
    let wait = async {
        loop {
            tokio::select! {
                s = started.next(), if !all_started => match s {
                    Some(r) => { r?; }
                    None => all_started = true,
                },
                m = signals.next() => {
                    let Some(m) = m else { break };
                    let m = m?;
                    let (state, _reason): (u32, u32) = m.body().deserialize()?;
                    if state == ACTIVATED {
                        if let Some(p) = m.header().path() {
                            activated.insert(p.to_string());
                        }
                    }
                }
            }
            if all_started && activated.len() >= n {
                break;
            }
        }
        zbus::Result::Ok(())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(300), wait).await {
        Ok(r) => r,
        Err(_) => Err(zbus::Error::Failure(format!("{} of {n} ACTIVATED after 300 s", activated.len()))),
    }
}
