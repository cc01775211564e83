//! Shared helpers: locating samples, golden files with a bless mode, loud skips.

use std::path::{Path, PathBuf};

/// The crate root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True under CI, where a skipped check is a failure.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Set NMIFACE_BLESS=1 to rewrite golden files from the current output.
pub fn blessing() -> bool {
    std::env::var("NMIFACE_BLESS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `*.xml` files directly in `dir`, sorted.
pub fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "xml")).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The file's name without `.xml`.
pub fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Compares `actual` with the golden file, or rewrites it when blessing. A missing golden is a
/// failure that says how to create it.
pub fn golden(path: &Path, actual: &str) -> Result<(), String> {
    if blessing() {
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(path, actual).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).map_err(|_| {
        format!("no golden file {} (run with NMIFACE_BLESS=1 to create it, then review it)", path.display())
    })?;
    if expected != actual {
        return Err(format!(
            "{} differs from the output (NMIFACE_BLESS=1 rewrites it):\n{}",
            path.display(),
            similar_asserts::SimpleDiff::from_str(&expected, actual, "golden", "actual")
        ));
    }
    Ok(())
}
