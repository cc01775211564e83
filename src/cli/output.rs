//! What the CLI prints: results on stdout, progress and warnings on stderr.
//!
//! A change that was made stays made when its report cannot be printed (stdout closed, a
//! full disk, `| true`): results are written with [`say`], which never panics and never turns
//! a done change into a failure, so the exit code tells what happened to the host.

use nmiface::nm_client::Progress;
use nmiface::verbs::GapLine;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// The progress line while activations run: every member seen so far, its state and when it
/// entered it. One line for the whole command, however many interfaces start.
struct Line {
    label: String,
    t0: Instant,
    members: BTreeMap<String, (&'static str, Instant)>,
    frame: usize,
}

/// The line being shown, redrawn by a ticker thread so the times keep moving while nothing
/// happens (a bridge waiting out its STP forward delay sends no signal for seconds).
static LINE: Mutex<Option<Line>> = Mutex::new(None);

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// What the line says at `now`: the slowest unfinished member (the one longest in its state),
/// that state and how long it has been in it, how many are up, and the total time.
fn render(l: &Line, now: Instant) -> String {
    let frames = ['|', '/', '-', '\\'];
    let spin = frames[l.frame % frames.len()];
    let total = now.duration_since(l.t0).as_secs_f64();
    let up = l.members.values().filter(|(s, _)| *s == "activated").count();
    let slowest = l.members.iter().filter(|(_, (s, _))| *s != "activated").min_by_key(|(_, (_, since))| *since);
    match slowest {
        Some((dev, (state, since))) => format!(
            "{spin} {}: {dev} {state} for {:.1} s ({up} of {} up, {total:.1} s)",
            l.label,
            now.duration_since(*since).as_secs_f64(),
            l.members.len()
        ),
        None if up > 0 => format!("{spin} {}: {up} up, checking ({total:.1} s)", l.label),
        None => format!("{spin} {} ({total:.1} s)", l.label),
    }
}

fn draw(l: &mut Line) {
    l.frame += 1;
    let _ = write!(std::io::stderr(), "\r\x1b[2K{}", render(l, Instant::now()));
}

/// A progress line on stderr while waiting, only when stderr is a terminal.
pub fn progress_printer(label: String) -> impl FnMut(Progress) + Send {
    let tty = std::io::stderr().is_terminal();
    if tty {
        let mut line = LINE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if line.is_none() {
            *line = Some(Line { label, t0: Instant::now(), members: BTreeMap::new(), frame: 0 });
            std::thread::spawn(|| loop {
                std::thread::sleep(TICK);
                let mut line = LINE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match line.as_mut() {
                    Some(l) => draw(l),
                    None => break,
                }
            });
        }
    }
    move |p: Progress| {
        if !tty {
            return;
        }
        let mut line = LINE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(l) = line.as_mut() {
            l.members.insert(p.device, (p.state, Instant::now()));
            draw(l);
        }
    }
}

/// Clears the progress line (and stops its ticker).
pub fn clear_progress() {
    let mut line = LINE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if line.take().is_some() {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 24, item 8. A finished port does not hold the line while the bridge waits.
    #[test]
    fn the_line_shows_the_slowest_unfinished_member_and_ticks() {
        let t0 = Instant::now();
        let mut l = Line { label: "applying".into(), t0, members: BTreeMap::new(), frame: 0 };
        l.members.insert("br0".into(), ("ip-config", t0 + Duration::from_millis(100)));
        l.members.insert("eth0".into(), ("activated", t0 + Duration::from_millis(150)));
        let at = |ms| render(&l, t0 + Duration::from_millis(ms));
        assert_eq!(at(6000), "| applying: br0 ip-config for 5.9 s (1 of 2 up, 6.0 s)");
        assert_eq!(at(7000), "| applying: br0 ip-config for 6.9 s (1 of 2 up, 7.0 s)");
        l.members.insert("br0".into(), ("activated", t0));
        assert_eq!(render(&l, t0 + Duration::from_secs(8)), "| applying: 2 up, checking (8.0 s)");
    }
}
