//! The defaults every front end uses: one value each, so the CLI, the session service and the
//! Ansible module wait and roll back alike (they once differed: `tap add` waited 20 s from the
//! CLI and 60 s over D-Bus; a transaction begun over D-Bus never rolled back by itself).

use std::time::Duration;

/// How long to wait for an interface's activation (`start`, `apply`, `bridge`, `Create`).
pub const ACTIVATION_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for a tap to come up: a tap has no carrier to wait for and is ACTIVATED
/// within tens of milliseconds, so a long wait only hides a fault.
pub const TAP_TIMEOUT: Duration = Duration::from_secs(20);

/// Seconds NetworkManager waits for a change's keep-alive before rolling its checkpoint back by
/// itself (the change's process died).
pub const ROLLBACK_TIMEOUT: u32 = 20;

/// Seconds an open transaction (`begin`) lasts before NetworkManager rolls it back by itself: a
/// client that dies must not leave a checkpoint over every device until someone notices.
pub const TRANSACTION_TIMEOUT: u32 = 600;

/// How long an interrupted change may finish the NetworkManager call it has in flight before it
/// is dropped and rolled back (see [`super::Context::land_calls`]): a call waiting on polkit lands
/// within milliseconds when polkit answers without asking the user.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
