//! Closed pipes: `osml … | head -1` closes stdout early, `2>&1 | head` closes stderr too. No
//! command may panic (exit 101) or report the closed pipe as an error: exit 0, as a program
//! killed by SIGPIPE would have said nothing.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

use crate::support::osml_process;

/// Every command that writes to stdout, with arguments that make it succeed on a fixture host
/// or a small dataset in `dir`.
fn commands(dir: &Path) -> Vec<Vec<String>> {
    let d = |name: &str| dir.join(name).display().to_string();
    let mut v: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["doctor", "--root", "tests/fixtures/gpu-server", "--verbose"],
        vec!["doctor", "--root", "tests/fixtures/gpu-server", "--json"],
        vec!["doctor", "--list"],
        vec!["topo", "--root", "tests/fixtures/gpu-server"],
        vec!["topo", "--root", "tests/fixtures/gpu-server", "--json"],
        vec![
            "affinity",
            "--root",
            "tests/fixtures/gpu-server",
            "--nproc-per-node",
            "8",
        ],
    ];
    let owned: Vec<Vec<String>> = vec![
        vec!["doctor".into(), "compare".into(), d("a.json"), d("b.json")],
        vec![
            "doctor".into(),
            "compare".into(),
            "--json".into(),
            d("a.json"),
            d("b.json"),
        ],
        vec!["data".into(), "inspect".into(), d("corpus")],
        vec![
            "data".into(),
            "inspect".into(),
            "--json".into(),
            d("corpus"),
        ],
        vec!["data".into(), "verify".into(), d("corpus")],
        vec![
            "data".into(),
            "show".into(),
            d("corpus"),
            "--count".into(),
            "50".into(),
        ],
        vec![
            "data".into(),
            "pack".into(),
            d("corpus.jsonl"),
            "-o".into(),
            d("again"),
        ],
        vec!["tune".into(), "--root".into(), d("tune-root")],
        vec![
            "tune".into(),
            "--root".into(),
            d("tune-root"),
            "--json".into(),
        ],
        vec!["trace".into(), "--".into(), "true".into()],
        vec!["mem".into(), std::process::id().to_string()],
        vec![
            "mem".into(),
            "--json".into(),
            std::process::id().to_string(),
        ],
    ];
    let mut all: Vec<Vec<String>> = v
        .drain(..)
        .map(|c| c.into_iter().map(str::to_owned).collect())
        .collect();
    all.extend(owned);
    all
}

/// A dataset, two doctor reports and a tune root in `dir`.
fn setup(dir: &Path) {
    let mut lines = String::new();
    for i in 0..2000 {
        writeln!(
            lines,
            "{{\"text\": \"document {i} says hello to the loader\"}}"
        )
        .unwrap();
    }
    std::fs::write(dir.join("corpus.jsonl"), lines).unwrap();
    let st = osml_process()
        .args(["data", "pack"])
        .arg(dir.join("corpus.jsonl"))
        .arg("-o")
        .arg(dir.join("corpus"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    for (name, root) in [("a.json", "gpu-server"), ("b.json", "dev-vm")] {
        let out = osml_process()
            .args(["doctor", "--json", "--root"])
            .arg(format!("tests/fixtures/{root}"))
            .output()
            .unwrap();
        std::fs::write(dir.join(name), out.stdout).unwrap();
    }
    let tune = dir.join("tune-root");
    for (path, value) in [
        ("proc/sys/vm/swappiness", "60\n"),
        ("proc/sys/vm/max_map_count", "65530\n"),
    ] {
        std::fs::create_dir_all(tune.join(path).parent().unwrap()).unwrap();
        std::fs::write(tune.join(path), value).unwrap();
    }
}

fn shown(args: &[String]) -> String {
    format!("osml {}", args.join(" "))
}

#[test]
fn a_closed_stdout_ends_every_command_with_0() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    for args in commands(dir.path()) {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = osml_process()
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.to_lowercase().contains("broken pipe"),
            "{}: {stderr}",
            shown(&args)
        );
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", shown(&args));
    }
}

#[test]
fn closed_stdout_and_stderr_end_every_command_with_0() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    for args in commands(dir.path()) {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let status = osml_process()
            .args(&args)
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{} 2>&1 | (closed)", shown(&args));
    }
}

#[test]
fn errors_keep_their_code_when_stderr_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    for (args, code) in [
        (vec!["data", "inspect", "/nonexistent/osml.bin"], 3),
        (vec!["doctor", "--profile", "no-such-profile"], 2),
        (
            vec!["run", "--bind", "cpus:0", "--", "/nonexistent/osml"],
            127,
        ),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let status = osml_process()
            .current_dir(dir.path())
            .args(&args)
            .stderr(writer)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code), "osml {}", args.join(" "));
    }
}
