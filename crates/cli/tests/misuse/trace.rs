//! `osml trace` misused: intervals and durations that never end or make no sense, a watched
//! process that exits early, Ctrl-C, output files under a umask. Time bounds are loose: they
//! tell "woke at the deadline" from "slept a whole interval", not milliseconds.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, run_in};

fn sleeper(seconds: u32) -> Child {
    std::process::Command::new("sleep")
        .arg(seconds.to_string())
        .spawn()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn absurd_intervals_and_durations_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sleeper(30);
    let pid = child.id().to_string();
    for (args, says) in [
        (vec!["--interval", "1000000000y"], "between 10ms and 1h"),
        (vec!["--interval", "1ms"], "between 10ms and 1h"),
        (vec!["--interval", "2h"], "between 10ms and 1h"),
        (vec!["--duration", "8days"], "at most 7days"),
        (
            vec!["--duration", "2s", "--interval", "1h"],
            "shorter than --interval",
        ),
    ] {
        let started = Instant::now();
        let mut all = vec!["trace", "--pid", &pid];
        all.extend(&args);
        let out = run_in(dir.path(), &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?} ran");
    }
    // The same limits for a command.
    let out = run_in(
        dir.path(),
        &["trace", "--interval", "1000000000y", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_pid_trace_ends_at_its_deadline_not_an_interval_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sleeper(60);
    let pid = child.id().to_string();
    let started = Instant::now();
    // Samples at 0 s and 4 s; the deadline is at 5 s. Sleeping whole intervals ends at 8 s.
    let out = run_in(
        dir.path(),
        &[
            "trace",
            "--pid",
            &pid,
            "--duration",
            "5s",
            "--interval",
            "4s",
        ],
    );
    let took = started.elapsed();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_secs(7),
        "took {took:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("osml trace: "));
}

#[test]
fn a_pid_trace_ends_when_the_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sleeper(3);
    let pid = child.id().to_string();
    let reaper = std::thread::spawn(move || child.wait().unwrap());
    let started = Instant::now();
    let out = run_in(
        dir.path(),
        &[
            "trace",
            "--pid",
            &pid,
            "--duration",
            "30s",
            "--interval",
            "30s",
        ],
    );
    let took = started.elapsed();
    reaper.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        took < Duration::from_secs(15),
        "took {took:?} for a 3 s process"
    );
}

#[test]
fn ctrl_c_ends_a_pid_trace_with_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sleeper(60);
    let pid = child.id().to_string();
    let trace = support::osml_process()
        .current_dir(dir.path())
        .args([
            "trace",
            "--pid",
            &pid,
            "--duration",
            "60s",
            "--interval",
            "1s",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &trace.id().to_string()])
        .status()
        .unwrap();
    let out = trace.wait_with_output().unwrap();
    let took = started.elapsed();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(took < Duration::from_secs(10), "took {took:?} after SIGINT");
    assert!(String::from_utf8_lossy(&out.stderr).contains("osml trace: "));
}

#[test]
fn trace_files_follow_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let bin = support::bin();
    let out = std::process::Command::new("sh")
        .current_dir(dir.path())
        .arg("-c")
        .arg(format!(
            "umask 022; exec '{}' trace --json t.json --plot t.svg -- true",
            bin.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for f in ["t.json", "t.svg"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{f}: {mode:o}");
    }
}
