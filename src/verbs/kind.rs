//! What kind of failure an error is: one name per cause, the same for every front end. The CLI
//! prints it in `--json` (`{"error": {"kind": …}}`), the session service sends it as its D-Bus
//! error name, so a client decides by kind, never by message text.
//!
//! Every mapping here is an exhaustive `match`: a new error variant does not compile until it
//! has been given a kind (a catch-all would file it under "failed" unseen).

use super::VerbError;
use crate::agent::AgentError;
use crate::nm_client::NmError;
use crate::transaction::TxError;

/// What kind of failure. Its `Debug` spelling is its name (`NotFound`), used as the last part
/// of the service's D-Bus error name and as `kind` in the CLI's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ErrorKind {
    /// The XML is not valid: the message has its location (`source:line:column: …`).
    InvalidXml,
    /// Capability gaps, a request nmiface cannot express, or one for system-wide profiles only
    /// would make the result wrong; nothing was changed.
    Unsupported,
    /// No such interface, device, profile, MAC or checkpoint.
    NotFound,
    /// Several interfaces or profiles could be meant; the message names them.
    Ambiguous,
    /// It exists, but is not this caller's nmiface interface: a profile of another tool, of
    /// the whole system, of another user, or forged with nmiface's marks.
    NotOwned,
    /// A name, device, profile or subnet asked for is taken.
    InUse,
    /// The interface is not active.
    NotActive,
    /// NetworkManager refused for lack of permission: its words.
    PermissionDenied,
    /// NetworkManager refused the request for another reason: its words.
    NetworkManagerRefused,
    /// Another change holds the lock, or a transaction is open already.
    Busy,
    /// Commit or rollback without a transaction.
    NoTransaction,
    /// The open transaction's checkpoint is gone (its timeout passed, or NetworkManager
    /// restarted); nothing was changed.
    TransactionExpired,
    /// An activation failed: NetworkManager's reason.
    ActivationFailed,
    /// A rollback ran but could not restore everything; the message says what.
    RollbackIncomplete,
    /// NetworkManager is not running or not answering.
    NetworkManagerUnavailable,
    /// No private runtime directory for the lock and journal (`XDG_RUNTIME_DIR` unset or not
    /// the user's own); read-only work does not need one.
    NoRuntimeDirectory,
    /// nmiface's lock or journal could not be read or written.
    JournalFailed,
    /// A file nmiface reads or writes could have been planted by someone else.
    Untrusted,
    /// What nmiface reads of the kernel (the neighbour table: where VMs are; its random source)
    /// could not be read.
    KernelUnreadable,
    /// Bad arguments (an unknown option, a malformed MAC or name).
    InvalidArgs,
    /// A caller other than the service's own user (the session service only).
    AccessDenied,
    /// NetworkManager would allow it after authentication, and the caller did not allow
    /// interactive authorization on its message (the session service only).
    InteractiveAuthorizationRequired,
    /// The service was told to stop (SIGTERM at logout) during the change: it was abandoned and
    /// what it left rolled back (the session service only).
    Interrupted,
    /// A failure of the service's own bus, not of the request.
    Failed,
}

impl ErrorKind {
    /// The kind's name (`NotFound`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidXml => "InvalidXml",
            ErrorKind::Unsupported => "Unsupported",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Ambiguous => "Ambiguous",
            ErrorKind::NotOwned => "NotOwned",
            ErrorKind::InUse => "InUse",
            ErrorKind::NotActive => "NotActive",
            ErrorKind::PermissionDenied => "PermissionDenied",
            ErrorKind::NetworkManagerRefused => "NetworkManagerRefused",
            ErrorKind::Busy => "Busy",
            ErrorKind::NoTransaction => "NoTransaction",
            ErrorKind::TransactionExpired => "TransactionExpired",
            ErrorKind::ActivationFailed => "ActivationFailed",
            ErrorKind::RollbackIncomplete => "RollbackIncomplete",
            ErrorKind::NetworkManagerUnavailable => "NetworkManagerUnavailable",
            ErrorKind::NoRuntimeDirectory => "NoRuntimeDirectory",
            ErrorKind::JournalFailed => "JournalFailed",
            ErrorKind::Untrusted => "Untrusted",
            ErrorKind::KernelUnreadable => "KernelUnreadable",
            ErrorKind::InvalidArgs => "InvalidArgs",
            ErrorKind::AccessDenied => "AccessDenied",
            ErrorKind::InteractiveAuthorizationRequired => "InteractiveAuthorizationRequired",
            ErrorKind::Interrupted => "Interrupted",
            ErrorKind::Failed => "Failed",
        }
    }

    /// Every kind, for tests and documentation.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::InvalidXml,
        ErrorKind::Unsupported,
        ErrorKind::NotFound,
        ErrorKind::Ambiguous,
        ErrorKind::NotOwned,
        ErrorKind::InUse,
        ErrorKind::NotActive,
        ErrorKind::PermissionDenied,
        ErrorKind::NetworkManagerRefused,
        ErrorKind::Busy,
        ErrorKind::NoTransaction,
        ErrorKind::TransactionExpired,
        ErrorKind::ActivationFailed,
        ErrorKind::RollbackIncomplete,
        ErrorKind::NetworkManagerUnavailable,
        ErrorKind::NoRuntimeDirectory,
        ErrorKind::JournalFailed,
        ErrorKind::Untrusted,
        ErrorKind::KernelUnreadable,
        ErrorKind::InvalidArgs,
        ErrorKind::AccessDenied,
        ErrorKind::InteractiveAuthorizationRequired,
        ErrorKind::Interrupted,
        ErrorKind::Failed,
    ];
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl VerbError {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VerbError::Connect { .. } => ErrorKind::NetworkManagerUnavailable,
            VerbError::Agent(a) => a.kind(),
            VerbError::Tx(t) => t.kind(),
            VerbError::Gaps { .. } => ErrorKind::Unsupported,
            VerbError::TransactionExpired { .. } => ErrorKind::TransactionExpired,
            VerbError::InTransaction { .. } | VerbError::OtherScope { .. } => ErrorKind::Busy,
            VerbError::RollbackIncomplete { .. } => ErrorKind::RollbackIncomplete,
            VerbError::NotStarted { .. } => ErrorKind::ActivationFailed,
        }
    }
}

impl AgentError {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AgentError::Nm(n) => n.kind(),
            AgentError::NotOwned(_) | AgentError::NotDefined { foreign: Some(_), .. } => ErrorKind::NotOwned,
            AgentError::NotYourBridge(_) => ErrorKind::NotOwned,
            AgentError::NotDefined { foreign: None, .. }
            | AgentError::NoSuchProfile(_)
            | AgentError::NoSuchTap(_)
            | AgentError::NoSuchDevice(_)
            | AgentError::NoSuchMac(_)
            | AgentError::NoMacYet(_)
            | AgentError::NoProfileToTake(_) => ErrorKind::NotFound,
            AgentError::AmbiguousProfile { .. } | AgentError::AmbiguousMac { .. } => ErrorKind::Ambiguous,
            AgentError::NotActive(_) | AgentError::BridgeDown(_) => ErrorKind::NotActive,
            AgentError::Activation { .. } | AgentError::AddressMissing { .. } => ErrorKind::ActivationFailed,
            AgentError::Journal(t) => t.kind(),
            AgentError::Neighbours(_) | AgentError::Randomness(_) => ErrorKind::KernelUnreadable,
            // The kernel refused a tap NetworkManager made for the caller: nothing a user can cause.
            AgentError::Tun(_) => ErrorKind::Failed,
            AgentError::InvalidName(_) | AgentError::NotABridge { .. } => ErrorKind::InvalidArgs,
            AgentError::NameInUse(_)
            | AgentError::SubnetCollides { .. }
            | AgentError::NoFreeSubnet
            | AgentError::DeviceExists(_)
            | AgentError::ProfileExists(_)
            | AgentError::AlreadyPort { .. }
            | AgentError::HeldByOthers { .. }
            | AgentError::TakenOverByBridge { .. } => ErrorKind::InUse,
            AgentError::Reverse(_)
            | AgentError::NotExpressible { .. }
            | AgentError::SystemScopeOnly { .. }
            | AgentError::NotAVmBridge(_)
            | AgentError::WifiStation(_)
            | AgentError::NotEthernetProfile { .. }
            | AgentError::NotOneNic { .. } => ErrorKind::Unsupported,
            AgentError::TransactionRunning { .. } | AgentError::LeftoverCheckpoints(_) => ErrorKind::Busy,
            AgentError::NoTransaction { .. } => ErrorKind::NoTransaction,
            AgentError::CheckpointGone(_) => ErrorKind::TransactionExpired,
            // The cause's kind; the message tells what was restored.
            AgentError::RolledBack { cause, .. } => cause.kind(),
        }
    }
}

impl NmError {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NmError::NotRunning | NmError::Bus(_) | NmError::Timeout | NmError::Dbus(_) => {
                ErrorKind::NetworkManagerUnavailable
            }
            NmError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            NmError::CreationFailed { .. } => ErrorKind::ActivationFailed,
            NmError::UnknownProperty { .. }
            | NmError::InvalidProperty { .. }
            | NmError::InvalidFlags
            | NmError::BadVersion(_) => ErrorKind::Unsupported,
            NmError::UnknownConnection
            | NmError::UnknownDevice { .. }
            | NmError::ObjectGone
            | NmError::NoSuchCheckpoint(_) => ErrorKind::NotFound,
            NmError::NotActive => ErrorKind::NotActive,
            NmError::InvalidArguments { .. } | NmError::Method { .. } => ErrorKind::NetworkManagerRefused,
        }
    }
}

impl TxError {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TxError::Io { .. } | TxError::Corrupt { .. } => ErrorKind::JournalFailed,
            TxError::Busy { .. } => ErrorKind::Busy,
            TxError::NoRuntimeDir { .. } => ErrorKind::NoRuntimeDirectory,
            TxError::Untrusted { .. } => ErrorKind::Untrusted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    /// Names are unique and spelled as the variant (clients match on them).
    #[test]
    fn names_are_unique_and_the_variants() {
        let mut seen = std::collections::BTreeSet::new();
        for k in ErrorKind::ALL {
            assert_eq!(k.name(), format!("{k:?}"));
            assert!(seen.insert(k.name()), "{k:?} twice");
        }
    }
}
