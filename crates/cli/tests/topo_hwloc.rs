//! `osml topo` on every real machine dump of `tests/fixtures/hwloc/`, against hwloc's
//! own expected output beside each dump: packages, NUMA nodes, cores, PUs, the PUs the dump's
//! cgroup or cpuset allows, and each NUMA node's CPUs. Where osml deliberately reports what
//! the kernel says and hwloc's expected output does something else, the table below says so
//! and pins osml's own value.

// Helpers of an integration test panic on purpose; fixtures are read directly.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "support/hwloc_oracle.rs"]
mod hwloc_oracle;

mod support;

use std::collections::BTreeMap;

use serde_json::Value;

use support::ints;

#[derive(Debug, Clone, PartialEq)]
struct Counts {
    packages: usize,
    numa_nodes: usize,
    cores: usize,
    pus: usize,
    allowed: Vec<usize>,
    numa_cpus: BTreeMap<usize, Vec<usize>>,
}

fn ours(tarball: &std::path::Path) -> Counts {
    let mut cmd = support::osml();
    // Unpacking a dump creates thousands of small files: on tmpfs that takes a tenth of the
    // time it takes on this VM's disk.
    if std::fs::metadata("/dev/shm").is_ok_and(|m| m.is_dir())
        && tempfile::tempdir_in("/dev/shm").is_ok()
    {
        cmd.env("TMPDIR", "/dev/shm");
    }
    let out = cmd
        .args(["topo", "--json", "--root"])
        .arg(tarball)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        tarball.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = |k: &str| usize::try_from(t[k].as_u64().unwrap()).unwrap();
    Counts {
        packages: n("packages"),
        numa_nodes: t["numa_nodes"].as_array().unwrap().len(),
        cores: n("cores"),
        pus: n("pus"),
        allowed: ints(&t["allowed"]),
        numa_cpus: t["numa_nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    usize::try_from(x["id"].as_u64().unwrap()).unwrap(),
                    ints(&x["cpus"]),
                )
            })
            .collect(),
    }
}

/// Where osml and hwloc's expected output differ on purpose: (dump, field, osml's value, why).
const DIFFERENCES: &[(&str, &str, usize, &str)] = &[
    ("16amd64-4n4c-cgroup-distance-merge", "cores", 4, "the expected output was made with `--filter all:structure`, which drops Core objects; sysfs gives each PU its own core"),
    ("4fake-4gr1nu1pu", "cores", 2, "a fake dump with no core information: hwloc makes no Core objects, osml counts each PU as its core"),
    ("40intel64-4n10c+pci-conflicts", "packages", 4, "sysfs has four package ids; hwloc drops the one that conflicts with its PCI locality (errors silenced by the test's HWLOC_SHOW_ERRORS=none)"),
    ("8em64t-2s2ca2c-buggynuma", "numa", 8, "the firmware reports 8 nodes that each claim every CPU; hwloc merges them into one, osml reports what the kernel says"),
    ("nvidiagpunumanodes", "numa", 8, "osml keeps the six CPU-less GPU-memory nodes, which hwloc hides unless HWLOC_KEEP_NVIDIA_GPU_NUMA_NODES=1 (its `-kept` output, checked below)"),
];

#[test]
fn every_hwloc_dump_matches_hwlocs_own_output() {
    let dir = hwloc_oracle::fixtures_dir();
    let cases = hwloc_oracle::cases(&dir);
    assert!(
        cases.len() >= 40,
        "expected the hwloc dumps in {}",
        dir.display()
    );
    let mut table = Vec::new();
    let mut failures = Vec::new();
    for c in &cases {
        let o = hwloc_oracle::oracle(&c.target);
        let got = ours(&c.tarball);
        let mut fields = vec![
            ("packages", got.packages, o.packages),
            ("numa", got.numa_nodes, o.numa_nodes),
            ("cores", got.cores, o.cores),
            ("pus", got.pus, o.pus),
        ];
        let mut notes = Vec::new();
        for f in &mut fields {
            if let Some((_, _, value, why)) = DIFFERENCES
                .iter()
                .find(|(name, field, _, _)| *name == c.name && *field == f.0)
            {
                assert_eq!(f.1, *value, "{}: osml's {} changed", c.name, f.0);
                f.2 = f.1;
                notes.push(format!("{} {} (hwloc: {why})", f.0, value));
            }
        }
        for (field, mine, theirs) in &fields {
            if mine != theirs {
                failures.push(format!("{}: {field} osml {mine}, hwloc {theirs}", c.name));
            }
        }
        if got.allowed != o.pus_allowed {
            failures.push(format!(
                "{}: allowed PUs osml {:?}, hwloc {:?}",
                c.name, got.allowed, o.pus_allowed
            ));
        }
        // A node's CPUs: equal wherever sysfs gives the node CPUs. hwloc attaches a
        // memory-only node to the CPUs near it (its initiators or parent); osml keeps the
        // node's own, empty, CPU list and places by distance.
        for (node, theirs) in &o.numa_cpus {
            match got.numa_cpus.get(node) {
                Some(mine) if mine == theirs || mine.is_empty() => {}
                Some(mine) => failures.push(format!(
                    "{}: node {node} CPUs osml {mine:?}, hwloc {theirs:?}",
                    c.name
                )),
                None if DIFFERENCES.iter().any(|d| d.0 == c.name && d.1 == "numa") => {}
                None => failures.push(format!("{}: node {node} missing", c.name)),
            }
        }
        let restricted =
            o.pus_hidden.iter().any(|p| !got.allowed.contains(p)) && !o.pus_hidden.is_empty();
        table.push(format!(
            "{:<40} {:>3} {:>3} {:>4} {:>4}  {}{}",
            c.name,
            got.packages,
            got.numa_nodes,
            got.cores,
            got.pus,
            if restricted { "(PUs hidden) " } else { "" },
            notes.join("; ")
        ));
    }
    // The GPU-memory nodes osml keeps are the ones hwloc shows when asked to keep them.
    let kept = hwloc_oracle::all_tests(&dir)
        .into_iter()
        .find(|c| c.test == "nvidiagpunumanodes-kept")
        .unwrap();
    let o = hwloc_oracle::oracle(&kept.target);
    let got = ours(&kept.tarball);
    assert_eq!(
        got.numa_cpus.keys().collect::<Vec<_>>(),
        o.numa_cpus.keys().collect::<Vec<_>>()
    );
    println!("dump                                     pkg numa cores pus");
    println!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
