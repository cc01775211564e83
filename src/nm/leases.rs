//! The leases NetworkManager's dnsmasq gave out on a shared bridge, read from its lease file
//! (`/var/lib/NetworkManager/dnsmasq-BRIDGE.leases`): what a VM manager shows as "your VM is at …".
//!
//! dnsmasq writes one lease per line: `EXPIRY MAC IP HOSTNAME CLIENT-ID` (expiry in seconds since
//! the epoch, 0 for an infinite lease; `*` for an unknown host name or client id; IPv6 leases
//! after a `duid` line, which nmiface does not report).

use serde::Serialize;

/// One DHCP lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The client's MAC, lower case.
    pub mac: String,
    /// The address leased.
    pub ip: String,
    /// The host name the client sent (empty: none).
    pub hostname: String,
    /// When it expires, seconds since the epoch (0: never).
    pub expiry: i64,
}

/// The IPv4 leases in a dnsmasq lease file's text; lines that are not leases are skipped (the
/// file is dnsmasq's, but a reader must not trust its shape).
pub fn parse_leases(text: &str) -> Vec<Lease> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"duid") {
            break;
        }
        let [expiry, mac, ip, host, ..] = f[..] else { continue };
        let (Ok(expiry), Ok(ip)) = (expiry.parse::<i64>(), ip.parse::<std::net::Ipv4Addr>()) else { continue };
        if crate::model::Mac::parse(mac).is_err() {
            continue;
        }
        let hostname = if host == "*" { String::new() } else { host.to_string() };
        out.push(Lease { mac: mac.to_lowercase(), ip: ip.to_string(), hostname, expiry });
    }
    out
}

/// The lease file NetworkManager's dnsmasq keeps for `bridge`.
pub fn lease_file(bridge: &str) -> String {
    format!("/var/lib/NetworkManager/dnsmasq-{bridge}.leases")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsmasq_lines() {
        let text = "1764480000 52:54:00:12:34:56 10.42.9.23 guest 01:52:54:00:12:34:56\n\
                    0 52:54:00:AB:CD:EF 10.42.9.24 * *\n\
                    garbage\n\
                    1 zz:54:00:12:34:56 10.42.9.25 x *\n\
                    duid 00:01:00:01\n\
                    1764480000 1234 fd00::2 host *\n";
        let l = parse_leases(text);
        assert_eq!(l.len(), 2);
        assert_eq!(
            l[0],
            Lease {
                mac: "52:54:00:12:34:56".into(),
                ip: "10.42.9.23".into(),
                hostname: "guest".into(),
                expiry: 1764480000
            }
        );
        assert_eq!((l[1].mac.as_str(), l[1].hostname.as_str(), l[1].expiry), ("52:54:00:ab:cd:ef", "", 0));
    }
}
