//! Outputs that are not regular files: an atomic write renames over its destination, so a
//! FIFO, a device or a directory there must be refused, not replaced by a file.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok);
}

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

fn osml(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(assert_cmd::cargo::cargo_bin("osml"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fifos_and_directories_are_not_replaced_by_outputs() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dev_vm = repo.join("tests/fixtures/dev-vm");
    let dev_vm = dev_vm.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("in.jsonl"), "{\"text\": \"hello\"}\n").unwrap();
    for name in ["cap.tar.gz", "out.bin", "trace.json"] {
        mkfifo(&d.join(name));
    }
    std::fs::create_dir(d.join("dir.idx")).unwrap();
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["doctor", "--root", dev_vm, "--capture", "cap.tar.gz"],
            2,
            "cap.tar.gz",
        ),
        (
            &["data", "pack", "in.jsonl", "-o", "out", "--format", "bin"],
            3,
            "out.bin",
        ),
        (&["data", "pack", "in.jsonl", "-o", "dir"], 3, "dir.idx"),
        (
            &["trace", "--json", "trace.json", "--", "true"],
            2,
            "trace.json",
        ),
    ];
    for (args, code, kept) in cases {
        let (got, stderr) = osml(d, args);
        assert_eq!(got, Some(code), "osml {args:?}: {stderr}");
        assert!(stderr.contains(kept), "osml {args:?}: {stderr}");
        let path = d.join(kept);
        assert!(is_fifo(&path) || path.is_dir(), "{kept} was replaced");
    }
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
