//! `completions` and `man`: shell completions and manual pages generated from the clap
//! definitions, so they can never drift from `--help`. The Debian package ships their output
//! (see `integration/deb.sh`).

use super::{Cli, Outcome};
use anyhow::Context;
use clap::CommandFactory;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `nmiface completions` (its help text is on `Command::Completions`).
#[derive(Debug, clap::Args)]
#[command(after_help = "Other places: zsh, a file named _nmiface in a directory of $fpath; \
fish, ~/.config/fish/completions/nmiface.fish.")]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Arguments of `nmiface man` (its help text is on `Command::Man`).
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing; existing pages are replaced).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

/// Runs `nmiface completions`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut cmd = Cli::command();
    // clap_complete panics when its writer fails; rendering into memory first turns a closed
    // stdout (`| head`) into an io::Error, which the caller reports as success.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "nmiface", &mut script);
    if args.shell == clap_complete::Shell::Bash {
        script = bash_by_kind(&String::from_utf8_lossy(&script), &cmd).into_bytes();
    }
    std::io::stdout().lock().write_all(&script).context("writing the completion script")?;
    Ok(Outcome::Clean)
}

/// What bash completes, per subcommand block of clap_complete's script (`nmiface__subcmd__apply`):
/// whether its positional is a file, and its options whose value is not a path.
fn bash_kinds(cmd: &clap::Command, block: String, out: &mut Vec<(String, bool, Vec<String>)>) {
    use clap::ValueHint;
    let file = cmd.get_positionals().any(|a| a.get_value_hint() == ValueHint::FilePath);
    let path_hints = [ValueHint::FilePath, ValueHint::DirPath, ValueHint::AnyPath, ValueHint::ExecutablePath];
    let not_paths = cmd
        .get_opts()
        .filter(|a| !path_hints.contains(&a.get_value_hint()))
        .flat_map(|a| {
            let long = a.get_long().map(|l| format!("--{l}"));
            let short = a.get_short().map(|c| format!("-{c}"));
            long.into_iter().chain(short)
        })
        .collect();
    for sub in cmd.get_subcommands() {
        bash_kinds(sub, format!("{block}__subcmd__{}", sub.get_name().replace('-', "__")), out);
    }
    out.push((block, file, not_paths));
}

/// clap_complete's bash script, made to complete by kind: after a command whose argument is a
/// FILE, file names (options only after `-`), and after an option whose value is a number or a
/// name (`--timeout`), nothing at all: its `-o default` would otherwise offer file names there.
fn bash_by_kind(script: &str, cmd: &clap::Command) -> String {
    let mut kinds = Vec::new();
    bash_kinds(cmd, "nmiface".into(), &mut kinds);
    let mut block: Option<&(String, bool, Vec<String>)> = None;
    let mut option: Option<String> = None;
    let mut out = String::with_capacity(script.len());
    for line in script.lines() {
        let t = line.trim();
        if line.starts_with("        ") && !line.starts_with("         ") && t.ends_with(')') {
            let name = t.trim_end_matches(')');
            block = kinds.iter().find(|(b, _, _)| b == name);
        }
        let mut new = line.to_string();
        if let Some((_, file, not_paths)) = block {
            // Options only after a `-`, not also at the first word (that is the FILE).
            if let (true, Some(at)) = (*file, line.find(" || ${COMP_CWORD} -eq")) {
                if let Some(end) = line[at..].find(" ]]") {
                    new = format!("{}{}", &line[..at], &line[at + end..]);
                }
            }
            if *file && line == "            COMPREPLY=( $(compgen -W \"${opts}\" -- \"${cur}\") )" {
                new = "            COMPREPLY=( $(compgen -f -- \"${cur}\") )".to_string();
            }
            if let Some(o) = t.strip_suffix(')').filter(|o| o.starts_with('-')) {
                option = Some(o.to_string());
            }
            if t == "COMPREPLY=($(compgen -f \"${cur}\"))" && option.as_ref().is_some_and(|o| not_paths.contains(o)) {
                new = line.replace(t, "COMPREPLY=(); compopt +o default +o bashdefault 2>/dev/null");
            }
        }
        out.push_str(&new);
        out.push('\n');
    }
    out
}

/// Runs `nmiface man`.
pub fn man(args: ManArgs) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    for page in write_pages(&args.dir)? {
        println!("{}", page.display());
    }
    Ok(Outcome::Clean)
}

/// Writes one page per command and returns their paths.
fn write_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    // Building the command gives subcommands their display names (nmiface-define), which
    // clap_mangen uses for each page's title and file name; the help subcommand is left out,
    // as `nmiface help X` says nothing that the page of X does not.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let date = page_date()?;
    let mut pages = Vec::new();
    // Every command with a page of its own, nested ones too (`tap add` is nmiface-tap-add(1),
    // which nmiface-tap(1) names).
    let mut all = vec![cmd.clone()];
    let mut i = 0;
    while i < all.len() {
        let subs: Vec<clap::Command> = all[i].get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
        all.extend(subs);
        i += 1;
    }
    for page_cmd in all {
        // Without these, clap_mangen names a subcommand's source after the subcommand alone
        // ("define 0.1.0"); every page belongs to the same program and version.
        let man = clap_mangen::Man::new(page_cmd)
            .source(format!("nmiface {version}"))
            .manual("nmiface manual")
            .date(date.clone());
        let path = dir.join(man.get_filename());
        let mut roff = Vec::new();
        man.render(&mut roff)?;
        let roff = finish_page(&String::from_utf8_lossy(&roff));
        std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
        pages.push(path);
    }
    Ok(pages)
}

/// Every command's exit status, unless its help says its own.
const EXIT_STATUS: &str = "0 ok; 1 finished, but something was approximated or is unsupported (findings on \
stderr); 2 error: bad input, usage, a refusal or a failure, and nothing was changed.";

/// The sections clap_mangen has no place for, as roff.
const ENVIRONMENT_AND_FILES: &str = r#".SH ENVIRONMENT
.TP
\fBDBUS_SYSTEM_BUS_ADDRESS\fR
The system bus NetworkManager is on (default unix:path=/run/dbus/system_bus_socket).
.TP
\fBXDG_RUNTIME_DIR\fR
For a user who is not root: where the journal and lock of a change live (nmiface/ inside it). A change needs it; reads do not.
.TP
\fBRUST_LOG\fR
What to log on stderr, e.g. nmiface=debug (every NetworkManager call, as \fB\-v\fR does).
.TP
\fBNMIFACE_DBUS_TIMEOUT\fR
Seconds any one call to NetworkManager may take (default 10).
.SH FILES
.TP
\fI/run/nmiface/\fR, \fI$XDG_RUNTIME_DIR/nmiface/\fR
The journal of a change or transaction, and the lock that serialises changes (root's, a user's).
.TP
\fI~/.local/share/dbus\-1/services/org.nmiface.Interfaces1.service\fR, \fI~/.config/systemd/user/nmiface\-session.service\fR
The session service for one user (\fBnmiface session \-\-install\-user\fR); the package installs them under /usr/share/dbus\-1/services/ and /usr/lib/systemd/user/.
"#;

/// clap_mangen's page made a manual page: `code` in bold instead of literal backticks, the help's
/// "Exit status:" paragraph in an EXIT STATUS section (every page has one), the rest of the
/// after-help text under NOTES instead of EXTRA, then ENVIRONMENT and FILES.
fn finish_page(roff: &str) -> String {
    let mut exit = None;
    let mut body = Vec::new();
    let mut in_extra = false;
    for line in roff.lines() {
        if line.starts_with(".SH ") {
            in_extra = line == ".SH EXTRA";
        }
        if in_extra {
            if let Some(rest) = line.strip_prefix("Exit status: ") {
                exit = Some(rest.to_string());
                // A paragraph break left alone before it, or at the section's start, stays harmless.
                continue;
            }
            if line == ".SH EXTRA" {
                body.push(".SH NOTES".to_string());
                continue;
            }
        }
        body.push(bold_code(line));
    }
    // NOTES may be left with nothing but paragraph breaks once the exit status moved out.
    if let Some(at) = body.iter().position(|l| l == ".SH NOTES") {
        let end = body[at + 1..].iter().position(|l| l.starts_with(".SH ")).map_or(body.len(), |e| at + 1 + e);
        if body[at + 1..end].iter().all(|l| l == ".PP" || l.is_empty()) {
            body.drain(at..end);
        } else {
            // No paragraph break right after the heading (where "Exit status:" was).
            while body.get(at + 1).is_some_and(|l| l == ".PP" || l.is_empty()) {
                body.remove(at + 1);
            }
        }
    }
    let status = bold_code(&exit.unwrap_or_else(|| EXIT_STATUS.to_string()));
    let extra = format!(".SH \"EXIT STATUS\"\n{status}\n{ENVIRONMENT_AND_FILES}");
    let at = body.iter().position(|l| l == ".SH VERSION").unwrap_or(body.len());
    body.insert(at, extra.trim_end().to_string());
    body.join("\n") + "\n"
}

/// `code` in a line of roff as bold (\fB…\fR); a line with an odd number of backticks is left
/// as it is rather than guessed at.
fn bold_code(line: &str) -> String {
    if line.starts_with('.') || line.matches('`').count() % 2 == 1 {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len());
    for (i, part) in line.split('`').enumerate() {
        if i > 0 {
            out.push_str(if i % 2 == 1 { "\\fB" } else { "\\fR" });
        }
        out.push_str(part);
    }
    out
}

/// The date in the pages' header: the day of `SOURCE_DATE_EPOCH` when set (the reproducible-builds
/// convention; `integration/deb.sh` sets it to the last commit's time), else today (UTC).
fn page_date() -> anyhow::Result<String> {
    // clap_mangen leaves an empty date unquoted in `.TH`, which shifts the source and manual
    // names one field left in the rendered header: a date is needed for a correct page.
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse::<u64>().with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number"))?,
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
    };
    let (y, m, d) = civil_date(secs / 86_400);
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

/// Year, month and day of a day count since 1970-01-01 (proleptic Gregorian calendar): days are
/// counted in 400-year eras starting on March 1st, so that the leap day ends each year.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of the era, 0..=146096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // year of the era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year starting March 1st
    let mp = (5 * doy + 2) / 153; // month starting March = 0
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = era * 400 + yoe + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_date;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29)); // a leap day of a year divisible by 400
        assert_eq!(civil_date(11_017), (2000, 3, 1));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(20_818), (2026, 12, 31));
    }
}
