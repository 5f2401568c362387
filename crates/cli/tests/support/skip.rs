//! Counted skips. A test that cannot run here (no root, no python3, a kernel without the
//! feature) calls [`skip`] instead of printing and passing in silence: the line goes to stderr
//! and to a log in the target directory, which `make test-rust` prints after the run
//! (`scripts/report-skips.sh`), so the totals say what did not run.
//!
//! Standard library only: the tests of other crates, unit tests included, use this file too
//! (`#[path = ".../crates/cli/tests/support/skip.rs"]`).

use std::io::Write as _;
use std::path::PathBuf;

/// The log's name in `<target>/tmp/`; `scripts/report-skips.sh` reads it.
pub const SKIP_LOG: &str = "osml-skipped.txt";

/// Says that `test` (or the part of it named there) did not run here, and why:
/// `SKIP <binary>::<test>: <why>` on stderr and appended to the skip log. Panics if the line
/// cannot be logged: a skip nobody can count is the silent pass this replaces.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIP {}::{test}: {why}\n", binary());
    // Straight to the process's stderr: libtest captures `eprintln!` of a passing test, not this.
    let _ = std::io::stderr().write_all(line.as_bytes());
    let path = log().expect("no target directory above the test binary to log the skip in");
    // O_APPEND: each line is one write at the end of the file, so tests running in parallel
    // threads and binaries do not overwrite each other's lines.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot log the skip in {}: {e}", path.display()));
}

/// The test binary's name without cargo's hash (`misuse-0a1b…` → `misuse`).
fn binary() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().unwrap_or_default().to_string_lossy();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_owned(),
        _ => stem.into_owned(),
    }
}

/// `<target>/tmp/osml-skipped.txt`. Cargo sets `CARGO_TARGET_TMPDIR` (`<target>/tmp`) only when
/// it builds integration tests and benchmarks; a unit test finds the target directory as the
/// nearest ancestor of its binary that holds cargo's `CACHEDIR.TAG`.
fn log() -> Option<PathBuf> {
    let tmp = match option_env!("CARGO_TARGET_TMPDIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .ok()?
            .ancestors()
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())?
            .join("tmp"),
    };
    std::fs::create_dir_all(&tmp).ok()?;
    Some(tmp.join(SKIP_LOG))
}
