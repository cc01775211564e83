//! What the CLI prints: results on stdout, progress and warnings on stderr.
//!
//! A change that was made stays made when its report cannot be printed (stdout closed, a
//! full disk, `| true`): results are written with [`say`], which never panics and never turns
//! a done change into a failure, so the exit code tells what happened to the host.

use nmiface::nm_client::Progress;
use nmiface::verbs::GapLine;
use std::io::{IsTerminal, Write};

/// Prints one line of a command's result; an unwritable stdout is ignored (see the module doc).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Prints a JSON result, pretty, like [`say`].
pub fn say_json(v: &serde_json::Value) {
    say(&serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Warns about the capability gaps a forced change went on despite.
pub fn print_forced(gaps: &[GapLine]) {
    if gaps.is_empty() {
        return;
    }
    let lines: Vec<String> = gaps.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        std::io::stderr(),
        "nmiface: warning: going on despite {} capability gap(s) (--force):\n{}",
        gaps.len(),
        lines.join("\n")
    );
}

/// A progress line on stderr while waiting, only when stderr is a terminal.
pub fn progress_printer(label: String) -> impl FnMut(Progress) + Send {
    let tty = std::io::stderr().is_terminal();
    let frames = ['|', '/', '-', '\\'];
    let mut n = 0usize;
    move |p: Progress| {
        if tty {
            n += 1;
            let _ = write!(
                std::io::stderr(),
                "\r\x1b[2K{} {label}: {} ({:.1} s)",
                frames[n % frames.len()],
                p.what,
                p.elapsed.as_secs_f64()
            );
        }
    }
}

/// Clears the progress line.
pub fn clear_progress() {
    if std::io::stderr().is_terminal() {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}
