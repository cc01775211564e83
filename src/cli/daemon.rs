//! Reaching NetworkManager from the CLI: one runtime, one [`Context`], and what happens when the
//! user interrupts a change.

use nmiface::verbs::{Context, Recovered};
use std::future::Future;
use tokio::signal::unix::{signal, SignalKind};

/// Runs the command's async part. One thread: a CLI waits on one daemon; a pool would only add
/// start-up time.
pub fn block_on<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f)
}

/// `--system` was given: work on system-wide profiles even when not root.
static SYSTEM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records the global `--system` flag before a command runs.
pub fn set_system(system: bool) {
    SYSTEM.store(system, std::sync::atomic::Ordering::Relaxed);
}

/// Connects to NetworkManager, in the caller's scope (root, or `--system`: system-wide
/// profiles; a user: their own per-user profiles); what the user should know while a verb runs
/// goes to stderr.
pub async fn connect() -> anyhow::Result<Context> {
    let scope = nmiface::identity::caller_scope(SYSTEM.load(std::sync::atomic::Ordering::Relaxed))?;
    Ok(Context::connect().await?.with_scope(scope).await?.on_notice(|what| eprintln!("nmiface: {what}")))
}

/// A change stopped by a signal, after what it left was rolled back.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {signal}: {outcome}")]
pub struct Interrupted {
    /// `SIGINT`, `SIGTERM` or `SIGHUP`.
    pub signal: &'static str,
    /// The shell's exit status for it (128 + the signal's number).
    pub status: u8,
    /// What became of the change.
    pub outcome: String,
}

/// Runs a change; on SIGINT, SIGTERM or SIGHUP the change is abandoned, what it left is rolled back
/// (its journal was written ahead), and the command fails with [`Interrupted`]. Inside an open
/// transaction the changes stay journalled: `nmiface rollback` undoes them.
pub async fn interruptible<T>(ctx: &Context, f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // The terminal closing (an SSH session dying) hangs the change up too.
    let mut hup = signal(SignalKind::hangup())?;
    let mut f = Box::pin(f);
    let (name, status) = tokio::select! {
        r = &mut f => return r,
        _ = term.recv() => ("SIGTERM", 143),
        _ = int.recv() => ("SIGINT", 130),
        _ = hup.recv() => ("SIGHUP", 129),
    };
    // A NetworkManager call in flight lands first (NetworkManager would carry it out after the
    // rollback looked); if that finished the change, it is kept and said so.
    if let Some(r) = ctx.land_calls(f.as_mut(), nmiface::verbs::defaults::INTERRUPT_GRACE).await {
        eprintln!("nmiface: {name} came as the change finished; it is kept as it is");
        return r;
    }
    // Dropping the change releases its lock; then roll back.
    drop(f);
    let outcome = match ctx.recover().await {
        Ok(Recovered::RolledBack) => "the change was rolled back; the host is as before".to_string(),
        Ok(Recovered::Nothing) => "no change was recorded, so nothing was rolled back".to_string(),
        Ok(Recovered::InTransaction) => {
            "what was changed stays in the open transaction: `nmiface rollback` undoes it".to_string()
        }
        Err(e) => format!("rolling back failed: {e}"),
    };
    Err(Interrupted { signal: name, status, outcome }.into())
}
