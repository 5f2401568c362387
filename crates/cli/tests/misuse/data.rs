//! `osml data …` misused: FIFOs where files belong, corrupt gzip, signals mid-pack, umasks,
//! ids that do not fit, checksums, outputs in directories that do not exist.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::str::contains;

use crate::support::{self, mkfifo};

/// `osml` in `dir`, killed after a minute: a hang fails its test instead of stalling the suite.
fn osml(dir: &Path) -> Command {
    let mut c = support::osml_in(dir);
    c.timeout(Duration::from_secs(60));
    c
}

fn corpus(path: &Path, docs: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..docs {
        writeln!(
            f,
            "{{\"text\": \"document {i}: {}\"}}",
            "the quick brown fox jumps over the lazy dog ".repeat(1 + i % 7)
        )
        .unwrap();
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".osml-"))
        .collect()
}

#[test]
fn fifos_are_refused_at_once_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    mkfifo(&d.join("fifo.bin"));
    let t = Instant::now();
    osml(d)
        .args(["data", "inspect", "fifo.bin"])
        .assert()
        .code(3)
        .stderr(contains(
            "a FIFO (named pipe) where a regular file is expected",
        ))
        .stderr(contains("hint: give a regular file"));
    // A Megatron prefix whose .idx is a FIFO.
    corpus(&d.join("in.jsonl"), 10);
    osml(d)
        .args(["data", "pack", "in.jsonl", "-o", "m"])
        .assert()
        .success();
    std::fs::remove_file(d.join("m.idx")).unwrap();
    mkfifo(&d.join("m.idx"));
    osml(d)
        .args(["data", "verify", "m"])
        .assert()
        .code(3)
        .stderr(contains("m.idx"))
        .stderr(contains("FIFO"));
    // A pack input that is a FIFO: refused before any output is made.
    mkfifo(&d.join("pipe.jsonl"));
    osml(d)
        .args(["data", "pack", "pipe.jsonl", "-o", "p"])
        .assert()
        .code(3)
        .stderr(contains("pipe.jsonl"))
        .stderr(contains("FIFO"));
    assert!(!d.join("p.bin").exists());
    // A character device is refused the same way (it would be read forever).
    osml(d)
        .args(["data", "inspect", "/dev/zero", "--format", "bin"])
        .assert()
        .code(3)
        .stderr(contains("a character device"));
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
}

fn gzip(path: &Path, text: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text).unwrap();
    let bytes = gz.finish().unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn corrupt_or_truncated_gzip_is_invalid_input_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(&d.join("in.jsonl"), 2000);
    let plain = std::fs::read(d.join("in.jsonl")).unwrap();
    let bytes = gzip(&d.join("ok.jsonl.gz"), &plain);
    std::fs::write(d.join("cut.jsonl.gz"), &bytes[..bytes.len() / 2]).unwrap();
    osml(d)
        .args(["data", "pack", "cut.jsonl.gz", "-o", "o"])
        .assert()
        .code(1)
        .stderr(contains("cut.jsonl.gz:"))
        .stderr(contains("truncated gzip data"));
    let mut bad = bytes.clone();
    for b in &mut bad[bytes.len() / 3..bytes.len() / 3 + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(d.join("bad.jsonl.gz"), &bad).unwrap();
    osml(d)
        .args(["data", "pack", "bad.jsonl.gz", "-o", "o"])
        .assert()
        .code(1)
        .stderr(contains("bad.jsonl.gz:"))
        .stderr(contains("gzip data"))
        .stderr(contains("compressed bytes"));
    assert!(leftovers(d).is_empty());
}

/// Starts a pack of a corpus big enough to be mid-write when `signal` arrives, and checks the
/// process ends by that signal (or exits 128 + n) leaving no temporary file.
fn interrupted_pack(signal: i32, name: &str) {
    interrupted_pack_with(signal, name, &[], None);
}

/// As [`interrupted_pack`], with more flags, and once `first` (a finished file) exists.
fn interrupted_pack_with(signal: i32, name: &str, extra: &[&str], first: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(&d.join("big.jsonl"), 400_000);
    let mut child = support::osml_process()
        .current_dir(d)
        .args(["data", "pack", "big.jsonl", "-o", "out", "--workers", "1"])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while leftovers(d).is_empty() || first.is_some_and(|f| !d.join(f).exists()) {
        assert!(Instant::now() < deadline, "no temporary file appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "pack ended before the {name}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = crate::support::signal_and_wait(&mut child, signal);
    assert!(
        status.signal() == Some(signal) || status.code() == Some(128 + signal),
        "{name}: {status:?}"
    );
    assert_eq!(
        leftovers(d),
        Vec::<String>::new(),
        "{name} left a temporary file"
    );
    assert!(!d.join("out.bin").exists() && !d.join("out.idx").exists());
}

#[test]
fn sigint_mid_pack_leaves_nothing() {
    interrupted_pack(2, "SIGINT");
}

#[test]
fn sigint_mid_sharded_pack_leaves_no_temporary_file() {
    interrupted_pack_with(
        2,
        "SIGINT",
        &["--format", "llmc", "--shard-tokens", "100000"],
        Some("out_000000.bin"),
    );
}

#[test]
fn sigterm_mid_pack_leaves_nothing() {
    interrupted_pack(15, "SIGTERM");
}

#[test]
fn sighup_mid_pack_leaves_nothing() {
    interrupted_pack(1, "SIGHUP");
}

#[test]
fn packed_datasets_follow_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(&d.join("in.jsonl"), 10);
    let bin = support::bin();
    for (umask, want) in [("022", 0o644), ("077", 0o600)] {
        for format in ["megatron", "bin"] {
            let out = format!("u{umask}{format}");
            let ok = std::process::Command::new("sh")
                .current_dir(d)
                .arg("-c")
                .arg(format!(
                    "umask {umask} && exec \"$0\" data pack in.jsonl -o {out} --format {format}"
                ))
                .arg(&bin)
                .status()
                .unwrap()
                .success();
            assert!(ok);
            let mut files = vec![format!("{out}.bin")];
            if format == "megatron" {
                files.push(format!("{out}.idx"));
            }
            for f in files {
                let mode = std::fs::metadata(d.join(&f)).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, want, "{f} under umask {umask}: {mode:o}");
            }
        }
    }
}

/// A 1-D uint64 `.npy` as numpy writes it.
fn npy_u64(path: &Path, values: &[u64]) {
    let dict = format!(
        "{{'descr': '<u8', 'fortran_order': False, 'shape': ({},), }}",
        values.len()
    );
    let pad = (10 + dict.len() + 1).next_multiple_of(64) - (10 + dict.len() + 1);
    let header = format!("{dict}{}\n", " ".repeat(pad));
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    for v in values {
        b.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn uint64_ids_past_int64_are_refused_with_their_offset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    npy_u64(&d.join("big.npy"), &[1, 2, 1 << 63, 3]);
    for cmd in ["show", "verify"] {
        osml(d)
            .args(["data", cmd, "big.npy"])
            .assert()
            .code(1)
            .stderr(contains("big.npy"))
            .stderr(contains("token 2 of the stream"))
            .stderr(contains("9223372036854775808"));
    }
    npy_u64(&d.join("fine.npy"), &[1, 2, (1 << 63) - 1]);
    osml(d)
        .args(["data", "show", "fine.npy"])
        .assert()
        .success()
        .stdout("[1,2,9223372036854775807]\n");
}

#[test]
fn verify_says_what_it_checks_and_compares_a_given_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(&d.join("in.jsonl"), 50);
    osml(d)
        .args(["data", "pack", "in.jsonl", "-o", "c"])
        .assert()
        .success();
    let out = osml(d)
        .args(["data", "verify", "c", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sum = v["checksum"].as_str().unwrap().to_owned();
    assert_eq!(sum.len(), 16);
    assert!(v["checked"].as_array().unwrap().len() >= 5);
    osml(d)
        .args(["data", "verify", "c", "--expect-checksum", &sum])
        .assert()
        .success()
        .stdout(contains(format!("checksum {sum}")));
    // A flipped byte that is still a valid id: the structure holds, the checksum does not.
    let mut bin = std::fs::read(d.join("c.bin")).unwrap();
    bin[10] ^= 1;
    std::fs::write(d.join("c.bin"), &bin).unwrap();
    osml(d).args(["data", "verify", "c"]).assert().success();
    osml(d)
        .args(["data", "verify", "c", "--expect-checksum", &sum])
        .assert()
        .code(1)
        .stdout(contains("checksum differs"));
    osml(d)
        .args(["data", "verify", "c", "--expect-checksum", "xyz"])
        .assert()
        .code(2)
        .stderr(contains("not a checksum"));
}

#[test]
fn show_json_is_one_versioned_document() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(&d.join("in.jsonl"), 5);
    osml(d)
        .args(["data", "pack", "in.jsonl", "-o", "c"])
        .assert()
        .success();
    let lines = osml(d).args(["data", "show", "c"]).output().unwrap();
    let out = osml(d)
        .args(["data", "show", "c", "--json", "--from", "1", "--count", "2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["format"], "megatron");
    let docs = v["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 2);
    let second: serde_json::Value = serde_json::from_str(
        String::from_utf8(lines.stdout)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(docs[0], second);
}

#[test]
fn a_missing_output_directory_gets_a_hint_about_the_directory_and_one_cause() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(&d.join("in.jsonl"), 5);
    let out = osml(d)
        .args(["data", "pack", "in.jsonl", "-o", "/nonexistent/dir/out"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/nonexistent/dir: cannot write here"), "{err}");
    assert!(err.contains("the output directory does not exist"), "{err}");
    assert!(!err.contains("named by its prefix"), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    // A missing input: the read hint, the cause once.
    let out = osml(d)
        .args(["data", "inspect", "gone.npy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert!(!err.contains("osml: error: :"), "{err}");
}
