//! The kernel's neighbour table and a bridge's forwarding database as rtnetlink messages:
//! the dump request nmiface sends and the parse of what comes back (bytes in, entries out; the
//! socket is [`crate::host_neigh`]'s). Where a VM is, for a user who cannot read
//! NetworkManager's lease files: the IPv4 neighbours on the bridge (IP → MAC) and the bridge's
//! FDB (MAC → the port it sits behind), both readable without privileges.
//!
//! Layouts (`linux/netlink.h`, `linux/neighbour.h`, `linux/rtnetlink.h`), host byte order:
//! `nlmsghdr` {len u32, type u16, flags u16, seq u32, pid u32}, then `ndmsg` {family u8, 3 pad
//! bytes, ifindex i32, state u16, flags u8, type u8}, then `rtattr`s {len u16, type u16, data}
//! each padded to 4 bytes. Nothing here trusts a length: a short or lying message ends the
//! parse of its buffer, never panics.

use std::net::Ipv4Addr;

/// `RTM_NEWNEIGH`: a neighbour (or FDB entry), in a dump or an event.
pub const RTM_NEWNEIGH: u16 = 28;
/// `RTM_DELNEIGH`: a neighbour (or FDB entry) went away (events only).
pub const RTM_DELNEIGH: u16 = 29;
/// `RTM_GETNEIGH`: the dump request.
pub const RTM_GETNEIGH: u16 = 30;
/// `AF_INET`: the IPv4 neighbour table.
pub const AF_INET: u8 = 2;
/// `AF_BRIDGE`: a bridge's forwarding database.
pub const AF_BRIDGE: u8 = 7;
/// `RTMGRP_NEIGH`: the multicast group of neighbour and FDB events (`1 << (RTNLGRP_NEIGH - 1)`);
/// anyone may join it.
pub const RTMGRP_NEIGH: u32 = 1 << 2;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NDA_MASTER: u16 = 9;
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_FAILED: u16 = 0x20;
const NUD_NOARP: u16 = 0x40;
const HDR: usize = 16;
const NDMSG: usize = 12;

/// One neighbour or FDB entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// [`AF_INET`] (a neighbour) or [`AF_BRIDGE`] (an FDB entry).
    pub family: u8,
    /// The interface: the bridge for a neighbour, the bridge port for an FDB entry.
    pub ifindex: i32,
    /// `NUD_*` state bits.
    pub state: u16,
    /// The IPv4 address (neighbours; `NDA_DST`).
    pub ip: Option<Ipv4Addr>,
    /// The MAC, lower case (`NDA_LLADDR`).
    pub mac: Option<String>,
    /// The bridge of an FDB entry's port (`NDA_MASTER`).
    pub master: Option<i32>,
    /// Sent as `RTM_DELNEIGH`: it went away.
    pub deleted: bool,
}

impl Neighbour {
    /// Whether the entry names a station that answered (or was told of) its address: not one
    /// being resolved (`INCOMPLETE`), one that did not answer (`FAILED`) or a link without
    /// addresses (`NOARP`), and with a MAC that is not all zeros.
    pub fn usable(&self) -> bool {
        let bad = NUD_INCOMPLETE | NUD_FAILED | NUD_NOARP;
        !self.deleted && self.state & bad == 0 && self.mac.as_deref().is_some_and(|m| m.split(':').any(|b| b != "00"))
    }
}

/// What one buffer of an rtnetlink reply held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The entries, in order.
    pub entries: Vec<Neighbour>,
    /// The dump ended (`NLMSG_DONE`).
    pub done: bool,
    /// The kernel refused the request: its errno (positive).
    pub error: Option<i32>,
}

/// An `RTM_GETNEIGH` dump request of `family` ([`AF_INET`] or [`AF_BRIDGE`]), sequence `seq`.
pub fn dump_request(family: u8, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(HDR + NDMSG);
    b.extend_from_slice(&((HDR + NDMSG) as u32).to_ne_bytes());
    b.extend_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.push(family);
    b.extend_from_slice(&[0; NDMSG - 1]);
    b
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The messages in one buffer read from a netlink socket: neighbour entries of both families
/// (others skipped), the end of a dump, or the kernel's error.
pub fn parse(buf: &[u8]) -> Batch {
    let mut out = Batch::default();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u32_at(buf, at), u16_at(buf, at + 4)) {
        let len = len as usize;
        let Some(msg) = buf.get(at..at.saturating_add(len)).filter(|_| len >= HDR) else { break };
        let body = &msg[HDR..];
        match kind {
            NLMSG_DONE => out.done = true,
            NLMSG_ERROR => {
                // An ack (0) ends nothing here; a negative errno is the refusal.
                if let Some(e) = u32_at(body, 0).map(|e| e as i32).filter(|e| *e < 0) {
                    out.error = Some(-e);
                }
            }
            RTM_NEWNEIGH | RTM_DELNEIGH => {
                if let Some(n) = parse_ndmsg(body, kind == RTM_DELNEIGH) {
                    out.entries.push(n);
                }
            }
            _ => {}
        }
        at += align4(len);
    }
    out
}

fn parse_ndmsg(body: &[u8], deleted: bool) -> Option<Neighbour> {
    let family = *body.first()?;
    let ifindex = u32_at(body, 4)? as i32;
    let state = u16_at(body, 8)?;
    let mut n = Neighbour { family, ifindex, state, ip: None, mac: None, master: None, deleted };
    let mut at = NDMSG;
    while let (Some(len), Some(kind)) = (u16_at(body, at), u16_at(body, at + 2)) {
        let len = usize::from(len);
        let Some(data) = body.get(at + 4..at.saturating_add(len)).filter(|_| len >= 4) else { break };
        // The top two bits are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER), not the type.
        match kind & 0x3fff {
            NDA_DST if data.len() == 4 => n.ip = Some(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
            NDA_LLADDR if data.len() == 6 => {
                n.mac = Some(data.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"));
            }
            NDA_MASTER if data.len() == 4 => n.master = u32_at(data, 0).map(|m| m as i32),
            _ => {}
        }
        at += align4(len);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(align4(a.len()), 0);
        a
    }

    fn msg(kind: u16, family: u8, ifindex: i32, state: u16, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![family, 0, 0, 0];
        body.extend_from_slice(&ifindex.to_ne_bytes());
        body.extend_from_slice(&state.to_ne_bytes());
        body.extend_from_slice(&[0, 1]);
        for a in attrs {
            body.extend_from_slice(a);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((HDR + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&body);
        m
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0xab, 0xcd, 0xef];

    #[test]
    fn a_dump_of_neighbours_and_fdb_entries() {
        let mut buf = msg(RTM_NEWNEIGH, AF_INET, 7, 0x02, &[attr(NDA_DST, &[10, 42, 0, 23]), attr(NDA_LLADDR, &MAC)]);
        buf.extend(msg(
            RTM_NEWNEIGH,
            AF_BRIDGE,
            9,
            0x02,
            &[attr(NDA_LLADDR, &MAC), attr(NDA_MASTER, &7u32.to_ne_bytes())],
        ));
        // A resolving neighbour, one without a MAC, an unknown attribute, and the end.
        buf.extend(msg(RTM_NEWNEIGH, AF_INET, 7, NUD_INCOMPLETE, &[attr(NDA_DST, &[10, 42, 0, 24])]));
        buf.extend(msg(RTM_DELNEIGH, AF_INET, 7, 0x04, &[attr(99, b"xyz"), attr(NDA_LLADDR, &MAC)]));
        buf.extend(msg(NLMSG_DONE, 0, 0, 0, &[]));
        let b = parse(&buf);
        assert!(b.done && b.error.is_none());
        assert_eq!(b.entries.len(), 4);
        let n = &b.entries[0];
        assert_eq!(
            (n.family, n.ifindex, n.ip, n.mac.as_deref()),
            (AF_INET, 7, Some(Ipv4Addr::new(10, 42, 0, 23)), Some("52:54:00:ab:cd:ef"))
        );
        assert!(n.usable());
        let f = &b.entries[1];
        assert_eq!((f.family, f.ifindex, f.master, f.ip), (AF_BRIDGE, 9, Some(7), None));
        assert!(!b.entries[2].usable(), "INCOMPLETE, no MAC");
        assert!(b.entries[3].deleted && !b.entries[3].usable());
        assert_eq!(b.entries[3].mac.as_deref(), Some("52:54:00:ab:cd:ef"), "unknown attributes are skipped");
    }

    #[test]
    fn failed_noarp_and_zero_macs_are_not_stations() {
        for state in [NUD_FAILED, NUD_NOARP] {
            let b =
                parse(&msg(RTM_NEWNEIGH, AF_INET, 3, state, &[attr(NDA_DST, &[10, 0, 0, 1]), attr(NDA_LLADDR, &MAC)]));
            assert!(!b.entries[0].usable(), "state {state:#x}");
        }
        let b =
            parse(&msg(RTM_NEWNEIGH, AF_INET, 3, 0x08, &[attr(NDA_DST, &[10, 0, 0, 1]), attr(NDA_LLADDR, &[0; 6])]));
        assert!(!b.entries[0].usable());
    }

    #[test]
    fn errors_and_truncated_buffers() {
        let mut err = msg(NLMSG_ERROR, 0, 0, 0, &[]);
        err.truncate(HDR);
        let mut len = (HDR as u32 + 4).to_ne_bytes().to_vec();
        len.extend_from_slice(&err[4..]);
        len.extend_from_slice(&(-13i32).to_ne_bytes());
        assert_eq!(parse(&len).error, Some(13));
        // Lies and truncations end the parse; nothing panics.
        let good = msg(RTM_NEWNEIGH, AF_INET, 7, 0x02, &[attr(NDA_DST, &[10, 42, 0, 23]), attr(NDA_LLADDR, &MAC)]);
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        let mut lying = good.clone();
        lying[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(parse(&lying), Batch::default());
        let mut bad_attr = good.clone();
        bad_attr[HDR + NDMSG..HDR + NDMSG + 2].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(parse(&bad_attr).entries[0].ip, None, "an attribute shorter than its header ends the attributes");
        assert!(parse(&[]).entries.is_empty());
    }

    #[test]
    fn the_dump_request() {
        let r = dump_request(AF_BRIDGE, 5);
        assert_eq!(r.len(), 28);
        assert_eq!(u32_at(&r, 0), Some(28));
        assert_eq!(u16_at(&r, 4), Some(RTM_GETNEIGH));
        assert_eq!(u16_at(&r, 6), Some(0x301));
        assert_eq!(u32_at(&r, 8), Some(5));
        assert_eq!(r[16], AF_BRIDGE);
    }
}
