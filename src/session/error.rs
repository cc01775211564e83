//! The service's D-Bus errors: one name per cause under `org.nmiface.Interfaces1.Error.`, so a
//! client decides by name, never by message text; plus D-Bus's own
//! `InteractiveAuthorizationRequired` when NetworkManager would ask for a password.

use crate::agent::AgentError;
use crate::nm_client::NmError;
use crate::transaction::TxError;
use crate::verbs::VerbError;
use zbus::message::{Header, Message};
use zbus::names::ErrorName;

pub use crate::verbs::ErrorKind;

/// D-Bus's own names, for the kinds D-Bus already names.
const DBUS_NAMES: &[(ErrorKind, &str)] = &[
    (ErrorKind::AccessDenied, "org.freedesktop.DBus.Error.AccessDenied"),
    (ErrorKind::InvalidArgs, "org.freedesktop.DBus.Error.InvalidArgs"),
    (ErrorKind::InteractiveAuthorizationRequired, "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"),
];

/// The service's error-name prefix.
pub const ERROR_PREFIX: &str = "org.nmiface.Interfaces1.Error.";

/// The D-Bus error name of `kind`: D-Bus's own where it has one, else
/// `org.nmiface.Interfaces1.Error.KIND`.
pub fn error_name(kind: ErrorKind) -> String {
    match DBUS_NAMES.iter().find(|(k, _)| *k == kind) {
        Some((_, n)) => (*n).to_string(),
        None => format!("{ERROR_PREFIX}{}", kind.name()),
    }
}

/// Why a call to the service failed: its kind (the error name) and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// Which error.
    pub kind: ErrorKind,
    /// What happened, in NetworkManager's words where it refused.
    pub message: String,
}

impl ServiceError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// The D-Bus error name.
    pub fn error_name(&self) -> String {
        error_name(self.kind)
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_name(), self.message)
    }
}

impl zbus::DBusError for ServiceError {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name())?.build(&(self.message.as_str(),))
    }

    fn name(&self) -> ErrorName<'_> {
        ErrorName::try_from(self.error_name()).expect("kind names are valid error name parts")
    }

    fn description(&self) -> Option<&str> {
        Some(&self.message)
    }
}

impl From<zbus::Error> for ServiceError {
    fn from(e: zbus::Error) -> Self {
        ServiceError::new(ErrorKind::Failed, e.to_string())
    }
}

impl From<crate::xml::XmlError> for ServiceError {
    fn from(e: crate::xml::XmlError) -> Self {
        ServiceError::new(ErrorKind::InvalidXml, e.to_string())
    }
}

impl From<NmError> for ServiceError {
    fn from(e: NmError) -> Self {
        let m = match &e {
            // NetworkManager's own words.
            NmError::PermissionDenied { message } => message.clone(),
            _ => e.to_string(),
        };
        ServiceError::new(e.kind(), m)
    }
}

impl From<AgentError> for ServiceError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Nm(n) => n.into(),
            e => ServiceError::new(e.kind(), e.to_string()),
        }
    }
}

impl From<TxError> for ServiceError {
    fn from(e: TxError) -> Self {
        ServiceError::new(e.kind(), e.to_string())
    }
}

impl From<VerbError> for ServiceError {
    fn from(e: VerbError) -> Self {
        match e {
            VerbError::Agent(a) => a.into(),
            e => ServiceError::new(e.kind(), e.to_string()),
        }
    }
}
