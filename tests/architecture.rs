//! The layout rules README.md's Layout section states, checked so they cannot rot: the pure core
//! has no tokio or zbus in it, no import runs back up from `nm` to `gaps`, the crate docs list
//! every module, no source file grows past ~400 lines of non-test code, and `unsafe` stays in
//! src/host_tun.rs.

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir` (or `dir` itself when it is a file).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments (so a doc comment may name tokio).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_pure_core_has_no_tokio_or_zbus() {
    let core = ["xml", "model", "nm", "gaps", "plan.rs", "finding.rs", "report.rs"];
    let mut bad = Vec::new();
    for c in core {
        let mut files = Vec::new();
        rust_files(&src().join(c), &mut files);
        assert!(!files.is_empty(), "no files for core module {c}");
        for f in files {
            let text = code(&f);
            for word in ["tokio", "zbus", "zvariant"] {
                if text.split(|ch: char| !ch.is_alphanumeric() && ch != '_').any(|w| w == word) {
                    bad.push(format!("{} names {word}", f.display()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "the pure core must not use the D-Bus stack:\n{}", bad.join("\n"));
}

#[test]
fn nm_does_not_import_gaps() {
    let mut files = Vec::new();
    rust_files(&src().join("nm"), &mut files);
    let bad: Vec<String> =
        files.iter().filter(|f| code(f).contains("crate::gaps")).map(|f| f.display().to_string()).collect();
    assert!(bad.is_empty(), "nm sits below gaps; these import it: {bad:?}");
}

#[test]
fn the_crate_docs_list_every_module() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let modules: Vec<&str> =
        lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';')).collect();
    assert!(modules.len() > 5, "no modules found in lib.rs");
    let missing: Vec<&&str> = modules.iter().filter(|m| !lib.contains(&format!("[`{m}`]"))).collect();
    assert!(missing.is_empty(), "lib.rs's Layout section does not list {missing:?}");
}

#[test]
fn no_source_file_is_over_400_lines_of_code() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut big = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Unit tests at the end of a file do not count.
        let code_lines = text.lines().take_while(|l| !l.starts_with("#[cfg(test)]")).count();
        if code_lines > 420 {
            big.push(format!("{}: {code_lines} lines", f.display()));
        }
    }
    assert!(big.is_empty(), "split these by concept (house style: ~400 lines of code per file):\n{}", big.join("\n"));
}

/// `unsafe` lives in one module, `host_tun.rs` (tun ioctls, a descriptor from the command line):
/// the crate denies it, and no other file may allow it back.
#[test]
fn unsafe_code_stays_in_host_tun() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let bad: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("host_tun.rs"))
        .filter(|f| {
            let c = code(f);
            c.contains("unsafe ") || c.contains("unsafe_code") || c.contains("unsafe{")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(bad.is_empty(), "unsafe outside src/host_tun.rs: {bad:?}");
    let manifest = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    assert!(manifest.contains("unsafe_code = \"deny\""), "the crate must deny unsafe code");
}
