//! `osml bench` misused: a scratch directory on tmpfs, where "disk" figures are RAM figures.

#![allow(clippy::unwrap_used)]

use serde_json::Value;

use crate::support;

fn bench(dir: &std::path::Path, json: bool) -> std::process::Output {
    let mut c = support::osml();
    c.args(["bench", "--quick", "--only", "read.warm", "--dir"])
        .arg(dir);
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

#[test]
fn a_tmpfs_dir_is_warned_about_in_human_and_json_output() {
    // /dev/shm is tmpfs on Linux.
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let out = bench(shm.path(), false);
    assert!(out.status.success());
    let human = String::from_utf8(out.stdout).unwrap();
    assert!(
        human.contains("warning: ") && human.contains("is on tmpfs"),
        "{human}"
    );
    let out = bench(shm.path(), true);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["warnings"][0].as_str().unwrap().contains("tmpfs"), "{v}");
    assert_eq!(v["sizes"]["file"], 32 << 20);
    assert_eq!(
        v["results"][0]["what"],
        "read() of a cached 32 MiB file in 1 MiB blocks"
    );
}
