//! Every benchmark in a tiny budget gives a positive, finite, plausible figure; labels name
//! the sizes used; a memory-backed scratch directory is warned about. How figures compare
//! (a 2 MiB fault dearer per fault than a 4 KiB one, a cold read slower than a warm one) is a
//! measurement, not a test: it failed on a busy machine, so `benches/orderings.rs` reports it.

#![allow(clippy::unwrap_used)]

#[path = "../../cli/tests/support/skip.rs"]
mod skip;

use osml_bench::{memory_backed, run, Sizes, CATALOG};
use skip::skip;

#[test]
fn every_benchmark_gives_a_plausible_figure() {
    let dir = tempfile::tempdir().unwrap();
    let mut announced = Vec::new();
    let report = run(&[], true, dir.path(), &mut |i, n, id| {
        announced.push((i, n, id.to_owned()));
    })
    .unwrap();
    let ids: Vec<&str> = CATALOG.iter().map(|c| c.id).collect();
    assert_eq!(
        announced,
        ids.iter()
            .enumerate()
            .map(|(i, id)| (i, ids.len(), (*id).to_owned()))
            .collect::<Vec<_>>(),
        "progress names every benchmark once, in order"
    );
    // What may be missing here, and only for its stated reason.
    let no_uring = osml_sys::probe_io_uring().is_err();
    let one_cpu = osml_sys::allowed_cpus().unwrap().len() < 2;
    for (id, why) in &report.skipped {
        let excused = (no_uring && id.starts_with("io_uring") && why.contains("io_uring_setup"))
            || (one_cpu && id == "ctxswitch.cross" && why.contains("needs two CPUs"));
        assert!(excused, "{id} skipped: {why}");
        skip(
            &format!("every_benchmark_gives_a_plausible_figure ({id})"),
            why,
        );
    }
    assert_eq!(report.results.len() + report.skipped.len(), CATALOG.len());
    let bounds = |id: &str| match id {
        "syscall" => (5.0, 100_000.0), // ns
        "ctxswitch.thread" | "ctxswitch.process" | "ctxswitch.cross" | "tlb.4k" | "tlb.thp" => {
            (0.1, 10_000.0) // µs, ns
        }
        "spawn.task" => (0.005, 1_000.0),
        "spawn.thread" => (1.0, 100_000.0),
        "spawn.process" | "spawn.fork" => (10.0, 1_000_000.0),
        "fault.4k" => (0.01, 1_000.0),
        "fault.thp" => (1.0, 1_000_000.0),
        "memcpy" | "memcpy.all" | "read.warm" | "read.warm.4k" | "mmap.warm" => (0.05, 10_000.0), // GB/s
        "read.cold" | "mmap.cold" => (0.001, 1_000.0),
        // kIOPS: from a slow disk (0.1 k/s) to a RAM-backed one.
        "read.cold.random" | "mmap.cold.random" | "pread" | "pread.qd32" | "io_uring"
        | "io_uring.qd32" => (0.1, 20_000.0),
        other => panic!("no bounds for {other}"),
    };
    for r in &report.results {
        let (lo, hi) = bounds(r.id);
        assert!(
            r.summary.median.is_finite() && r.summary.median > 0.0,
            "{}: {}",
            r.id,
            r.summary.median
        );
        assert!(
            (lo..hi).contains(&r.summary.median),
            "{} = {} {} outside {lo}..{hi}",
            r.id,
            r.summary.median,
            r.unit
        );
        assert!(
            r.summary.samples >= 3
                && r.summary.min <= r.summary.median
                && r.summary.median <= r.summary.max,
            "{}",
            r.id
        );
        assert!(!r.meaning.is_empty());
    }
    // Secondary figures are there and finite; how they compare is for the benchmark.
    let get = |id: &str| report.results.iter().find(|r| r.id == id).unwrap();
    for id in ["fault.4k", "fault.thp"] {
        let k = get(id).extra["ns_per_kib"];
        assert!(k.is_finite() && k > 0.0, "{id}: {k} ns per KiB");
    }
}

#[test]
fn quick_labels_name_the_sizes_quick_uses() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ids = ["tlb.4k", "memcpy", "read.warm"].map(str::to_owned);
    let report = run(&ids, true, dir.path(), &mut |_, _, _| {}).unwrap();
    assert_eq!(
        (report.sizes.table, report.sizes.buffer, report.sizes.file),
        (128 << 20, 32 << 20, 32 << 20)
    );
    let what = |id: &str| {
        report
            .results
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.what.clone())
            .unwrap()
    };
    assert_eq!(
        what("tlb.4k"),
        "random 8-byte read over 128 MiB with 4 KiB pages"
    );
    assert_eq!(what("memcpy"), "memcpy of 32 MiB, one thread");
    assert_eq!(
        what("read.warm"),
        "read() of a cached 32 MiB file in 1 MiB blocks"
    );
    // Every label of the catalog is filled in, for both sizes.
    for quick in [true, false] {
        for info in CATALOG {
            let label = info.label(Sizes::new(quick));
            assert!(!label.contains('{'), "{}: {label}", info.id);
        }
    }
    assert!(CATALOG
        .iter()
        .find(|i| i.id == "tlb.thp")
        .unwrap()
        .label(Sizes::new(false))
        .contains("over 1 GiB"));
}

#[test]
fn a_memory_backed_scratch_directory_is_warned_about() {
    // The target directory is on the disk the build uses; /dev/shm is tmpfs on Linux.
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let only = ["read.warm".to_owned()];
    let on_disk = run(&only, true, disk.path(), &mut |_, _, _| {}).unwrap();
    if memory_backed(disk.path()).is_some() {
        skip(
            "a_memory_backed_scratch_directory_is_warned_about (the disk half)",
            "the target directory itself is on a memory-backed filesystem",
        );
    } else {
        assert!(on_disk.warnings.is_empty(), "{:?}", on_disk.warnings);
    }
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    assert_eq!(memory_backed(shm.path()), Some("tmpfs"));
    let on_tmpfs = run(&only, true, shm.path(), &mut |_, _, _| {}).unwrap();
    assert_eq!(on_tmpfs.warnings.len(), 1, "{:?}", on_tmpfs.warnings);
    assert!(
        on_tmpfs.warnings[0].contains("tmpfs") && on_tmpfs.warnings[0].contains("measure RAM"),
        "{:?}",
        on_tmpfs.warnings
    );
    // A run that reads no file needs no warning.
    let syscall = run(&["syscall".to_owned()], true, shm.path(), &mut |_, _, _| {}).unwrap();
    assert!(syscall.warnings.is_empty());
}

#[test]
fn unknown_ids_are_refused() {
    let e = run(
        &["nope".into()],
        true,
        &std::env::temp_dir(),
        &mut |_, _, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("unknown benchmark id `nope`") && e.contains("syscall"),
        "{e}"
    );
}
