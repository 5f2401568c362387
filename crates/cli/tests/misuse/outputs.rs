//! Outputs that are not regular files: an atomic write renames over its destination, so a
//! FIFO, a device or a directory there must be refused, not replaced by a file.

use crate::support::{mkfifo, run_in};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

fn osml(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = run_in(dir, args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fifos_and_directories_are_not_replaced_by_outputs() {
    let dev_vm = crate::support::fixture("dev-vm");
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
