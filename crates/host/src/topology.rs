//! [`Topology`]: where the CPUs, memory and devices of a host sit relative to each other, as
//! far as this process is concerned.
//!
//! Built from a [`HostSnapshot`] plus the L3 cache domains (`cache/index*/shared_cpu_list`).
//! Only the CPUs this process may use count: online, present in sysfs, in its affinity mask
//! and in its cgroup cpuset. NUMA nodes without CPUs (GPU or CXL memory) are kept. Devices
//! carry their NUMA node and the bridge path to their host bridge, from which [`link`] derives
//! the `nvidia-smi topo -m` words.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::{CpuList, HostRoot, HostSnapshot, PciDevice, PciKind};

/// One package (socket): its index (what cores and nodes refer to), the kernel's
/// `physical_package_id` when it gives one, and its usable CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageSet {
    pub id: usize,
    pub physical_id: Option<usize>,
    pub cpus: Vec<usize>,
}

/// One core: its package, `core_id`, and its usable hardware threads, lowest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoreSet {
    pub package: usize,
    pub core_id: Option<usize>,
    pub pus: Vec<usize>,
    /// The NUMA node of its first PU.
    pub numa_node: Option<usize>,
    /// Index into [`Topology::l3_domains`].
    pub l3: Option<usize>,
}

/// A NUMA node: its usable CPUs (empty for memory-only nodes) and memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSet {
    pub id: usize,
    pub cpus: Vec<usize>,
    pub memory_bytes: Option<u64>,
    /// SLIT distances to other nodes (node id → distance), when the kernel gives them.
    pub distances: Option<BTreeMap<usize, u32>>,
    /// The packages its CPUs belong to.
    pub packages: Vec<usize>,
}

/// The CPUs that share one L3 cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheDomain {
    pub cpus: Vec<usize>,
}

/// What a device is, as `osml topo` groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Gpu,
    Nic,
    Nvme,
    Other,
}

/// A PCI device placed in the topology.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    pub kind: DeviceKind,
    pub pci_address: String,
    /// `None` when the firmware does not say (`numa_node` is -1) or it is unreadable.
    pub numa_node: Option<usize>,
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub driver: Option<String>,
    /// RDMA devices (`mlx5_0`) on this function.
    pub rdma: Vec<String>,
    /// Bridges from the host bridge down, outermost first.
    pub bridges: Vec<String>,
    pub host_bridge: Option<String>,
    /// `local_cpulist`: the CPUs the firmware calls near, when readable.
    pub local_cpus: Option<Vec<usize>>,
    /// Where `numa_node` is unknown: the node of the other devices of its host bridge, else
    /// the one its `local_cpulist` names, else the only node with CPUs.
    pub inferred_numa_node: Option<usize>,
    /// Why, in words, when it was inferred.
    pub inferred_by: Option<String>,
}

/// The topology this process sees.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    /// Usable packages, cores and hardware threads (PUs).
    pub packages: usize,
    pub cores: usize,
    pub pus: usize,
    /// The usable CPUs.
    pub allowed: Vec<usize>,
    /// What restricts them below the online CPUs: `affinity`, `cgroup cpuset`; empty if nothing.
    pub restricted_by: Vec<String>,
    pub package_sets: Vec<PackageSet>,
    pub numa_nodes: Vec<NodeSet>,
    /// `true` when the host has no NUMA information and one node was assumed.
    pub numa_assumed: bool,
    pub l3_domains: Vec<CacheDomain>,
    pub core_sets: Vec<CoreSet>,
    /// GPUs, NICs, NVMe drives and other endpoints (bridges left out), in PCI order.
    pub devices: Vec<Device>,
    /// GPU and NIC pairs (PCI addresses, lower first) below a shared switch whose traffic ACS
    /// redirects to the root complex ([`crate::p2p`]).
    pub acs_redirected: Vec<[String; 2]>,
    /// Why a part of the topology is unknown (e.g. no PCI devices readable).
    pub notes: Vec<String>,
}

/// How two devices are connected, in `nvidia-smi topo -m` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Link {
    /// The same device.
    X,
    /// At most one `PCIe` bridge (or switch) between them.
    Pix,
    /// Several `PCIe` bridges, without the host bridge.
    Pxb,
    /// Through a `PCIe` host bridge (the CPU).
    Phb,
    /// Different host bridges in one NUMA node.
    Node,
    /// Across the interconnect between NUMA nodes (or a node unknown).
    Sys,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X => "X",
            Self::Pix => "PIX",
            Self::Pxb => "PXB",
            Self::Phb => "PHB",
            Self::Node => "NODE",
            Self::Sys => "SYS",
        }
    }
}

/// The legend that `osml topo` prints under its matrix.
pub const LINK_LEGEND: &[(&str, &str)] = &[
    ("X", "self"),
    (
        "SYS",
        "PCIe and the interconnect between NUMA nodes (e.g. QPI/UPI), or a node unknown",
    ),
    (
        "NODE",
        "PCIe and the interconnect between host bridges within a NUMA node",
    ),
    ("PHB", "PCIe and a PCIe host bridge (typically the CPU)"),
    ("PXB", "several PCIe bridges, without a PCIe host bridge"),
    ("PIX", "at most one PCIe bridge"),
];

/// How `a` and `b` are connected, from their bridge paths, host bridges and NUMA nodes. A
/// switch shows as an upstream bridge with one downstream bridge per port, so two devices on
/// ports of one switch (each one bridge below the shared upstream one) are `PIX`; deeper
/// paths below the shared bridge are `PXB`.
pub fn link(a: &Device, b: &Device) -> Link {
    if a.pci_address == b.pci_address {
        return Link::X;
    }
    let same_host = a.host_bridge.is_some() && a.host_bridge == b.host_bridge;
    if same_host {
        let common = crate::p2p::shared_bridges(&a.bridges, &b.bridges);
        if common > 0 {
            let below = (a.bridges.len() - common).max(b.bridges.len() - common);
            return if below <= 1 { Link::Pix } else { Link::Pxb };
        }
        return Link::Phb;
    }
    match (
        a.numa_node.or(a.inferred_numa_node),
        b.numa_node.or(b.inferred_numa_node),
    ) {
        (Some(x), Some(y)) if x == y => Link::Node,
        _ => Link::Sys,
    }
}

fn device_kind(d: &PciDevice) -> Option<DeviceKind> {
    Some(match d.kind {
        PciKind::Gpu => DeviceKind::Gpu,
        PciKind::Nic => DeviceKind::Nic,
        PciKind::Nvme => DeviceKind::Nvme,
        PciKind::Bridge => return None,
        PciKind::Nvswitch | PciKind::Other => DeviceKind::Other,
    })
}

/// The L3 domains of `cpus`: distinct `shared_cpu_list`s of each CPU's level-3 cache.
fn l3_lists(root: &HostRoot, cpus: &[usize]) -> BTreeMap<usize, CpuList> {
    let mut out = BTreeMap::new();
    for &cpu in cpus {
        let base = format!("/sys/devices/system/cpu/cpu{cpu}/cache");
        let Ok(entries) = root.list(&base) else {
            continue;
        };
        for e in entries.iter().filter(|e| e.starts_with("index")) {
            let level = root.read_trimmed(&format!("{base}/{e}/level"));
            if level.ok().as_deref() != Some("3") {
                continue;
            }
            if let Ok(list) = root
                .read(&format!("{base}/{e}/shared_cpu_list"))
                .map_err(|_| ())
                .and_then(|t| CpuList::parse(&t).map_err(|_| ()))
            {
                out.insert(cpu, list);
            }
        }
    }
    out
}

/// The CPUs this process may use: those with topology in sysfs (a dump may list CPUs as
/// online whose directories are missing), in its affinity mask and its cgroup cpuset; and
/// what restricted them.
fn usable_cpus(snap: &HostSnapshot, topo: &[crate::CpuTopology]) -> (CpuList, Vec<String>) {
    let mut allowed: CpuList = topo
        .iter()
        .filter(|c| {
            c.package.is_some()
                || c.core.is_some()
                || c.siblings.is_some()
                || c.package_cpus.is_some()
        })
        .map(|c| c.cpu)
        .collect();
    let mut restricted_by = Vec::new();
    let limits = [
        ("affinity", snap.cpu.allowed.known()),
        (
            "cgroup cpuset",
            snap.cgroup.cpuset.known().and_then(|s| s.cpus.known()),
        ),
    ];
    for (what, limit) in limits {
        if let Some(l) = limit {
            let next = allowed.intersection(l);
            if next != allowed {
                restricted_by.push(what.to_owned());
            }
            allowed = next;
        }
    }
    (allowed, restricted_by)
}

/// NUMA nodes with their usable CPUs (one node assumed when sysfs has none), without the nodes
/// the cgroup forbids allocating from.
fn numa_nodes(snap: &HostSnapshot, allowed: &CpuList) -> (Vec<NodeSet>, bool) {
    let Some(all) = snap.numa.known().filter(|n| !n.is_empty()) else {
        let assumed = NodeSet {
            id: 0,
            cpus: allowed.ids().to_vec(),
            memory_bytes: snap.memory.total_bytes.known().copied(),
            distances: None,
            packages: Vec::new(),
        };
        return (vec![assumed], true);
    };
    let mut nodes: Vec<NodeSet> = all
        .iter()
        .map(|n| NodeSet {
            id: n.id,
            cpus: n.cpus.intersection(allowed).ids().to_vec(),
            memory_bytes: n.memory_bytes.known().copied(),
            // The kernel lists distances in node order.
            distances: n
                .distances
                .known()
                .filter(|d| d.len() == all.len())
                .map(|d| all.iter().map(|m| m.id).zip(d.iter().copied()).collect()),
            packages: Vec::new(),
        })
        .collect();
    if let Some(mems) = snap.cgroup.cpuset.known().and_then(|s| s.mems.known()) {
        if !mems.is_empty() {
            nodes.retain(|n| mems.contains(n.id));
        }
    }
    (nodes, false)
}

/// Distinct L3 domains (usable CPUs only) and, per CPU, the index of its domain.
fn l3_domains(root: &HostRoot, allowed: &CpuList) -> (Vec<CacheDomain>, BTreeMap<usize, usize>) {
    let mut domains: Vec<CacheDomain> = Vec::new();
    let mut index = BTreeMap::new();
    for (cpu, list) in l3_lists(root, allowed.ids()) {
        let cpus = list.intersection(allowed).ids().to_vec();
        let i = if let Some(i) = domains.iter().position(|d| d.cpus == cpus) {
            i
        } else {
            domains.push(CacheDomain { cpus });
            domains.len() - 1
        };
        index.insert(cpu, i);
    }
    (domains, index)
}

/// Endpoints (bridges left out) in PCI order, with the RDMA devices on each.
fn devices(snap: &HostSnapshot, notes: &mut Vec<String>) -> Vec<Device> {
    let Some(list) = snap.pci_devices.known() else {
        if let Some(why) = snap.pci_devices.reason() {
            notes.push(format!("PCI devices unknown: {why}"));
        }
        return Vec::new();
    };
    let rdma: Vec<(String, String)> = snap
        .rdma
        .ports
        .known()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| Some((p.pci_address.clone()?, p.device.clone())))
                .collect()
        })
        .unwrap_or_default();
    let mut v: Vec<Device> = list
        .iter()
        .filter_map(|d| {
            let kind = device_kind(d)?;
            let mut names: Vec<String> = rdma
                .iter()
                .filter(|(a, _)| *a == d.address)
                .map(|(_, n)| n.clone())
                .collect();
            names.dedup();
            Some(Device {
                kind,
                pci_address: d.address.clone(),
                numa_node: d.numa_node.known().and_then(|&n| usize::try_from(n).ok()),
                vendor: d.vendor,
                device: d.device,
                class: d.class,
                driver: d.driver.clone(),
                rdma: names,
                bridges: d.bridges.clone(),
                host_bridge: d.host_bridge.clone(),
                local_cpus: d.local_cpus.known().map(|l| l.ids().to_vec()),
                inferred_numa_node: None,
                inferred_by: None,
            })
        })
        .collect();
    v.sort_by(|a, b| a.pci_address.cmp(&b.pci_address));
    v
}

/// The GPU and NIC pairs whose peer traffic ACS sends to the root complex.
fn acs_redirected(snap: &HostSnapshot) -> Vec<[String; 2]> {
    let Some(all) = snap.pci_devices.known() else {
        return Vec::new();
    };
    let ends: Vec<&PciDevice> = all
        .iter()
        .filter(|d| matches!(d.kind, PciKind::Gpu | PciKind::Nic))
        .collect();
    let mut out = Vec::new();
    for (i, a) in ends.iter().enumerate() {
        for b in &ends[i + 1..] {
            if let crate::p2p::Route::Switch {
                acs: crate::p2p::Acs::Redirected { .. },
                ..
            } = crate::p2p::route(all, a, b)
            {
                let mut pair = [a.address.clone(), b.address.clone()];
                pair.sort();
                out.push(pair);
            }
        }
    }
    out.sort();
    out
}

/// A package as the kernel groups CPUs: its `physical_package_id` and its CPU set.
type PackageKey = (Option<usize>, Vec<usize>);
/// Package index → (physical id, usable CPUs).
type Packages = BTreeMap<usize, (Option<usize>, Vec<usize>)>;
/// (package index, core id, sibling set) → usable CPUs.
type Cores = BTreeMap<(usize, Option<usize>, Vec<usize>), Vec<usize>>;

/// Packages and cores of the usable CPUs.
fn group_cpus(topo: &[crate::CpuTopology], allowed: &CpuList) -> (Packages, Cores) {
    // Packages as the kernel groups CPUs (`package_cpus`/`core_siblings`), which also
    // splits packages whose `physical_package_id` repeats or is -1; else by that id.
    // Cores: a core id within a package, further split by thread-sibling sets (core_id
    // repeats on the two dies of some packages; some kernels pair two cores as siblings).
    let mut package_keys: BTreeMap<PackageKey, Vec<usize>> = BTreeMap::new();
    let mut core_keys: Vec<(PackageKey, Option<usize>, Vec<usize>, usize)> = Vec::new();
    for c in topo.iter().filter(|c| allowed.contains(c.cpu)) {
        let pkg_key = match (&c.package_cpus, c.package) {
            (Some(set), id) => (id, set.ids().to_vec()),
            (None, Some(id)) => (Some(id), Vec::new()),
            (None, None) => (None, vec![usize::MAX]),
        };
        let siblings = c
            .siblings
            .as_ref()
            .map_or_else(|| vec![c.cpu], |s| s.intersection(allowed).ids().to_vec());
        package_keys.entry(pkg_key.clone()).or_default().push(c.cpu);
        core_keys.push((pkg_key, c.core, siblings, c.cpu));
    }
    // Without any package information (no id, no sibling mask) there is no package.
    let package_index: BTreeMap<PackageKey, usize> = {
        let mut keys: Vec<_> = package_keys
            .iter()
            .filter(|(k, _)| k.1 != [usize::MAX])
            .map(|(k, cpus)| (cpus[0], k.clone()))
            .collect();
        keys.sort();
        keys.into_iter()
            .enumerate()
            .map(|(i, (_, k))| (k, i))
            .collect()
    };
    let mut cores: BTreeMap<(usize, Option<usize>, Vec<usize>), Vec<usize>> = BTreeMap::new();
    for (pkg_key, core_id, siblings, cpu) in core_keys {
        let pkg = package_index.get(&pkg_key).copied().unwrap_or(usize::MAX);
        cores.entry((pkg, core_id, siblings)).or_default().push(cpu);
    }
    let packages: BTreeMap<usize, (Option<usize>, Vec<usize>)> = package_keys
        .into_iter()
        .filter_map(|(k, cpus)| package_index.get(&k).map(|&i| (i, (k.0, cpus))))
        .collect();
    (packages, cores)
}

/// Fills `inferred_numa_node` (and `inferred_by`) for devices whose firmware gives no node:
/// devices behind one host bridge hang off one root complex, so one node; else the node
/// `local_cpulist` names most, when it names some nodes and not all; else the only node with
/// CPUs.
fn infer_nodes(devices: &mut [Device], nodes: &[NodeSet]) {
    let cpu_nodes: Vec<usize> = nodes
        .iter()
        .filter(|n| !n.cpus.is_empty())
        .map(|n| n.id)
        .collect();
    let node_of = |cpu: usize| nodes.iter().find(|n| n.cpus.contains(&cpu)).map(|n| n.id);
    let known: Vec<(Option<String>, usize)> = devices
        .iter()
        .filter_map(|d| Some((d.host_bridge.clone(), d.numa_node?)))
        .filter(|(_, n)| cpu_nodes.contains(n))
        .collect();
    for d in devices.iter_mut().filter(|d| d.numa_node.is_none()) {
        let mut peers: Vec<usize> = known
            .iter()
            .filter(|(hb, _)| hb.is_some() && *hb == d.host_bridge)
            .map(|(_, n)| *n)
            .collect();
        peers.sort_unstable();
        peers.dedup();
        let by_cpus = || {
            let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
            for &c in d.local_cpus.as_ref()? {
                if let Some(n) = node_of(c) {
                    *votes.entry(n).or_default() += 1;
                }
            }
            if votes.is_empty() || (votes.len() > 1 && votes.len() >= cpu_nodes.len()) {
                return None;
            }
            votes.into_iter().max_by_key(|(_, v)| *v).map(|(n, _)| n)
        };
        let (node, by) = match (peers.as_slice(), &d.host_bridge) {
            ([n], Some(hb)) => (
                Some(*n),
                format!("the other devices of its host bridge {hb} are on node {n}"),
            ),
            _ => match by_cpus() {
                Some(n) => (Some(n), format!("its local_cpulist puts it on node {n}")),
                None if cpu_nodes.len() == 1 => (
                    Some(cpu_nodes[0]),
                    format!("node {} is the only node with CPUs", cpu_nodes[0]),
                ),
                None => (None, String::new()),
            },
        };
        d.inferred_numa_node = node;
        d.inferred_by = node.map(|_| by);
    }
}

impl Topology {
    /// Reads the host behind `root` (gathering a snapshot).
    pub fn read(root: &HostRoot) -> Self {
        Self::from_snapshot(root, &HostSnapshot::gather(root))
    }

    /// Builds the topology from a snapshot; `root` is read again only for L3 caches.
    pub fn from_snapshot(root: &HostRoot, snap: &HostSnapshot) -> Self {
        let mut notes = Vec::new();
        let topo = snap.cpu.topology.known().cloned().unwrap_or_default();
        if let Some(why) = snap.cpu.topology.reason() {
            notes.push(format!("CPU topology unknown: {why}"));
        }
        let (allowed, restricted_by) = usable_cpus(snap, &topo);
        let (numa_nodes, numa_assumed) = numa_nodes(snap, &allowed);
        let node_of: BTreeMap<usize, usize> = numa_nodes
            .iter()
            .flat_map(|n| n.cpus.iter().map(move |&c| (c, n.id)))
            .collect();
        let (l3_domains, l3_index) = l3_domains(root, &allowed);

        let (packages, cores) = group_cpus(&topo, &allowed);
        let mut core_sets: Vec<CoreSet> = cores
            .into_iter()
            .map(|((package, core_id, _), mut pus)| {
                pus.sort_unstable();
                (package, core_id, pus)
            })
            .map(|(package, core_id, pus)| CoreSet {
                package,
                core_id,
                numa_node: pus.first().and_then(|p| node_of.get(p).copied()),
                l3: pus.first().and_then(|p| l3_index.get(p).copied()),
                pus,
            })
            .collect();
        core_sets.sort_by_key(|c| c.pus.first().copied());
        let numa_nodes: Vec<NodeSet> = numa_nodes
            .into_iter()
            .map(|mut n| {
                let p: BTreeSet<usize> = core_sets
                    .iter()
                    .filter(|c| c.numa_node == Some(n.id) && c.package != usize::MAX)
                    .map(|c| c.package)
                    .collect();
                n.packages = p.into_iter().collect();
                n
            })
            .collect();
        let mut devices = devices(snap, &mut notes);
        infer_nodes(&mut devices, &numa_nodes);
        Self {
            packages: packages.len(),
            cores: core_sets.len(),
            pus: allowed.len(),
            allowed: allowed.ids().to_vec(),
            restricted_by,
            package_sets: packages
                .into_iter()
                .map(|(id, (physical_id, cpus))| PackageSet {
                    id,
                    physical_id,
                    cpus,
                })
                .collect(),
            numa_nodes,
            numa_assumed,
            l3_domains,
            core_sets,
            devices,
            acs_redirected: acs_redirected(snap),
            notes,
        }
    }

    /// Devices of one kind, in PCI order.
    pub fn devices_of(&self, kind: DeviceKind) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(move |d| d.kind == kind)
    }

    /// The NUMA node of a CPU.
    pub fn node_of_cpu(&self, cpu: usize) -> Option<usize> {
        self.numa_nodes
            .iter()
            .find(|n| n.cpus.contains(&cpu))
            .map(|n| n.id)
    }
}

/// The CPUs of a device's NUMA node (usable ones), or `None` if its node is unknown or has no
/// usable CPUs.
pub fn device_cpus<'a>(t: &'a Topology, d: &Device) -> Option<&'a [usize]> {
    let n = d.numa_node?;
    t.numa_nodes
        .iter()
        .find(|x| x.id == n)
        .map(|x| x.cpus.as_slice())
        .filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(addr: &str, host: &str, bridges: &[&str], node: Option<usize>) -> Device {
        Device {
            kind: DeviceKind::Gpu,
            pci_address: addr.to_owned(),
            numa_node: node,
            vendor: 0x10de,
            device: 0,
            class: 0x030200,
            driver: None,
            rdma: Vec::new(),
            bridges: bridges.iter().map(|s| (*s).to_owned()).collect(),
            host_bridge: Some(host.to_owned()),
            local_cpus: None,
            inferred_numa_node: None,
            inferred_by: None,
        }
    }

    #[test]
    fn links_follow_the_bridge_paths() {
        // Root port r, switch upstream u, downstream ports d1, d2; a second host bridge.
        let g0 = dev("0000:03:00.0", "pci0000:00", &["r", "u", "d1"], Some(0));
        let g1 = dev("0000:04:00.0", "pci0000:00", &["r", "u", "d2"], Some(0));
        let deep = dev(
            "0000:05:00.0",
            "pci0000:00",
            &["r", "u", "d2", "u2", "d3"],
            Some(0),
        );
        let direct = dev("0000:06:00.0", "pci0000:00", &["r2"], Some(0));
        let other_host = dev("0000:81:00.0", "pci0000:80", &["s"], Some(0));
        let far = dev("0000:c1:00.0", "pci0000:c0", &["t"], Some(1));
        let unknown = dev("0000:e1:00.0", "pci0000:e0", &["v"], None);
        let mut inferred = unknown.clone();
        inferred.inferred_numa_node = Some(1);
        assert_eq!(link(&far, &inferred), Link::Node, "an inferred node counts");
        assert_eq!(link(&g0, &g0), Link::X);
        assert_eq!(link(&g0, &g1), Link::Pix);
        assert_eq!(link(&g0, &deep), Link::Pxb);
        assert_eq!(link(&g0, &direct), Link::Phb);
        assert_eq!(link(&g0, &other_host), Link::Node);
        assert_eq!(link(&g0, &far), Link::Sys);
        assert_eq!(link(&g0, &unknown), Link::Sys);
        // Two functions of one device share every bridge.
        let f1 = dev("0000:03:00.1", "pci0000:00", &["r", "u", "d1"], Some(0));
        assert_eq!(link(&g0, &f1), Link::Pix);
        // Symmetric.
        for (a, b) in [(&g0, &deep), (&g0, &far), (&direct, &g1)] {
            assert_eq!(link(a, b), link(b, a));
        }
    }
}
