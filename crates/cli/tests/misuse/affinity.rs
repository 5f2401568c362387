//! `osml affinity` misused: more exclusive ranks than cores.

#![allow(clippy::unwrap_used)]

use serde_json::Value;

use crate::support;

/// `osml affinity` on dev-vm: one node, two cores.
fn affinity(args: &[&str]) -> std::process::Output {
    support::osml()
        .arg("affinity")
        .arg("--root")
        .arg(support::fixture("dev-vm"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn exclusive_mode_with_more_ranks_than_cores_is_refused_with_a_hint() {
    for json in [false, true] {
        let mut args = vec!["--nproc-per-node", "3", "--mode", "exclusive"];
        if json {
            args.push("--json");
        }
        let out = affinity(&args);
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty(), "a refused plan printed something");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("ranks 0 and 2 would both run on CPU 0") && err.contains("--mode node"),
            "{err}"
        );
    }
    // Two ranks fit: one core each, no CPU shared.
    let out = affinity(&["--nproc-per-node", "2", "--mode", "exclusive", "--json"]);
    assert!(out.status.success());
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cpus: Vec<&Value> = p["ranks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["cpus"])
        .collect();
    assert_ne!(cpus[0], cpus[1]);
    // Shared mode with three ranks is what the hint offers, and works.
    let out = affinity(&["--nproc-per-node", "3", "--mode", "node"]);
    assert!(out.status.success());
}
