//! `osml tune` misused: applies at once on one root, a journal of an unknown version.

// Helpers of an integration test panic on purpose; fixtures are read directly.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::process::Output;

use osml_host::HostRoot;
use osml_tune::apply::{LockFor, Target};
use serde_json::Value;

use crate::support::{copy_fixture, run_in, tree};

/// The entries that differ between two trees, with both sides (the trees are large).
fn differences(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} vs {:?}", a.get(k), b.get(k)))
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn concurrent_applies_never_lose_the_original_values() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_fixture("dev-vm", dir.path());
    let before = tree(&root);
    let r = root.to_str().unwrap();
    let max_map_count = root.join("proc/sys/vm/max_map_count");
    let original = std::fs::read_to_string(&max_map_count).unwrap();
    for round in 0..20 {
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| run_in(dir.path(), &["tune", "--root", r, "--apply"]));
            let b = s.spawn(|| run_in(dir.path(), &["tune", "--root", r, "--apply"]));
            (a.join().unwrap(), b.join().unwrap())
        });
        let mut applied = 0;
        for o in [&a, &b] {
            match o.status.code() {
                Some(0) => applied += 1,
                // Refused at once, naming the root and the lock.
                Some(2) => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    assert!(
                        err.contains("another osml tune") && err.contains(r),
                        "round {round}: {}",
                        text(o)
                    );
                }
                _ => panic!("round {round}: {}", text(o)),
            }
        }
        assert!(applied >= 1, "round {round}: both refused");
        assert_ne!(std::fs::read_to_string(&max_map_count).unwrap(), original);
        let out = run_in(dir.path(), &["tune", "--root", r, "--revert"]);
        assert!(out.status.success(), "round {round}: {}", text(&out));
        let diff = differences(&tree(&root), &before);
        assert!(
            diff.is_empty(),
            "round {round}: the revert did not restore the original tree: {diff:#?}"
        );
    }
}

#[test]
fn a_held_lock_refuses_apply_revert_and_verify_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_fixture("dev-vm", dir.path());
    let r = root.to_str().unwrap();
    let out = run_in(dir.path(), &["tune", "--root", r, "--apply"]);
    assert!(out.status.success(), "{}", text(&out));
    let applied = tree(&root);
    let host = HostRoot::at(&root);
    let target = Target { root: &host };
    let held = target.lock(LockFor::Apply).unwrap().unwrap();
    for args in [["--apply"], ["--revert"], ["--verify"]] {
        let started = std::time::Instant::now();
        let out = run_in(dir.path(), &["tune", "--root", r, args[0]]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("another osml tune") && err.contains(r),
            "{args:?}: {err}"
        );
        assert!(
            started.elapsed().as_secs() < 30,
            "{args:?} waited for the lock"
        );
    }
    let diff = differences(&tree(&root), &applied);
    assert!(
        diff.is_empty(),
        "a refused command changed something: {diff:#?}"
    );
    drop(held);
    let out = run_in(dir.path(), &["tune", "--root", r, "--revert"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_journal_of_an_unknown_version_is_refused_not_reverted() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_fixture("dev-vm", dir.path());
    let r = root.to_str().unwrap();
    let before = tree(&root);
    let out = run_in(dir.path(), &["tune", "--root", r, "--apply"]);
    assert!(out.status.success(), "{}", text(&out));
    let journal_path = root.join("var/lib/osml/tune/journal.json");
    let good = std::fs::read_to_string(&journal_path).unwrap();
    let mut journal: Value = serde_json::from_str(&good).unwrap();
    assert_eq!(journal["schema_version"], 1);
    journal["schema_version"] = 999.into();
    std::fs::write(&journal_path, journal.to_string()).unwrap();
    let applied = tree(&root);
    let out = run_in(dir.path(), &["tune", "--root", r, "--revert"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schema_version 999"), "{err}");
    let diff = differences(&tree(&root), &applied);
    assert!(
        diff.is_empty(),
        "a journal of version 999 was acted on: {diff:#?}"
    );
    std::fs::write(&journal_path, good).unwrap();
    let out = run_in(dir.path(), &["tune", "--root", r, "--revert"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(differences(&tree(&root), &before).is_empty());
}

#[test]
fn every_json_output_has_a_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_fixture("dev-vm", dir.path());
    let r = root.to_str().unwrap();
    for args in [
        vec!["--json"],
        vec!["--apply", "--json"],
        vec!["--apply", "--json"],
        vec!["--verify", "--json"],
        vec!["--revert", "--json"],
    ] {
        let mut all = vec!["tune", "--root", r];
        all.extend(&args);
        let out = run_in(dir.path(), &all);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out)));
        assert_eq!(v["schema_version"], 1, "{args:?}: {v}");
    }
}

#[test]
fn swappiness_without_swap_is_not_applicable_to_doctor_tune_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    // dev-vm: vm.swappiness 60, SwapTotal 0 kB.
    let root = copy_fixture("dev-vm", dir.path());
    let r = root.to_str().unwrap();
    let out = run_in(dir.path(), &["tune", "--root", r, "--json"]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let setting = plan["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "vm.swappiness")
        .unwrap()
        .clone();
    assert_eq!(setting["action"]["action"], "skip", "{setting}");
    assert_eq!(setting["action"]["kind"], "not_applicable", "{setting}");
    let out = run_in(dir.path(), &["doctor", "--root", r, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "mem.swappiness")
        .unwrap()
        .clone();
    assert_eq!(finding["status"], "skip", "{finding}");
    assert!(
        finding["observed"]
            .as_str()
            .unwrap()
            .contains("not applicable"),
        "{finding}"
    );
    let out = run_in(dir.path(), &["tune", "--root", r, "--apply"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(root.join("proc/sys/vm/swappiness")).unwrap(),
        "60\n"
    );
    let out = run_in(dir.path(), &["tune", "--root", r, "--verify", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "vm.swappiness")
        .unwrap()
        .clone();
    assert_eq!(c["ok"], true, "{c}");
    let diffs: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(v["differences"], diffs.len());
    assert!(diffs.iter().all(|c| c["name"] != "vm.swappiness"), "{v}");
}
