//! `osml trace` and `osml mem` on real processes: copy-on-read in forked workers measured
//! against the workers' own `smaps_rollup`, exact syscall counts, processes that vanish,
//! attaching to a pid, exit statuses, the JSON shape and the plot.

// Helpers of an integration test panic on purpose; fixtures are read directly.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::process::{Command, Output};

use serde_json::Value;

mod support;

use support::{python3, run, skip};

fn traced(args: &[&str]) -> (Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("trace.json");
    let mut all = vec!["trace", "--json", json.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run(&all);
    let report = serde_json::from_str(
        &std::fs::read_to_string(&json)
            .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&out.stderr))),
    )
    .unwrap();
    (out, report)
}

#[test]
fn copy_on_read_is_found_and_measured_like_smaps_rollup() {
    let Some(py) = python3() else {
        skip(
            "copy_on_read_is_found_and_measured_like_smaps_rollup",
            "no python3",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("workers.txt");
    let (out, r) = traced(&[
        "--interval",
        "100ms",
        "--",
        &py,
        "tests/trace/cow_workers.py",
        own.to_str().unwrap(),
        "2",
        "3000000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = std::fs::read_to_string(&own).unwrap();
    let mut checked = 0;
    for line in lines.lines() {
        let v: Vec<i64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let (pid, growth) = (v[0], v[2] - v[1]);
        assert!(
            growth > 32 << 20,
            "the workload copies too little: {growth}"
        );
        let p = r["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"].as_i64() == Some(pid))
            .unwrap_or_else(|| panic!("worker {pid} was not traced"));
        let ours = p["pss_growth_bytes"].as_i64().unwrap();
        let err = (ours - growth).abs() as f64 / growth as f64;
        assert!(
            err < 0.10,
            "worker {pid}: osml {ours} vs smaps_rollup {growth} ({:.1}%)",
            err * 100.0
        );
        let f = r["findings"].as_array().unwrap().iter().find(|f| {
            f["id"] == "mem.copy_on_read"
                && f["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("worker {pid} "))
        });
        assert!(
            f.is_some(),
            "no copy-on-read finding for {pid}: {}",
            r["findings"]
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
    // The documented JSON shape.
    for p in r["processes"].as_array().unwrap() {
        for k in [
            "pid",
            "cmd",
            "peak_rss_bytes",
            "pss_growth_bytes",
            "minor_faults",
            "major_faults",
        ] {
            assert!(!p[k].is_null(), "process without {k}");
        }
    }
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("mem.copy_on_read"), "{summary}");
}

fn getppid_calls(py: &str, n: u32) -> u64 {
    let code = format!("import os\nfor _ in range({n}): os.getppid()\n");
    let (out, r) = traced(&["--syscalls", "--", py, "-c", &code]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r["syscalls"]["getppid"].as_u64().unwrap_or(0)
}

#[test]
fn syscalls_are_counted_exactly() {
    let Some(py) = python3() else {
        skip("syscalls_are_counted_exactly", "no python3");
        return;
    };
    if std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").is_ok_and(|s| s.trim() == "3")
    {
        skip(
            "syscalls_are_counted_exactly",
            "ptrace is disabled (kernel.yama.ptrace_scope = 3)",
        );
        return;
    }
    // Python's start-up makes its own calls: the difference is exactly ours.
    let base = getppid_calls(&py, 0);
    let with = getppid_calls(&py, 5000);
    assert_eq!(with - base, 5000);
    // In a child too (-f): a shell running a loop of a child process.
    let (out, r) = traced(&[
        "--syscalls",
        "--",
        "sh",
        "-c",
        "/bin/true; /bin/true; exit 0",
    ]);
    assert!(out.status.success());
    let execs = r["syscalls"]["execve"].as_u64().unwrap();
    assert_eq!(execs, 3, "sh and two /bin/true: {}", r["syscalls"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("system calls:"));
}

#[test]
fn children_that_vanish_never_crash_the_tracer() {
    let (out, r) = traced(&[
        "--interval",
        "10ms",
        "--",
        "sh",
        "-c",
        "for i in $(seq 300); do /bin/true & done; wait; exit 0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(r["totals"]["processes"].as_u64().unwrap() >= 1);
    // With syscalls as well: tracees that exit inside exit_group.
    let (out, _) = traced(&[
        "--syscalls",
        "--interval",
        "10ms",
        "--",
        "sh",
        "-c",
        "for i in $(seq 50); do /bin/true & done; wait",
    ]);
    assert!(out.status.success());
}

#[test]
fn exit_status_plot_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("t.svg");
    let out = run(&[
        "trace",
        "--plot",
        svg.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "sleep 0.3; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "the command's exit status");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg")
            && text.contains("<polyline")
            && text.trim_end().ends_with("</svg>")
    );
    let out = run(&["trace", "--", "/nonexistent/osml-cmd"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run /nonexistent/osml-cmd"));
    let out = run(&["trace", "--pid", "2147483646"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["trace"]);
    assert_eq!(out.status.code(), Some(2), "neither a command nor --pid");
}

#[test]
fn attaches_to_a_running_process() {
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    let pid = child.id().to_string();
    let (out, r) = traced(&["--pid", &pid, "--duration", "400ms", "--interval", "50ms"]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = &r["processes"][0];
    assert_eq!(p["pid"].to_string(), pid);
    assert!(p["samples"].as_u64().unwrap() >= 3);
    assert!(p["cmd"].as_str().unwrap().starts_with("sleep"));
}

#[test]
fn mem_explains_a_process() {
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    let pid = child.id().to_string();
    let out = run(&["mem", &pid, "--json"]);
    let human = run(&["mem", &pid]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["total"]["rss_bytes"].as_u64().unwrap() > 0);
    for g in ["heap", "stack", "file"] {
        assert!(
            r["groups"][g]["regions"].as_u64().unwrap_or(0) > 0,
            "no {g}: {}",
            r["groups"]
        );
    }
    let files = r["files"].as_array().unwrap();
    assert!(files
        .iter()
        .any(|f| f["kind"] == "executable" && f["path"].as_str().unwrap().ends_with("sleep")));
    assert!(r["oom_explained"].as_str().unwrap().contains("per mille"));
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(
        text.contains("files by RSS") && text.contains("OOM:"),
        "{text}"
    );
    let out = run(&["mem", "2147483646"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process 2147483646"));
}
