//! The service's D-Bus errors: one name per cause under `org.nmiface.Interfaces1.Error.`, so a
//! client decides by name, never by message text; plus D-Bus's own
//! `InteractiveAuthorizationRequired` when NetworkManager would ask for a password.

use crate::agent::AgentError;
use crate::nm_client::NmError;
use crate::transaction::TxError;
use crate::verbs::VerbError;
use zbus::message::{Header, Message};
use zbus::names::ErrorName;

/// What kind of failure: each has one D-Bus error name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The XML is not valid: the message has its location (`source:line:column: …`).
    InvalidXml,
    /// Capability gaps (or a request nmiface cannot express, or one for system-wide profiles
    /// only) would make the result wrong; nothing was changed.
    Unsupported,
    /// No such interface (or object).
    NotFound,
    /// It exists, but is not this user's nmiface interface: a profile of another tool, of the
    /// whole system, or forged with nmiface's marks.
    NotOwned,
    /// NetworkManager refused: its words.
    PermissionDenied,
    /// NetworkManager would allow it after authentication, and the caller did not allow
    /// interactive authorization on its message.
    InteractiveAuthorizationRequired,
    /// Another change holds the lock, or a transaction is open already.
    Busy,
    /// Commit or rollback without a transaction.
    NoTransaction,
    /// Activation failed: NetworkManager's reason (the change was rolled back).
    ActivationFailed,
    /// NetworkManager is not running or not answering.
    NetworkManagerUnavailable,
    /// A caller other than the service's own user.
    AccessDenied,
    /// Bad arguments (an unknown option, a malformed MAC or name).
    InvalidArgs,
    /// Anything else.
    Failed,
}

impl ErrorKind {
    /// The D-Bus error name.
    pub fn error_name(self) -> &'static str {
        match self {
            ErrorKind::InvalidXml => "org.nmiface.Interfaces1.Error.InvalidXml",
            ErrorKind::Unsupported => "org.nmiface.Interfaces1.Error.Unsupported",
            ErrorKind::NotFound => "org.nmiface.Interfaces1.Error.NotFound",
            ErrorKind::NotOwned => "org.nmiface.Interfaces1.Error.NotOwned",
            ErrorKind::PermissionDenied => "org.nmiface.Interfaces1.Error.PermissionDenied",
            ErrorKind::InteractiveAuthorizationRequired => {
                "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
            }
            ErrorKind::Busy => "org.nmiface.Interfaces1.Error.Busy",
            ErrorKind::NoTransaction => "org.nmiface.Interfaces1.Error.NoTransaction",
            ErrorKind::ActivationFailed => "org.nmiface.Interfaces1.Error.ActivationFailed",
            ErrorKind::NetworkManagerUnavailable => "org.nmiface.Interfaces1.Error.NetworkManagerUnavailable",
            ErrorKind::AccessDenied => "org.freedesktop.DBus.Error.AccessDenied",
            ErrorKind::InvalidArgs => "org.freedesktop.DBus.Error.InvalidArgs",
            ErrorKind::Failed => "org.nmiface.Interfaces1.Error.Failed",
        }
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
    pub fn error_name(&self) -> &'static str {
        self.kind.error_name()
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
        ErrorName::from_static_str_unchecked(self.error_name())
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
        let m = e.to_string();
        match e {
            NmError::PermissionDenied { message } => ServiceError::new(ErrorKind::PermissionDenied, message),
            NmError::NotRunning | NmError::Timeout | NmError::Bus(_) => {
                ServiceError::new(ErrorKind::NetworkManagerUnavailable, m)
            }
            NmError::CreationFailed { .. } => ServiceError::new(ErrorKind::ActivationFailed, m),
            NmError::InvalidProperty { .. } | NmError::UnknownProperty { .. } => {
                ServiceError::new(ErrorKind::Unsupported, m)
            }
            _ => ServiceError::new(ErrorKind::Failed, m),
        }
    }
}

impl From<AgentError> for ServiceError {
    fn from(e: AgentError) -> Self {
        let m = e.to_string();
        match e {
            AgentError::Nm(n) => n.into(),
            // The cause's name, with the whole story (what was restored) as the text.
            AgentError::RolledBack { cause, .. } => ServiceError::new(ServiceError::from(*cause).kind, m),
            AgentError::NotOwned(_) | AgentError::NotDefined { foreign: Some(_), .. } => {
                ServiceError::new(ErrorKind::NotOwned, m)
            }
            AgentError::NotDefined { .. }
            | AgentError::NoSuchDevice(_)
            | AgentError::NoSuchMac(_)
            | AgentError::NoMacYet(_)
            | AgentError::NotActive(_) => ServiceError::new(ErrorKind::NotFound, m),
            AgentError::Activation { .. } | AgentError::AddressMissing { .. } => {
                ServiceError::new(ErrorKind::ActivationFailed, m)
            }
            AgentError::NoTransaction { .. } => ServiceError::new(ErrorKind::NoTransaction, m),
            AgentError::TransactionRunning { .. } | AgentError::LeftoverCheckpoints(_) => {
                ServiceError::new(ErrorKind::Busy, m)
            }
            AgentError::InvalidName(_) | AgentError::NameInUse(_) | AgentError::SubnetCollides { .. } => {
                ServiceError::new(ErrorKind::InvalidArgs, m)
            }
            AgentError::NotYourBridge(_) => ServiceError::new(ErrorKind::NotOwned, m),
            AgentError::NotAVmBridge(_) | AgentError::NoFreeSubnet => ServiceError::new(ErrorKind::Unsupported, m),
            AgentError::SystemScopeOnly { .. } | AgentError::WifiStation(_) | AgentError::NotExpressible { .. } => {
                ServiceError::new(ErrorKind::Unsupported, m)
            }
            AgentError::Journal(t) => t.into(),
            _ => ServiceError::new(ErrorKind::Failed, m),
        }
    }
}

impl From<TxError> for ServiceError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Busy { .. } => ServiceError::new(ErrorKind::Busy, e.to_string()),
            _ => ServiceError::new(ErrorKind::Failed, e.to_string()),
        }
    }
}

impl From<VerbError> for ServiceError {
    fn from(e: VerbError) -> Self {
        let m = e.to_string();
        match e {
            VerbError::Connect { .. } => ServiceError::new(ErrorKind::NetworkManagerUnavailable, m),
            VerbError::Agent(a) => a.into(),
            VerbError::Tx(t) => t.into(),
            VerbError::Gaps { .. } => ServiceError::new(ErrorKind::Unsupported, m),
            VerbError::TransactionExpired { .. } | VerbError::InTransaction { .. } => {
                ServiceError::new(ErrorKind::Busy, m)
            }
            _ => ServiceError::new(ErrorKind::Failed, m),
        }
    }
}
