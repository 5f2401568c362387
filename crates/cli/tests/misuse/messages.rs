//! Error messages name what failed, where, and the OS's reason once: no empty path, no cause
//! printed twice (an error whose text includes its cause must not also chain it).

use crate::support::run_in;

fn stderr_of(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_os_reason_is_given_once_with_the_path() {
    for (args, code) in [
        (vec!["data", "inspect", "/nonexistent/osml.bin"], 3),
        (vec!["trace", "--", "/nonexistent/osml"], 2),
        (
            vec![
                "doctor",
                "compare",
                "/nonexistent/a.json",
                "/nonexistent/b.json",
            ],
            2,
        ),
        (vec!["doctor", "--root", "/nonexistent/root"], 2),
        (
            vec![
                "bench",
                "--quick",
                "--only",
                "read.cold",
                "--dir",
                "/nonexistent/dir",
            ],
            2,
        ),
    ] {
        let (got, stderr) = stderr_of(&args);
        let shown = format!("osml {}: {stderr}", args.join(" "));
        assert_eq!(got, Some(code), "{shown}");
        assert!(
            stderr.matches("No such file or directory").count() <= 1,
            "{shown}"
        );
        assert!(stderr.contains("/nonexistent/"), "{shown}");
        assert!(
            !stderr.contains(": :") && !stderr.contains("error: :"),
            "{shown}"
        );
        assert!(!stderr.contains("panicked"), "{shown}");
    }
}
