//! `osml tune` on copies of fixture roots: apply, doctor passes, a second apply changes
//! nothing, revert restores the tree byte for byte; a failed write rolls back; skips and
//! refusals.

// Helpers of an integration test panic on purpose; fixtures are read directly.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod support;

use support::{copy_fixture, is_root, run, skip, tree};

fn statuses(root: &str) -> BTreeMap<String, String> {
    let out = run(&["doctor", "--root", root, "--json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const TUNABLE: &[&str] = &[
    "mem.swappiness",
    "mem.max_map_count",
    "mem.zone_reclaim",
    "numa.balancing",
    "mem.thp",
    "mem.thp_defrag",
    "cpu.governor",
    "io.readahead",
    "io.scheduler",
];

#[test]
fn apply_then_doctor_passes_then_revert_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_fixture("gpu-server", dir.path())
        .to_str()
        .unwrap()
        .to_owned();
    let before = tree(Path::new(&root));
    let doctor_before = statuses(&root);
    for id in TUNABLE {
        assert_ne!(
            doctor_before[*id], "pass",
            "{id} is planted wrong in the fixture"
        );
    }

    // The dry run changes nothing.
    let plan = run(&["tune", "--root", &root]);
    assert!(plan.status.success());
    let text = String::from_utf8(plan.stdout).unwrap();
    assert!(
        text.contains("set  vm.swappiness              60 → 10"),
        "{text}"
    );
    assert!(
        text.contains("set  governor cpu32-63,96-127   powersave → performance"),
        "{text}"
    );
    assert_eq!(tree(Path::new(&root)), before, "a dry run wrote something");

    let out = run(&["tune", "--root", &root, "--apply"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = statuses(&root);
    for id in TUNABLE {
        // io.scheduler reports a good scheduler as info.
        assert!(
            ["pass", "info"].contains(&after[*id].as_str()),
            "{id} after --apply: {}",
            after[*id]
        );
    }
    let sysctl =
        std::fs::read_to_string(Path::new(&root).join("etc/sysctl.d/90-osml.conf")).unwrap();
    assert!(sysctl.contains("vm.max_map_count = 1048576\n"), "{sysctl}");
    let fstab = std::fs::read_to_string(Path::new(&root).join("etc/fstab")).unwrap();
    assert!(
        fstab.contains("tmpfs /dev/shm tmpfs defaults,size="),
        "{fstab}"
    );
    let journal: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&root).join("var/lib/osml/tune/journal.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(journal["state"], "applied");

    // A second apply changes nothing.
    let applied = tree(Path::new(&root));
    let again = run(&["tune", "--root", &root, "--apply"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to change"));
    assert_eq!(tree(Path::new(&root)), applied);

    // --verify: only /dev/shm differs (a remount needs the live host).
    let v = run(&["tune", "--root", &root, "--verify", "--json"]);
    assert_eq!(v.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    let diffs: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(diffs, ["/dev/shm size"]);

    let out = run(&["tune", "--root", &root, "--revert"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        tree(Path::new(&root)),
        before,
        "revert left the tree different"
    );
    assert_eq!(statuses(&root), doctor_before);
    // Nothing left to revert.
    let out = run(&["tune", "--root", &root, "--revert"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no journal"));
}

#[test]
fn the_dev_vm_capture_round_trips_too() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_fixture("dev-vm", dir.path())
        .to_str()
        .unwrap()
        .to_owned();
    let before = tree(Path::new(&root));
    let out = run(&["tune", "--root", &root, "--apply"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = statuses(&root);
    // No swap in this capture: swappiness does not apply, and tune leaves it alone.
    assert_eq!(
        (
            s["mem.swappiness"].as_str(),
            s["mem.max_map_count"].as_str()
        ),
        ("skip", "pass")
    );
    let out = run(&["tune", "--root", &root, "--revert"]);
    assert!(out.status.success());
    assert_eq!(tree(Path::new(&root)), before);
}

/// Makes `path` unwritable even for root (`chattr +i`), or by mode when not root. Returns
/// false when neither works here (e.g. a filesystem without the immutable flag).
fn lock(path: &Path, on: bool) -> bool {
    if is_root() {
        Command::new("chattr")
            .arg(if on { "+i" } else { "-i" })
            .arg(path)
            .status()
            .is_ok_and(|s| s.success())
    } else {
        let mode = if on { 0o444 } else { 0o644 };
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).is_ok()
    }
}

#[test]
fn a_failed_write_rolls_back_everything_and_the_journal_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_fixture("gpu-server", dir.path())
        .to_str()
        .unwrap()
        .to_owned();
    let before = tree(Path::new(&root));
    // The scheduler of nvme1n1 is written after the sysctls, THP, governors and read-ahead.
    let victim = Path::new(&root).join("sys/block/nvme1n1/queue/scheduler");
    let victim = std::fs::canonicalize(victim).unwrap();
    if !lock(&victim, true) {
        skip(
            "a_failed_write_rolls_back_everything_and_the_journal_says_so",
            "cannot make a file unwritable here (chattr +i refused)",
        );
        return;
    }
    let out = run(&["tune", "--root", &root, "--apply"]);
    lock(&victim, false);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scheduler") && err.contains("rolled back"),
        "{err}"
    );
    // Every value is back; only the journal (and its directories) were added.
    let mut now = tree(Path::new(&root));
    let journal_text = now.remove("var/lib/osml/tune/journal.json").unwrap();
    assert!(now.remove("var/lib/osml/tune").is_some() && now.remove("var/lib/osml").is_some());
    now.remove("var/lib");
    now.remove("var");
    let mut was = before.clone();
    was.remove("var/lib");
    was.remove("var");
    assert_eq!(now, was, "something was left changed after the rollback");
    let journal: Value = serde_json::from_str(journal_text.splitn(3, ' ').nth(2).unwrap()).unwrap();
    assert_eq!(journal["state"], "rolled_back");
    assert!(journal["error"].as_str().unwrap().contains("rolled back"));
    // --revert then removes the journal: the tree is the original again.
    let out = run(&["tune", "--root", &root, "--revert"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree(Path::new(&root)), before);
}

#[test]
fn missing_settings_and_a_pinned_thp_are_skipped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_fixture("gpu-server", dir.path())
        .to_str()
        .unwrap()
        .to_owned();
    std::fs::remove_file(Path::new(&root).join("proc/sys/kernel/numa_balancing")).unwrap();
    let cmdline = Path::new(&root).join("proc/cmdline");
    let old = std::fs::read_to_string(&cmdline).unwrap();
    std::fs::write(
        &cmdline,
        format!("{} transparent_hugepage=always\n", old.trim()),
    )
    .unwrap();
    let out = run(&["tune", "--root", &root, "--json"]);
    assert!(out.status.success());
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let setting = |name: &str| {
        plan["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let nb = setting("kernel.numa_balancing");
    assert_eq!(nb["action"]["action"], "skip");
    assert!(nb["action"]["reason"]
        .as_str()
        .unwrap()
        .contains("this kernel has no /proc/sys/kernel/numa_balancing"));
    let thp = setting("THP enabled");
    assert!(thp["action"]["reason"]
        .as_str()
        .unwrap()
        .contains("pins transparent_hugepage=always"));
    // Minimums are one-way: a max_map_count above target is kept.
    std::fs::write(
        Path::new(&root).join("proc/sys/vm/max_map_count"),
        "4194304\n",
    )
    .unwrap();
    let out = run(&["tune", "--root", &root, "--json"]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = plan["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "vm.max_map_count")
        .unwrap()
        .clone();
    assert_eq!(
        (m["action"]["action"].as_str(), m["target"].as_str()),
        (Some("keep"), Some("4194304"))
    );
}

#[test]
fn usage_errors_exit_2_and_touch_nothing() {
    let out = run(&["tune", "--profile", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown profile nope"));
    let out = run(&["tune", "--root", "/nonexistent/osml", "--apply"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["tune", "--apply", "--revert"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses the pair");
    // Without root, the live host is refused before anything is read or written.
    if is_root() {
        let Some(mut nobody) = support::osml_as_nobody() else {
            skip(
                "usage_errors_exit_2_and_touch_nothing (the non-root case)",
                "no setpriv to drop privileges",
            );
            return;
        };
        let out = nobody.args(["tune", "--apply"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
    } else {
        let out = run(&["tune", "--apply"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
    }
}
