//! NetworkManager's device and activation numbers as named enums (`nm-dbus-interface.h`), so
//! no code outside the D-Bus layer compares raw numbers.

/// NMDeviceState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum DeviceState {
    /// 0, or a number this table does not know.
    #[default]
    Unknown,
    /// 10
    Unmanaged,
    /// 20: no carrier, or otherwise not ready.
    Unavailable,
    /// 30
    Disconnected,
    /// 40
    Prepare,
    /// 50
    Config,
    /// 60
    NeedAuth,
    /// 70
    IpConfig,
    /// 80
    IpCheck,
    /// 90
    Secondaries,
    /// 100
    Activated,
    /// 110
    Deactivating,
    /// 120
    Failed,
}

impl DeviceState {
    const TABLE: [(u32, DeviceState, &'static str); 13] = [
        (0, DeviceState::Unknown, "unknown"),
        (10, DeviceState::Unmanaged, "unmanaged"),
        (20, DeviceState::Unavailable, "unavailable"),
        (30, DeviceState::Disconnected, "disconnected"),
        (40, DeviceState::Prepare, "prepare"),
        (50, DeviceState::Config, "config"),
        (60, DeviceState::NeedAuth, "need-auth"),
        (70, DeviceState::IpConfig, "ip-config"),
        (80, DeviceState::IpCheck, "ip-check"),
        (90, DeviceState::Secondaries, "secondaries"),
        (100, DeviceState::Activated, "activated"),
        (110, DeviceState::Deactivating, "deactivating"),
        (120, DeviceState::Failed, "failed"),
    ];

    /// The state NetworkManager reports as this number.
    pub fn from_code(code: u32) -> Self {
        Self::TABLE.iter().find(|(c, _, _)| *c == code).map_or(DeviceState::Unknown, |(_, s, _)| *s)
    }

    /// NetworkManager's name for it, for messages.
    pub fn as_str(self) -> &'static str {
        Self::TABLE.iter().find(|(_, s, _)| *s == self).map_or("unknown", |(_, _, n)| n)
    }
}

/// NMDeviceType, for the types nmiface tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DeviceType {
    /// 1
    Ethernet,
    /// 2: an 802.11 station; it cannot be a bridge port.
    Wifi,
    /// 10
    Bond,
    /// 11
    Vlan,
    /// 13
    Bridge,
    /// 16
    Tun,
    /// 20
    Veth,
    /// Any other number.
    #[default]
    Other,
}

impl DeviceType {
    /// The type NetworkManager reports as this number.
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => DeviceType::Ethernet,
            2 => DeviceType::Wifi,
            10 => DeviceType::Bond,
            11 => DeviceType::Vlan,
            13 => DeviceType::Bridge,
            16 => DeviceType::Tun,
            20 => DeviceType::Veth,
            _ => DeviceType::Other,
        }
    }
}

/// NMActiveConnectionState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActiveState {
    /// 0, or a number this table does not know.
    #[default]
    Unknown,
    /// 1
    Activating,
    /// 2
    Activated,
    /// 3
    Deactivating,
    /// 4
    Deactivated,
}

impl ActiveState {
    /// The state NetworkManager reports as this number.
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => ActiveState::Activating,
            2 => ActiveState::Activated,
            3 => ActiveState::Deactivating,
            4 => ActiveState::Deactivated,
            _ => ActiveState::Unknown,
        }
    }
}

/// `vlan.flags` bits (NMVlanFlags).
pub mod vlan_flag {
    /// The kernel's REORDER_HDR.
    pub const REORDER_HEADERS: u32 = 0x1;
    /// GARP VLAN Registration Protocol.
    pub const GVRP: u32 = 0x2;
    /// The VLAN's state does not follow its parent's.
    pub const LOOSE_BINDING: u32 = 0x4;
    /// Multiple VLAN Registration Protocol (NM 1.2).
    pub const MVRP: u32 = 0x8;
    /// Every bit NetworkManager knows.
    pub const ALL: u32 = REORDER_HEADERS | GVRP | LOOSE_BINDING | MVRP;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for (code, state, name) in DeviceState::TABLE {
            assert_eq!(DeviceState::from_code(code), state);
            assert_eq!(state.as_str(), name);
        }
        assert_eq!(DeviceState::from_code(7), DeviceState::Unknown);
        assert_eq!(DeviceType::from_code(2), DeviceType::Wifi);
        assert_eq!(ActiveState::from_code(4), ActiveState::Deactivated);
    }
}
