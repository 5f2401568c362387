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

fn getppid_calls(py: &str, n: u32, mode: &str) -> u64 {
    let code = format!("import os\nfor _ in range({n}): os.getppid()\n");
    let (out, r) = traced(&[mode, "--", py, "-c", &code]);
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
    let mut modes = vec!["--syscalls=ptrace"];
    if kernel_counting("syscalls_are_counted_exactly") {
        modes.push("--syscalls=perf");
    }
    if bpf_counting("syscalls_are_counted_exactly") {
        modes.push("--syscalls=bpf");
    }
    for mode in modes {
        // Python's start-up makes its own calls: the difference is exactly ours.
        let base = getppid_calls(&py, 0, mode);
        let with = getppid_calls(&py, 5000, mode);
        assert_eq!(with - base, 5000, "{mode}");
        // In a child too (-f): a shell running a loop of a child process.
        let (out, r) = traced(&[mode, "--", "sh", "-c", "/bin/true; /bin/true; exit 0"]);
        assert!(out.status.success());
        let execs = r["syscalls"]["execve"].as_u64().unwrap();
        assert_eq!(execs, 3, "{mode}: sh and two /bin/true: {}", r["syscalls"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("system calls:"));
    }
}

/// Whether kernel counters can be opened here (tracefs mounted, root or a permissive
/// `perf_event_paranoid`); a visible skip of `test` when not.
fn kernel_counting(test: &str) -> bool {
    if !support::ensure_tracefs() {
        skip(test, "no tracefs: kernel counting not tested");
        return false;
    }
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(2);
    if !support::is_root() && paranoid > 1 {
        skip(
            test,
            "not root and perf_event_paranoid > 1: kernel counting not tested",
        );
        return false;
    }
    true
}

/// Whether BPF programs can be loaded here (root, and tracefs for the fork tracepoint); a
/// visible skip of `test` when not.
fn bpf_counting(test: &str) -> bool {
    if !support::ensure_tracefs() {
        skip(test, "no tracefs: BPF counting not tested");
        return false;
    }
    if !support::is_root() {
        skip(test, "not root: BPF counting not tested");
        return false;
    }
    true
}

/// The kernel counting modes this machine can test, each one's skip said when it cannot.
fn kernel_modes(test: &str) -> Vec<&'static str> {
    let mut modes = Vec::new();
    if kernel_counting(test) {
        modes.push("perf");
    }
    if bpf_counting(test) {
        modes.push("bpf");
    }
    modes
}

/// tests/trace/calls.c built into `dir`, or a visible skip of `test` without a C compiler.
fn calls_program(test: &str, dir: &std::path::Path) -> Option<String> {
    let exe = dir.join("calls");
    let src = support::repo().join("tests/trace/calls.c");
    match Command::new("cc")
        .args(["-O1", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
    {
        Ok(s) if s.success() => Some(exe.to_str().unwrap().to_owned()),
        other => {
            skip(
                test,
                &format!("cannot build tests/trace/calls.c with cc: {other:?}"),
            );
            None
        }
    }
}

/// Every call the report counted, by name summed.
fn total_calls(r: &Value) -> u64 {
    r["syscalls"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

/// Calls of kernel counting in no process's figure.
fn unattributed_calls(r: &Value) -> u64 {
    r["syscall_counting"]["coverage"]["unattributed"]
        .as_u64()
        .unwrap()
}

fn count(r: &Value, name: &str) -> u64 {
    r["syscalls"][name].as_u64().unwrap_or(0)
}

#[test]
fn kernel_counts_are_exact_for_the_command_its_threads_and_children() {
    const TEST: &str = "kernel_counts_are_exact_for_the_command_its_threads_and_children";
    let dir = tempfile::tempdir().unwrap();
    let Some(calls) = calls_program(TEST, dir.path()) else {
        return;
    };
    for mode in kernel_modes(TEST) {
        exact_counts(mode, &calls);
    }
}

fn exact_counts(mode: &str, calls: &str) {
    let flag = format!("--syscalls={mode}");
    let run_calls = |args: &[&str]| {
        let mut all = vec![flag.as_str(), "--interval", "50ms", "--", calls];
        all.extend_from_slice(args);
        let (out, r) = traced(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            r["syscall_counting"]["mechanism"], mode,
            "{}",
            r["syscall_counting"]
        );
        assert_eq!(r["syscall_counting"]["times_measured"], false);
        r
    };
    let base = run_calls(&["getppid", "0"]);
    let r = run_calls(&["getppid", "100000"]);
    assert_eq!(count(&r, "getppid") - count(&base, "getppid"), 100_000);
    let base = run_calls(&["openat", "0"]);
    let r = run_calls(&["openat", "1000"]);
    assert_eq!(count(&r, "openat") - count(&base, "openat"), 1000);
    assert_eq!(count(&r, "close") - count(&base, "close"), 1000);
    // A thread's calls join its process's.
    // The common set: openat still exact, getppid (not in it) among `other`.
    let (out, r) = traced(&[
        &flag,
        "--syscall-names",
        "common",
        "--",
        calls,
        "openat",
        "1000",
    ]);
    assert!(out.status.success());
    assert_eq!(count(&r, "openat") - count(&base, "openat"), 1000);
    assert_eq!(r["syscall_counting"]["coverage"]["counted_by_name"], 32);
    assert!(
        r["syscalls"]["getppid"].is_null() && count(&r, "other") > 0,
        "{}",
        r["syscalls"]
    );
    // A thread's calls join the totals; a thread too short-lived for the sampler to see is in
    // no process's figure, and the report says how many calls that leaves out.
    let r = run_calls(&["thread", "4321"]);
    assert_eq!(count(&r, "getppid"), 4321);
    let (total, unattributed) = (total_calls(&r), unattributed_calls(&r));
    assert_eq!(
        r["processes"][0]["syscalls"].as_u64().unwrap() + unattributed,
        total,
        "{}",
        r["syscall_counting"]
    );
    // A forked child is counted apart from its parent.
    let r = run_calls(&["fork", "20000"]);
    assert_eq!(count(&r, "getppid"), 20_000, "{mode}");
    let procs = r["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 2, "{procs:?}");
    let (parent, child) = if procs[1]["ppid"] == procs[0]["pid"] {
        (&procs[0], &procs[1])
    } else {
        (&procs[1], &procs[0])
    };
    assert_eq!(child["ppid"], parent["pid"]);
    let (p, c) = (
        parent["syscalls"].as_u64().unwrap(),
        child["syscalls"].as_u64().unwrap(),
    );
    assert!((20_000..20_100).contains(&c), "the child's calls: {c}");
    assert!(p < 1_000, "the parent's calls: {p}");
    let (total, unattributed) = (total_calls(&r), unattributed_calls(&r));
    assert_eq!(
        p + c + unattributed,
        total,
        "every call is attributed or reported"
    );
}

#[test]
fn kernel_counts_of_a_running_process_are_exact() {
    const TEST: &str = "kernel_counts_of_a_running_process_are_exact";
    let dir = tempfile::tempdir().unwrap();
    let Some(calls) = calls_program(TEST, dir.path()) else {
        return;
    };
    for mode in kernel_modes(TEST) {
        let go = dir.path().join(format!("go-{mode}"));
        let mut job = Command::new(&calls)
            .args(["wait", go.to_str().unwrap(), "30000"])
            .spawn()
            .unwrap();
        let json = dir.path().join(format!("t-{mode}.json"));
        let trace = support::osml_process()
            .args([
                "trace",
                &format!("--syscalls={mode}"),
                "--interval",
                "50ms",
                "--json",
            ])
            .arg(&json)
            .args(["--pid", &job.id().to_string()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_attached(mode, trace.id());
        std::fs::write(&go, "").unwrap();
        assert!(job.wait().unwrap().success());
        let out = trace.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(r["syscall_counting"]["mechanism"], mode);
        assert_eq!(
            r["syscall_counting"]["coverage"]["tasks"], 1,
            "{} {}",
            r["syscall_counting"], r["syscalls"]
        );
        assert_eq!(count(&r, "getppid"), 30_000, "{mode}: {}", r["syscalls"]);
    }
}

/// Waits until the tracer `pid` counts in `mode`: for perf, once it holds nearly all its
/// counters (one descriptor per system call with a tracepoint, and the thread's own figure,
/// beside its three standard streams); for BPF, once it holds its maps, programs and their
/// attachments (two maps, two programs, the raw tracepoint and the fork event: six
/// descriptors), which it opens before it reads the tree.
fn wait_attached(mode: &str, pid: u32) {
    let wanted = if mode == "perf" {
        std::fs::read_dir("/sys/kernel/tracing/events/syscalls")
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("sys_enter_")
            })
            .count()
            + 5
    } else {
        3 + 6
    };
    let fds = format!("/proc/{pid}/fd");
    let t0 = std::time::Instant::now();
    while std::fs::read_dir(&fds).map_or(0, Iterator::count) < wanted {
        assert!(
            t0.elapsed().as_secs() < 30,
            "the tracer never opened its counters"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The last descriptors (perf: the thread's own counter; BPF: the processes added to the
    // set) come right after these: give it a moment, or the job may end before the tracer
    // holds it.
    std::thread::sleep(std::time::Duration::from_millis(300));
}

#[test]
fn auto_counts_with_bpf_where_it_can() {
    const TEST: &str = "auto_counts_with_bpf_where_it_can";
    if !bpf_counting(TEST) {
        return;
    }
    let (out, r) = traced(&["--syscalls", "--", "sh", "-c", "/bin/true; exit 0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        r["syscall_counting"]["mechanism"], "bpf",
        "{}",
        r["syscall_counting"]
    );
    assert_eq!(r["syscall_counting"]["coverage"]["unattributed"], 0);
    // sh and the /bin/true it starts, each exec counted once, each process apart.
    assert_eq!(count(&r, "execve"), 2, "{}", r["syscalls"]);
    assert!(err.contains("counted in the kernel with BPF"), "{err}");
}

/// Runs `osml trace` as `nobody` with `perf_event_paranoid` at 2 (restored after).
fn as_nobody(args: &[&str], dir: &std::path::Path) -> (Output, Option<Value>) {
    let json = dir.join("t.json");
    let out = support::osml_as_nobody()
        .expect("checked by the caller")
        .args(["trace", "--json"])
        .arg(&json)
        .args(args)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&json)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (out, report)
}

#[test]
fn auto_falls_back_to_ptrace_where_the_kernel_refuses_and_says_so() {
    const TEST: &str = "auto_falls_back_to_ptrace_where_the_kernel_refuses_and_says_so";
    if !support::is_root() {
        return skip(TEST, "needs root to run the tracer as another user");
    }
    if support::osml_as_nobody().is_none() {
        return skip(TEST, "no setpriv (util-linux)");
    }
    let path = "/proc/sys/kernel/perf_event_paranoid";
    let before = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, "2").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let auto = as_nobody(&["--syscalls", "--", "/bin/true"], dir.path());
    std::fs::remove_file(dir.path().join("t.json")).ok();
    let perf = as_nobody(&["--syscalls=perf", "--", "/bin/true"], dir.path());
    std::fs::remove_file(dir.path().join("t.json")).ok();
    let bpf = as_nobody(&["--syscalls=bpf", "--", "/bin/true"], dir.path());
    std::fs::write(path, before).unwrap();
    let (out, r) = auto;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let r = r.unwrap();
    assert_eq!(
        r["syscall_counting"]["mechanism"], "ptrace",
        "{}",
        r["syscall_counting"]
    );
    assert_eq!(r["syscall_counting"]["fell_back"], true);
    assert!(
        err.contains("warning: system calls counted with ptrace")
            && err.contains("orders of magnitude"),
        "{err}"
    );
    assert!(count(&r, "execve") == 1);
    let (out, r) = perf;
    assert_eq!(out.status.code(), Some(2));
    assert!(r.is_none(), "no report when counting is impossible");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot count system calls in the kernel"),
        "{err}"
    );
    // BPF asked for and refused: the same error, naming what BPF needs.
    let (out, r) = bpf;
    assert_eq!(out.status.code(), Some(2));
    assert!(r.is_none(), "no report when counting is impossible");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot count system calls in the kernel")
            && err.contains("BPF needs root, or CAP_BPF and CAP_PERFMON"),
        "{err}"
    );
}

#[test]
fn ptrace_counts_agree_with_strace_after_interrupted_calls() {
    const TEST: &str = "ptrace_counts_agree_with_strace_after_interrupted_calls";
    let dir = tempfile::tempdir().unwrap();
    let Some(calls) = calls_program(TEST, dir.path()) else {
        return;
    };
    let out_file = dir.path().join("strace.txt");
    match Command::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(&out_file)
        .args([&calls, "signal"])
        .status()
    {
        Ok(s) if s.success() => {}
        other => return skip(TEST, &format!("strace unavailable or refused: {other:?}")),
    }
    let (out, r) = traced(&["--syscalls=ptrace", "--", &calls, "signal"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    let mut strace = std::collections::BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if f.len() >= 5 && f[0].parse::<f64>().is_ok() && *f.last().unwrap() != "total" {
            strace.insert(f.last().unwrap().to_string(), f[3].parse::<u64>().unwrap());
        }
    }
    // Two reads interrupted by the alarm, each followed by the handler's return.
    assert_eq!(strace.get("rt_sigreturn"), Some(&2), "{text}");
    assert!(strace.get("read").is_some_and(|&n| n >= 3), "{text}");
    for (name, n) in &strace {
        assert_eq!(
            count(&r, name),
            *n,
            "{name}: osml {} vs strace {n}",
            r["syscalls"]
        );
    }
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
    // ptrace counting needs a command it starts: refused before anything runs.
    let me = std::process::id().to_string();
    let out = run(&["trace", "--syscalls=ptrace", "--pid", &me]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--syscalls=ptrace needs a command") && err.contains("--syscalls=perf"),
        "{err}"
    );
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
    // Read once `sleep` runs: right after the spawn it may still be the test's image or
    // without its heap.
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains("[heap]"))
        && t0.elapsed().as_secs() < 5
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
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
