//! The leases of VMs on a shared bridge: NetworkManager's dnsmasq lease file
//! (`/var/lib/NetworkManager/dnsmasq-BRIDGE.leases`, readable by root only on a stock host)
//! joined with the kernel's neighbour table, the one source a user may read. What a VM manager
//! shows as "your VM is at …".
//!
//! dnsmasq writes one lease per line: `EXPIRY MAC IP HOSTNAME CLIENT-ID` (expiry in seconds since
//! the epoch, 0 for an infinite lease; `*` for an unknown host name or client id; IPv6 leases
//! after a `duid` line, which nmiface does not report).

use super::neigh::{Neighbour, AF_BRIDGE, AF_INET};
use serde::Serialize;
use std::collections::BTreeSet;

/// Where a lease was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseSource {
    /// NetworkManager's dnsmasq lease file (root may read it): host name and expiry known.
    LeaseFile,
    /// The kernel's neighbour table on the bridge: the VM has the address, nothing more known.
    Neighbour,
}

/// One DHCP lease (or a VM's address as the kernel's neighbour table knows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The client's MAC, lower case.
    pub mac: String,
    /// The address leased.
    pub ip: String,
    /// The host name the client sent (empty: none or unknown), with control characters,
    /// backslashes and anything not printable ASCII escaped ([`escape_host`]).
    pub hostname: String,
    /// When it expires, seconds since the epoch (0: never; none: unknown, seen as a neighbour).
    pub expiry: Option<i64>,
    /// Where it was seen.
    pub source: LeaseSource,
}

/// `host` as bytes safe to print on a terminal and in JSON: printable ASCII stays, a backslash
/// becomes `\\`, every other byte (control characters, escape sequences, non-ASCII) `\xNN`.
/// A DHCP client chooses its host name: it must not be able to drive the reader's terminal.
pub fn escape_host(host: &[u8]) -> String {
    let mut out = String::with_capacity(host.len());
    for &b in host {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The IPv4 leases in a dnsmasq lease file's bytes, line by line: a line that is not a lease
/// (or whose expiry, MAC or address is not one) is skipped, and a host name that is not UTF-8
/// is escaped, so one bad byte never hides the other leases (the file is dnsmasq's, but a
/// reader must not trust its shape).
pub fn parse_leases(bytes: &[u8]) -> Vec<Lease> {
    let mut out = Vec::new();
    for line in bytes.split(|b| *b == b'\n') {
        let f: Vec<&[u8]> = line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).collect();
        if f.first() == Some(&&b"duid"[..]) {
            break;
        }
        let [expiry, mac, ip, host, ..] = f[..] else { continue };
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
        let (Some(expiry), Some(mac), Some(ip)) = (text(expiry), text(mac), text(ip)) else { continue };
        let (Ok(expiry), Ok(ip)) = (expiry.parse::<i64>(), ip.parse::<std::net::Ipv4Addr>()) else { continue };
        if crate::model::Mac::parse(&mac).is_err() {
            continue;
        }
        let hostname = if host == b"*" { String::new() } else { escape_host(host) };
        out.push(Lease {
            mac: mac.to_lowercase(),
            ip: ip.to_string(),
            hostname,
            expiry: Some(expiry),
            source: LeaseSource::LeaseFile,
        });
    }
    out
}

/// The lease file NetworkManager's dnsmasq keeps for `bridge`.
pub fn lease_file(bridge: &str) -> String {
    format!("/var/lib/NetworkManager/dnsmasq-{bridge}.leases")
}

/// Whose VMs a caller sees on a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whose {
    /// Everything on the bridge (root, system-wide scope).
    Everything,
    /// What sits behind these bridge ports (ifindexes: the caller's taps) in the bridge's FDB.
    BehindPorts(Vec<i32>),
}

/// The leases a caller sees on bridge `bridge` (its ifindex): the lease file's (`file`, when it
/// could be read) first, then the neighbours on the bridge that are not in it (same MAC and
/// address), each kept only if `whose` allows its MAC (`fdb`: the bridge's forwarding database).
/// An FDB entry ages out after the bridge's ageing time (300 s by default) without traffic
/// from the VM: a silent VM is then not a user's until it speaks again.
pub fn visible(
    file: Option<&[Lease]>,
    neighbours: &[Neighbour],
    fdb: &[Neighbour],
    bridge: i32,
    whose: &Whose,
) -> Vec<Lease> {
    let allowed: Option<BTreeSet<&str>> = match whose {
        Whose::Everything => None,
        Whose::BehindPorts(ports) => Some(
            fdb.iter()
                .filter(|f| f.family == AF_BRIDGE && !f.deleted && ports.contains(&f.ifindex))
                .filter(|f| f.master.is_none_or(|m| m == bridge))
                .filter_map(|f| f.mac.as_deref())
                .collect(),
        ),
    };
    let mine = |mac: &str| allowed.as_ref().is_none_or(|a| a.contains(mac));
    let mut out: Vec<Lease> = file.unwrap_or_default().iter().filter(|l| mine(&l.mac)).cloned().collect();
    for n in neighbours.iter().filter(|n| n.family == AF_INET && n.ifindex == bridge && n.usable()) {
        let (Some(ip), Some(mac)) = (n.ip, n.mac.as_deref()) else { continue };
        let ip = ip.to_string();
        if mine(mac) && !out.iter().any(|l| l.mac == mac && l.ip == ip) {
            out.push(Lease {
                mac: mac.to_string(),
                ip,
                hostname: String::new(),
                expiry: None,
                source: LeaseSource::Neighbour,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn dnsmasq_lines() {
        let text = "1764480000 52:54:00:12:34:56 10.42.9.23 guest 01:52:54:00:12:34:56\n\
                    0 52:54:00:AB:CD:EF 10.42.9.24 * *\n\
                    garbage\n\
                    1 zz:54:00:12:34:56 10.42.9.25 x *\n\
                    duid 00:01:00:01\n\
                    1764480000 1234 fd00::2 host *\n";
        let l = parse_leases(text.as_bytes());
        assert_eq!(l.len(), 2);
        assert_eq!(
            l[0],
            Lease {
                mac: "52:54:00:12:34:56".into(),
                ip: "10.42.9.23".into(),
                hostname: "guest".into(),
                expiry: Some(1764480000),
                source: LeaseSource::LeaseFile,
            }
        );
        assert_eq!((l[1].mac.as_str(), l[1].hostname.as_str(), l[1].expiry), ("52:54:00:ab:cd:ef", "", Some(0)));
    }

    #[test]
    fn one_bad_byte_hides_nothing_else() {
        let mut bytes = b"1 52:54:00:00:00:01 10.42.0.2 caf\xe9 *\n".to_vec();
        bytes.extend_from_slice(b"1 52:54:00:00:00:02 10.42.0.\xff *\n");
        bytes.extend_from_slice(b"1 52:54:00:00:00:03 10.42.0.4 ok *\n");
        let l = parse_leases(&bytes);
        let got: Vec<(&str, &str)> = l.iter().map(|l| (l.ip.as_str(), l.hostname.as_str())).collect();
        assert_eq!(got, [("10.42.0.2", "caf\\xe9"), ("10.42.0.4", "ok")]);
    }

    #[test]
    fn host_names_cannot_drive_a_terminal() {
        assert_eq!(escape_host(b"vm-1.local"), "vm-1.local");
        assert_eq!(escape_host(b"\x1b]0;pwned\x07x"), "\\x1b]0;pwned\\x07x");
        assert_eq!(escape_host(b"a\\b\tc\x7f"), "a\\\\b\\x09c\\x7f");
        assert_eq!(escape_host("é".as_bytes()), "\\xc3\\xa9");
    }

    fn neigh(family: u8, ifindex: i32, ip: Option<[u8; 4]>, mac: &str, master: Option<i32>) -> Neighbour {
        Neighbour {
            family,
            ifindex,
            state: 0x02,
            ip: ip.map(Ipv4Addr::from),
            mac: Some(mac.into()),
            master,
            deleted: false,
        }
    }

    #[test]
    fn a_users_leases_are_those_behind_their_taps() {
        let (br, tap_a, tap_b) = (7, 20, 21);
        let (a, b) = ("52:54:00:00:00:0a", "52:54:00:00:00:0b");
        let file = parse_leases(format!("9 {a} 10.42.0.10 vm-a *\n9 {b} 10.42.0.11 vm-b *\n").as_bytes());
        let neighbours = [
            neigh(AF_INET, br, Some([10, 42, 0, 10]), a, None),
            neigh(AF_INET, br, Some([10, 42, 0, 12]), a, None),
            neigh(AF_INET, br, Some([10, 42, 0, 11]), b, None),
            neigh(AF_INET, 3, Some([192, 168, 1, 1]), "52:54:00:00:00:99", None),
        ];
        let fdb = [neigh(AF_BRIDGE, tap_a, None, a, Some(br)), neigh(AF_BRIDGE, tap_b, None, b, Some(br))];
        let ips = |l: Vec<Lease>| l.into_iter().map(|l| (l.ip, l.source)).collect::<Vec<_>>();
        use LeaseSource::*;
        // A user, file readable: its lease from the file, a second address from the neighbours.
        let mine = visible(Some(&file), &neighbours, &fdb, br, &Whose::BehindPorts(vec![tap_a]));
        assert_eq!(ips(mine), [("10.42.0.10".into(), LeaseFile), ("10.42.0.12".into(), Neighbour)]);
        // A user on a stock host (no file): the neighbours behind its tap only.
        let mine = visible(None, &neighbours, &fdb, br, &Whose::BehindPorts(vec![tap_a]));
        assert_eq!(ips(mine), [("10.42.0.10".into(), Neighbour), ("10.42.0.12".into(), Neighbour)]);
        // Root: everything on the bridge, nothing of another interface, no duplicates.
        let all = visible(Some(&file), &neighbours, &fdb, br, &Whose::Everything);
        assert_eq!(
            ips(all),
            [("10.42.0.10".into(), LeaseFile), ("10.42.0.11".into(), LeaseFile), ("10.42.0.12".into(), Neighbour)]
        );
        // No taps: nothing.
        assert!(visible(Some(&file), &neighbours, &fdb, br, &Whose::BehindPorts(vec![])).is_empty());
    }
}
