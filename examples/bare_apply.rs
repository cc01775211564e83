//! The floor for `nmiface apply` in benches/nm.sh: one bare D-Bus client doing the minimum to
//! reach the same end state (bridge br0 with 192.0.2.10/24, port eth0, both ACTIVATED):
//! two AddConnection2 calls, one ActivateConnection, and waiting on signals. No XML, no
//! checks, no ownership, no lookups. Uses zbus directly, not nmiface's client.

use futures_util::StreamExt;
use std::collections::HashMap;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};

#[tokio::main(flavor = "current_thread")]
async fn main() -> zbus::Result<()> {
    let conn = zbus::Connection::system().await?;
    let dest = "org.freedesktop.NetworkManager";
    let settings = zbus::Proxy::new(
        &conn,
        dest,
        "/org/freedesktop/NetworkManager/Settings",
        "org.freedesktop.NetworkManager.Settings",
    )
    .await?;
    let nm = zbus::Proxy::new(&conn, dest, "/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager").await?;
    let br_uuid = "5f6b0b64-0000-4000-8000-00000000b0b0";
    let addr = HashMap::from([("address", Value::from("192.0.2.10")), ("prefix", Value::from(24u32))]);
    let bridge: HashMap<&str, HashMap<&str, Value>> = HashMap::from([
        (
            "connection",
            HashMap::from([
                ("id", Value::from("br0")),
                ("uuid", Value::from(br_uuid)),
                ("type", Value::from("bridge")),
                ("interface-name", Value::from("br0")),
                ("autoconnect-slaves", Value::from(1i32)),
            ]),
        ),
        ("bridge", HashMap::from([("stp", Value::from(false))])),
        ("ipv4", HashMap::from([("method", Value::from("manual")), ("address-data", Value::from(vec![addr]))])),
        ("ipv6", HashMap::from([("method", Value::from("disabled"))])),
    ]);
    let port: HashMap<&str, HashMap<&str, Value>> = HashMap::from([(
        "connection",
        HashMap::from([
            ("id", Value::from("br0-port-eth0")),
            ("type", Value::from("802-3-ethernet")),
            ("interface-name", Value::from("eth0")),
            ("master", Value::from(br_uuid)),
            ("slave-type", Value::from("bridge")),
        ]),
    )]);
    let rule = |iface: &'static str| {
        zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(dest)
            .unwrap()
            .interface(iface)
            .unwrap()
            .member("StateChanged")
            .unwrap()
            .build()
    };
    let mut acs =
        zbus::MessageStream::for_match_rule(rule("org.freedesktop.NetworkManager.Connection.Active"), &conn, Some(64))
            .await?;
    let mut devs =
        zbus::MessageStream::for_match_rule(rule("org.freedesktop.NetworkManager.Device"), &conn, Some(256)).await?;
    let eth0: OwnedObjectPath = nm.call("GetDeviceByIpIface", &("eth0",)).await?;
    let none: HashMap<&str, Value> = HashMap::new();
    let (br_args, port_args) = ((bridge, 0x1u32 | 0x20, none.clone()), (port, 0x1u32 | 0x20, none));
    type Reply = (OwnedObjectPath, HashMap<String, zbus::zvariant::OwnedValue>);
    let (add_br, add_port) = tokio::join!(
        settings.call::<_, _, Reply>("AddConnection2", &br_args),
        settings.call::<_, _, Reply>("AddConnection2", &port_args),
    );
    let (br_path, _) = add_br?;
    add_port?;
    let root = ObjectPath::from_static_str_unchecked("/");
    let ac: OwnedObjectPath = nm.call("ActivateConnection", &(&br_path, &root, &root)).await?;
    let (mut br_up, mut port_up) = (false, false);
    while !(br_up && port_up) {
        tokio::select! {
            Some(Ok(m)) = acs.next() => {
                if m.header().path().map(|p| p.as_str()) == Some(ac.as_str()) {
                    if let Ok((2u32, _)) = m.body().deserialize::<(u32, u32)>() { br_up = true; }
                }
            }
            Some(Ok(m)) = devs.next() => {
                if m.header().path().map(|p| p.as_str()) == Some(eth0.as_str()) {
                    if let Ok((100u32, _, _)) = m.body().deserialize::<(u32, u32, u32)>() { port_up = true; }
                }
            }
        }
    }
    Ok(())
}
