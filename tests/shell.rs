//! Shell completions and manual pages, as the Debian package ships them: generated from the
//! clap definitions, one page per command, and readable by `man`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

fn nmiface(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nmiface")).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The commands `nmiface --help` lists, except `help`: the ground truth for what needs a page.
fn commands() -> BTreeSet<String> {
    let out = nmiface(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    let listed: BTreeSet<String> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        // Wrapped descriptions continue on lines indented deeper than the command names.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    assert!(listed.len() > 10, "too few commands parsed from --help:\n{help}");
    listed
}

#[test]
fn completions_for_each_shell_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = nmiface(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.len() > 1000, "{shell}: completion script too short:\n{script}");
        for command in ["translate", "define", "apply", "unbridge", "completions"] {
            assert!(script.contains(command), "{shell} completions do not mention {command}");
        }
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let out = nmiface(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("possible values"), "{}", text(&out.stderr));
}

#[test]
fn one_man_page_per_command_and_each_parses() {
    let dir = std::env::temp_dir().join(format!("nmiface-man-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_nmiface"))
        .args(["man", "--dir"])
        .arg(&dir)
        // A fixed date keeps the pages reproducible: 2024-02-29.
        .env("SOURCE_DATE_EPOCH", "1709164800")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let mut expected: BTreeSet<String> = commands().iter().map(|c| format!("nmiface-{c}.1")).collect();
    expected.insert("nmiface.1".to_string());
    let written: BTreeSet<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(written.is_superset(&expected), "missing pages: {:?}", expected.difference(&written));
    let printed: BTreeSet<String> =
        text(&out.stdout).lines().map(|l| Path::new(l).file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(printed, written, "man prints the pages it wrote");
    // See: issue 24, item 11. Every page a page names exists (nmiface-tap(1) names
    // nmiface-tap-add(1)), every page has its exit status, environment and files in sections of
    // their own, and no literal backtick is left for man to show.
    for page in &written {
        let roff = std::fs::read_to_string(dir.join(page)).unwrap();
        for named in roff.lines().filter_map(|l| l.strip_suffix("(1)")).filter(|l| l.starts_with("nmiface")) {
            let file = format!("{}.1", named.replace("\\-", "-"));
            assert!(written.contains(&file), "{page} names {named}(1), which is not written");
        }
        for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH FILES"] {
            assert!(roff.contains(section), "{page} has no {section}");
        }
        assert!(!roff.contains(".SH EXTRA") && !roff.contains('`'), "{page}:\n{roff}");
    }
    let apply = std::fs::read_to_string(dir.join("nmiface-apply.1")).unwrap();
    assert!(apply.contains("3 with --check: changes are pending") || apply.contains("3 with \\-\\-check"), "{apply}");

    let define = std::fs::read_to_string(dir.join("nmiface-define.1")).unwrap();
    assert!(define.contains(".TH nmiface-define 1 2024-02-29 \"nmiface "), "{define}");
    assert!(define.contains("\\-\\-adopt"), "the page lists the command's options:\n{define}");

    check_with_man(&dir, &written);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Renders every page with man-db's `man -l`, which must succeed without a warning from groff.
/// Without `man` (before integration/install-deps.sh has run) this check skips with a banner,
/// except under CI=true.
fn check_with_man(dir: &Path, pages: &BTreeSet<String>) {
    if Command::new("man").arg("--version").output().is_err() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "man (man-db) is missing under CI=true");
        eprintln!(
            "*** SKIPPED: rendering the man pages: no `man` here (integration/install-deps.sh installs man-db) ***"
        );
        return;
    }
    for page in pages {
        let path = dir.join(page);
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let rendered = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "man -l {page}: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "man -l {page} warns:\n{}", text(&out.stderr));
        assert!(rendered.contains("SYNOPSIS") && rendered.contains("nmiface"), "man -l {page}:\n{rendered}");
    }
}

// See: issue 24, item 13. bash completes a FILE after `apply `, options only after `-`, and
// nothing (not file names) after an option that takes a number.
#[test]
fn bash_completes_by_kind() {
    if Command::new("bash").arg("--version").output().is_err() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nmiface-compl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("br0.xml"), "").unwrap();
    let script = dir.join("nmiface.bash");
    std::fs::write(&script, nmiface(&["completions", "bash"]).stdout).unwrap();
    let complete = |words: &str, cword: usize| {
        let prog = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _nmiface nmiface \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\" 2>/dev/null; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = Command::new("bash").arg("-c").arg(prog).current_dir(&dir).output().unwrap();
        text(&out.stdout)
    };
    let after_apply = complete("nmiface apply ''", 2);
    assert!(after_apply.contains("br0.xml") && !after_apply.contains("--adopt"), "{after_apply}");
    let after_dash = complete("nmiface apply --", 2);
    assert!(after_dash.contains("--adopt"), "{after_dash}");
    let after_timeout = complete("nmiface apply --timeout ''", 3);
    assert_eq!(after_timeout.trim(), "", "file names after --timeout");
    let _ = std::fs::remove_dir_all(&dir);
}
