//! CPU placement for the ranks of a job on one host: each local rank next to its GPU, with a
//! set of CPUs for its loader threads that no other rank and not its own training thread uses.
//!
//! Modes as torchrun's `--numa-binding`: `node` (the CPUs of the GPU's NUMA node), `socket`
//! (every node of its package), `exclusive` (the node's physical cores split evenly between
//! the node's ranks, the remainder to the lowest ranks) and `core-complex` (one L3 domain per
//! rank). Beyond torchrun: CPU-less nodes and `numa_node = -1` are placed on the nearest node
//! with usable CPUs (by the device's `local_cpulist`, else the SLIT distances, else by rank
//! order) and said so; cpusets that cut a node are honoured; ranks beyond the GPUs and hosts
//! without GPUs are spread over the nodes.
//!
//! Loader CPUs come from the rank's own slice of its node (its share of the node's cores):
//! first one hardware thread of each core, then the SMT siblings, never the core of the
//! training thread (the first core of the slice).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::topology::{link, CoreSet, Device, DeviceKind, Link, Topology};
use crate::CpuList;

/// How wide each rank's CPU set is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Node,
    Socket,
    Exclusive,
    CoreComplex,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Socket => "socket",
            Self::Exclusive => "exclusive",
            Self::CoreComplex => "core-complex",
        }
    }
}

/// What cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("--nproc-per-node must be at least 1")]
    NoRanks,
    #[error("local rank {rank} is outside 0..{nproc}")]
    RankOutOfRange { rank: usize, nproc: usize },
    #[error("this process may use no CPU (the topology shows none usable)")]
    NoCpus,
}

/// The placement of one local rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RankPlan {
    pub local_rank: usize,
    pub gpu_pci_address: Option<String>,
    /// The node whose CPUs and memory the rank uses.
    pub numa_node: Option<usize>,
    /// CPUs of the training process.
    pub cpus: Vec<usize>,
    /// The CPU for the training thread itself (the first of its slice).
    pub main_cpu: Option<usize>,
    /// CPUs for its loader threads: disjoint across ranks, never the training thread's core.
    pub loader_cpus: Vec<usize>,
    /// The nearest NIC (PCI address) and how it connects to the GPU.
    pub nic_pci_address: Option<String>,
    pub nic_rdma: Vec<String>,
    pub nic_link: Option<String>,
    /// `numactl` and `taskset` commands with the same effect.
    pub numactl: String,
    pub taskset: String,
    /// Why the placement is not the obvious one.
    pub notes: Vec<String>,
}

/// The plan for every local rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub mode: Mode,
    pub nproc_per_node: usize,
    pub loader_threads: usize,
    pub ranks: Vec<RankPlan>,
    pub notes: Vec<String>,
}

fn list(cpus: &[usize]) -> String {
    cpus.iter().copied().collect::<CpuList>().to_string()
}

/// Nodes with usable CPUs, ascending.
fn cpu_nodes(t: &Topology) -> Vec<usize> {
    t.numa_nodes
        .iter()
        .filter(|n| !n.cpus.is_empty())
        .map(|n| n.id)
        .collect()
}

/// The node with usable CPUs nearest to `node` by SLIT distance, if distances are known.
fn nearest_cpu_node(t: &Topology, node: usize) -> Option<usize> {
    let d = t
        .numa_nodes
        .iter()
        .find(|n| n.id == node)?
        .distances
        .as_ref()?;
    cpu_nodes(t)
        .into_iter()
        .filter_map(|c| d.get(&c).map(|&dist| (dist, c)))
        .min()
        .map(|(_, c)| c)
}

/// Where a GPU's rank goes: its node if it has usable CPUs; otherwise what can be inferred.
fn node_for_device(t: &Topology, d: &Device, notes: &mut Vec<String>) -> Option<usize> {
    let cpu_node_ids = cpu_nodes(t);
    match d.numa_node {
        Some(n) if cpu_node_ids.contains(&n) => return Some(n),
        Some(n) => {
            if let Some(near) = nearest_cpu_node(t, n) {
                notes.push(format!(
                    "{} is on node {n}, which has no CPUs this process may use: nearest node {near} by distance",
                    d.pci_address
                ));
                return Some(near);
            }
        }
        None => {}
    }
    // No node from the firmware: the topology's inference (host bridge, local_cpulist, the
    // only node), said in a note where there was a choice to make.
    let n = d.inferred_numa_node?;
    if cpu_node_ids.len() > 1 {
        notes.push(format!(
            "{} has no NUMA node (numa_node -1); {} (torchrun would assume node 0)",
            d.pci_address,
            d.inferred_by.as_deref().unwrap_or("inferred")
        ));
    }
    Some(n)
}

/// A rank's slice of its node: the node's cores split evenly between the ranks placed on it,
/// the remainder to the lowest.
fn slice<'a>(cores: &[&'a CoreSet], index: usize, count: usize) -> Vec<&'a CoreSet> {
    if count == 0 || cores.is_empty() {
        return Vec::new();
    }
    if cores.len() < count {
        // More ranks than cores: ranks share cores round-robin.
        return vec![cores[index % cores.len()]];
    }
    let base = cores.len() / count;
    let extra = cores.len() % count;
    let start = index * base + index.min(extra);
    let len = base + usize::from(index < extra);
    cores[start..start + len].to_vec()
}

fn pus_of(cores: &[&CoreSet]) -> Vec<usize> {
    let mut v: Vec<usize> = cores.iter().flat_map(|c| c.pus.iter().copied()).collect();
    v.sort_unstable();
    v
}

/// Loader CPUs from a slice: one thread per core first (skipping the training core), then
/// siblings.
fn loader_cpus(slice: &[&CoreSet], k: usize) -> Vec<usize> {
    let rest = slice.get(1..).unwrap_or(&[]);
    let depth = rest.iter().map(|c| c.pus.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for level in 0..depth {
        for c in rest {
            if out.len() == k {
                return out;
            }
            if let Some(&p) = c.pus.get(level) {
                out.push(p);
            }
        }
    }
    out
}

/// A rank placed on a node, before its CPUs are chosen.
struct Placed<'a> {
    gpu: Option<&'a Device>,
    node: Option<usize>,
    notes: Vec<String>,
}

/// A node (and GPU) per rank: GPUs in PCI order on their node, ranks beyond the GPUs spread
/// over the nodes in blocks, GPUs whose node cannot be told on the node with fewest ranks.
fn place<'a>(t: &Topology, gpus: &[&'a Device], nproc: usize) -> Vec<Placed<'a>> {
    let cpu_node_ids = cpu_nodes(t);
    let gpu_less_total = nproc.saturating_sub(gpus.len());
    let mut placed: Vec<Placed<'a>> = (0..nproc)
        .map(|r| {
            let mut notes = Vec::new();
            if let Some(&g) = gpus.get(r) {
                let node = node_for_device(t, g, &mut notes);
                Placed {
                    gpu: Some(g),
                    node,
                    notes,
                }
            } else {
                let i = (r - gpus.len()) * cpu_node_ids.len() / gpu_less_total.max(1);
                Placed {
                    gpu: None,
                    node: cpu_node_ids.get(i).copied(),
                    notes,
                }
            }
        })
        .collect();
    for r in 0..nproc {
        if placed[r].node.is_some() {
            continue;
        }
        let n = cpu_node_ids
            .iter()
            .min_by_key(|&&n| (placed.iter().filter(|p| p.node == Some(n)).count(), n))
            .copied();
        if let (Some(g), Some(n)) = (placed[r].gpu, n) {
            placed[r].notes.push(format!(
                "{} has no NUMA node, and neither its host bridge nor its local_cpulist tells: placed on node {n}, the one with the fewest ranks (torchrun would assume node 0)",
                g.pci_address
            ));
        }
        placed[r].node = n;
    }
    placed
}

fn cores_of(t: &Topology, n: usize) -> Vec<&CoreSet> {
    t.core_sets
        .iter()
        .filter(|c| c.numa_node == Some(n))
        .collect()
}

/// The CPUs of a rank in `mode`, and its slice (the cores its main and loader threads come
/// from). `index` is its position among the `peers` ranks on its node.
fn rank_cpus<'a>(
    t: &'a Topology,
    mode: Mode,
    node: Option<usize>,
    index: usize,
    peers: usize,
    notes: &mut Vec<String>,
) -> (Vec<usize>, Vec<&'a CoreSet>) {
    let Some(n) = node else {
        return (t.allowed.clone(), Vec::new());
    };
    let node_set = t.numa_nodes.iter().find(|x| x.id == n);
    let node_cores = cores_of(t, n);
    let own = slice(&node_cores, index, peers);
    match mode {
        Mode::Node => (node_set.map(|x| x.cpus.clone()).unwrap_or_default(), own),
        Mode::Socket => {
            let pkgs = node_set.map(|x| x.packages.clone()).unwrap_or_default();
            let mut v: Vec<usize> = t
                .package_sets
                .iter()
                .filter(|p| pkgs.contains(&p.id))
                .flat_map(|p| p.cpus.iter().copied())
                .collect();
            v.sort_unstable();
            (v, own)
        }
        Mode::Exclusive => (pus_of(&own), own),
        Mode::CoreComplex => {
            // The node's L3 domains, one per rank in order; ranks beyond the number of domains
            // share them, each with its own share of the domain's cores.
            let mut domains: Vec<usize> = node_cores.iter().filter_map(|c| c.l3).collect();
            domains.sort_unstable();
            domains.dedup();
            if domains.is_empty() {
                notes.push(format!(
                    "node {n} reports no L3 cache domains: exclusive cores instead"
                ));
                return (pus_of(&own), own);
            }
            let d = domains[index % domains.len()];
            let sharing = (0..peers)
                .filter(|i| i % domains.len() == index % domains.len())
                .count();
            if sharing > 1 {
                notes.push(format!(
                    "{peers} ranks on node {n} for {} L3 domain(s): {sharing} share this one",
                    domains.len()
                ));
            }
            let in_domain: Vec<&CoreSet> =
                node_cores.into_iter().filter(|c| c.l3 == Some(d)).collect();
            let own = slice(&in_domain, index / domains.len(), sharing);
            (t.l3_domains[d].cpus.clone(), own)
        }
    }
}

/// How a rank reaches a NIC: from its GPU, else by node.
fn nic_link(gpu: Option<&Device>, node: Option<usize>, nic: &Device) -> Link {
    match gpu {
        Some(g) => link(g, nic),
        None if nic.numa_node.is_some() && nic.numa_node == node => Link::Node,
        None => Link::Sys,
    }
}

/// Plans `nproc` local ranks; `loader_threads` CPUs of loader threads each.
pub fn plan(
    t: &Topology,
    nproc: usize,
    mode: Mode,
    loader_threads: usize,
) -> Result<Plan, PlanError> {
    if nproc == 0 {
        return Err(PlanError::NoRanks);
    }
    if t.allowed.is_empty() {
        return Err(PlanError::NoCpus);
    }
    let mut notes = Vec::new();
    let gpus: Vec<&Device> = t.devices_of(DeviceKind::Gpu).collect();
    let nics: Vec<&Device> = t.devices_of(DeviceKind::Nic).collect();
    if gpus.is_empty() {
        notes.push(format!(
            "no GPU found: {nproc} rank(s) spread over {} node(s) with CPUs",
            cpu_nodes(t).len()
        ));
    } else if nproc > gpus.len() {
        notes.push(format!(
            "{nproc} ranks for {} GPU(s): ranks {}..{} get no GPU and are spread over the nodes",
            gpus.len(),
            gpus.len(),
            nproc - 1
        ));
    }
    let placed = place(t, &gpus, nproc);
    let mut on_node: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (r, p) in placed.iter().enumerate() {
        if let Some(n) = p.node {
            on_node.entry(n).or_default().push(r);
        }
    }
    let mut nic_use: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ranks = Vec::new();
    for (r, p) in placed.into_iter().enumerate() {
        let Placed {
            gpu,
            node,
            notes: mut rnotes,
        } = p;
        let (index, peers) = node.map_or((0, 1), |n| {
            let on = &on_node[&n];
            (on.iter().position(|&x| x == r).unwrap_or(0), on.len())
        });
        let (cpus, own) = rank_cpus(t, mode, node, index, peers, &mut rnotes);
        let main_cpu = own.first().and_then(|c| c.pus.first().copied());
        let loaders = loader_cpus(&own, loader_threads);
        if loaders.len() < loader_threads {
            rnotes.push(format!(
                "{} loader CPU(s) of {loader_threads} asked: its slice of the node has {} core(s), one kept for the training thread",
                loaders.len(),
                own.len()
            ));
        }
        // The nearest NIC, spreading ranks over equally near ones.
        let nic = nics
            .iter()
            .min_by_key(|nic| {
                (
                    nic_link(gpu, node, nic),
                    nic_use.get(nic.pci_address.as_str()).copied().unwrap_or(0),
                    nic.rdma.is_empty(),
                    nic.pci_address.clone(),
                )
            })
            .copied();
        if let Some(n) = nic {
            *nic_use.entry(n.pci_address.as_str()).or_default() += 1;
        }
        let cpu_text = list(&cpus);
        ranks.push(RankPlan {
            local_rank: r,
            gpu_pci_address: gpu.map(|g| g.pci_address.clone()),
            numa_node: node,
            numactl: match node {
                Some(n) => format!("numactl --physcpubind={cpu_text} --membind={n}"),
                None => format!("numactl --physcpubind={cpu_text}"),
            },
            taskset: format!("taskset -c {cpu_text}"),
            cpus,
            main_cpu,
            loader_cpus: loaders,
            nic_link: nic.map(|n| nic_link(gpu, node, n).as_str().to_owned()),
            nic_pci_address: nic.map(|n| n.pci_address.clone()),
            nic_rdma: nic.map(|n| n.rdma.clone()).unwrap_or_default(),
            notes: rnotes,
        });
    }
    Ok(Plan {
        mode,
        nproc_per_node: nproc,
        loader_threads,
        ranks,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(pus: &[usize]) -> CoreSet {
        CoreSet {
            package: 0,
            core_id: None,
            pus: pus.to_vec(),
            numa_node: Some(0),
            l3: None,
        }
    }

    #[test]
    fn slices_split_evenly_with_the_remainder_first() {
        let cores: Vec<CoreSet> = (0..10).map(|i| core(&[i])).collect();
        let refs: Vec<&CoreSet> = cores.iter().collect();
        let sizes: Vec<usize> = (0..4).map(|i| slice(&refs, i, 4).len()).collect();
        assert_eq!(sizes, [3, 3, 2, 2]);
        let all: Vec<usize> = (0..4).flat_map(|i| pus_of(&slice(&refs, i, 4))).collect();
        assert_eq!(
            all,
            (0..10).collect::<Vec<_>>(),
            "every core once, in order"
        );
    }

    #[test]
    fn loader_cpus_take_cores_before_siblings_and_skip_the_main_core() {
        let cores = [core(&[0, 8]), core(&[1, 9]), core(&[2, 10])];
        let refs: Vec<&CoreSet> = cores.iter().collect();
        assert_eq!(loader_cpus(&refs, 3), [1, 2, 9]);
        assert_eq!(loader_cpus(&refs, 10), [1, 2, 9, 10]);
        assert!(loader_cpus(&refs[..1], 2).is_empty());
    }
}
