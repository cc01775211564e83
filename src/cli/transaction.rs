//! `begin`, `commit`, `rollback` (virsh iface-begin/-commit/-rollback): transactions over
//! NetworkManager checkpoints and nmiface's journal.

use super::{block_on, connect, say, say_json, Outcome};
use nmiface::verbs::defaults;

/// `begin`: open a transaction (virsh iface-begin).
#[derive(Debug, clap::Args)]
#[command(after_help = "Until commit or rollback, define, undefine and apply record what they change, and each \
takes a NetworkManager checkpoint over the devices it touches (never over every device: another user's \
would be rolled back too). If neither comes within --timeout seconds, NetworkManager rolls those devices \
back by itself (0: never). A user's transaction is held by the session service, which rolls it back \
when the session ends.")]
pub struct BeginArgs {
    /// Seconds before NetworkManager rolls back by itself (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::TRANSACTION_TIMEOUT)]
    timeout: u32,
    /// Print the result as JSON: {"checkpoint", "protection", "rollback_timeout"}.
    #[arg(long)]
    json: bool,
}

/// `commit` / `rollback`.
#[derive(Debug, clap::Args)]
pub struct EndArgs {
    /// Act on this NetworkManager checkpoint (one left by a crashed run) instead of the
    /// transaction nmiface recorded.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn begin(args: BeginArgs) -> anyhow::Result<Outcome> {
    block_on(async {
        let j = connect().await?.begin(args.timeout).await?;
        // A user's transaction is held by the session service, which rolls it back when the
        // session ends: its journal goes with $XDG_RUNTIME_DIR at logout.
        if nmiface::identity::current_uid() != Some(0) && !wake_session_service().await {
            eprintln!(
                "nmiface: no session service holds this transaction (install it: nmiface session --install-user): \
                 if you log out before commit or rollback, its journal is lost with $XDG_RUNTIME_DIR"
            );
        }
        if args.json {
            let protection = if j.protects_devices() { "checkpoint" } else { "journal" };
            say_json(&serde_json::json!({
                "checkpoint": j.checkpoint(), "protection": protection, "rollback_timeout": args.timeout,
            }));
            return Ok(Outcome::Clean);
        }
        let auto = if args.timeout == 0 { "never".to_string() } else { format!("after {} s", args.timeout) };
        match j.protects_devices() {
            true => say(&format!(
                "Network config change transaction started (each change takes a checkpoint over the devices it \
                 touches; NetworkManager rolls them back by itself {auto})"
            )),
            false => {
                say("Network config change transaction started, protected by nmiface's journal only: NetworkManager \
                 does not let you take checkpoints (checkpoint-rollback), so rollback restores your own profiles \
                 but not device state, and nothing rolls back by itself")
            }
        }
        Ok(Outcome::Clean)
    })
}

pub fn commit(args: EndArgs) -> anyhow::Result<Outcome> {
    block_on(async {
        let cp = connect().await?.commit(args.checkpoint.as_deref()).await?;
        if args.json {
            say_json(&serde_json::json!({"committed": true, "checkpoint": cp}));
            return Ok(Outcome::Clean);
        }
        match cp.as_str() {
            "" => say("Network config change transaction committed"),
            cp if cp.contains(", ") => {
                say(&format!("Network config change transaction committed (checkpoints {cp} destroyed)"))
            }
            cp => say(&format!("Network config change transaction committed (checkpoint {cp} destroyed)")),
        }
        Ok(Outcome::Clean)
    })
}

pub fn rollback(args: EndArgs) -> anyhow::Result<Outcome> {
    block_on(async {
        connect().await?.rollback(args.checkpoint.as_deref()).await?;
        match args.json {
            true => say_json(&serde_json::json!({"rolled_back": true})),
            false => say("Network config change transaction rolled back"),
        }
        Ok(Outcome::Clean)
    })
}

/// Starts the session service (D-Bus activation) if it is installed and not running, by
/// reading its `Version`; whether it answered within 5 s.
async fn wake_session_service() -> bool {
    let wait = std::time::Duration::from_secs(5);
    let Ok(Ok(conn)) = tokio::time::timeout(wait, zbus::Connection::session()).await else { return false };
    let get = conn.call_method(
        Some(nmiface::session::BUS_NAME),
        nmiface::session::MANAGER_PATH,
        Some("org.freedesktop.DBus.Properties"),
        "Get",
        &(nmiface::session::MANAGER_INTERFACE, "Version"),
    );
    matches!(tokio::time::timeout(wait, get).await, Ok(Ok(_)))
}
