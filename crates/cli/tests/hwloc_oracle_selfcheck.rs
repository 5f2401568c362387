//! Checks the hwloc oracle reader against counts read by eye from the fixture
//! files, so that tests comparing osml with hwloc compare with the right thing.

// Fixtures are listed directly: they are test data, not host facts.
#![allow(clippy::disallowed_methods)]

#[path = "support/hwloc_oracle.rs"]
mod hwloc_oracle;

use std::collections::BTreeMap;
use std::fs;

use hwloc_oracle::{all_tests, cases, fixtures_dir, oracle, parse_bitmap, Oracle};

fn target(name: &str) -> Oracle {
    oracle(&fixtures_dir().join(name))
}

#[test]
fn bitmaps_are_32_bit_words_most_significant_first() {
    assert_eq!(parse_bitmap("0x0"), Vec::<usize>::new());
    assert_eq!(
        parse_bitmap("0x0000f06f"),
        [0, 1, 2, 3, 5, 6, 12, 13, 14, 15]
    );
    assert_eq!(
        parse_bitmap("0x00000001,0xffffffff"),
        (0..=32).collect::<Vec<_>>()
    );
    // An empty word is zero: nvidiagpunumanodes' GPU memory tier, nodes 250-255.
    assert_eq!(
        parse_bitmap("0xfc000000,,,,,,,0x0"),
        (250..=255).collect::<Vec<_>>()
    );
}

#[test]
fn every_tarball_has_one_primary_case() {
    let dir = fixtures_dir();
    let mut tarballs: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".tar.bz2").map(str::to_owned)
        })
        .collect();
    tarballs.sort();
    let primary: Vec<String> = cases(&dir).into_iter().map(|case| case.name).collect();
    assert_eq!(primary, tarballs);

    let tests = all_tests(&dir);
    assert!(tests.len() > primary.len());
    for case in &tests {
        assert!(
            case.tarball.is_file(),
            "{}: {}",
            case.test,
            case.tarball.display()
        );
        assert!(
            case.target.is_file(),
            "{}: {}",
            case.test,
            case.target.display()
        );
    }
    let kept = tests
        .iter()
        .find(|case| case.test == "nvidiagpunumanodes-kept")
        .unwrap();
    assert_eq!(kept.name, "nvidiagpunumanodes");
    assert_eq!(
        kept.env_vars(),
        [(
            "HWLOC_KEEP_NVIDIA_GPU_NUMA_NODES".to_owned(),
            "1".to_owned()
        )]
    );
    let disallowed = tests
        .iter()
        .find(|case| case.test == "16amd64-8n2c-cpusets-disallowed")
        .unwrap();
    assert_eq!(disallowed.options, "- -v --disallowed");
}

#[test]
fn every_primary_case_parses() {
    for case in cases(&fixtures_dir()) {
        let o = oracle(&case.target);
        assert!(o.pus > 0, "{}", case.name);
        assert_eq!(o.pus, o.pus_allowed.len(), "{}", case.name);
        assert!(o.numa_nodes > 0, "{}", case.name);
        assert_eq!(o.numa_allowed.len(), o.numa_nodes, "{}", case.name);
        for (node, cpus) in &o.numa_cpus {
            assert!(
                cpus.iter()
                    .all(|pu| o.pus_allowed.binary_search(pu).is_ok()),
                "{}: node {node}",
                case.name
            );
        }
    }
}

#[test]
fn every_primary_case_has_the_counts_read_from_its_file() {
    // [packages, NUMA nodes, cores, PUs, L3 caches], from a separate Python
    // reading of each target, spot-checked with grep; packages, cores and L3
    // caches count only where a shown PU is below them.
    let expected = [
        ("128arm-2pa2n8cluster4co", [2, 4, 128, 128, 4]),
        ("128ia64-17n4s2c", [64, 17, 128, 128, 0]),
        ("16amd64-4n4c-cgroup-distance-merge", [1, 2, 0, 4, 1]),
        ("16amd64-8n2c", [8, 8, 16, 16, 0]),
        ("16amd64-8n2c-cpusets", [6, 4, 10, 10, 0]),
        ("16em64t-4s2c2t", [4, 1, 8, 16, 4]),
        ("16em64t-4s2c2t-offlines", [4, 1, 7, 12, 4]),
        ("16em64t-4s2ca2c-cpusetreorder", [4, 1, 11, 11, 4]),
        ("16ia64-8n2s", [16, 8, 16, 16, 16]),
        ("20em64t-hybrid-1p6c2t+2ca4co1t", [1, 1, 14, 20, 1]),
        ("20s390-2g6s4c", [8, 1, 20, 20, 0]),
        ("256ia64-64n2s2c", [128, 64, 256, 256, 0]),
        ("256ppc-8n8s4t", [64, 8, 64, 256, 64]),
        ("2arm-2c", [1, 1, 2, 2, 0]),
        ("2i386-2c-nohugepage", [1, 1, 2, 2, 0]),
        ("2i386-2t-hugepagesizecount", [1, 1, 1, 2, 0]),
        ("2pa-pcidomain32bits", [2, 1, 2, 2, 0]),
        ("2ps3-2t", [0, 1, 1, 2, 0]),
        ("32amd64-4s2n4c-cgroup2", [1, 6, 6, 6, 2]),
        ("32em64t-2n8c+dax+nvme+mic+dimms", [2, 2, 16, 16, 2]),
        ("32intel64-2p8co2t+8ve", [2, 2, 16, 32, 2]),
        ("40intel64-2g2n4c+pcilocality", [4, 4, 40, 40, 4]),
        ("40intel64-4n10c+pci-conflicts", [3, 4, 40, 40, 3]),
        ("48amd64-4pa2n6c-sparse", [4, 8, 48, 48, 8]),
        ("4fake-4gr1nu1pu", [1, 2, 0, 2, 0]),
        ("64amd64-4s2n4ca2co", [4, 8, 64, 64, 8]),
        ("64fake-4n2s2ca2c2t", [8, 4, 32, 64, 8]),
        ("8em64t-2s2ca2c", [2, 1, 8, 8, 0]),
        ("8em64t-2s2ca2c-buggynuma", [2, 1, 8, 8, 0]),
        ("8em64t-2s4c-asymcaches", [2, 1, 8, 8, 0]),
        ("8ia64-2n2s2c", [4, 2, 8, 8, 8]),
        ("8ia64-2s2c2t", [2, 1, 4, 8, 4]),
        ("96em64t-4no4pa3ca2co", [16, 4, 96, 96, 16]),
        ("fakecpuid1f-64intel64-2p4d2n2c2t", [4, 16, 32, 64, 8]),
        ("fakeheterocpunuma", [2, 6, 12, 24, 0]),
        ("fakeheteromemtiers", [1, 7, 6, 6, 1]),
        ("fakememinitiators-1np2c+1npp+gi", [2, 6, 8, 8, 0]),
        ("fakepcilocalities", [4, 4, 40, 40, 0]),
        ("memorysidecaches", [2, 4, 40, 80, 2]),
        ("nvidia-dgx-gb10", [1, 1, 20, 20, 2]),
        ("nvidiagpunumanodes", [2, 2, 8, 32, 4]),
        ("offline-cpu0-node0", [2, 1, 17, 17, 2]),
    ];
    let actual: Vec<(String, [usize; 5])> = cases(&fixtures_dir())
        .into_iter()
        .map(|case| {
            let o = oracle(&case.target);
            (
                case.name,
                [o.packages, o.numa_nodes, o.cores, o.pus, o.l3_caches],
            )
        })
        .collect();
    let expected: Vec<(String, [usize; 5])> = expected
        .iter()
        .map(|(name, counts)| ((*name).to_owned(), *counts))
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn a_cpuset_hides_pus_and_nodes_unless_disallowed_is_asked() {
    // /dev/cpuset/dummy: cpus 0-6,12-15, mems 1-4; CPU 4 is offline.
    let shown = target("16amd64-8n2c-cpusets.console");
    let allowed = vec![0, 1, 2, 3, 5, 6, 12, 13, 14, 15];
    assert_eq!(shown.pus_allowed, allowed);
    assert_eq!((shown.packages, shown.cores, shown.pus), (6, 10, 10));
    let numa = BTreeMap::from([(1, vec![2, 3]), (2, vec![5]), (3, vec![6]), (4, vec![])]);
    assert_eq!(shown.numa_cpus, numa);
    assert_eq!(shown.pus_hidden, [4, 7, 8, 9, 10, 11]);
    // The XML export of the same dump says the same.
    assert_eq!(target("16amd64-8n2c-cpusets-xml.xml"), shown);

    let all = target("16amd64-8n2c-cpusets-disallowed.console");
    assert_eq!(all.pus_allowed, allowed);
    assert_eq!(
        (all.packages, all.numa_nodes, all.cores, all.pus),
        (8, 8, 15, 15)
    );
    assert_eq!(all.numa_allowed, [1, 2, 3, 4]);
    assert_eq!(all.numa_cpus[&0], [0, 1]);
    assert_eq!(all.numa_cpus[&5], Vec::<usize>::new());
    assert_eq!(all.pus_hidden, [4]);
}

#[test]
fn a_cgroup2_step_keeps_memory_of_packages_it_has_no_cpus_in() {
    // Slurm step: cpuset.cpus.effective 0-5, cpuset.mems.effective 0-5.
    let o = target("32amd64-4s2n4c-cgroup2.xml");
    assert_eq!(o.pus_allowed, (0..=5).collect::<Vec<_>>());
    assert_eq!((o.packages, o.cores, o.pus, o.l3_caches), (1, 6, 6, 2));
    assert_eq!(o.numa_nodes, 6);
    assert_eq!(o.numa_cpus[&0], [0, 1, 2, 3]);
    assert_eq!(o.numa_cpus[&1], [4, 5]);
    assert!((2..=5).all(|node| o.numa_cpus[&node].is_empty()));
    assert_eq!(o.pus_hidden, (6..=31).collect::<Vec<_>>());
}

#[test]
fn nvidia_gpu_numa_nodes_show_only_when_kept() {
    let hidden = target("nvidiagpunumanodes.console");
    let kept = target("nvidiagpunumanodes-kept.console");
    assert_eq!(hidden.numa_cpus.keys().copied().collect::<Vec<_>>(), [0, 8]);
    assert_eq!(
        kept.numa_cpus.keys().copied().collect::<Vec<_>>(),
        [0, 8, 250, 251, 252, 253, 254, 255]
    );
    assert_eq!((hidden.pus, kept.pus), (32, 32));
    // A GPU's memory is local to the package it hangs off.
    assert_eq!(kept.numa_cpus[&253], kept.numa_cpus[&0]);
    assert_eq!(kept.numa_cpus[&250], (88..=103).collect::<Vec<_>>());
}

#[test]
fn memory_side_caches_sit_between_a_group_and_its_node() {
    let o = target("memorysidecaches.console");
    assert_eq!((o.packages, o.numa_nodes, o.cores, o.pus), (2, 4, 40, 80));
    assert!(o.numa_cpus.values().all(|cpus| cpus.len() == 20));
    assert_eq!(o.numa_cpus[&0][..6], [0, 4, 8, 12, 16, 20]);
}

#[test]
fn offline_cpus_are_hidden() {
    let o = target("16em64t-4s2c2t-offlines.console");
    assert_eq!((o.packages, o.cores, o.pus, o.l3_caches), (4, 7, 12, 4));
    assert_eq!(o.pus_hidden, [2, 5, 13, 14]);
    assert_eq!(target("16em64t-4s2c2t-offlines-xml.xml"), o);
}
