//! `osml tune` on this machine, as root: apply the training profile, verify, revert, and prove
//! every touched value and file is back. Alone in its test binary, so no other test reads the
//! host's settings while they are changed.

// Helpers of an integration test panic on purpose.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;

use serde_json::Value;

mod support;

use support::{is_root, run, skip};

/// What the plan would touch: each value's file and each persist file, with their content.
fn snapshot(plan: &Value) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut paths: Vec<String> = plan["settings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["path"] != "/dev/shm")
        .map(|s| s["path"].as_str().unwrap().to_owned())
        .collect();
    paths.extend(
        plan["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_owned()),
    );
    paths.extend([
        "/var/lib/osml".to_owned(),
        "/var/lib/osml/tune/journal.json".to_owned(),
    ]);
    paths
        .into_iter()
        .map(|p| {
            let v = if std::path::Path::new(&p).is_dir() {
                Some(b"<dir>".to_vec())
            } else {
                std::fs::read(&p).ok()
            };
            (p, v)
        })
        .collect()
}

/// Reverts if the test stops half way, so a failure does not leave this host tuned.
struct Guard(bool);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0 {
            let _ = run(&["tune", "--revert"]);
        }
    }
}

#[test]
fn apply_verify_revert_on_this_host() {
    if !is_root() {
        skip(
            "apply_verify_revert_on_this_host",
            "changing kernel settings needs root (CI runs this as root)",
        );
        return;
    }
    assert!(
        !std::path::Path::new("/var/lib/osml/tune/journal.json").exists(),
        "a journal from an earlier apply exists: run `osml tune --revert` first"
    );
    let out = run(&["tune", "--json"]);
    assert!(out.status.success());
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let before = snapshot(&plan);
    let to_set: Vec<(String, String)> = plan["settings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"]["action"] == "set")
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_owned(),
                s["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    eprintln!("settings to change here: {to_set:?}");

    let mut guard = Guard(true);
    let out = run(&["tune", "--apply"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Each value reads back as the target, in the kernel's own files.
    for (path, target) in &to_set {
        if path == "/dev/shm" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let shown =
            osml_host::parse::sysfs::selected(&text).unwrap_or_else(|_| text.trim().to_owned());
        assert_eq!(&shown, target, "{path}");
    }
    let v = run(&["tune", "--verify"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let again = run(&["tune", "--apply"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to change"));

    let out = run(&["tune", "--revert"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    guard.0 = false;
    let after = snapshot(&plan);
    for (path, was) in &before {
        let now = &after[path];
        // Kernel files show the value, whatever bytes were written.
        let norm = |b: &Option<Vec<u8>>| {
            b.as_ref()
                .map(|v| String::from_utf8_lossy(v).trim().to_owned())
        };
        assert_eq!(norm(now), norm(was), "{path} is not back");
    }
}
