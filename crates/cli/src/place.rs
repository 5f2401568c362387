//! `osml topo`, `osml affinity` and `osml run --bind`: where things are, where ranks should go,
//! and putting a command there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use osml_host::affinity::{plan, Mode, Plan};
use osml_host::topology::{link, DeviceKind, Topology, LINK_LEGEND};
use osml_host::{CpuList, HostRoot};
use serde::Serialize;

use crate::archive;
use crate::cli::{AffinityArgs, MemMode, RunArgs, TopoArgs};
use crate::exit::{CannotRun, Usage};

/// What `osml topo --json` prints: the topology, the matrix and what is missing.
#[derive(Serialize)]
struct TopoReport<'a> {
    schema_version: u32,
    #[serde(flatten)]
    topology: &'a Topology,
    matrix: Matrix,
    nvlink: &'static str,
}

/// GPUs then NICs, and the link between each pair.
#[derive(Serialize)]
struct Matrix {
    labels: Vec<String>,
    pci_addresses: Vec<String>,
    links: Vec<Vec<&'static str>>,
    /// Whether ACS redirects the pair's traffic to the root complex (`osml doctor`'s
    /// `pci.p2p`), cell by cell.
    acs_redirected: Vec<Vec<bool>>,
}

const NVLINK_NOTE: &str = "not shown: NVLink is reported by NVML (libnvidia-ml), which osml does not load; the links above are PCIe paths";

fn load(root: Option<&std::path::Path>) -> Result<(Topology, Option<archive::OpenedRoot>)> {
    let opened = root.map(archive::open_root).transpose()?;
    let host = match &opened {
        Some(o) => o.root(),
        None => HostRoot::live(),
    };
    Ok((Topology::read(&host), opened))
}

fn matrix(t: &Topology) -> Matrix {
    let mut devs = Vec::new();
    let mut labels = Vec::new();
    for (kind, prefix) in [(DeviceKind::Gpu, "GPU"), (DeviceKind::Nic, "NIC")] {
        for (i, d) in t.devices_of(kind).enumerate() {
            devs.push(d);
            labels.push(format!("{prefix}{i}"));
        }
    }
    Matrix {
        labels,
        pci_addresses: devs.iter().map(|d| d.pci_address.clone()).collect(),
        links: devs
            .iter()
            .map(|a| devs.iter().map(|b| link(a, b).as_str()).collect())
            .collect(),
        acs_redirected: devs
            .iter()
            .map(|a| {
                devs.iter()
                    .map(|b| {
                        let mut pair = [a.pci_address.clone(), b.pci_address.clone()];
                        pair.sort();
                        t.acs_redirected.contains(&pair)
                    })
                    .collect()
            })
            .collect(),
    }
}

fn cpus(list: &[usize]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.iter().copied().collect::<CpuList>().to_string()
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

fn device_line(d: &osml_host::topology::Device) -> String {
    let kind = match d.kind {
        DeviceKind::Gpu => "GPU",
        DeviceKind::Nic => "NIC",
        DeviceKind::Nvme => "NVMe",
        DeviceKind::Other => "PCI",
    };
    let mut s = format!(
        "{kind} {} ({:04x}:{:04x}",
        d.pci_address, d.vendor, d.device
    );
    if let Some(drv) = &d.driver {
        let _ = write!(s, ", {drv}");
    }
    if !d.rdma.is_empty() {
        let _ = write!(s, ", {}", d.rdma.join(" "));
    }
    s.push(')');
    s
}

pub fn topo(a: &TopoArgs) -> Result<ExitCode> {
    let (t, _keep) = load(a.root.as_deref())?;
    let m = matrix(&t);
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    if a.json {
        let report = TopoReport {
            schema_version: 1,
            topology: &t,
            matrix: m,
            nvlink: NVLINK_NOTE,
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    write_topo(&mut out, &t, &m)?;
    Ok(ExitCode::SUCCESS)
}

/// One line per L3 domain of a node's cores in one package.
fn write_node_cores(
    out: &mut impl Write,
    t: &Topology,
    node: usize,
    package: usize,
) -> std::io::Result<()> {
    let mut by_l3: BTreeMap<Option<usize>, Vec<&osml_host::topology::CoreSet>> = BTreeMap::new();
    for c in t
        .core_sets
        .iter()
        .filter(|c| c.numa_node == Some(node) && c.package == package)
    {
        by_l3.entry(c.l3).or_default().push(c);
    }
    for (l3, cs) in by_l3 {
        let pus: Vec<usize> = cs.iter().flat_map(|c| c.pus.iter().copied()).collect();
        let first: Vec<usize> = cs.iter().filter_map(|c| c.pus.first().copied()).collect();
        writeln!(
            out,
            "    {}{} core(s), PUs {} (one per core: {})",
            l3.map_or_else(String::new, |i| format!("L3 #{i}: ")),
            cs.len(),
            cpus(&pus),
            cpus(&first)
        )?;
    }
    Ok(())
}

fn write_topo(out: &mut impl Write, t: &Topology, matrix: &Matrix) -> std::io::Result<()> {
    let smt = t.cores > 0 && t.pus > t.cores;
    writeln!(
        out,
        "Machine: {} package(s), {} NUMA node(s), {} core(s), {} PU(s){}",
        t.packages,
        t.numa_nodes.len(),
        t.cores,
        t.pus,
        if smt { " (SMT on)" } else { "" }
    )?;
    if !t.restricted_by.is_empty() {
        writeln!(
            out,
            "  usable CPUs {} (restricted by {})",
            cpus(&t.allowed),
            t.restricted_by.join(" and ")
        )?;
    }
    let node_line = |n: &osml_host::topology::NodeSet| {
        let mut s = format!("NUMA node {}", n.id);
        if let Some(b) = n.memory_bytes {
            let _ = write!(s, " ({})", gib(b));
        }
        if t.numa_assumed {
            s.push_str(" (no NUMA information: one node assumed)");
        }
        s
    };
    let devices_on = |node: Option<usize>| -> Vec<String> {
        t.devices
            .iter()
            .filter(|d| d.kind != DeviceKind::Other && d.numa_node == node)
            .map(device_line)
            .collect()
    };
    for p in &t.package_sets {
        writeln!(
            out,
            "Package {} (CPUs {})",
            p.physical_id.unwrap_or(p.id),
            cpus(&p.cpus)
        )?;
        for n in t
            .numa_nodes
            .iter()
            .filter(|n| n.packages.first() == Some(&p.id))
        {
            writeln!(out, "  {}", node_line(n))?;
            write_node_cores(out, t, n.id, p.id)?;
            for d in devices_on(Some(n.id)) {
                writeln!(out, "    {d}")?;
            }
        }
    }
    for n in t.numa_nodes.iter().filter(|n| n.cpus.is_empty()) {
        writeln!(out, "{} (no CPUs: memory only)", node_line(n))?;
        for d in devices_on(Some(n.id)) {
            writeln!(out, "    {d}")?;
        }
    }
    let lost: Vec<_> = t
        .devices
        .iter()
        .filter(|d| d.kind != DeviceKind::Other && d.numa_node.is_none())
        .collect();
    if !lost.is_empty() {
        writeln!(out, "Devices without a NUMA node (numa_node -1):")?;
        for d in lost {
            let inferred = d.inferred_numa_node.map_or_else(String::new, |n| {
                format!("; placed on node {n} by its host bridge or local CPUs")
            });
            writeln!(out, "    {}{inferred}", device_line(d))?;
        }
    }
    let others = t
        .devices
        .iter()
        .filter(|d| d.kind == DeviceKind::Other)
        .count();
    if others > 0 {
        writeln!(
            out,
            "({others} other PCI device(s) not shown; --json lists them)"
        )?;
    }
    for n in &t.notes {
        writeln!(out, "note: {n}")?;
    }
    write_matrix(out, t, matrix)
}

fn write_matrix(out: &mut impl Write, t: &Topology, matrix: &Matrix) -> std::io::Result<()> {
    if matrix.labels.is_empty() {
        writeln!(out, "\nNo GPU or NIC found: no device matrix.")?;
        return Ok(());
    }
    writeln!(out)?;
    let width = matrix
        .labels
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(4)
        .max(4)
        + 2;
    write!(out, "{:width$}", "")?;
    for l in &matrix.labels {
        write!(out, "{l:<width$}")?;
    }
    writeln!(out, "CPU Affinity    NUMA Affinity")?;
    let devs: Vec<_> = [DeviceKind::Gpu, DeviceKind::Nic]
        .iter()
        .flat_map(|k| t.devices_of(*k))
        .collect();
    for (i, row) in matrix.links.iter().enumerate() {
        write!(out, "{:<width$}", matrix.labels[i])?;
        for (j, cell) in row.iter().enumerate() {
            let cell = if matrix.acs_redirected[i][j] {
                format!("{cell}*")
            } else {
                (*cell).to_owned()
            };
            write!(out, "{cell:<width$}")?;
        }
        let d = devs[i];
        let (aff, node) = match d.numa_node {
            Some(n) => (
                t.numa_nodes
                    .iter()
                    .find(|x| x.id == n)
                    .map_or_else(|| "N/A".to_owned(), |x| cpus(&x.cpus)),
                n.to_string(),
            ),
            None => ("N/A".to_owned(), "N/A".to_owned()),
        };
        writeln!(out, "{aff:<16}{node}")?;
    }
    writeln!(out)?;
    writeln!(out, "Legend:")?;
    for (k, v) in LINK_LEGEND {
        writeln!(out, "  {k:<4} = {v}")?;
    }
    if matrix.acs_redirected.iter().flatten().any(|r| *r) {
        writeln!(
            out,
            "  *    = ACS on the switch sends this pair's traffic to the root complex (`osml doctor --only pci.p2p` says which ports and the fix)"
        )?;
    }
    writeln!(out)?;
    for (l, (addr, d)) in matrix
        .labels
        .iter()
        .zip(matrix.pci_addresses.iter().zip(&devs))
    {
        let names = if d.rdma.is_empty() {
            String::new()
        } else {
            format!(" ({})", d.rdma.join(", "))
        };
        writeln!(out, "  {l}: {addr}{names}")?;
    }
    writeln!(out, "NVLink: {NVLINK_NOTE}.")?;
    Ok(())
}

pub fn affinity(a: &AffinityArgs) -> Result<ExitCode> {
    if let Some(r) = a.local_rank {
        if r >= a.nproc_per_node {
            return Err(Usage::new(format!(
                "--local-rank {r} is outside 0..{} (--nproc-per-node {})",
                a.nproc_per_node, a.nproc_per_node
            ))
            .into());
        }
    }
    let (t, _keep) = load(a.root.as_deref())?;
    let mut p = plan(&t, a.nproc_per_node, a.mode.into(), a.loader_threads)
        .map_err(|e| Usage::new(e.to_string()))?;
    if let Some(why) = exclusive_broken(&p) {
        return Err(Usage::new(format!("--mode exclusive: {why}"))
            .hint("use --mode node, where the ranks of a node share its CPUs, or fewer ranks per node")
            .into());
    }
    if let Some(r) = a.local_rank {
        p.ranks.retain(|x| x.local_rank == r);
    }
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &p)?;
        writeln!(out)?;
    } else {
        write_plan(&mut out, &p)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Why an exclusive plan is not exclusive: two ranks given the same CPU (more ranks on a node
/// than it has cores). Refused rather than noted: `exclusive` promises each rank CPUs no other
/// rank uses, and a plan that breaks the promise quietly costs more than a flag to change.
fn exclusive_broken(p: &Plan) -> Option<String> {
    if p.mode != Mode::Exclusive {
        return None;
    }
    for (i, a) in p.ranks.iter().enumerate() {
        for b in &p.ranks[i + 1..] {
            if let Some(cpu) = a.cpus.iter().find(|c| b.cpus.contains(c)) {
                return Some(format!(
                    "{} ranks, but ranks {} and {} would both run on CPU {cpu}: their node has fewer cores than ranks",
                    p.nproc_per_node, a.local_rank, b.local_rank
                ));
            }
        }
    }
    None
}

fn write_plan(out: &mut impl Write, p: &Plan) -> std::io::Result<()> {
    writeln!(
        out,
        "{} rank(s), mode {}, {} loader CPU(s) per rank",
        p.nproc_per_node,
        p.mode.as_str(),
        p.loader_threads
    )?;
    for n in &p.notes {
        writeln!(out, "note: {n}")?;
    }
    for r in &p.ranks {
        writeln!(out)?;
        writeln!(
            out,
            "rank {}: GPU {}, NUMA node {}",
            r.local_rank,
            r.gpu_pci_address.as_deref().unwrap_or("none"),
            r.numa_node
                .map_or_else(|| "unknown".to_owned(), |n| n.to_string())
        )?;
        writeln!(out, "  cpus         {}", cpus(&r.cpus))?;
        if let Some(m) = r.main_cpu {
            writeln!(out, "  main thread  {m}")?;
        }
        writeln!(out, "  loader cpus  {}", cpus(&r.loader_cpus))?;
        if let Some(nic) = &r.nic_pci_address {
            writeln!(
                out,
                "  nic          {nic}{} ({})",
                if r.nic_rdma.is_empty() {
                    String::new()
                } else {
                    format!(" {}", r.nic_rdma.join(" "))
                },
                r.nic_link.as_deref().unwrap_or("?")
            )?;
        }
        writeln!(out, "  numactl      {}", r.numactl)?;
        writeln!(out, "  taskset      {}", r.taskset)?;
        for n in &r.notes {
            writeln!(out, "  note: {n}")?;
        }
    }
    Ok(())
}

/// A usage error of `osml run`: exit 2, nothing run.
fn refuse(msg: &str) -> anyhow::Error {
    Usage::new(format!("run: {msg}")).into()
}

fn env_usize(name: &str) -> Result<usize, String> {
    let v = std::env::var(name).map_err(|_| {
        format!("--bind auto needs {name} in the environment (torchrun sets it; or use --bind node:N / cpus:LIST)")
    })?;
    v.trim()
        .parse()
        .map_err(|_| format!("{name}={v:?} is not a number"))
}

/// What `--bind` names: CPUs, NUMA nodes and (for `auto`) the rank's loader CPUs, checked
/// against what this process may use.
struct Binding {
    cpus: Vec<usize>,
    nodes: Vec<usize>,
    loader_cpus: Option<Vec<usize>>,
}

fn resolve_binding(a: &RunArgs, t: &Topology) -> Result<Binding, String> {
    if a.bind == "auto" {
        let rank = env_usize("LOCAL_RANK")?;
        let world = env_usize("LOCAL_WORLD_SIZE")?;
        if rank >= world {
            return Err(format!(
                "LOCAL_RANK {rank} is outside 0..{world} (LOCAL_WORLD_SIZE)"
            ));
        }
        let p = plan(t, world, a.mode.into(), a.loader_threads).map_err(|e| e.to_string())?;
        if let Some(why) = exclusive_broken(&p) {
            return Err(format!("--mode exclusive: {why} (use --mode node)"));
        }
        let r = &p.ranks[rank];
        return Ok(Binding {
            cpus: r.cpus.clone(),
            nodes: r.numa_node.into_iter().collect(),
            loader_cpus: Some(r.loader_cpus.clone()),
        });
    }
    if let Some(n) = a.bind.strip_prefix("node:") {
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("--bind node:{n}: not a node number"))?;
        let Some(node) = t.numa_nodes.iter().find(|x| x.id == n) else {
            let known: Vec<String> = t.numa_nodes.iter().map(|x| x.id.to_string()).collect();
            return Err(format!(
                "--bind node:{n}: no such NUMA node here (nodes: {})",
                known.join(", ")
            ));
        };
        if node.cpus.is_empty() {
            return Err(format!(
                "--bind node:{n}: the node has no CPU this process may use (memory only, or outside its cpuset)"
            ));
        }
        return Ok(Binding {
            cpus: node.cpus.clone(),
            nodes: vec![n],
            loader_cpus: None,
        });
    }
    if let Some(list) = a.bind.strip_prefix("cpus:") {
        let wanted = match CpuList::parse(list) {
            Ok(l) if !l.is_empty() => l,
            Ok(_) => return Err("--bind cpus: names no CPU".to_owned()),
            Err(e) => return Err(format!("--bind cpus:{list}: {e}")),
        };
        let allowed: CpuList = t.allowed.iter().copied().collect();
        let outside = wanted.difference(&allowed);
        if !outside.is_empty() {
            return Err(format!(
                "--bind cpus:{list}: CPU(s) {outside} are outside the CPUs this process may use ({allowed})"
            ));
        }
        let mut nodes: Vec<usize> = wanted
            .ids()
            .iter()
            .filter_map(|&c| t.node_of_cpu(c))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        return Ok(Binding {
            cpus: wanted.ids().to_vec(),
            nodes,
            loader_cpus: None,
        });
    }
    Err(format!(
        "--bind {}: expected auto, node:N or cpus:LIST",
        a.bind
    ))
}

pub fn run(a: &RunArgs) -> Result<ExitCode> {
    use std::os::unix::process::CommandExt;

    let t = Topology::read(&HostRoot::live());
    let Binding {
        cpus: bind_cpus,
        nodes,
        loader_cpus,
    } = match resolve_binding(a, &t) {
        Ok(b) => b,
        Err(e) => return Err(refuse(&e)),
    };
    if bind_cpus.is_empty() {
        return Err(refuse("the binding names no CPU"));
    }
    if let Err(e) = osml_sys::pin_current_thread(&bind_cpus) {
        return Err(refuse(&format!("setting the CPU affinity: {e}")));
    }
    if let Some(mode) = a.mem {
        if nodes.is_empty() {
            return Err(refuse("--mem: the bound CPUs belong to no known NUMA node"));
        }
        let policy = match mode {
            MemMode::Bind => osml_sys::MemPolicy::Bind,
            MemMode::Preferred => osml_sys::MemPolicy::Preferred,
            MemMode::Interleave => osml_sys::MemPolicy::Interleave,
        };
        let nodes = if mode == MemMode::Preferred {
            &nodes[..1]
        } else {
            &nodes[..]
        };
        if let Err(e) = osml_sys::set_mempolicy(policy, nodes) {
            return Err(refuse(&format!("setting the memory policy: {e}")));
        }
    }
    let n = bind_cpus.len().to_string();
    let mut cmd = std::process::Command::new(&a.command[0]);
    cmd.args(&a.command[1..]);
    for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, &n);
        }
    }
    if let Some(l) = loader_cpus.filter(|l| !l.is_empty()) {
        if std::env::var_os("OSML_LOADER_CPUS").is_none() {
            cmd.env("OSML_LOADER_CPUS", cpus(&l));
        }
    }
    // The plan numbers GPUs in PCI bus order; CUDA's default order (fastest first) can differ
    // on a host with mixed GPUs, and then `cuda:i` would not be the GPU the CPUs were chosen
    // for.
    let order_set = std::env::var_os("CUDA_DEVICE_ORDER").is_none();
    if order_set {
        cmd.env("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
    }
    if a.verbose {
        crate::output::say!(
            "osml run: cpus {} ({n}), memory {}{}",
            cpus(&bind_cpus),
            a.mem.map_or_else(
                || "local allocation".to_owned(),
                |m| format!("{m:?} on node(s) {}", cpus(&nodes)).to_lowercase()
            ),
            if order_set {
                ", CUDA_DEVICE_ORDER=PCI_BUS_ID (GPU i is the plan's: PCI bus order)"
            } else {
                ""
            }
        );
    }
    let error = cmd.exec();
    osml_sys::ignore_sigpipe();
    Err(CannotRun {
        command: a.command[0].to_string_lossy().into_owned(),
        error,
    }
    .into())
}
