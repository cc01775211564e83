//! NetworkManager's D-Bus errors, mapped once into a typed enum that keeps NM's error name and
//! message.

/// An error from talking to NetworkManager.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NmError {
    /// Nothing owns `org.freedesktop.NetworkManager` on the bus we are connected to.
    #[error("NetworkManager is not running on this system bus")]
    NotRunning,
    /// The bus itself is unreachable.
    #[error("cannot connect to the system bus: {0}")]
    Bus(#[source] zbus::Error),
    /// NetworkManager refused for lack of permission (polkit).
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
    /// A profile property NM rejected.
    #[error("NetworkManager rejected {property}: {message}")]
    InvalidProperty {
        /// `setting.property`.
        property: String,
        /// NM's message without the property prefix.
        message: String,
        /// The D-Bus error name.
        name: String,
    },
    /// Any other method error, with NM's name and message kept.
    #[error("{message} ({name})")]
    Method {
        /// The D-Bus error name, e.g. `org.freedesktop.NetworkManager.UnknownDevice`.
        name: String,
        /// NM's message.
        message: String,
    },
    /// A transport or (de)serialisation failure.
    #[error("D-Bus: {0}")]
    Dbus(#[source] zbus::Error),
}

impl NmError {
    /// The D-Bus error name, for method errors.
    pub fn dbus_name(&self) -> Option<&str> {
        match self {
            NmError::InvalidProperty { name, .. } | NmError::Method { name, .. } => Some(name),
            NmError::CreationFailed { .. } => Some("org.freedesktop.NetworkManager.Device.CreationFailed"),
            _ => None,
        }
    }
}

impl From<zbus::Error> for NmError {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, msg, _) => {
                let name = name.to_string();
                let message = msg.unwrap_or_default();
                classify(name, message)
            }
            zbus::Error::FDO(fdo) => match *fdo {
                zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_) => NmError::NotRunning,
                other => NmError::Dbus(zbus::Error::FDO(Box::new(other))),
            },
            other => NmError::Dbus(other),
        }
    }
}

impl From<zbus::fdo::Error> for NmError {
    fn from(e: zbus::fdo::Error) -> Self {
        NmError::from(zbus::Error::FDO(Box::new(e)))
    }
}

fn classify(name: String, message: String) -> NmError {
    match name.as_str() {
        "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
            NmError::NotRunning
        }
        n if n.ends_with(".PermissionDenied") || n == "org.freedesktop.DBus.Error.AccessDenied" => {
            NmError::PermissionDenied { message }
        }
        "org.freedesktop.NetworkManager.Device.CreationFailed" => {
            // "bond0 failed to create resources: Failed to create bond interface 'bond0' for …"
            let kind = message
                .split("Failed to create ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .unwrap_or("software")
                .to_lowercase();
            NmError::CreationFailed { kind, message }
        }
        n if n.ends_with(".InvalidProperty") || n.ends_with(".MissingProperty") || n.ends_with(".InvalidSetting") => {
            let (property, rest) = message.split_once(": ").unwrap_or(("", message.as_str()));
            NmError::InvalidProperty { property: property.to_string(), message: rest.to_string(), name }
        }
        _ => NmError::Method { name, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_failed_names_the_kind() {
        let e = classify(
            "org.freedesktop.NetworkManager.Device.CreationFailed".into(),
            "bond9 failed to create resources: Failed to create bond interface 'bond9' for 'b': Operation not supported"
                .into(),
        );
        assert!(matches!(e, NmError::CreationFailed { ref kind, .. } if kind == "bond"), "{e:?}");
        let e = classify(
            "org.freedesktop.NetworkManager.Settings.Connection.InvalidProperty".into(),
            "bond-port.prio: unknown property".into(),
        );
        assert!(matches!(e, NmError::InvalidProperty { ref property, .. } if property == "bond-port.prio"));
    }
}
