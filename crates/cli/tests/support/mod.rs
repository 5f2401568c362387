//! What the integration tests of `osml` share, as ripgrep's `tests/util.rs`: the repository
//! root and its fixtures, the `osml` command, probes of this machine, and counted skips
//! ([`skip`], in `skip.rs`). A test binary declares `mod support;` (`misuse/main.rs`: once, with
//! `#[path]`); `hwloc_oracle.rs` beside it is the hwloc tests' own.

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

mod skip;

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};

use assert_cmd::Command;
use serde_json::Value;

#[allow(unused_imports)] // as dead code above: not every binary skips
pub use skip::skip;

/// The repository root: fixtures are given by relative paths from here so that reports (and
/// their snapshots) do not depend on where the checkout lives.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A fixture host of `tests/fixtures/` (`gpu-server`, `dev-vm`).
pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// A copy of the fixture host `name` at `dir/root` (`cp -a`: modes and links kept), for a test
/// that writes to it.
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let dest = dir.join("root");
    let status = StdCommand::new("cp")
        .arg("-a")
        .arg(fixture(name))
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {name} {}", dest.display());
    dest
}

/// `osml` run in the repository root.
pub fn osml() -> Command {
    osml_in(&repo())
}

/// `osml` run in `dir`.
pub fn osml_in(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("osml").unwrap();
    c.current_dir(dir);
    c
}

/// The `osml` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("osml")
}

/// `osml` as a plain `std::process::Command` in the repository root, for a test that spawns it
/// or wires its pipes and signals.
pub fn osml_process() -> StdCommand {
    let mut c = StdCommand::new(bin());
    c.current_dir(repo());
    c
}

/// What `osml ARGS…` printed and how it ended, run in the repository root.
pub fn run(args: &[&str]) -> Output {
    run_in(&repo(), args)
}

/// What `osml ARGS…` printed and how it ended, run in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    osml_in(dir).args(args).output().unwrap()
}

/// `osml doctor --json --root ROOT`, which must finish with 0 or 1: the report.
pub fn doctor_json(root: impl AsRef<std::ffi::OsStr>) -> Value {
    let out = osml()
        .args(["doctor", "--json", "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `osml` as `nobody` (uid and gid 65534, no supplementary groups) through util-linux's
/// `setpriv`, in the repository root; `None` when there is no `setpriv`.
pub fn osml_as_nobody() -> Option<StdCommand> {
    if !StdCommand::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return None;
    }
    let mut c = StdCommand::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .current_dir(repo());
    Some(c)
}

/// Whether this process has root's effective uid, as `osml tune` judges it.
pub fn is_root() -> bool {
    osml_tune::running_as_root()
}

/// A FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let status = StdCommand::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// The real python3 binary (not a shell shim), or None when there is none.
pub fn python3() -> Option<String> {
    let out = StdCommand::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether tracefs, needed to count system calls, is there; mounted here when missing and we
/// are root (as CI is).
pub fn ensure_tracefs() -> bool {
    let id = Path::new("/sys/kernel/tracing/events/raw_syscalls/sys_enter/id");
    if !id.exists() && is_root() {
        let _ = StdCommand::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
    }
    id.exists()
}

/// A JSON array of CPU or node numbers.
pub fn ints(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| usize::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

/// Sends signal number `signal` to `child` (`kill -N`) and waits for it to end.
pub fn signal_and_wait(child: &mut std::process::Child, signal: i32) -> std::process::ExitStatus {
    let sent = StdCommand::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(sent, "kill -{signal} {}", child.id());
    child.wait().unwrap()
}

/// Every entry under `root`: files by mode and content, links by target, directories by mode.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            let value = if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                todo.push(path.clone());
                format!("dir {mode:o}")
            } else {
                let bytes = std::fs::read(&path).unwrap();
                format!("file {mode:o} {}", String::from_utf8_lossy(&bytes))
            };
            out.insert(rel, value);
        }
    }
    out
}
