//! The library surface every front end calls: one async entry per verb (define, undefine,
//! start, stop, apply, begin/commit/rollback, bridge/unbridge, share, tap add/remove, leases,
//! check, list, dumpxml, name, mac), each taking a typed request and returning a typed outcome.
//!
//! This layer owns the policy around NetworkManager work ([`crate::agent`]): connecting, the
//! capability gate (refuse a change that gaps would make wrong, unless forced), the lock that
//! keeps two nmiface processes from interleaving, the transaction journal on disk, and which
//! protection a change gets (its own checkpoint, the user's transaction, or none). The CLI
//! (`src/cli/`) and the session service only parse, call and print.
//!
//! - `change.rs`: define, undefine, start, stop, apply;
//! - `transaction.rs`: begin, commit, rollback;
//! - `share.rs`: bridge, unbridge, share;
//! - `query.rs`: check, list, dumpxml, name, mac;
//! - `tap.rs`: tap add, tap remove, leases (VMs on a user's bridge);
//! - `journal.rs`: the lock and the journal every change runs under;
//! - `defaults.rs`: the timeouts every front end uses.

mod change;
pub mod defaults;
mod journal;
mod kind;
mod query;
mod recover;
mod share;
mod tap;
mod transaction;

pub use change::{ApplyOptions, ApplyOutcome, DefineOptions, DefineOutcome, Pending, Protection, StartOutcome};
pub use kind::ErrorKind;
pub use query::check_offline;
pub use recover::Recovered;
pub use share::{BridgeRequest, ShareOutcome, ShareRequest};
pub use tap::{OpenedTap, TapOutcome, TapRequest};

use crate::agent::{Agent, AgentError, RestoreProblem, Safety};
use crate::finding::Finding;
use crate::gaps::CheckReport;
use crate::nm;
use crate::nm_client::{system_bus_address, NmClient, NmError};
use crate::transaction::{Journal, Store, TxError};
use crate::xml::Document;
use std::time::Duration;

/// Why a verb failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerbError {
    /// NetworkManager could not be reached.
    #[error("cannot reach NetworkManager{}: {source}", on_bus(address, source))]
    Connect {
        /// The bus address tried.
        address: String,
        /// Why.
        #[source]
        source: NmError,
    },
    /// NetworkManager work failed (or was refused).
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The runtime state (journal, lock) could not be used.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// Capability gaps would make the result wrong; nothing was changed.
    #[error("refusing to {verb}: {} capability gap(s) would make the result wrong; nothing was changed\n{}\n  (`nmiface check` shows every feature; --force goes on anyway)", gaps.len(), lines(gaps))]
    Gaps {
        /// The verb refused.
        verb: &'static str,
        /// The gaps.
        gaps: Vec<GapLine>,
    },
    /// The open transaction expired: its checkpoints are gone, or its timeout passed before
    /// any change took one. Nothing may run as if it protected the host.
    #[error("the open transaction's checkpoint {checkpoint} is gone (NetworkManager rolled it back when its timeout passed, or restarted; the devices the transaction created were disconnected); this change was not made: `nmiface rollback` restores the profiles the transaction changed, `nmiface commit` keeps them")]
    TransactionExpired {
        /// The checkpoints that are gone, or why there were none.
        checkpoint: String,
    },
    /// `apply --confirm` inside a transaction: the transaction already waits for a decision.
    #[error("apply --confirm cannot run inside a transaction{}: commit or rollback it, or apply without --confirm", match checkpoint.as_str() { "" => String::new(), c => format!(" (checkpoint {c})") })]
    InTransaction {
        /// The transaction's checkpoints (comma-separated; empty before any change took one).
        checkpoint: String,
    },
    /// An apply without a rollback of its own (no checkpoint asked, or inside a transaction)
    /// defined everything, but some interfaces did not start: a failure, never a success.
    #[error("{} of {total} interfaces did not start (their profiles stay defined{}):\n{}", failed.len(), match protection { Protection::Transaction | Protection::TransactionJournal => "; `nmiface rollback` undoes the transaction", _ => "" }, failed.iter().map(|(_, e)| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    NotStarted {
        /// Each interface that did not start, and why.
        failed: Vec<(String, AgentError)>,
        /// How many interfaces were started.
        total: usize,
        /// How the host was protected (no rollback happened).
        protection: Protection,
    },
    /// The open transaction is on other profiles (system-wide, or the user's own) than the
    /// change asked for: a change cannot join it, or `rollback` would not know whose to undo.
    #[error("the open transaction is on {open}; this change is on {asked} and cannot join it: commit or rollback the transaction first (with --system exactly when it was begun with --system)")]
    OtherScope {
        /// Whose profiles the transaction is on.
        open: String,
        /// Whose profiles the change is on.
        asked: String,
    },
    /// A rollback ran but could not restore everything.
    #[error("rolled back, but not everything was restored: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    RollbackIncomplete {
        /// What could not be restored.
        problems: Vec<RestoreProblem>,
    },
}

impl From<NmError> for VerbError {
    fn from(e: NmError) -> Self {
        VerbError::Agent(AgentError::Nm(e))
    }
}

/// One capability gap that blocks (or, forced, did not block) a change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GapLine {
    /// The interface, if the gap is about one.
    pub interface: Option<String>,
    /// The feature.
    pub feature: String,
    /// Why it is a gap.
    pub detail: String,
    /// What to do about it.
    pub remedy: Option<String>,
}

impl std::fmt::Display for GapLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "  {}: {}: {}", self.interface.as_deref().unwrap_or("-"), self.feature, self.detail)?;
        if let Some(r) = &self.remedy {
            write!(f, "\n    remedy: {r}")?;
        }
        Ok(())
    }
}

fn lines(gaps: &[GapLine]) -> String {
    gaps.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// How long to wait for another nmiface's lock before giving up, naming it.
pub const LOCK_WAIT: Duration = Duration::from_secs(120);

/// A connection to NetworkManager with the runtime state of its bus: what every verb runs on.
pub struct Context {
    agent: Agent,
    /// The lock and journal's place; `None` when there is no private runtime directory (a user
    /// without `XDG_RUNTIME_DIR`): read-only verbs do not need one, and a change says so with
    /// its own error ([`TxError::NoRuntimeDir`]) instead of failing to connect.
    store: Option<Store>,
    bus_id: String,
    notice: Box<dyn Fn(&str) + Send + Sync>,
    /// NetworkManager lets this caller take checkpoints (root always; a desktop user only if
    /// polkit says so for `checkpoint-rollback`); without, changes get journal-only protection.
    /// [`UNKNOWN`] until a change needs to know: asking costs NetworkManager a polkit question
    /// per action, which a user's `tap add` or `list` should not pay.
    checkpoints: std::sync::atomic::AtomicU8,
}

const UNKNOWN: u8 = 2;

/// NetworkManager's polkit action for every checkpoint method.
pub const CHECKPOINT_ACTION: &str = "org.freedesktop.NetworkManager.checkpoint-rollback";

/// ` (system bus ADDRESS)`, unless the cause names the address already.
fn on_bus(address: &str, source: &NmError) -> String {
    let bare = address.strip_prefix("unix:path=").unwrap_or(address);
    match source.to_string().contains(bare) {
        true => String::new(),
        false => format!(" (system bus {address})"),
    }
}

impl Context {
    /// Connects to NetworkManager on the system bus.
    pub async fn connect() -> Result<Self, VerbError> {
        let connect = |source| VerbError::Connect { address: system_bus_address(), source };
        let nm = NmClient::connect_system().await.map_err(connect)?;
        Self::with_client(nm).await
    }

    /// A context over a client the caller connected (tests, the session service).
    pub async fn with_client(nm: NmClient) -> Result<Self, VerbError> {
        // The store is keyed by the bus's identity, not its address text: `…/socket` and
        // `…//socket` are one bus and must share one lock.
        let (agent, id) = tokio::join!(Agent::new(nm.clone()), nm.bus_id());
        let bus_id = id?;
        let store = Store::for_bus(&bus_id).ok();
        Ok(Self { agent: agent?, store, bus_id, notice: Box::new(|_| {}), checkpoints: 1.into() })
    }

    /// The same context working on `scope`'s profiles. For a user, whether NetworkManager
    /// allows checkpoints is asked when a change first needs to know.
    pub async fn with_scope(mut self, scope: crate::nm::Scope) -> Result<Self, VerbError> {
        // Anyone but root asks: a user's system-wide change (`--system`, allowed by
        // settings.modify.system as Debian gives netdev and sudo) must not demand checkpoint
        // rights that only an administrator has; without them the journal protects it.
        if matches!(scope, crate::nm::Scope::User(_)) || crate::identity::current_uid() != Some(0) {
            self.checkpoints.store(UNKNOWN, std::sync::atomic::Ordering::Relaxed);
        }
        self.agent = self.agent.with_scope(scope);
        Ok(self)
    }

    /// The same context, its changes sent so that NetworkManager may have polkit ask the user
    /// for a password (the session service, for a caller that allowed interaction).
    pub fn interactive(&self) -> Context {
        Context {
            agent: self.agent.with_client(self.agent.client().interactive()),
            store: self.store.clone(),
            bus_id: self.bus_id.clone(),
            notice: Box::new(|_| {}),
            checkpoints: self.checkpoints.load(std::sync::atomic::Ordering::Relaxed).into(),
        }
    }

    /// Records whether NetworkManager lets this caller take checkpoints (the session service
    /// calls it again when NetworkManager says permissions changed).
    pub fn set_checkpoints_allowed(&self, allowed: bool) {
        self.checkpoints.store(u8::from(allowed), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether NetworkManager lets this caller take checkpoints (asked once, `GetPermissions`):
    /// only a plain `yes` counts, since an `auth` answer would need a password prompt in the
    /// middle of a change. Without, changes get the journal alone.
    pub async fn checkpoints_allowed(&self) -> Result<bool, VerbError> {
        match self.checkpoints.load(std::sync::atomic::Ordering::Relaxed) {
            UNKNOWN => {
                let p = self.agent.client().permissions().await?;
                let allowed = p.get(CHECKPOINT_ACTION).map(String::as_str) == Some("yes");
                self.set_checkpoints_allowed(allowed);
                Ok(allowed)
            }
            known => Ok(known == 1),
        }
    }

    /// Calls `f` with a sentence for the user when something happens they should know about
    /// while a verb runs: waiting for another nmiface, finishing an interrupted change.
    pub fn on_notice(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.notice = Box::new(f);
        self
    }

    /// The NetworkManager work underneath.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The daemon's version.
    pub fn version(&self) -> nm::NmVersion {
        self.agent.version()
    }

    /// Findings of reading `doc` and translating it for this daemon.
    pub fn findings(&self, doc: &Document) -> Vec<Finding> {
        self.translate(doc).0
    }

    /// `doc` translated once for the whole change: its findings (the reader's, then the
    /// translation's) and the profiles the plan, the define and the start all work from.
    fn translate(&self, doc: &Document) -> (Vec<Finding>, Vec<nm::Profile>) {
        let mut t = self.agent.translate(doc);
        let mut findings = doc.findings.clone();
        findings.append(&mut t.findings);
        (findings, t.into_profiles())
    }

    /// Findings of `doc` for this daemon, and the capability gate for `verb` (`starting`: the
    /// kernel and runtime programs count too): the gaps a forced change goes on despite.
    async fn checked(
        &self,
        doc: &Document,
        starting: bool,
        force: bool,
        verb: &'static str,
    ) -> Result<Checked, VerbError> {
        let (findings, profiles) = self.translate(doc);
        let forced = gate(&self.agent.check(&doc.host, &findings, starting).await?, starting, force, verb)?;
        Ok(Checked { findings, forced, profiles })
    }
}

/// A document translated and let through the capability gate.
struct Checked {
    /// The reader's and the translation's findings.
    findings: Vec<Finding>,
    /// Gaps a forced change goes on despite.
    forced: Vec<GapLine>,
    /// The translation's profiles, for the agent.
    profiles: Vec<nm::Profile>,
}

/// Refuses a change when gaps would make its result wrong, unless forced; returns the gaps a
/// forced change goes on despite.
fn gate(report: &CheckReport, starting: bool, force: bool, verb: &'static str) -> Result<Vec<GapLine>, VerbError> {
    let blocking = report.blocking(starting);
    let gaps: Vec<GapLine> = report
        .items()
        .filter(|(_, i)| blocking.iter().any(|b| std::ptr::eq(*b, *i)))
        .map(|(iface, i)| GapLine {
            interface: iface.map(str::to_string),
            feature: i.feature.clone(),
            detail: i.detail.clone(),
            remedy: i.remedy.clone(),
        })
        .collect();
    if gaps.is_empty() || force {
        return Ok(gaps);
    }
    Err(VerbError::Gaps { verb, gaps })
}

/// The protection a change gets: the open transaction, else its own checkpoint unless asked
/// for none.
fn safety<'a>(
    journal: Option<&'a mut Journal>,
    store: &'a Store,
    checkpoint: bool,
    allowed: bool,
    rollback_timeout: u32,
) -> (Safety<'a>, Protection) {
    match journal {
        Some(j) if !j.protects_devices() => (Safety::Transaction(j), Protection::TransactionJournal),
        Some(j) => (Safety::Transaction(j), Protection::Transaction),
        None if checkpoint && allowed => {
            (Safety::Checkpoint { rollback_timeout, store: Some(store) }, Protection::Checkpoint)
        }
        None if checkpoint => (Safety::Journal { store: Some(store) }, Protection::Journal),
        None => (Safety::Unprotected, Protection::None),
    }
}

/// What defining kept of the profiles NetworkManager held, moved from a NIC's profile, could
/// not carry, or will compete with at boot, as findings: nothing a user had is lost silently.
fn takeover_findings(defined: &[crate::agent::Defined]) -> Vec<Finding> {
    use crate::finding::Severity;
    let mut out = Vec::new();
    for d in defined {
        let at = |sev, msg: String| Finding::at(sev, d.interface.clone(), None, msg);
        out.extend(d.kept.iter().map(|k| at(Severity::Info, format!("kept (the document does not say it): {k}"))));
        out.extend(d.moved.iter().map(|m| at(Severity::Info, format!("moved with the NIC: {m}"))));
        out.extend(d.dropped.iter().map(|x| at(Severity::Approximated, format!("dropped: {x}"))));
        out.extend(d.compete.iter().map(|c| at(Severity::Approximated, c.clone())));
    }
    out
}

/// Whose profiles a scope means, for messages.
fn whose(s: &crate::nm::Scope) -> String {
    match s {
        crate::nm::Scope::System => "system-wide profiles".into(),
        crate::nm::Scope::User(u) => format!("{u}'s own profiles"),
    }
}

/// The names of a document's interfaces, for the lock's holder description.
fn names(doc: &Document) -> String {
    doc.host.interfaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
}
