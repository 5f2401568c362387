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

#[test]
fn an_interrupted_bench_leaves_no_scratch_file() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let scratch = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("osml-bench-"))
            .collect::<Vec<_>>()
    };
    for (signal, number) in [("TERM", 15), ("INT", 2)] {
        let mut child = crate::support::osml_process()
            .args(["bench", "--only", "read.warm", "--dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while scratch().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(60), "no scratch file");
            assert!(child.try_wait().unwrap().is_none(), "finished too soon");
            std::thread::sleep(Duration::from_millis(5));
        }
        let status = crate::support::signal_and_wait(&mut child, number);
        assert_eq!(status.signal(), Some(number), "{status:?}");
        assert_eq!(scratch(), Vec::<String>::new(), "SIG{signal} left it");
    }
}
