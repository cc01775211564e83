//! NetworkManager's D-Bus errors, classified once, here, into a typed enum that callers match
//! on. This is the only place that looks at D-Bus error names and message text: NetworkManager
//! signals some conditions only in a message (an unknown property is an `InvalidProperty` whose
//! message says "unknown property"; unknown checkpoint flags are `InvalidArguments` "Invalid
//! flags"), so the text is read here and nowhere else.

/// NetworkManager's D-Bus error name prefix.
const NM: &str = "org.freedesktop.NetworkManager";

/// An error from talking to NetworkManager. (zbus's errors are boxed: they are large, and
/// every result of the client carries this type.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NmError {
    /// Nothing owns `org.freedesktop.NetworkManager` on the bus we are connected to.
    #[error("NetworkManager is not running on this system bus")]
    NotRunning,
    /// The bus itself is unreachable.
    #[error("cannot connect to the system bus: {0}")]
    Bus(#[source] Box<zbus::Error>),
    /// NetworkManager refused for lack of permission (polkit, or `connection.permissions`).
    #[error("NetworkManager denied permission: {message}")]
    PermissionDenied {
        /// NM's message.
        message: String,
    },
    /// The kernel cannot create a link of this kind (no bonding or 802.1q support, …).
    #[error("the kernel cannot create the {kind} device: {message}")]
    CreationFailed {
        /// `bond`, `vlan`, `bridge`, … as far as the message tells.
        kind: String,
        /// NM's message.
        message: String,
    },
    /// A setting or property this NetworkManager does not know at all.
    #[error("NetworkManager does not know {property}")]
    UnknownProperty {
        /// `setting.property`, or just the setting's name.
        property: String,
    },
    /// A profile property NM rejected (a bad value, a missing property).
    #[error("NetworkManager rejected {property}: {message}")]
    InvalidProperty {
        /// `setting.property`.
        property: String,
        /// NM's message without the property prefix.
        message: String,
    },
    /// No profile has the UUID or path asked for.
    #[error("NetworkManager has no such profile")]
    UnknownConnection,
    /// No device has the name asked for.
    #[error("NetworkManager has no device {message}")]
    UnknownDevice {
        /// NM's message.
        message: String,
    },
    /// The object asked about disappeared (a profile deleted, an activation ended).
    #[error("the NetworkManager object is gone")]
    ObjectGone,
    /// Deactivating what is not active.
    #[error("the connection is not active")]
    NotActive,
    /// Checkpoint flags this NetworkManager does not know.
    #[error("NetworkManager does not know these checkpoint flags")]
    InvalidFlags,
    /// A checkpoint that does not exist (rolled back or destroyed already).
    #[error("NetworkManager has no checkpoint {0}")]
    NoSuchCheckpoint(String),
    /// Arguments NetworkManager refused, for a reason its message gives.
    #[error("NetworkManager refused the arguments: {message}")]
    InvalidArguments {
        /// NM's message.
        message: String,
    },
    /// The daemon's `Version` is not a version number.
    #[error("NetworkManager reports version '{0}', which is not a version number")]
    BadVersion(String),
    /// Any other method error, with NM's name and message kept.
    #[error("{message} ({name})")]
    Method {
        /// The D-Bus error name, e.g. `org.freedesktop.NetworkManager.Failed`.
        name: String,
        /// NM's message.
        message: String,
    },
    /// NetworkManager did not answer a call in time (it hangs, or the bus does).
    #[error("NetworkManager did not answer within {} s (is it hung? `systemctl status NetworkManager`)", super::method_timeout().as_secs())]
    Timeout,
    /// A transport or (de)serialisation failure.
    #[error("D-Bus: {0}")]
    Dbus(#[source] Box<zbus::Error>),
}

impl From<zbus::Error> for NmError {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, msg, _) => classify(name.as_str(), msg.unwrap_or_default()),
            zbus::Error::InputOutput(e) if e.kind() == std::io::ErrorKind::TimedOut => NmError::Timeout,
            zbus::Error::FDO(fdo) => match *fdo {
                zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_) => NmError::NotRunning,
                zbus::fdo::Error::UnknownObject(_) | zbus::fdo::Error::UnknownMethod(_) => NmError::ObjectGone,
                zbus::fdo::Error::AccessDenied(message) => NmError::PermissionDenied { message },
                other => NmError::Dbus(Box::new(zbus::Error::FDO(Box::new(other)))),
            },
            other => NmError::Dbus(Box::new(other)),
        }
    }
}

impl From<zbus::fdo::Error> for NmError {
    fn from(e: zbus::fdo::Error) -> Self {
        NmError::from(zbus::Error::FDO(Box::new(e)))
    }
}

impl From<zbus::zvariant::Error> for NmError {
    fn from(e: zbus::zvariant::Error) -> Self {
        NmError::Dbus(Box::new(e.into()))
    }
}

/// Classifies a D-Bus error by its name (and, where NetworkManager says more only in words, its
/// message).
fn classify(name: &str, message: String) -> NmError {
    let nm = name.strip_prefix(NM).unwrap_or("");
    match (name, nm) {
        ("org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner", _) => {
            NmError::NotRunning
        }
        ("org.freedesktop.DBus.Error.UnknownMethod" | "org.freedesktop.DBus.Error.UnknownObject", _) => {
            // NetworkManager removed the object between our lookup and this call.
            NmError::ObjectGone
        }
        ("org.freedesktop.DBus.Error.AccessDenied", _) => NmError::PermissionDenied { message },
        (_, n) if n.ends_with(".PermissionDenied") => NmError::PermissionDenied { message },
        (_, ".Device.CreationFailed") => {
            // "bond0 failed to create resources: Failed to create bond interface 'bond0' for …"
            let kind = message
                .split("Failed to create ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .unwrap_or("software")
                .to_lowercase();
            NmError::CreationFailed { kind, message }
        }
        (_, ".Settings.Connection.InvalidSetting") => {
            let (property, _) = message.split_once(": ").unwrap_or((message.as_str(), ""));
            NmError::UnknownProperty { property: property.to_string() }
        }
        (_, ".Settings.Connection.InvalidProperty" | ".Settings.Connection.MissingProperty") => {
            let (property, rest) = message.split_once(": ").unwrap_or(("", message.as_str()));
            if rest.starts_with("unknown property") || rest.starts_with("unknown setting") {
                NmError::UnknownProperty { property: property.to_string() }
            } else {
                NmError::InvalidProperty { property: property.to_string(), message: rest.to_string() }
            }
        }
        (_, ".Settings.InvalidConnection" | ".UnknownConnection") => NmError::UnknownConnection,
        (_, ".UnknownDevice") => NmError::UnknownDevice { message },
        (_, ".ConnectionNotActive" | ".Device.NotActive") => NmError::NotActive,
        (_, ".InvalidArguments") if message.starts_with("Invalid flags") => NmError::InvalidFlags,
        (_, ".InvalidArguments") => NmError::InvalidArguments { message },
        _ => NmError::Method { name: name.to_string(), message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_messages_become_variants() {
        let e = classify(
            "org.freedesktop.NetworkManager.Device.CreationFailed",
            "bond9 failed to create resources: Failed to create bond interface 'bond9' for 'b': Operation not supported"
                .into(),
        );
        assert!(matches!(e, NmError::CreationFailed { ref kind, .. } if kind == "bond"), "{e:?}");
        let e = classify(
            "org.freedesktop.NetworkManager.Settings.Connection.InvalidProperty",
            "bond-port.prio: unknown property".into(),
        );
        assert!(matches!(e, NmError::UnknownProperty { ref property } if property == "bond-port.prio"), "{e:?}");
        let e = classify(
            "org.freedesktop.NetworkManager.Settings.Connection.InvalidSetting",
            "bogus-setting: unknown setting name".into(),
        );
        assert!(matches!(e, NmError::UnknownProperty { ref property } if property == "bogus-setting"), "{e:?}");
        let e = classify(
            "org.freedesktop.NetworkManager.Settings.Connection.InvalidProperty",
            "bridge.forward-delay: value '1' is out of range <2-30>".into(),
        );
        assert!(matches!(e, NmError::InvalidProperty { ref property, .. } if property == "bridge.forward-delay"));
        let e = classify("org.freedesktop.NetworkManager.InvalidArguments", "Invalid flags".into());
        assert!(matches!(e, NmError::InvalidFlags));
        let e = classify("org.freedesktop.NetworkManager.Settings.InvalidConnection", "no such".into());
        assert!(matches!(e, NmError::UnknownConnection));
        let e = classify("org.freedesktop.NetworkManager.Settings.PermissionDenied", "Insufficient privileges".into());
        assert!(matches!(e, NmError::PermissionDenied { .. }));
        let e = classify("org.freedesktop.DBus.Error.UnknownMethod", "gone".into());
        assert!(matches!(e, NmError::ObjectGone));
        let e = classify("org.freedesktop.NetworkManager.ConnectionNotActive", "x".into());
        assert!(matches!(e, NmError::NotActive));
    }
}
