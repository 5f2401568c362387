//! Every benchmark in a tiny budget gives a positive, finite, plausible figure, and the
//! relations the kernel guarantees hold: a 2 MiB fault costs more per fault and less per byte
//! than a 4 KiB fault, and a cold read is slower than a warm one.

#![allow(clippy::unwrap_used)]

use osml_bench::{run, CATALOG};

#[test]
fn every_benchmark_gives_a_plausible_figure() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(&[], true, dir.path()).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.results.len(), CATALOG.len());
    let bounds = |id: &str| match id {
        "syscall" => (5.0, 100_000.0), // ns
        "ctxswitch.thread" | "ctxswitch.process" | "tlb.4k" | "tlb.thp" => (0.1, 10_000.0), // µs, ns
        "spawn.thread" => (1.0, 100_000.0),
        "spawn.process" => (10.0, 1_000_000.0),
        "fault.4k" => (0.01, 1_000.0),
        "fault.thp" => (1.0, 1_000_000.0),
        "memcpy" | "memcpy.all" | "read.warm" | "read.warm.4k" | "mmap.warm" => (0.05, 10_000.0), // GB/s
        "read.cold" | "mmap.cold" => (0.001, 1_000.0),
        "pread" => (0.1, 1_000_000.0),
        other => panic!("no bounds for {other}"),
    };
    for r in &report.results {
        let (lo, hi) = bounds(r.id);
        assert!(
            r.median.is_finite() && r.median > 0.0,
            "{}: {}",
            r.id,
            r.median
        );
        assert!(
            (lo..hi).contains(&r.median),
            "{} = {} {} outside {lo}..{hi}",
            r.id,
            r.median,
            r.unit
        );
        assert!(
            r.samples >= 3 && r.min <= r.median && r.median <= r.max,
            "{}",
            r.id
        );
        assert!(!r.meaning.is_empty());
    }
    let get = |id: &str| report.results.iter().find(|r| r.id == id).unwrap();
    let (small, huge) = (get("fault.4k"), get("fault.thp"));
    assert!(
        huge.median > small.median,
        "a 2 MiB fault costs more per fault"
    );
    assert!(
        huge.extra["ns_per_kib"] < small.extra["ns_per_kib"],
        "and less per byte"
    );
    assert!(
        get("read.cold").median < get("read.warm").median,
        "a cold read is slower than a warm one"
    );
    assert!(get("mmap.cold").median < get("mmap.warm").median);
}

#[test]
fn unknown_ids_are_refused() {
    let e = run(&["nope".into()], true, &std::env::temp_dir())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown benchmark id `nope`") && e.contains("syscall"),
        "{e}"
    );
}
