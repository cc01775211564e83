//! NetworkManager's reason numbers in words (`nm-dbus-interface.h`), for messages. The states
//! themselves are typed in [`super::device`].

/// NMDeviceStateReason.
pub fn device_reason(reason: u32) -> &'static str {
    match reason {
        0 => "no reason given",
        1 => "unknown error",
        2 => "device is now managed",
        3 => "device is now unmanaged",
        4 => "the device could not be readied for configuration",
        5 => "IP configuration could not be reserved (no available address, timeout, etc.)",
        6 => "the IP configuration is no longer valid",
        7 => "secrets were required, but not provided",
        15 => "the DHCP client failed to start",
        16 => "DHCP client error",
        17 => "the DHCP client failed",
        18 => "the shared connection service failed to start",
        19 => "the shared connection service failed",
        36 => "the device was removed",
        38 => "the connection was removed",
        39 => "a user or client requested the disconnection",
        40 => "the device's carrier/link changed",
        41 => "the device's existing connection was assumed",
        50 => "a dependency of the connection failed",
        54 => "a secondary connection of the base connection failed",
        60 => "a new connection activation was enqueued",
        61 => "the device's parent changed",
        62 => "the device parent's management changed",
        64 => "the IP address is already in use",
        65 => "the IP method is not supported",
        68 => "the device handler failed",
        _ => "see NetworkManager's log",
    }
}

/// NMActiveConnectionStateReason.
pub fn active_reason(reason: u32) -> &'static str {
    match reason {
        0 => "unknown reason",
        1 => "no reason given",
        2 => "disconnected by user",
        3 => "the base network connection was interrupted",
        4 => "the VPN service stopped unexpectedly",
        5 => "the service provided an invalid configuration",
        6 => "the connection attempt timed out",
        8 => "the service failed to start",
        9 => "necessary secrets were not provided",
        11 => "the connection profile was removed",
        12 => "a dependency of the connection failed",
        13 => "the device could not be created (realized)",
        14 => "the device was removed",
        _ => "see NetworkManager's log",
    }
}

/// NMActiveConnectionStateReason 13: the device could not be created (realized).
pub const ACTIVE_REASON_DEVICE_REALIZE_FAILED: u32 = 13;
