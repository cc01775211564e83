//! What `dumpxml` without `--inactive` adds to a definition: the state of the devices now,
//! gathered by the agent and written by [`super::writer`].

/// What a device is doing now, for `dumpxml` without `--inactive`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveLink {
    /// RFC 2863 operstate as libvirt spells it (`up`, `down`, …).
    pub state: String,
    /// Link speed in Mb/s, when known.
    pub speed: Option<u32>,
    /// Current MAC.
    pub mac: Option<crate::model::Mac>,
}

/// Live state of an interface and its ports: like libvirt's live XML, protocols then report the
/// addresses the device has (beside how the definition gets them: `<dhcp/>`, `<autoconf/>`),
/// and devices report `<link>` and MAC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveState {
    /// Per interface name.
    pub links: std::collections::BTreeMap<String, LiveLink>,
    /// Addresses of the top-level interface, as (address, prefix).
    pub ipv4: Vec<(std::net::Ipv4Addr, u8)>,
    /// IPv6 addresses, link-local included (as netcf reported them).
    pub ipv6: Vec<(std::net::Ipv6Addr, u8)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 24, item 10. A DHCP bridge's live XML says DHCP beside its lease, and a bridge
    // with STP off and no delay is 0 s (libvirt's default), not the kernel's 15.
    #[test]
    fn live_xml_keeps_dhcp_and_stp_off_means_no_delay() {
        let d = crate::xml::parse_document(
            "t",
            "<interface type='bridge' name='br0'><protocol family='ipv4'><dhcp/></protocol><bridge stp='off'><interface type='ethernet' name='eth1'/></bridge></interface>",
        )
        .unwrap();
        let iface = &d.host.interfaces[0];
        let live = LiveState { ipv4: vec![("192.0.2.7".parse().unwrap(), 24)], ..Default::default() };
        let (xml, _) = crate::xml::write_interface_live(iface, &live);
        assert!(
            xml.contains("<protocol family='ipv4'>\n    <dhcp/>\n    <ip address='192.0.2.7' prefix='24'/>"),
            "{xml}"
        );
        assert!(xml.contains("<bridge stp='off' delay='0'>"), "{xml}");
    }
}
