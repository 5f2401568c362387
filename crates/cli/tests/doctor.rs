//! `osml doctor` driven as a user runs it: fixture hosts (snapshots of the report, the JSON
//! fields that matter, hwloc's own output as an oracle), exit codes, captures, compare, and the
//! live host cross-checked against other tools.

// Helpers of an integration test panic on purpose; fixtures and oracles are read directly.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use serde_json::Value;

mod support;

use support::{doctor_json, repo, skip};

fn hwloc(name: &str) -> String {
    let rel = format!("tests/fixtures/hwloc/{name}.tar.bz2");
    assert!(repo().join(&rel).exists(), "missing {rel}");
    rel
}

/// `osml` in the repository root, without the caller's `NO_COLOR`: the reports (and their
/// snapshots) show what a pipe alone gives.
fn osml() -> Command {
    let mut c = support::osml();
    c.env_remove("NO_COLOR");
    c
}

fn statuses(report: &Value) -> BTreeMap<String, String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn human(root: &str) -> String {
    let out = osml().args(["doctor", "--root", root]).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

const ALL_IDS: &[&str] = &[
    "cpu.governor",
    "cpu.smt",
    "cpu.isolation",
    "cgroup.cpu",
    "cgroup.memory",
    "mem.thp",
    "mem.thp_defrag",
    "mem.hugetlb",
    "mem.swap",
    "mem.swappiness",
    "mem.overcommit",
    "mem.max_map_count",
    "mem.zone_reclaim",
    "mem.dirty",
    "mem.fragmentation",
    "numa.balancing",
    "numa.topology",
    "numa.memory",
    "ipc.shm",
    "limits.nofile",
    "limits.memlock",
    "io.readahead",
    "io.scheduler",
    "kernel.version",
    "kernel.io_uring",
    "kernel.perf",
    "kernel.oom_kill",
    "kernel.mce",
    "kernel.hung_task",
    "pressure.memory",
    "pressure.io",
    "gpu.numa",
    "gpu.xid",
    "rdma.ports",
    "rdma.peermem",
    "pci.link",
    "pci.p2p",
    "pci.aer",
];

#[test]
fn gpu_server_flags_every_planted_fault() {
    let r = doctor_json("tests/fixtures/gpu-server");
    let s = statuses(&r);
    let expect = [
        ("cpu.governor", "warn"),
        ("cgroup.cpu", "warn"),
        ("mem.thp", "warn"),
        ("mem.thp_defrag", "warn"),
        ("mem.swap", "warn"),
        ("mem.swappiness", "warn"),
        ("mem.max_map_count", "warn"),
        ("mem.zone_reclaim", "warn"),
        ("numa.balancing", "warn"),
        ("ipc.shm", "fail"),
        ("limits.nofile", "warn"),
        ("limits.memlock", "fail"),
        ("io.readahead", "warn"),
        ("io.scheduler", "warn"),
        ("pressure.memory", "warn"),
        ("pressure.io", "pass"),
        ("gpu.numa", "warn"),
        ("rdma.ports", "fail"),
        ("rdma.peermem", "warn"),
        ("mem.overcommit", "pass"),
        ("kernel.version", "pass"),
        ("mem.fragmentation", "warn"),
        ("numa.memory", "warn"),
        ("kernel.oom_kill", "warn"),
        ("gpu.xid", "fail"),
        ("pci.aer", "fail"),
        ("kernel.mce", "warn"),
        ("kernel.hung_task", "warn"),
        ("pci.link", "fail"),
        ("pci.p2p", "fail"),
    ];
    for (id, status) in expect {
        assert_eq!(s[id], status, "{id}");
    }
    // The facts behind them.
    let h = &r["host"];
    assert_eq!(h["cpu"]["sockets"], 2);
    assert_eq!(h["cpu"]["cores"], 64);
    assert_eq!(h["cpu"]["threads_per_core"], 2);
    assert_eq!(h["shm"]["size_bytes"], 64 << 20);
    assert_eq!(h["limits"]["memlock"]["soft"], 65536);
    let gpus: Vec<&Value> = h["pci_devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "gpu")
        .collect();
    assert_eq!(gpus.len(), 8, "the BMC's VGA device is not a GPU");
    let per_node: BTreeMap<i64, usize> = gpus.iter().fold(BTreeMap::new(), |mut m, g| {
        *m.entry(g["numa_node"].as_i64().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(per_node, BTreeMap::from([(-1, 1), (0, 4), (1, 3)]));
    // Each GPU sits behind its PCIe switch: root port, upstream and downstream ports.
    assert_eq!(gpus[0]["bridges"].as_array().unwrap().len(), 3);
    let ports = h["rdma"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 4);
    assert!(ports.iter().all(|p| p["pci_address"].is_string()));
    assert_eq!(
        h["cgroup"]["cpu"]["quota"],
        serde_json::json!([3_200_000, 100_000])
    );
    assert_eq!(r["summary"]["fail"], 7);
    insta::assert_snapshot!("gpu_server", human("tests/fixtures/gpu-server"));
}

#[test]
fn gpu_server_clean_passes_every_check() {
    // The same machine with every planted fault put right: each check passes, and the four
    // that only describe the host (SMT, the cgroup's limit, the NUMA layout, the I/O
    // schedulers) are information.
    let r = doctor_json("tests/fixtures/gpu-server-clean");
    let s = statuses(&r);
    assert_eq!(
        s.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        ALL_IDS.iter().copied().collect()
    );
    let info: BTreeSet<&str> = s
        .iter()
        .filter(|(_, v)| *v == "info")
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        info,
        BTreeSet::from(["cpu.smt", "cgroup.memory", "numa.topology", "io.scheduler"])
    );
    for (id, status) in &s {
        assert!(status == "pass" || status == "info", "{id}: {status}");
    }
    // Checks that are live-only elsewhere answer from the fixture's probes.json.
    assert_eq!(r["host"]["shm"]["used_bytes"], 3u64 << 30);
    insta::assert_snapshot!("gpu_server_clean", human("tests/fixtures/gpu-server-clean"));
}

#[test]
fn gpu_server_kernel_log_and_memory_facts() {
    let r = doctor_json("tests/fixtures/gpu-server");
    let h = &r["host"];
    // The kernel log, by class: a burst counted once, the cgroup of a pod's OOM kill.
    let log = &h["kernel"]["log"];
    assert_eq!(log["malformed_lines"], 1, "the junk line");
    assert_eq!(log["oom_kills"][0]["cgroup"], "/kubepods.slice/pod-train-7");
    assert_eq!(log["oom_kills"][0]["anon_rss_bytes"], 31_457_280u64 * 1024);
    assert!(log["oom_kills"][1]["cgroup"].is_null());
    let xids: Vec<(u64, &str, u64)> = log["xid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x[0].as_u64().unwrap(),
                x[1].as_str().unwrap(),
                x[2]["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        xids,
        vec![
            (13, "0000:13:00", 1),
            (48, "0000:94:00", 200),
            (79, "0000:cb:00", 1)
        ]
    );
    let find = |id: &str| {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap()
            .clone()
    };
    let xid = find("gpu.xid");
    assert!(
        xid["observed"]
            .as_str()
            .unwrap()
            .contains("Xid 48 on 0000:94:00 (double-bit ECC error; hardware): 200 times"),
        "{}",
        xid["observed"]
    );
    assert!(xid["fix"]["runtime"]
        .as_str()
        .unwrap()
        .contains("0000:94:00, 0000:cb:00"));
    // Each downtrained link once (at the device, not again at the switch port above it),
    // against the lesser of the device's and the port's maximum.
    assert_eq!(
        find("pci.link")["observed"],
        "GPU 0000:13:00.0 x8 of x16; GPU 0000:14:00.0 2.5 GT/s of 32; NIC 0000:55:00.0 16 GT/s of 32"
    );
    let aer = find("pci.aer");
    assert!(
        aer["observed"]
            .as_str()
            .unwrap()
            .contains("fatal on 0000:d5:00.0"),
        "{}",
        aer["observed"]
    );
    // The fragmentation facts: free blocks per order, the huge-page fallback counters.
    let zones = h["memory"]["buddy"].as_array().unwrap();
    assert_eq!(zones.len(), 5, "DMA once, DMA32 and Normal per node");
    assert_eq!(h["memory"]["vmstat"]["thp_fault_fallback"], 76000);
    assert_eq!(h["numa"][1]["free_bytes"], 21_474_836u64 * 1024);
    let frag = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "mem.fragmentation")
        .unwrap();
    assert!(
        frag["observed"]
            .as_str()
            .unwrap()
            .contains("76000 fell back (38%)"),
        "{}",
        frag["observed"]
    );
    assert!(frag["fix"]["runtime"]
        .as_str()
        .unwrap()
        .contains("compact_memory"));
    let numa = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "numa.memory")
        .unwrap();
    assert!(
        numa["why"]
            .as_str()
            .unwrap()
            .starts_with("node1 is nearly full"),
        "{}",
        numa["why"]
    );
}

#[test]
fn gpu_server_fails_with_exit_code_1() {
    osml()
        .args(["doctor", "--root", "tests/fixtures/gpu-server"])
        .assert()
        .code(1);
    // Only passing checks: exit 0.
    osml()
        .args([
            "doctor",
            "--root",
            "tests/fixtures/gpu-server",
            "--only",
            "mem.overcommit,kernel.version",
        ])
        .assert()
        .code(0);
}

#[test]
fn inference_profile_judges_differently() {
    let out = osml()
        .args([
            "doctor",
            "--json",
            "--profile",
            "inference",
            "--root",
            "tests/fixtures/gpu-server",
        ])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = statuses(&r);
    assert_eq!(r["profile"]["name"], "inference");
    // Balancing may help unpinned serving processes; random reads need no read-ahead.
    assert_eq!(s["numa.balancing"], "info");
    assert_eq!(s["io.readahead"], "info");
}

#[test]
fn dev_vm_capture() {
    let r = doctor_json("tests/fixtures/dev-vm");
    let s = statuses(&r);
    assert_eq!(
        s.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        ALL_IDS.iter().copied().collect()
    );
    assert_eq!(s["mem.thp"], "pass");
    assert_eq!(s["mem.max_map_count"], "warn");
    assert_eq!(s["cpu.governor"], "skip", "no cpufreq in this VM");
    assert_eq!(s["gpu.numa"], "skip");
    assert_eq!(r["host"]["memory"]["thp"]["enabled"], "madvise");
    assert_eq!(r["host"]["cgroup"]["version"], "hybrid");
    insta::assert_snapshot!("dev_vm", human("tests/fixtures/dev-vm"));
}

#[test]
fn h100_vm_capture() {
    // Captured with `osml doctor --capture` on a one-GPU H100 virtual machine.
    let r = doctor_json("tests/fixtures/h100-vm");
    let gpus: Vec<&Value> = r["host"]["pci_devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "gpu")
        .collect();
    assert_eq!(gpus.len(), 1);
    assert_eq!(gpus[0]["address"], "0000:00:06.0");
    assert_eq!(gpus[0]["vendor"], 0x10de);
    assert_eq!(gpus[0]["class"], 0x030200);
    let s = statuses(&r);
    assert_eq!(
        s["gpu.numa"], "pass",
        "one node: numa_node -1 does not matter"
    );
    assert_eq!(s["rdma.peermem"], "skip");
    let modules = r["host"]["kernel"]["modules"].as_array().unwrap();
    assert!(modules.iter().any(|m| m == "nvidia"));
    insta::assert_snapshot!("h100_vm", human("tests/fixtures/h100-vm"));
}

/// Counts of hwloc objects in its expected output (`.console` or `.xml`).
fn oracle_counts(name: &str) -> BTreeMap<&'static str, usize> {
    let base = repo().join("tests/fixtures/hwloc");
    let (text, xml) = match std::fs::read_to_string(base.join(format!("{name}.xml"))) {
        Ok(t) => (t, true),
        Err(_) => (
            std::fs::read_to_string(base.join(format!("{name}.console"))).unwrap(),
            false,
        ),
    };
    ["Package", "Core", "PU"]
        .into_iter()
        .map(|t| {
            let n = if xml {
                // hwloc keeps objects outside the allowed cpuset with `cpuset="0x0"`.
                text.split(&format!("type=\"{t}\""))
                    .skip(1)
                    .filter(|rest| {
                        !rest
                            .split('>')
                            .next()
                            .unwrap_or("")
                            .contains(" cpuset=\"0x0\"")
                    })
                    .count()
            } else {
                text.matches(&format!("{t} L#")).count()
            };
            (t, n)
        })
        .collect()
}

/// Packages, cores and CPUs that this process may use, from osml's JSON.
fn our_counts(r: &Value) -> BTreeMap<&'static str, usize> {
    let allowed = r["host"]["cgroup"]["cpuset"]["cpus"]
        .as_str()
        .or_else(|| r["host"]["cpu"]["allowed"].as_str())
        .map(|s| osml_host::CpuList::parse(s).unwrap());
    let topo = r["host"]["cpu"]["topology"].as_array().unwrap();
    let usable: Vec<&Value> = topo
        .iter()
        .filter(|c| {
            // A dump may list CPUs as online whose directories were trimmed away.
            !c["package"].is_null()
                && allowed.as_ref().is_none_or(|a| {
                    a.contains(usize::try_from(c["cpu"].as_u64().unwrap()).unwrap())
                })
        })
        .collect();
    let packages: BTreeSet<u64> = usable
        .iter()
        .map(|c| c["package"].as_u64().unwrap())
        .collect();
    let cores: BTreeSet<&str> = usable
        .iter()
        .map(|c| c["siblings"].as_str().unwrap())
        .collect();
    BTreeMap::from([
        ("Package", packages.len()),
        ("Core", cores.len()),
        ("PU", usable.len()),
    ])
}

fn hwloc_case(name: &str) -> Value {
    let r = doctor_json(hwloc(name));
    assert_eq!(
        our_counts(&r),
        oracle_counts(name),
        "{name}: packages/cores/PUs differ from hwloc's"
    );
    assert_eq!(statuses(&r).len(), ALL_IDS.len());
    insta::assert_snapshot!(name, human(&hwloc(name)));
    r
}

#[test]
fn hwloc_two_sockets_with_infiniband_and_nvme() {
    let r = hwloc_case("32em64t-2n8c+dax+nvme+mic+dimms");
    let s = statuses(&r);
    assert_eq!(s["rdma.ports"], "pass");
    let pci = r["host"]["pci_devices"].as_array().unwrap();
    let hca = pci.iter().find(|d| d["address"] == "0000:82:00.0").unwrap();
    assert_eq!(hca["kind"], "nic");
    assert_eq!(hca["numa_node"], 1, "the HCA hangs off the second socket");
    assert!(pci.iter().any(|d| d["kind"] == "nvme"));
    // Every PCI function hwloc lists (with --whole-io) is one osml found.
    let xml = std::fs::read_to_string(
        repo().join("tests/fixtures/hwloc/32em64t-2n8c+dax+nvme+mic+dimms.xml"),
    )
    .unwrap();
    let ours: BTreeSet<&str> = pci.iter().map(|d| d["address"].as_str().unwrap()).collect();
    for busid in xml.split("pci_busid=\"").skip(1).map(|s| &s[..12]) {
        assert!(ours.contains(busid), "hwloc lists {busid}, osml does not");
    }
}

#[test]
fn hwloc_devices_without_numa_node() {
    let r = hwloc_case("40intel64-2g2n4c+pcilocality");
    let pci = r["host"]["pci_devices"].as_array().unwrap();
    assert!(
        pci.iter().any(|d| d["numa_node"] == -1),
        "this dump's devices report numa_node -1"
    );
    assert_eq!(
        r["host"]["cgroup"]["cpuset"]["path"],
        "/dev/cpuset/torque/513099.master.cm.cluster"
    );
}

#[test]
fn hwloc_cpuless_gpu_memory_nodes() {
    let r = hwloc_case("nvidiagpunumanodes");
    let nodes = r["host"]["numa"].as_array().unwrap();
    let cpuless = nodes.iter().filter(|n| n["cpus"] == "").count();
    assert_eq!(cpuless, 6, "six V100 memory nodes have no CPUs");
    let finding = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "numa.topology")
        .unwrap();
    assert!(finding["expected"]
        .as_str()
        .unwrap()
        .contains("only on nodes with CPUs"));
    assert_eq!(
        statuses(&r)["kernel.version"],
        "warn",
        "4.14 lacks PSI and io_uring"
    );
}

#[test]
fn hwloc_cgroup_v2_cpuset() {
    let r = hwloc_case("32amd64-4s2n4c-cgroup2");
    assert_eq!(r["host"]["cgroup"]["cpuset"]["cpus"], "0-5");
    assert_eq!(
        r["host"]["cgroup"]["cpuset"]["path"],
        "/cgroup/unified/uid_2008/job_15389/step_0"
    );
}

#[test]
fn json_has_the_documented_shape() {
    let r = doctor_json("tests/fixtures/gpu-server");
    assert_eq!(r["schema_version"], 1);
    for key in ["host", "profile", "findings", "summary", "osml_version"] {
        assert!(r.get(key).is_some(), "{key}");
    }
    for f in r["findings"].as_array().unwrap() {
        for key in [
            "id", "area", "title", "status", "observed", "expected", "why", "fix", "evidence",
            "source",
        ] {
            assert!(f.get(key).is_some(), "{key} missing in {}", f["id"]);
        }
        let status = f["status"].as_str().unwrap();
        assert!(["pass", "warn", "fail", "info", "skip"].contains(&status));
        if status == "warn" || status == "fail" {
            assert!(
                f["fix"]["runtime"].is_string() && f["fix"]["persist"].is_string(),
                "{} has no fix",
                f["id"]
            );
        }
    }
}

#[test]
fn usage_errors_exit_2_with_a_reason() {
    osml()
        .args(["doctor", "--root", "/nonexistent/osml-root"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("/nonexistent/osml-root"));
    osml()
        .args(["doctor", "--only", "mem.nope"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unknown check id `mem.nope`"));
    osml()
        .args(["doctor", "--profile", "gaming"])
        .assert()
        .code(2);
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tar.gz");
    std::fs::write(&junk, b"\x1f\x8bnot really gzip").unwrap();
    osml()
        .args(["doctor", "--root"])
        .arg(&junk)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a readable tar archive"));
}

#[test]
fn an_empty_root_skips_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let out = osml()
        .args(["doctor", "--json", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "nothing known, so nothing fails"
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = statuses(&r);
    assert_eq!(s.len(), ALL_IDS.len());
    assert!(s.values().all(|v| v == "skip" || v == "info"), "{s:?}");
    let thp = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "mem.thp")
        .unwrap();
    assert!(thp["observed"]
        .as_str()
        .unwrap()
        .contains("/sys/kernel/mm/transparent_hugepage/enabled is absent"));
}

#[test]
fn no_colour_unless_a_terminal() {
    let out = osml()
        .args(["doctor", "--root", "tests/fixtures/gpu-server"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\x1b'));
}

#[test]
fn capture_replays_to_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("host.tar.gz");
    let live = osml()
        .args(["doctor", "--json", "--capture"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        archive.exists(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let live: Value = serde_json::from_slice(&live.stdout).unwrap();
    let replay = osml()
        .args(["doctor", "--json", "--root"])
        .arg(&archive)
        .output()
        .unwrap();
    let replay: Value = serde_json::from_slice(&replay.stdout).unwrap();
    // Live-only probes (io_uring, statvfs) differ; every finding built from files must agree.
    for (a, b) in live["findings"]
        .as_array()
        .unwrap()
        .iter()
        .zip(replay["findings"].as_array().unwrap())
    {
        if [
            "kernel.io_uring",
            "ipc.shm",
            "pressure.memory",
            "pressure.io",
            "pressure.cpu",
        ]
        .contains(&a["id"].as_str().unwrap())
        {
            continue;
        }
        assert_eq!(a["observed"], b["observed"], "{}", a["id"]);
        assert_eq!(a["status"], b["status"], "{}", a["id"]);
    }
    assert_eq!(
        live["host"]["cpu"]["allowed"],
        replay["host"]["cpu"]["allowed"]
    );
    assert_eq!(live["host"]["pci_devices"], replay["host"]["pci_devices"]);
    // No temporary file is left beside the archive.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["host.tar.gz"]);
}

#[test]
fn compare_marks_the_odd_host() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, root) in [
        ("a", "tests/fixtures/dev-vm"),
        ("b", "tests/fixtures/dev-vm"),
        ("c", "tests/fixtures/gpu-server"),
    ] {
        let out = osml()
            .args(["doctor", "--json", "--root", root])
            .output()
            .unwrap();
        let p = dir.path().join(format!("{name}.json"));
        std::fs::write(&p, &out.stdout).unwrap();
        paths.push(p);
    }
    let out = osml()
        .args(["doctor", "compare"])
        .args(&paths)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the hosts differ");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let thp = v["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "mem.thp")
        .unwrap();
    let odd: Vec<&str> = thp["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["odd"] == true)
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(odd, ["gpu-node-017"]);
    // Identical hosts: no drift, exit 0.
    osml()
        .args(["doctor", "compare"])
        .args(&paths[..2])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("same value"));
    // Not a report: exit 2.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{}").unwrap();
    osml()
        .args(["doctor", "compare"])
        .arg(&paths[0])
        .arg(&junk)
        .assert()
        .code(2);
}

#[test]
fn list_names_every_check() {
    let out = osml().args(["doctor", "--list"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for id in ALL_IDS {
        assert!(text.contains(id), "{id}");
    }
}

/// Runs a command, or says why it cannot.
fn tool(cmd: &str, args: &[&str]) -> Option<String> {
    let out = StdCommand::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn live_host_report_agrees_with_other_tools() {
    const TEST: &str = "live_host_report_agrees_with_other_tools";
    let out = osml().args(["doctor", "--json"]).output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = statuses(&r);
    assert_eq!(s.len(), ALL_IDS.len(), "every check runs on the live host");
    let h = &r["host"];
    assert_eq!(h["live"], true);
    // Facts every Linux host exposes are known, not skipped.
    for key in ["vm.swappiness", "vm.max_map_count", "vm.overcommit_memory"] {
        let sysctl = tool("sysctl", &["-n", key]).map(|v| v.trim().to_owned());
        let ours = h["tunables"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} unknown: {}", h["tunables"][key]));
        if let Some(v) = sysctl {
            assert_eq!(ours, v, "{key}");
        } else {
            skip(
                &format!("{TEST} ({key} against sysctl)"),
                "sysctl is not installed",
            );
        }
    }
    if let Some(n) = tool("getconf", &["_NPROCESSORS_ONLN"]) {
        let online = osml_host::CpuList::parse(h["cpu"]["online"].as_str().unwrap()).unwrap();
        assert_eq!(online.len(), n.trim().parse::<usize>().unwrap());
    } else {
        skip(
            &format!("{TEST} (online CPUs against getconf)"),
            "getconf is missing or failed",
        );
    }
    if let Some(n) = tool("nproc", &[]) {
        let allowed = osml_host::CpuList::parse(h["cpu"]["allowed"].as_str().unwrap()).unwrap();
        assert_eq!(
            allowed.len(),
            n.trim().parse::<usize>().unwrap(),
            "nproc counts the affinity mask"
        );
    } else {
        skip(
            &format!("{TEST} (allowed CPUs against nproc)"),
            "nproc is missing or failed",
        );
    }
    let thp = std::fs::read(Path::new("/sys/kernel/mm/transparent_hugepage/enabled"))
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    if let Ok(thp) = thp {
        let selected = thp
            .split('[')
            .nth(1)
            .and_then(|s| s.split(']').next())
            .unwrap();
        assert_eq!(h["memory"]["thp"]["enabled"], selected);
    } else {
        skip(
            &format!("{TEST} (THP)"),
            "no transparent_hugepage/enabled here",
        );
    }
    if let Some(df) = tool("df", &["-B1", "--output=size", "/dev/shm"]) {
        let size: u64 = df.lines().nth(1).unwrap().trim().parse().unwrap();
        assert_eq!(h["shm"]["size_bytes"], size);
    } else {
        skip(
            &format!("{TEST} (/dev/shm against df)"),
            "df is missing or failed",
        );
    }
    if let Some(uname) = tool("uname", &["-r"]) {
        assert_eq!(h["kernel"]["release"], uname.trim());
    } else {
        skip(
            &format!("{TEST} (kernel release against uname)"),
            "uname is missing or failed",
        );
    }
}

#[test]
fn readme_example_is_what_osml_prints() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let cmd = "$ osml doctor --root tests/fixtures/gpu-server --only ipc.shm,gpu.numa\n";
    let start = readme.find(cmd).expect("README example") + cmd.len();
    let shown = &readme[start..start + readme[start..].find("...\n").unwrap()];
    let out = osml()
        .args([
            "doctor",
            "--root",
            "tests/fixtures/gpu-server",
            "--only",
            "ipc.shm,gpu.numa",
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.starts_with(shown),
        "README shows:\n{shown}\nosml prints:\n{printed}"
    );
}

/// `promtool check metrics` on `text`; `None` (and a visible skip) without promtool.
fn promtool(test: &str, metrics: &str) -> Option<(bool, String)> {
    use std::io::Write;
    let Ok(mut child) = StdCommand::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        skip(
            test,
            "no promtool (Debian's prometheus package; make test installs it as root)",
        );
        return None;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success() && said.trim().is_empty(), said))
}

#[test]
fn prometheus_output_passes_promtool_on_every_fixture() {
    const TEST: &str = "prometheus_output_passes_promtool_on_every_fixture";
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().to_str().unwrap().to_owned();
    for root in [
        "tests/fixtures/gpu-server",
        "tests/fixtures/gpu-server-clean",
        "tests/fixtures/dev-vm",
        "tests/fixtures/h100-vm",
        &empty,
    ] {
        let out = osml()
            .args(["doctor", "--format", "prometheus", "--root", root])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let report = doctor_json(root);
        // One gauge per check, its value the severity, with id and status labels.
        let n = report["findings"].as_array().unwrap().len();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("osml_doctor_check{"))
                .count(),
            n,
            "{root}"
        );
        for f in report["findings"].as_array().unwrap() {
            let status = f["status"].as_str().unwrap();
            let line = format!(
                "osml_doctor_check{{id=\"{}\",area=\"{}\",status=\"{status}\",",
                f["id"].as_str().unwrap(),
                f["area"].as_str().unwrap()
            );
            assert!(text.contains(&line), "{root}: no {line}");
        }
        assert!(
            !text
                .lines()
                .any(|l| !l.starts_with('#') && l.split_whitespace().count() != 2),
            "no timestamps: {text}"
        );
        if let Some((ok, said)) = promtool(TEST, &text) {
            assert!(ok, "{root}: promtool: {said}\n{text}");
        }
    }
}

#[test]
fn npd_output_is_one_short_line_with_the_protocols_exit_codes() {
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().to_str().unwrap().to_owned();
    // npd: one line of at most 80 characters; 1 for a problem, 0 when clean, 2 when nothing
    // could be judged.
    let npd = |args: &[&str]| {
        let mut all = vec!["doctor", "--format", "npd"];
        all.extend_from_slice(args);
        let out = osml().args(&all).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.trim_end().chars().count() <= 80, "{text}");
        (out.status.code().unwrap(), text)
    };
    let (code, text) = npd(&["--root", "tests/fixtures/gpu-server"]);
    assert_eq!(code, 1);
    assert!(text.starts_with("fail "), "{text}");
    let (code, text) = npd(&["--root", "tests/fixtures/gpu-server", "--only", "mem.thp"]);
    assert_eq!(
        (code, text.starts_with("warn mem.thp: ")),
        (1, true),
        "{text}"
    );
    let (code, text) = npd(&[
        "--root",
        "tests/fixtures/gpu-server",
        "--only",
        "cpu.isolation",
    ]);
    assert_eq!((code, text.trim()), (0, "ok: 1 passed, 0 skipped"));
    let (code, text) = npd(&["--root", "tests/fixtures/gpu-server-clean"]);
    assert_eq!((code, text.starts_with("ok: ")), (0, true), "{text}");
    let (code, text) = npd(&["--root", &empty]);
    assert_eq!(code, 2, "{text}");
}

#[test]
fn oneline_and_output_files() {
    // oneline: a drain reason, exit 1 on a failure.
    let out = osml()
        .args([
            "doctor",
            "--format",
            "oneline",
            "--root",
            "tests/fixtures/gpu-server",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text.lines().count(), 1);
    assert!(
        text.starts_with("osml doctor: fail: ") && text.contains("ipc.shm"),
        "{text}"
    );
    assert!(text.trim_end().chars().count() <= 256);
    // -o writes atomically, under the umask, and --json is --format json.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("osml.prom");
    let out = osml()
        .args([
            "doctor",
            "--format",
            "prometheus",
            "--root",
            "tests/fixtures/dev-vm",
            "-o",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("osml_doctor_run_timestamp_seconds"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
    let a = osml()
        .args(["doctor", "--json", "--root", "tests/fixtures/dev-vm"])
        .output()
        .unwrap();
    let b = osml()
        .args([
            "doctor",
            "--format",
            "json",
            "--root",
            "tests/fixtures/dev-vm",
        ])
        .output()
        .unwrap();
    let strip = |o: &[u8]| {
        let mut v: Value = serde_json::from_slice(o).unwrap();
        v["host"] = Value::Null;
        v
    };
    assert_eq!(strip(&a.stdout), strip(&b.stdout));
    let out = osml()
        .args(["doctor", "--json", "--format", "npd"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--json and --format together are a usage error"
    );
}

#[test]
fn the_live_kernel_log_is_read_as_root_and_refused_cleanly_as_another_user() {
    const TEST: &str = "the_live_kernel_log_is_read_as_root_and_refused_cleanly_as_another_user";
    if !support::is_root() {
        return skip(
            TEST,
            "needs root to read /dev/kmsg and to run osml as another user",
        );
    }
    let out = osml()
        .args(["doctor", "--json", "--only", "kernel.oom_kill"])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["host"]["kernel"]["log"]["records"].as_u64().unwrap() > 0,
        "{}",
        r["host"]["kernel"]["log"]
    );
    assert_ne!(r["findings"][0]["status"], "skip");
    let Some(mut nobody) = support::osml_as_nobody() else {
        return skip(
            TEST,
            "no setpriv (util-linux): the refusal as another user is not tested",
        );
    };
    let path = "/proc/sys/kernel/dmesg_restrict";
    let before = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, "1").unwrap();
    let out = nobody
        .args(["doctor", "--json", "--only", "kernel.oom_kill"])
        .output()
        .unwrap();
    std::fs::write(path, before).unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &r["findings"][0];
    assert_eq!(f["status"], "skip", "{f}");
    assert!(
        f["observed"].as_str().unwrap().contains("dmesg_restrict"),
        "{f}"
    );
}
