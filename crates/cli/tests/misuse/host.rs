//! Host roots, archives, `doctor compare` and terminal output under misuse.

// Helpers of an integration test panic on purpose; fixtures are written directly.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

use crate::support::{self, is_root, mkfifo, skip};

/// Long enough for a debug build on a busy machine; a hang or an endless read runs past it.
const PATIENCE: Duration = Duration::from_secs(30);

const EVIL: &str = "evil\x1b]0;pwned\x07\x1b[2J✓ all checks passed";
const EVIL_ESCAPED: &str = "evil\\x1b]0;pwned\\x07\\x1b[2J✓ all checks passed";

/// `osml` in the repository root, killed after [`PATIENCE`].
fn osml() -> Command {
    let mut c = support::osml();
    c.timeout(PATIENCE);
    c
}

/// A directory root whose `proc/meminfo` is made by `make`, with a hostname.
fn root_with_meminfo(make: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proc/sys/kernel")).unwrap();
    std::fs::write(dir.path().join("proc/sys/kernel/hostname"), "node\n").unwrap();
    make(&dir.path().join("proc/meminfo"));
    dir
}

/// `doctor --json` of `root`, which must finish: the unknown `host.memory.total_bytes`.
fn memory_fact(root: &Path) -> Value {
    let out = osml()
        .args(["doctor", "--json", "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["host"]["memory"]["total_bytes"].clone()
}

#[test]
fn a_fifo_at_proc_meminfo_is_unreadable_not_a_hang() {
    let root = root_with_meminfo(mkfifo);
    let fact = memory_fact(root.path());
    assert_eq!(fact["kind"], "unreadable", "{fact}");
    assert!(fact["unknown"].as_str().unwrap().contains("FIFO"), "{fact}");
}

#[test]
fn a_character_device_at_proc_meminfo_is_not_read_forever() {
    if !is_root() {
        // mknod needs CAP_MKNOD; a symlink to /dev/zero would resolve inside the root.
        skip(
            "host::a_character_device_at_proc_meminfo_is_not_read_forever",
            "mknod needs root",
        );
        return;
    }
    let root = root_with_meminfo(|p| {
        let status = StdCommand::new("mknod")
            .arg(p)
            .args(["c", "1", "5"])
            .status()
            .unwrap();
        assert!(status.success());
    });
    let fact = memory_fact(root.path());
    assert_eq!(fact["kind"], "unreadable", "{fact}");
    assert!(
        fact["unknown"]
            .as_str()
            .unwrap()
            .contains("character device"),
        "{fact}"
    );
}

#[test]
fn a_fifo_given_as_an_archive_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("host.tar.gz");
    mkfifo(&fifo);
    osml()
        .args(["doctor", "--root"])
        .arg(&fifo)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("FIFO"));
}

/// A `.tar.gz` of `members` members of `size` zero bytes each, written to `dest`.
fn zeros_tar_gz(dest: &Path, members: usize, size: u64, level: flate2::Compression) {
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(dest).unwrap(), level);
    let mut tar = tar::Builder::new(gz);
    for i in 0..members {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        let zeros = std::io::repeat(0).take(size);
        tar.append_data(&mut h, format!("proc/zeros{i}"), zeros)
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

use std::io::Read as _;

/// A temporary directory to stand for `$TMPDIR`, and the `osml-root-*` left in it.
fn leftovers(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("osml-root-")
        })
        .collect()
}

#[test]
fn a_gzip_bomb_stops_at_the_member_limit() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.tar.gz");
    zeros_tar_gz(&bomb, 1, 200 << 20, flate2::Compression::fast());
    assert!(std::fs::metadata(&bomb).unwrap().len() < 2 << 20);
    let tmp = tempfile::tempdir().unwrap();
    osml()
        .env("TMPDIR", tmp.path())
        .args(["doctor", "--root"])
        .arg(&bomb)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("proc/zeros0"))
        .stderr(predicates::str::contains("16 MiB"));
    assert_eq!(leftovers(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_gzip_bomb_of_small_members_stops_at_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.tar.gz");
    // Deflate at its best expands zeros about 1000 times.
    zeros_tar_gz(&bomb, 8, 8 << 20, flate2::Compression::best());
    let tmp = tempfile::tempdir().unwrap();
    osml()
        .env("TMPDIR", tmp.path())
        .args(["doctor", "--root"])
        .arg(&bomb)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("more than 500 times"));
    assert_eq!(leftovers(tmp.path()), Vec::<PathBuf>::new());
}

/// A plain tar of many tiny files: slow to unpack (file creation), so a signal lands mid-way.
fn many_files_tar(dest: &Path) {
    let mut tar = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(dest).unwrap(),
    ));
    for i in 0..60_000 {
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        tar.append_data(&mut h, format!("sys/d{}/f{i}", i % 100), &b"x"[..])
            .unwrap();
    }
    tar.into_inner().unwrap().flush().unwrap();
}

fn killed_mid_unpack_leaves_nothing(number: i32) {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("many.tar");
    many_files_tar(&archive);
    let tmp = tempfile::tempdir().unwrap();
    let mut child = support::osml_process()
        .env("TMPDIR", tmp.path())
        .args(["doctor", "--root"])
        .arg(&archive)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until unpacking has begun: the directory exists and has something in it.
    let start = Instant::now();
    while !leftovers(tmp.path())
        .iter()
        .any(|d| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()))
    {
        assert!(start.elapsed() < PATIENCE, "unpacking never began");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the signal"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = crate::support::signal_and_wait(&mut child, number);
    assert_eq!(
        status.signal(),
        Some(number),
        "{status:?}: not ended by the signal"
    );
    assert_eq!(leftovers(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn sigint_mid_unpack_leaves_no_unpacked_root() {
    killed_mid_unpack_leaves_nothing(2);
}

#[test]
fn sigterm_mid_unpack_leaves_no_unpacked_root() {
    killed_mid_unpack_leaves_nothing(15);
}

fn capture_mode(umask: &str) -> u32 {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("c.tar.gz");
    let status = StdCommand::new("sh")
        .arg("-c")
        .arg(format!(
            "umask {umask}; exec \"$0\" doctor --capture \"$1\" >/dev/null"
        ))
        .arg(support::bin())
        .arg(&dest)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}");
    std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777
}

#[test]
fn captures_follow_the_umask() {
    assert_eq!(capture_mode("022"), 0o644);
    assert_eq!(capture_mode("077"), 0o600);
}

/// A minimal doctor report.
fn report(hostname: &str, findings: &[(String, String)], version: u64) -> String {
    serde_json::json!({
        "schema_version": version,
        "host": {"hostname": hostname},
        "findings": findings
            .iter()
            .map(|(id, observed)| serde_json::json!({"id": id, "status": "pass", "observed": observed}))
            .collect::<Vec<_>>(),
    })
    .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn compare_refuses_a_fifo_a_device_and_an_oversized_report() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &report("a", &[], 1));
    let fifo = dir.path().join("fifo.json");
    mkfifo(&fifo);
    let big = dir.path().join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();
    for (other, says) in [
        (fifo.as_path(), "FIFO"),
        (Path::new("/dev/zero"), "character device"),
        (big.as_path(), "64 MiB"),
    ] {
        osml()
            .args(["doctor", "compare"])
            .arg(&a)
            .arg(other)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(says));
    }
}

#[test]
fn compare_refuses_schema_versions_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &report("a", &[], 1));
    for v in [2, 999] {
        let b = write(dir.path(), "b.json", &report("b", &[], v));
        osml()
            .args(["doctor", "compare"])
            .arg(&a)
            .arg(&b)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(format!("schema_version {v}")));
    }
}

#[test]
fn compare_of_100_000_findings_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let findings = |tag: &str| -> Vec<(String, String)> {
        (0..100_000)
            .map(|i| {
                (
                    format!("x.check{i:06}"),
                    if i % 2 == 0 {
                        "same".into()
                    } else {
                        tag.to_owned()
                    },
                )
            })
            .collect()
    };
    let a = write(dir.path(), "a.json", &report("a", &findings("a"), 1));
    let b = write(dir.path(), "b.json", &report("b", &findings("b"), 1));
    let start = Instant::now();
    let out = osml()
        .args(["doctor", "compare", "--json"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let took = start.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drift"].as_array().unwrap().len(), 50_000);
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn compare_tells_two_reports_of_one_host_apart() {
    let dir = tempfile::tempdir().unwrap();
    let f = |obs: &str| vec![("mem.thp".to_owned(), obs.to_owned())];
    let a = write(
        dir.path(),
        "monday.json",
        &report("gpu-1", &f("madvise"), 1),
    );
    let b = write(
        dir.path(),
        "tuesday.json",
        &report("gpu-1", &f("always"), 1),
    );
    let out = osml()
        .args(["doctor", "compare", "--json"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["file"].as_str().unwrap())
        .collect();
    assert!(
        files[0].ends_with("monday.json") && files[1].ends_with("tuesday.json"),
        "{v}"
    );
    assert_eq!(v["hosts"][0]["hostname"], "gpu-1");
    assert!(v["drift"][0]["hosts"][1]["file"]
        .as_str()
        .unwrap()
        .ends_with("tuesday.json"));
    let out = osml()
        .args(["doctor", "compare"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("monday.json") && text.contains("tuesday.json"),
        "{text}"
    );
}

fn assert_escaped(bytes: &[u8]) {
    assert!(!bytes.contains(&0x1b), "a raw ESC reached the terminal");
    assert!(!bytes.contains(&0x07), "a raw BEL reached the terminal");
    let text = String::from_utf8_lossy(bytes);
    assert!(text.contains(EVIL_ESCAPED), "{text}");
}

#[test]
fn a_hostile_hostname_in_a_root_or_capture_is_escaped() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("proc/sys/kernel")).unwrap();
    std::fs::write(root.path().join("proc/sys/kernel/hostname"), EVIL).unwrap();
    let out = osml()
        .args(["doctor", "-v", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{:?}", out.status);
    assert_escaped(&out.stdout);
    assert!(!out.stderr.contains(&0x1b));
    // The same host as a capture archive.
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("evil.tar.gz");
    let status = StdCommand::new("tar")
        .arg("czf")
        .arg(&capture)
        .arg("-C")
        .arg(root.path())
        .arg("proc")
        .status()
        .unwrap();
    assert!(status.success());
    let out = osml()
        .args(["doctor", "--root"])
        .arg(&capture)
        .output()
        .unwrap();
    assert_escaped(&out.stdout);
    assert!(!out.stderr.contains(&0x1b));
}

#[test]
fn a_hostile_hostname_in_a_compared_report_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.json",
        &report(EVIL, &[("mem.thp".into(), EVIL.into())], 1),
    );
    let b = write(
        dir.path(),
        "b.json",
        &report("b", &[("mem.thp".into(), "always".into())], 1),
    );
    let out = osml()
        .args(["doctor", "compare"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_escaped(&out.stdout);
    assert!(!out.stderr.contains(&0x1b));
}
