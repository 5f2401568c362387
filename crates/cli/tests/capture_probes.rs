//! The live-only probes (affinity, `statvfs(/dev/shm)`, `io_uring_setup`, the page size)
//! through captures: `osml doctor --capture` keeps their answers in `/.osml/probes.json`, so a
//! replay judges them as the live run did; a hand-written root answers them from that file.

// Helpers of an integration test panic on purpose; the fixture's files are written directly.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use serde_json::Value;

mod support;

use support::{copy_fixture, doctor_json, osml, skip};

fn finding<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id}"))
}

fn is_live_only(fact: &Value) -> bool {
    fact["kind"] == "live-only"
}

#[test]
fn a_capture_replays_the_live_probes() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("host.tar.gz");
    let out = osml()
        .args(["doctor", "--json", "--capture"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(archive.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    let live: Value = serde_json::from_slice(&out.stdout).unwrap();
    let replay = doctor_json(&archive);

    // The facts themselves: what the live probes answered, found or failed, is what the
    // replay says, and none of it is "measured on the live host only".
    for pointer in [
        "/host/cpu/allowed",
        "/host/shm/size_bytes",
        "/host/shm/used_bytes",
        "/host/kernel/io_uring_setup",
        "/host/memory/page_bytes",
    ] {
        let (a, b) = (&live.pointer(pointer), &replay.pointer(pointer));
        assert_eq!(a, b, "{pointer}");
        assert!(!is_live_only(b.unwrap()), "{pointer}: {b:?}");
    }

    // ipc.shm is judged on the recorded statvfs: same status, same size and use.
    let (a, b) = (finding(&live, "ipc.shm"), finding(&replay, "ipc.shm"));
    assert_ne!(b["status"], "skip", "{b}");
    assert_eq!(a["status"], b["status"]);
    assert_eq!(a["observed"], b["observed"]);
    if live["host"]["shm"]["used_bytes"].is_u64() {
        assert!(
            b["observed"].as_str().unwrap().contains("used"),
            "{}",
            b["observed"]
        );
    }

    // kernel.io_uring: a probe that worked replays as working, not as "not probed".
    let (a, b) = (
        finding(&live, "kernel.io_uring"),
        finding(&replay, "kernel.io_uring"),
    );
    if live["host"]["kernel"]["io_uring_setup"] == true {
        assert_eq!(a["status"], b["status"]);
        assert_eq!(a["observed"], b["observed"]);
        assert!(
            !b["observed"].as_str().unwrap().contains("not probed"),
            "{b}"
        );
    } else {
        // The recorded failure is in the replay's facts (asserted above), but osml-doctor
        // judges a failed probe as a failure only when `host.live`.
        skip(
            "a_capture_replays_the_live_probes (kernel.io_uring)",
            &format!(
                "io_uring_setup fails on this host ({}), and a replay does not judge a failed probe as the live run does",
                live["host"]["kernel"]["io_uring_setup"]
            ),
        );
    }
}

#[test]
fn a_hand_written_root_answers_the_probes_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_fixture("dev-vm", dir.path());
    let before = doctor_json(&root);
    assert!(is_live_only(&before["host"]["shm"]["used_bytes"]));
    assert!(is_live_only(&before["host"]["kernel"]["io_uring_setup"]));
    assert_eq!(before["host"]["memory"]["page_bytes"], 4096);
    // Without the file the affinity is the fixture's /proc/self/status.
    assert_eq!(before["host"]["cpu"]["allowed"], "0-1");

    std::fs::create_dir(root.join(".osml")).unwrap();
    std::fs::write(
        root.join(".osml/probes.json"),
        r#"{
  "schema_version": 1,
  "allowed_cpus": "1",
  "statvfs": {
    "/dev/shm": { "total_bytes": 8589934592, "used_bytes": 7516192768 }
  },
  "io_uring_setup": true,
  "page_size": 65536
}
"#,
    )
    .unwrap();
    let after = doctor_json(&root);
    assert_eq!(after["host"]["cpu"]["allowed"], "1");
    assert_eq!(after["host"]["shm"]["size_bytes"], 8_589_934_592_u64);
    assert_eq!(after["host"]["shm"]["used_bytes"], 7_516_192_768_u64);
    assert_eq!(after["host"]["kernel"]["io_uring_setup"], true);
    assert_eq!(after["host"]["memory"]["page_bytes"], 65536);

    let shm = finding(&after, "ipc.shm");
    assert_eq!(shm["status"], "warn", "{shm}");
    assert_eq!(shm["observed"], "8.0 GiB (7.0 GiB used)");
    let uring = finding(&after, "kernel.io_uring");
    assert_eq!(uring["status"], "pass", "{uring}");
    assert_eq!(
        uring["observed"],
        "io_uring_disabled=0; io_uring_setup works"
    );
}

#[test]
fn a_malformed_probes_file_leaves_the_probes_unknown_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_fixture("dev-vm", dir.path());
    std::fs::create_dir(root.join(".osml")).unwrap();
    std::fs::write(root.join(".osml/probes.json"), "{\"schema_version\": 1,").unwrap();
    let r = doctor_json(&root);
    for fact in [
        &r["host"]["shm"]["used_bytes"],
        &r["host"]["kernel"]["io_uring_setup"],
        &r["host"]["cpu"]["allowed"],
    ] {
        assert_eq!(fact["kind"], "malformed", "{fact}");
        assert!(
            fact["unknown"]
                .as_str()
                .unwrap()
                .contains("/.osml/probes.json"),
            "{fact}"
        );
    }
    // The page size falls back to 4096, as for any root that does not say.
    assert_eq!(r["host"]["memory"]["page_bytes"], 4096);
}
