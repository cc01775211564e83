//! Reaching NetworkManager from the CLI: one runtime, one [`Context`].

use nmiface::verbs::Context;
use std::future::Future;

/// Runs the command's async part. One thread: a CLI waits on one daemon; a pool would only add
/// start-up time.
pub fn block_on<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f)
}

/// Connects to NetworkManager; another nmiface holding the lock is reported while we wait.
pub async fn connect() -> anyhow::Result<Context> {
    Ok(Context::connect().await?.on_lock_wait(|holder| {
        eprintln!("nmiface: waiting for another nmiface ({holder}) to finish");
    }))
}
