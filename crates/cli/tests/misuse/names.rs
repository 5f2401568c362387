//! Hostile names: a file or a process named with escape sequences is shown escaped in human
//! output (stdout and stderr), never obeyed by the terminal.

use std::path::Path;
use std::process::Command;

const EVIL: &str = "ev\x1b]0;pwned\x07\x1b[2Jil";

fn osml(dir: &Path, args: &[&str]) -> (String, String) {
    let out = crate::support::run_in(dir, args);
    assert!(
        out.status.success(),
        "osml {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_escaped(what: &str, text: &str) {
    assert!(
        !text.contains('\x1b') && !text.contains('\x07'),
        "{what}: {text:?}"
    );
    assert!(
        text.contains("ev\\x1b]0;pwned\\x07\\x1b[2Jil"),
        "{what}: {text:?}"
    );
}

#[test]
fn a_dataset_named_with_escapes_is_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "{\"text\": \"hello world\"}\n").unwrap();
    let (out, _) = osml(dir.path(), &["data", "pack", "in.jsonl", "-o", EVIL]);
    assert_escaped("pack", &out);
    for cmd in ["inspect", "verify"] {
        let (out, _) = osml(dir.path(), &["data", cmd, EVIL]);
        assert_escaped(cmd, &out);
    }
}

#[test]
fn a_process_named_with_escapes_is_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // A process's name is its executable's file name (comm keeps 15 bytes of it).
    let short = "e\x1b]0;p\x07\x1b[2J";
    let exe = dir.path().join(short);
    std::os::unix::fs::symlink("/bin/sleep", &exe).unwrap();
    let mut child = Command::new(&exe).arg("30").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let out = crate::support::run(&["mem", &child.id().to_string()]);
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(text.contains("e\\x1b]0;p\\x07"), "{text:?}");
}
