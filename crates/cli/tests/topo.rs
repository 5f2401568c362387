//! `osml topo`, `osml affinity` and `osml run --bind`: the hand-built 8-GPU server, the edge
//! cases torchrun's binding misses, and binding this process for real.

// Helpers of an integration test panic on purpose; fixtures are read directly.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

mod support;

use support::{ints, osml, skip};

fn json(args: &[&str]) -> Value {
    let out = osml().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "osml {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const SERVER: &str = "tests/fixtures/gpu-server";

fn plan(root: &str, nproc: usize, mode: &str) -> Value {
    json(&[
        "affinity",
        "--root",
        root,
        "--nproc-per-node",
        &nproc.to_string(),
        "--mode",
        mode,
        "--json",
    ])
}

#[test]
fn topo_of_the_gpu_server() {
    let t = json(&["topo", "--root", SERVER, "--json"]);
    assert_eq!(
        (
            t["packages"].as_u64(),
            t["cores"].as_u64(),
            t["pus"].as_u64()
        ),
        (Some(2), Some(64), Some(128))
    );
    let nodes = t["numa_nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    let first_node = ints(&nodes[0]["cpus"]);
    assert_eq!(first_node, (0..32).chain(64..96).collect::<Vec<_>>());
    assert_eq!(t["l3_domains"].as_array().unwrap().len(), 4);
    let devices = t["devices"].as_array().unwrap();
    let count = |k: &str| devices.iter().filter(|d| d["kind"] == k).count();
    assert_eq!((count("gpu"), count("nic"), count("nvme")), (8, 4, 2));
    let d4 = devices
        .iter()
        .find(|d| d["pci_address"] == "0000:d4:00.0")
        .unwrap();
    assert!(d4["numa_node"].is_null(), "numa_node -1 is null");
    // The matrix: GPU0 and GPU1 share a switch with NIC0; GPU2 is on the other switch of
    // node 0; GPU4 is on the other socket.
    let m = &t["matrix"];
    let labels: Vec<&str> = m["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let at = |a: &str, b: &str| {
        let (i, j) = (
            labels.iter().position(|l| *l == a).unwrap(),
            labels.iter().position(|l| *l == b).unwrap(),
        );
        m["links"][i][j].as_str().unwrap().to_owned()
    };
    assert_eq!(at("GPU0", "GPU0"), "X");
    assert_eq!(at("GPU0", "GPU1"), "PIX");
    assert_eq!(at("GPU0", "NIC0"), "PIX");
    assert_eq!(at("GPU0", "GPU2"), "NODE");
    assert_eq!(at("GPU0", "GPU4"), "SYS");
    assert_eq!(at("NIC3", "GPU6"), "PIX");
    for a in &labels {
        for b in &labels {
            assert_eq!(at(a, b), at(b, a), "symmetric");
        }
    }
    assert!(t["nvlink"].as_str().unwrap().contains("NVML"));
    let human = osml().args(["topo", "--root", SERVER]).output().unwrap();
    insta::assert_snapshot!("topo_gpu_server", String::from_utf8(human.stdout).unwrap());
}

/// What every plan must satisfy, whatever the mode.
fn check_plan(p: &Value, t: &Value, exclusive: bool) {
    let ranks = p["ranks"].as_array().unwrap();
    let node_cpus = |n: u64| -> BTreeSet<usize> {
        let nodes = t["numa_nodes"].as_array().unwrap();
        ints(&nodes.iter().find(|x| x["id"].as_u64() == Some(n)).unwrap()["cpus"])
            .into_iter()
            .collect()
    };
    let allowed: BTreeSet<usize> = ints(&t["allowed"]).into_iter().collect();
    let mut loaders = BTreeSet::new();
    let mut mains = BTreeSet::new();
    let mut owned = BTreeSet::new();
    for r in ranks {
        let cpus: BTreeSet<usize> = ints(&r["cpus"]).into_iter().collect();
        assert!(
            !cpus.is_empty() && cpus.is_subset(&allowed),
            "rank {}: {cpus:?}",
            r["local_rank"]
        );
        for c in ints(&r["loader_cpus"]) {
            assert!(loaders.insert(c), "loader CPU {c} given twice");
            assert!(cpus.contains(&c), "loader CPU {c} outside the rank's CPUs");
        }
        if let Some(m) = r["main_cpu"].as_u64() {
            mains.insert(usize::try_from(m).unwrap());
        }
        if exclusive {
            for c in &cpus {
                assert!(owned.insert(*c), "CPU {c} given to two ranks");
            }
        }
        if let (Some(n), false) = (r["numa_node"].as_u64(), r["gpu_pci_address"].is_null()) {
            if p["mode"] != "socket" {
                assert!(
                    cpus.is_subset(&node_cpus(n)),
                    "rank {}: CPUs off its GPU's node",
                    r["local_rank"]
                );
            }
        }
        let text = ints(&r["cpus"])
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        assert!(
            r["taskset"].as_str().unwrap().starts_with("taskset -c "),
            "{text:?}"
        );
    }
    assert!(
        loaders.is_disjoint(&mains),
        "a loader CPU is a training thread's CPU"
    );
}

/// One line per rank: GPU, node, CPUs, main CPU, loader CPUs, NIC and link, notes.
fn compact(p: &Value) -> String {
    let list = |v: &Value| {
        let ids = ints(v);
        osml_host::CpuList::parse(
            &ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .unwrap()
        .to_string()
    };
    p["ranks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "rank {} gpu {} node {} cpus {} main {} loader {} nic {} {}{}",
                r["local_rank"],
                r["gpu_pci_address"].as_str().unwrap_or("-"),
                r["numa_node"],
                list(&r["cpus"]),
                r["main_cpu"],
                list(&r["loader_cpus"]),
                r["nic_rdma"][0].as_str().unwrap_or("-"),
                r["nic_link"].as_str().unwrap_or("-"),
                r["notes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .fold(String::new(), |mut acc, n| {
                        acc.push_str("\n  note: ");
                        acc.push_str(n.as_str().unwrap());
                        acc
                    })
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn gpu_server_plans_in_every_mode() {
    let t = json(&["topo", "--root", SERVER, "--json"]);
    let gpus: Vec<(String, Value)> = t["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "gpu")
        .map(|d| {
            (
                d["pci_address"].as_str().unwrap().to_owned(),
                d["numa_node"].clone(),
            )
        })
        .collect();
    for mode in ["node", "socket", "exclusive", "core-complex"] {
        let p = plan(SERVER, 8, mode);
        check_plan(&p, &t, mode == "exclusive");
        let ranks = p["ranks"].as_array().unwrap();
        assert_eq!(ranks.len(), 8);
        for (i, r) in ranks.iter().enumerate() {
            // GPUs in PCI order, each rank on its GPU's node (GPU 7's -1 resolved by its host
            // bridge to node 1).
            assert_eq!(r["gpu_pci_address"], gpus[i].0.as_str());
            let want = if gpus[i].1.is_null() {
                Value::from(1)
            } else {
                gpus[i].1.clone()
            };
            assert_eq!(r["numa_node"], want, "rank {i} in {mode}");
            assert_eq!(ints(&r["loader_cpus"]).len(), 2);
        }
        // The nearest NIC: the one on the GPU's switch.
        let nic: Vec<&str> = ranks
            .iter()
            .map(|r| r["nic_rdma"][0].as_str().unwrap())
            .collect();
        assert_eq!(
            nic,
            ["mlx5_0", "mlx5_0", "mlx5_1", "mlx5_1", "mlx5_2", "mlx5_2", "mlx5_3", "mlx5_3"]
        );
        insta::assert_snapshot!(format!("affinity_gpu_server_{mode}"), compact(&p));
    }
    // Exact CPU sets in exclusive mode: 32 cores per node split 8/8/8/8 with siblings.
    let p = plan(SERVER, 8, "exclusive");
    assert_eq!(
        ints(&p["ranks"][1]["cpus"]),
        (8..16).chain(72..80).collect::<Vec<_>>()
    );
    assert_eq!(ints(&p["ranks"][1]["loader_cpus"]), [9, 10]);
    assert_eq!(
        p["ranks"][1]["numactl"],
        "numactl --physcpubind=8-15,72-79 --membind=0"
    );
    // Core-complex: one L3 domain (16 cores) per rank, two ranks sharing each.
    let p = plan(SERVER, 8, "core-complex");
    assert_eq!(
        ints(&p["ranks"][1]["cpus"]),
        (16..32).chain(80..96).collect::<Vec<_>>()
    );
}

#[test]
fn more_ranks_than_gpus_and_no_gpu_at_all() {
    let t = json(&["topo", "--root", SERVER, "--json"]);
    let p = plan(SERVER, 10, "exclusive");
    check_plan(&p, &t, true);
    let ranks = p["ranks"].as_array().unwrap();
    assert!(ranks[8]["gpu_pci_address"].is_null() && ranks[9]["gpu_pci_address"].is_null());
    // The two GPU-less ranks are spread: one per node.
    assert_eq!(
        (
            ranks[8]["numa_node"].as_u64(),
            ranks[9]["numa_node"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert!(p["notes"][0]
        .as_str()
        .unwrap()
        .contains("10 ranks for 8 GPU(s)"));

    let vm = "tests/fixtures/dev-vm";
    let t = json(&["topo", "--root", vm, "--json"]);
    let p = plan(vm, 2, "exclusive");
    check_plan(&p, &t, true);
    assert!(p["notes"][0].as_str().unwrap().contains("no GPU found"));
}

/// A copy of the server whose cpuset keeps half of node 0 and all of node 1.
fn server_with_cpuset(dir: &Path) -> String {
    let root = support::copy_fixture("gpu-server", dir);
    let p = root.join("proc/self/status");
    let text = std::fs::read_to_string(&p).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("Cpus_allowed_list"))
        .map(str::to_owned)
        .collect();
    lines.push("Cpus_allowed_list:\t0-15,32-63,64-79,96-127".to_owned());
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    root.to_str().unwrap().to_owned()
}

#[test]
fn a_cpuset_that_cuts_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let root = server_with_cpuset(dir.path());
    let t = json(&["topo", "--root", &root, "--json"]);
    assert_eq!(t["pus"].as_u64(), Some(96));
    assert_eq!(
        ints(&t["numa_nodes"][0]["cpus"]),
        (0..16).chain(64..80).collect::<Vec<_>>()
    );
    for mode in ["node", "exclusive", "core-complex"] {
        let p = plan(&root, 8, mode);
        check_plan(&p, &t, mode == "exclusive");
        // Node 0's 16 usable cores feed its 4 ranks: 4 cores each in exclusive mode.
        if mode == "exclusive" {
            assert_eq!(ints(&p["ranks"][0]["cpus"]), [0, 1, 2, 3, 64, 65, 66, 67]);
        }
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = osml()
        .args(["affinity", "--root", SERVER, "--nproc-per-node", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    let out = osml()
        .args([
            "affinity",
            "--root",
            SERVER,
            "--nproc-per-node",
            "2",
            "--local-rank",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside 0..2"));
    let out = osml()
        .args(["topo", "--root", "/nonexistent/osml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // One rank only, with --local-rank.
    let p = json(&[
        "affinity",
        "--root",
        SERVER,
        "--nproc-per-node",
        "8",
        "--local-rank",
        "5",
        "--json",
    ]);
    assert_eq!(p["ranks"].as_array().unwrap().len(), 1);
    assert_eq!(p["ranks"][0]["local_rank"], 5);
}

/// The `Cpus_allowed_list` line that `cat /proc/self/status` printed under `osml run`.
fn cpus_allowed_line(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list"))
        .unwrap()
        .to_owned()
}

/// The last CPU this process may use, and whether there is more than one.
fn last_allowed() -> usize {
    *osml_sys::allowed_cpus().unwrap().last().unwrap()
}

#[test]
fn run_binds_cpus_and_sets_thread_counts() {
    let cpu = last_allowed();
    let out = osml()
        .args([
            "run",
            "--bind",
            &format!("cpus:{cpu}"),
            "--",
            "cat",
            "/proc/self/status",
        ])
        .output()
        .unwrap();
    let line = cpus_allowed_line(&out);
    assert_eq!(
        line.split_whitespace().nth(1),
        Some(cpu.to_string().as_str()),
        "{line}"
    );

    let out = osml()
        .env_remove("OMP_NUM_THREADS")
        .env("MKL_NUM_THREADS", "7")
        .args([
            "run",
            "--bind",
            &format!("cpus:{cpu}"),
            "--",
            "sh",
            "-c",
            "echo $OMP_NUM_THREADS $MKL_NUM_THREADS",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "1 7",
        "set unless already set"
    );
    // GPUs in PCI bus order, as the plan numbers them, unless the caller chose an order; -v
    // says so.
    let order = |set: Option<&str>| {
        let mut c = osml();
        match set {
            Some(v) => c.env("CUDA_DEVICE_ORDER", v),
            None => c.env_remove("CUDA_DEVICE_ORDER"),
        };
        let out = c
            .args([
                "run",
                "-v",
                "--bind",
                &format!("cpus:{cpu}"),
                "--",
                "sh",
                "-c",
                "echo $CUDA_DEVICE_ORDER",
            ])
            .output()
            .unwrap();
        (
            String::from_utf8(out.stdout).unwrap().trim().to_owned(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (v, said) = order(None);
    assert_eq!(v, "PCI_BUS_ID");
    assert!(said.contains("CUDA_DEVICE_ORDER=PCI_BUS_ID"), "{said}");
    let (v, said) = order(Some("FASTEST_FIRST"));
    assert_eq!(v, "FASTEST_FIRST");
    assert!(!said.contains("CUDA_DEVICE_ORDER"), "{said}");
}

#[test]
fn run_sets_the_memory_policy() {
    let t = json(&["topo", "--json"]);
    let node = t["numa_nodes"][0]["id"].as_u64().unwrap();
    if osml_sys::set_mempolicy(osml_sys::MemPolicy::Default, &[]).is_err() {
        skip(
            "run_sets_the_memory_policy",
            "set_mempolicy is refused here (a kernel without NUMA)",
        );
        return;
    }
    for (mem, word) in [
        ("bind", "bind"),
        ("interleave", "interleave"),
        ("preferred", "prefer"),
    ] {
        let out = osml()
            .args([
                "run",
                "--bind",
                &format!("node:{node}"),
                "--mem",
                mem,
                "--",
                "cat",
                "/proc/self/numa_maps",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let maps = String::from_utf8(out.stdout).unwrap();
        // Every mapping of the new image carries the policy, e.g. `bind:0`.
        let first = maps.lines().next().unwrap();
        assert!(
            first.contains(word) && first.contains(&format!(":{node}")),
            "--mem {mem}: {first}"
        );
    }
    let out = osml()
        .args([
            "run",
            "--bind",
            &format!("node:{node}"),
            "--",
            "cat",
            "/proc/self/numa_maps",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .contains(" default "));
}

#[test]
fn run_refuses_bad_bindings_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = ["--", "touch", marker.to_str().unwrap()];
    let cases: [(&[&str], &str); 6] = [
        (
            &["--bind", "cpus:4000"],
            "outside the CPUs this process may use",
        ),
        (&["--bind", "cpus:x"], "cpus:x"),
        (&["--bind", "node:4096"], "no such NUMA node"),
        (
            &["--bind", "socket:1"],
            "expected auto, node:N or cpus:LIST",
        ),
        (&["--bind", "auto"], "LOCAL_RANK"),
        (&["--bind", "cpus:"], "names no CPU"),
    ];
    for (args, why) in cases {
        let out = osml()
            .env_remove("LOCAL_RANK")
            .arg("run")
            .args(args)
            .args(touch)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!marker.exists(), "{args:?} ran the command");
    }
    let out = osml()
        .env("LOCAL_RANK", "3")
        .env("LOCAL_WORLD_SIZE", "2")
        .args(["run", "--bind", "auto"])
        .args(touch)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!marker.exists());
    let out = osml()
        .args(["run", "--bind", "cpus:0", "--", "/nonexistent/osml-cmd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn run_auto_follows_torchrun_variables() {
    let t = json(&["topo", "--json"]);
    let allowed = ints(&t["allowed"]);
    let out = osml()
        .env("LOCAL_RANK", "0")
        .env("LOCAL_WORLD_SIZE", "1")
        .args([
            "run",
            "--bind",
            "auto",
            "--mode",
            "node",
            "--",
            "cat",
            "/proc/self/status",
        ])
        .output()
        .unwrap();
    let line = cpus_allowed_line(&out);
    let want = osml_host::CpuList::parse(
        &allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    )
    .unwrap();
    assert_eq!(line.split_whitespace().nth(1).unwrap(), want.to_string());
}
