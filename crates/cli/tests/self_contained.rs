//! A clone tests alone: no test, script or CI step names a path outside the repository (the
//! hwloc dumps once lived in a directory beside the checkout). Fixture hosts are exempt: their
//! symbolic links climb inside the host they stand for.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};

/// Strings that reach outside the checkout from any file of these trees: the sibling
/// directory the dumps came from, three levels up (the deepest test file is two levels below
/// the root's crates), or the development machine's own layout. Built from pieces so that this
/// file, which is scanned too, does not contain them.
const ESCAPES: [&str; 3] = [
    concat!("..", "/", "shared"),
    concat!("..", "/..", "/.."),
    concat!("/", "work", "/"),
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "fixtures" | "snapshots" | "__pycache__") {
                files(&path, out);
            }
        } else if [".rs", ".py", ".sh", ".ini", ".txt", ".c"]
            .iter()
            .any(|ext| name.ends_with(ext))
            || path.parent().and_then(Path::file_name) == Some(std::ffi::OsStr::new(".ci"))
        {
            out.push(path);
        }
    }
}

#[test]
fn no_test_or_script_reaches_outside_the_checkout() {
    let root = support::repo();
    let mut all = vec![root.join("Makefile")];
    for dir in ["tests", "scripts", "benchmarks", ".ci"] {
        files(&root.join(dir), &mut all);
    }
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let krate = krate.unwrap().path();
        for dir in ["tests", "benches"] {
            if krate.join(dir).is_dir() {
                files(&krate.join(dir), &mut all);
            }
        }
    }
    assert!(
        all.len() > 20,
        "only {} files found under {}",
        all.len(),
        root.display()
    );
    let mut found = Vec::new();
    for path in &all {
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        for (n, line) in text.lines().enumerate() {
            if let Some(bad) = ESCAPES.iter().find(|e| line.contains(*e)) {
                found.push(format!("{}:{}: {bad}", path.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "paths outside the checkout:\n{}",
        found.join("\n")
    );
}
