//! [`HostSnapshot`]: everything osml knows about a host, gathered in one pass.
//!
//! The field layout is API: it is the `host` object of `osml doctor --json`
//! (see `docs/doctor-json.md`). Add fields freely; rename or remove only with a new
//! `schema_version`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::parse::{cgroup, cpuinfo, limits, meminfo, modules, mounts, pressure};
use crate::parse::{status, swaps, sysfs};
use crate::{
    CpuList, ErrorKind, Fact, HostError, HostRoot, KernelParams, Limits, Mount, ParseError, Psi,
};

/// The whole host, as read through one [`HostRoot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSnapshot {
    /// `/` for the running host, else the directory the facts were read from.
    pub root: String,
    /// Whether live probes (affinity syscall, statvfs, io_uring) were made.
    pub live: bool,
    pub hostname: Fact<String>,
    pub kernel: Kernel,
    pub cpu: Cpu,
    pub numa: Fact<Vec<NumaNode>>,
    pub memory: Memory,
    /// Kernel tunables by sysctl name (`vm.swappiness`), as the raw text of their file.
    pub tunables: BTreeMap<String, Fact<String>>,
    /// Resource limits of the reading process (`/proc/self/limits`).
    pub limits: Fact<Limits>,
    pub shm: Shm,
    pub block_devices: Fact<Vec<BlockDevice>>,
    pub pci_devices: Fact<Vec<PciDevice>>,
    pub rdma: Rdma,
    pub cgroup: Cgroup,
    pub pressure: Pressure,
}

/// Kernel release, command line, and what can be done with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kernel {
    pub release: Fact<String>,
    pub cmdline: Fact<String>,
    /// The command-line parameters that matter to osml.
    pub params: KernelParams,
    /// Loaded modules (`/proc/modules`).
    pub modules: Fact<Vec<String>>,
    /// Whether this process could create an io_uring (live only): `true`, or unknown with
    /// the errno of `io_uring_setup`.
    pub io_uring_setup: Fact<bool>,
    /// What the kernel log (`/dev/kmsg`) says, by class.
    pub log: Fact<crate::parse::kmsg::KernelLog>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub model: Fact<String>,
    pub online: Fact<CpuList>,
    /// CPUs this process may run on: `sched_getaffinity` live, `Cpus_allowed_list` of
    /// `/proc/self/status` under a root.
    pub allowed: Fact<CpuList>,
    pub sockets: Fact<usize>,
    pub cores: Fact<usize>,
    pub threads_per_core: Fact<usize>,
    pub smt: Fact<Smt>,
    /// Per-CPU frequency scaling, grouped: CPUs that share a governor and driver.
    pub frequency: Fact<Vec<CpuFreqGroup>>,
    /// Per-CPU topology, for placement.
    pub topology: Fact<Vec<CpuTopology>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Smt {
    /// `on`, `off`, `forceoff`, `notsupported` or `notimplemented`.
    pub control: String,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFreqGroup {
    pub governor: String,
    pub driver: String,
    pub cpus: CpuList,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTopology {
    pub cpu: usize,
    /// `physical_package_id`; `None` when absent or -1 (s390, POWER).
    pub package: Option<usize>,
    pub core: Option<usize>,
    /// Hardware threads of its core: `thread_siblings_list`, or the `thread_siblings` mask.
    pub siblings: Option<CpuList>,
    /// CPUs of its package: `package_cpus_list`, `core_siblings_list`, or the
    /// `core_siblings` mask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_cpus: Option<CpuList>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumaNode {
    pub id: usize,
    /// May be empty: GPU or CXL memory shows up as a node without CPUs.
    pub cpus: CpuList,
    pub memory_bytes: Fact<u64>,
    /// `MemFree` of the node's `meminfo`.
    pub free_bytes: Fact<u64>,
    /// ACPI SLIT distances to every node, in node order (10 = local).
    pub distances: Fact<Vec<u32>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub total_bytes: Fact<u64>,
    pub available_bytes: Fact<u64>,
    pub swap_total_bytes: Fact<u64>,
    pub swap_free_bytes: Fact<u64>,
    pub swaps: Fact<Vec<crate::SwapDevice>>,
    pub hugetlb: Fact<Vec<HugePool>>,
    pub thp: Thp,
    /// Free blocks per node, zone and order (`/proc/buddyinfo`).
    pub buddy: Fact<Vec<crate::parse::buddyinfo::BuddyZone>>,
    /// The page size the buddy orders count in: this host's live, 4096 under a root.
    pub page_bytes: u64,
    /// Huge-page and compaction counters since boot (`/proc/vmstat`: [`VMSTAT_KEYS`]).
    pub vmstat: Fact<BTreeMap<String, u64>>,
}

/// The `/proc/vmstat` counters osml reads: transparent huge pages allocated at fault and
/// fallen back to small pages, and direct compaction.
pub const VMSTAT_KEYS: [&str; 5] = [
    "thp_fault_alloc",
    "thp_fault_fallback",
    "compact_stall",
    "compact_fail",
    "compact_success",
];

/// One hugetlb pool (one page size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugePool {
    pub page_size_bytes: u64,
    pub total: u64,
    pub free: u64,
    pub reserved: Option<u64>,
    pub surplus: Option<u64>,
    /// `(node, total, free)` where per-node pools are visible.
    pub per_node: Vec<(usize, u64, u64)>,
}

/// Transparent huge pages (`Documentation/admin-guide/mm/transhuge.rst`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thp {
    pub enabled: Fact<String>,
    pub defrag: Fact<String>,
    /// `khugepaged/defrag`: 1 lets khugepaged compact memory to collapse pages.
    pub khugepaged_defrag: Fact<String>,
    pub shmem_enabled: Fact<String>,
}

/// `/dev/shm`, where PyTorch DataLoader workers and NCCL put shared memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shm {
    pub mount: Fact<Mount>,
    /// The tmpfs `size=` option, in bytes (absent means half of RAM).
    pub size_bytes: Fact<u64>,
    /// Bytes in use (statvfs; live only).
    pub used_bytes: Fact<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDevice {
    pub name: String,
    pub scheduler: Fact<String>,
    pub read_ahead_kb: Fact<u64>,
    pub rotational: Fact<bool>,
    pub model: Fact<String>,
    pub size_bytes: Fact<u64>,
}

/// What a PCI device is, for placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PciKind {
    Gpu,
    Nic,
    Nvme,
    Nvswitch,
    Bridge,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PciDevice {
    /// Domain:bus:device.function, e.g. `0000:3b:00.0`.
    pub address: String,
    pub kind: PciKind,
    /// The 24-bit class code (`0x030200` is a 3D controller).
    pub class: u32,
    pub vendor: u16,
    pub device: u16,
    /// -1 when the firmware does not say (torchrun then assumes node 0).
    pub numa_node: Fact<i64>,
    pub local_cpus: Fact<CpuList>,
    /// The negotiated link (`current_link_speed`, e.g. `32.0 GT/s PCIe`, and
    /// `current_link_width`): for an endpoint or a switch's upstream port the link above it,
    /// for a root or downstream port the link below it.
    pub link_speed: Fact<String>,
    pub link_width: Fact<u32>,
    /// What the device supports (`max_link_speed`, `max_link_width`).
    pub max_link_speed: Fact<String>,
    pub max_link_width: Fact<u32>,
    pub driver: Option<String>,
    /// Bridges from the host bridge down to this device, outermost first.
    pub bridges: Vec<String>,
    /// The host bridge (`pci0000:00`) the device hangs from.
    pub host_bridge: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rdma {
    pub ports: Fact<Vec<RdmaPort>>,
}

/// One port of an RDMA device (`/sys/class/infiniband/<dev>/ports/<n>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdmaPort {
    pub device: String,
    pub port: u32,
    /// e.g. `4: ACTIVE`.
    pub state: Fact<String>,
    /// e.g. `5: LinkUp`.
    pub phys_state: Fact<String>,
    /// e.g. `400 Gb/sec (4X NDR)`.
    pub rate: Fact<String>,
    /// `InfiniBand` or `Ethernet` (RoCE).
    pub link_layer: Fact<String>,
    pub pci_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cgroup {
    /// `v1`, `v2` or `hybrid`.
    pub version: Fact<String>,
    pub memory: Fact<CgroupMemory>,
    pub cpu: Fact<CgroupCpu>,
    pub cpuset: Fact<CgroupCpuset>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMemory {
    /// The directory the limit was read from.
    pub path: String,
    /// The smallest limit on the way to the root; `None` is no limit.
    pub limit_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupCpu {
    pub path: String,
    /// The tightest quota on the way to the root as `(quota_us, period_us)`; `None` is none.
    pub quota: Option<(u64, u64)>,
}

impl CgroupCpu {
    /// The quota in CPUs (1.5 = one and a half CPUs of time per period).
    pub fn cpus(&self) -> Option<f64> {
        self.quota.map(|(q, p)| q as f64 / p as f64)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupCpuset {
    pub path: String,
    pub cpus: Fact<CpuList>,
    pub mems: Fact<CpuList>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub cpu: Fact<Psi>,
    pub memory: Fact<Psi>,
    pub io: Fact<Psi>,
}

/// The tunables osml reads: sysctl name and file.
pub const TUNABLES: &[&str] = &[
    "vm.swappiness",
    "vm.overcommit_memory",
    "vm.overcommit_ratio",
    "vm.max_map_count",
    "vm.dirty_ratio",
    "vm.dirty_bytes",
    "vm.dirty_background_ratio",
    "vm.dirty_background_bytes",
    "vm.zone_reclaim_mode",
    "vm.min_free_kbytes",
    "vm.nr_hugepages",
    "kernel.numa_balancing",
    "kernel.perf_event_paranoid",
    "kernel.io_uring_disabled",
    "fs.file-max",
    "fs.nr_open",
    "net.core.rmem_max",
    "net.core.wmem_max",
];

/// The id of the `raw_syscalls:sys_enter` tracepoint, which counts system calls with
/// `perf_event_open`, from tracefs (mounted at `/sys/kernel/tracing`, or under debugfs on older
/// systems); `None` when tracefs is not mounted.
pub fn syscall_tracepoint_id(root: &HostRoot) -> Option<u64> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|t| {
            root.read_trimmed(&format!("{t}/events/raw_syscalls/sys_enter/id"))
                .ok()
        })
        .and_then(|id| id.parse().ok())
}

/// The file behind a sysctl name: `vm.swappiness` is `/proc/sys/vm/swappiness`.
pub fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

fn read_with<T>(
    root: &HostRoot,
    path: &str,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<T, HostError> {
    let text = root.read(path)?;
    parse(&text).map_err(|error| HostError::Parse {
        path: path.to_owned(),
        error,
    })
}

fn fact<T>(
    root: &HostRoot,
    path: &str,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Fact<T> {
    read_with(root, path, parse).into()
}

fn trimmed(root: &HostRoot, path: &str) -> Fact<String> {
    root.read_trimmed(path).into()
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl HostSnapshot {
    /// Reads every fact. Never fails: what cannot be read is recorded as unknown.
    pub fn gather(root: &HostRoot) -> Self {
        let mounts = root
            .read("/proc/self/mounts")
            .or_else(|_| root.read("/proc/mounts"))
            .and_then(|t| {
                mounts::parse(&t).map_err(|error| HostError::Parse {
                    path: "/proc/self/mounts".into(),
                    error,
                })
            });
        let mounts: Fact<Vec<Mount>> = mounts.into();
        let kernel = gather_kernel(root);
        let numa = gather_numa(root);
        Self {
            root: root.base().display().to_string(),
            live: root.is_live(),
            hostname: trimmed(root, "/proc/sys/kernel/hostname"),
            cpu: gather_cpu(root),
            memory: gather_memory(root, &numa),
            numa,
            tunables: TUNABLES
                .iter()
                .map(|name| ((*name).to_owned(), trimmed(root, &sysctl_path(name))))
                .collect(),
            limits: fact(root, "/proc/self/limits", limits::parse),
            shm: gather_shm(root, &mounts),
            block_devices: gather_block(root),
            pci_devices: gather_pci(root),
            rdma: Rdma {
                ports: gather_rdma(root),
            },
            cgroup: gather_cgroup(root, &mounts),
            pressure: Pressure {
                cpu: fact(root, "/proc/pressure/cpu", pressure::parse),
                memory: fact(root, "/proc/pressure/memory", pressure::parse),
                io: fact(root, "/proc/pressure/io", pressure::parse),
            },
            kernel,
        }
    }

    /// A tunable parsed as an integer, if known.
    pub fn tunable_u64(&self, name: &str) -> Option<u64> {
        self.tunables
            .get(name)
            .and_then(Fact::known)
            .and_then(|v| v.trim().parse().ok())
    }

    /// PCI devices of one kind (empty when PCI is unknown).
    pub fn pci_of(&self, kind: PciKind) -> Vec<&PciDevice> {
        self.pci_devices
            .known()
            .map(|d| d.iter().filter(|p| p.kind == kind).collect())
            .unwrap_or_default()
    }

    /// NUMA nodes that have CPUs.
    pub fn cpu_nodes(&self) -> Vec<&NumaNode> {
        self.numa
            .known()
            .map(|n| n.iter().filter(|n| !n.cpus.is_empty()).collect())
            .unwrap_or_default()
    }
}

fn gather_kernel(root: &HostRoot) -> Kernel {
    let cmdline = trimmed(root, "/proc/cmdline");
    let release = match root.read_trimmed("/proc/sys/kernel/osrelease") {
        Ok(r) => Fact::Known(r),
        // `/proc/version` is "Linux version 6.1.0-18-amd64 (…)".
        Err(e) => root
            .read("/proc/version")
            .ok()
            .and_then(|v| v.split_whitespace().nth(2).map(str::to_owned))
            .map_or_else(|| e.into(), Fact::Known),
    };
    let modules = match read_with(root, "/proc/modules", modules::parse) {
        Ok(m) => Fact::Known(m),
        Err(e) => match root.list("/sys/module") {
            // Built-in modules also appear under /sys/module; good enough to test presence.
            Ok(m) => Fact::Known(m),
            Err(_) => e.into(),
        },
    };
    let io_uring_setup = if root.is_live() {
        match osml_sys::probe_io_uring() {
            Ok(()) => Fact::Known(true),
            Err(e) => Fact::unknown(ErrorKind::Unreadable, e.to_string()),
        }
    } else {
        HostError::LiveOnly {
            what: "io_uring_setup",
        }
        .into()
    };
    Kernel {
        params: cmdline
            .known()
            .map(|c| KernelParams::parse(c))
            .unwrap_or_default(),
        release,
        cmdline,
        modules,
        io_uring_setup,
        log: match root.read_kmsg() {
            Ok(text) => Fact::Known(crate::parse::kmsg::summarise(&text)),
            Err(e) => e.into(),
        },
    }
}

const CPU_SYS: &str = "/sys/devices/system/cpu";

fn gather_cpu(root: &HostRoot) -> Cpu {
    let info = fact(root, "/proc/cpuinfo", cpuinfo::parse);
    let online = match read_with(root, &format!("{CPU_SYS}/online"), CpuList::parse) {
        Ok(l) => Fact::Known(l),
        // Old kernels and some dumps lack `online`: every cpuN directory is then online.
        Err(e) => match root.list(CPU_SYS) {
            Ok(names) => Fact::Known(
                names
                    .iter()
                    .filter_map(|n| n.strip_prefix("cpu").and_then(|d| d.parse().ok()))
                    .collect(),
            ),
            Err(_) => e.into(),
        },
    };
    if root.is_live() && root.is_recording() {
        // A capture keeps the affinity as text, where a replay finds it.
        let _ = root.read("/proc/self/status");
    }
    let allowed = if root.is_live() {
        osml_sys::allowed_cpus()
            .map(|c| c.into_iter().collect())
            .map_or_else(
                |e| Fact::unknown(ErrorKind::Unreadable, e.to_string()),
                Fact::Known,
            )
    } else {
        fact(root, "/proc/self/status", status::cpus_allowed_list)
    };

    let topology = online.as_ref().map(|online| {
        online
            .ids()
            .iter()
            .map(|&cpu| {
                let base = format!("{CPU_SYS}/cpu{cpu}/topology");
                let num = |f: &str| {
                    root.read(&format!("{base}/{f}"))
                        .ok()
                        .and_then(|t| sysfs::parse_u64(&t).ok())
                        .and_then(|v| usize::try_from(v).ok())
                };
                CpuTopology {
                    cpu,
                    package: num("physical_package_id"),
                    core: num("core_id"),
                    siblings: list_or_mask(
                        root,
                        &base,
                        &["thread_siblings_list"],
                        "thread_siblings",
                    ),
                    package_cpus: list_or_mask(
                        root,
                        &base,
                        &["package_cpus_list", "core_siblings_list"],
                        "core_siblings",
                    ),
                }
            })
            .collect::<Vec<_>>()
    });
    let (sockets, cores, threads_per_core) = count_topology(&topology, &info);

    let smt = match root.read_trimmed(&format!("{CPU_SYS}/smt/control")) {
        Ok(control) => Fact::Known(Smt {
            control,
            active: root
                .read_trimmed(&format!("{CPU_SYS}/smt/active"))
                .ok()
                .map(|a| a == "1"),
        }),
        Err(e) => e.into(),
    };

    Cpu {
        model: info.as_ref().and_then(|i| {
            i.model.clone().map_or_else(
                || Fact::unknown(ErrorKind::Absent, "/proc/cpuinfo names no model"),
                Fact::Known,
            )
        }),
        frequency: online.as_ref().and_then(|o| gather_cpufreq(root, o)),
        online,
        allowed,
        sockets,
        cores,
        threads_per_core,
        smt,
        topology,
    }
}

type Counts = (Fact<usize>, Fact<usize>, Fact<usize>);

fn count_topology(topology: &Fact<Vec<CpuTopology>>, info: &Fact<cpuinfo::CpuInfo>) -> Counts {
    use std::collections::BTreeSet;
    let from_sysfs = topology.known().and_then(|t| {
        let mut packages = BTreeSet::new();
        // A core is a set of hardware-thread siblings. `core_id` alone is not unique within a
        // package on multi-die parts (AMD Opteron 6100: two dies, each numbering cores 0-3).
        let mut cores = BTreeSet::new();
        let mut threads = 1;
        for c in t {
            let (Some(p), Some(core)) = (c.package, c.core) else {
                return None;
            };
            packages.insert(p);
            match &c.siblings {
                Some(sib) => cores.insert((p, sib.ids().first().copied().unwrap_or(c.cpu))),
                None => cores.insert((p, core + (1 << 32))),
            };
            threads = threads.max(c.siblings.as_ref().map_or(1, CpuList::len));
        }
        (!t.is_empty()).then_some((packages.len(), cores.len(), threads))
    });
    let from_cpuinfo = || {
        info.known().and_then(|i| {
            let mut packages = BTreeSet::new();
            let mut cores = BTreeSet::new();
            for &(_, p, c) in &i.processors {
                packages.insert(p?);
                cores.insert((p?, c?));
            }
            let n = i.processors.len();
            (!cores.is_empty()).then(|| (packages.len(), cores.len(), n.div_ceil(cores.len())))
        })
    };
    if let Some((s, c, t)) = from_sysfs.or_else(from_cpuinfo) {
        (Fact::Known(s), Fact::Known(c), Fact::Known(t))
    } else {
        let why = "neither cpu*/topology nor /proc/cpuinfo give package and core ids";
        let unknown = || Fact::unknown(ErrorKind::Absent, why);
        (unknown(), unknown(), unknown())
    }
}

fn gather_cpufreq(root: &HostRoot, online: &CpuList) -> Fact<Vec<CpuFreqGroup>> {
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    let mut first_error = None;
    for &cpu in online.ids() {
        let base = format!("{CPU_SYS}/cpu{cpu}/cpufreq");
        match root.read_trimmed(&format!("{base}/scaling_governor")) {
            Ok(gov) => {
                let driver = root
                    .read_trimmed(&format!("{base}/scaling_driver"))
                    .unwrap_or_else(|_| "unknown".into());
                groups.entry((gov, driver)).or_default().push(cpu);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if groups.is_empty() {
        return Fact::unknown(
            ErrorKind::NotApplicable,
            first_error.map_or_else(
                || "no online CPUs".to_owned(),
                |e| {
                    format!(
                    "no cpufreq ({e}): no frequency driver is loaded, as in most virtual machines"
                )
                },
            ),
        );
    }
    Fact::Known(
        groups
            .into_iter()
            .map(|((governor, driver), cpus)| CpuFreqGroup {
                governor,
                driver,
                cpus: cpus.into_iter().collect(),
            })
            .collect(),
    )
}

const NODE_SYS: &str = "/sys/devices/system/node";

fn node_ids(root: &HostRoot) -> Result<Vec<usize>, HostError> {
    let mut ids: Vec<usize> = root
        .list(NODE_SYS)?
        .iter()
        .filter_map(|n| n.strip_prefix("node").and_then(|d| d.parse().ok()))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The first of `lists` that parses, else the hex mask `mask` (kernels before the `_list`
/// files), in directory `base`.
fn list_or_mask(root: &HostRoot, base: &str, lists: &[&str], mask: &str) -> Option<CpuList> {
    lists
        .iter()
        .find_map(|f| {
            root.read(&format!("{base}/{f}"))
                .ok()
                .and_then(|t| CpuList::parse(&t).ok())
        })
        .or_else(|| {
            root.read(&format!("{base}/{mask}"))
                .ok()
                .and_then(|t| CpuList::parse_mask(&t).ok())
        })
}

fn gather_numa(root: &HostRoot) -> Fact<Vec<NumaNode>> {
    let ids = match node_ids(root) {
        Ok(ids) if !ids.is_empty() => ids,
        Ok(_) => return Fact::unknown(ErrorKind::Absent, format!("{NODE_SYS} lists no nodes")),
        Err(e) => return Fact::unknown(e.kind(), format!("{e} (kernel without NUMA support?)")),
    };
    Fact::Known(
        ids.into_iter()
            .map(|id| {
                let base = format!("{NODE_SYS}/node{id}");
                NumaNode {
                    id,
                    // Older kernels have only the `cpumap` mask.
                    cpus: root
                        .read(&format!("{base}/cpulist"))
                        .ok()
                        .and_then(|t| CpuList::parse(&t).ok())
                        .or_else(|| {
                            root.read(&format!("{base}/cpumap"))
                                .ok()
                                .and_then(|t| CpuList::parse_mask(&t).ok())
                        })
                        // Or only the `cpuN` links (trimmed dumps).
                        .or_else(|| {
                            root.list(&base).ok().map(|names| {
                                names
                                    .iter()
                                    .filter_map(|n| n.strip_prefix("cpu")?.parse().ok())
                                    .collect()
                            })
                        })
                        .unwrap_or_default(),
                    // "Node 0 MemTotal:       24634564 kB"
                    memory_bytes: fact(root, &format!("{base}/meminfo"), meminfo::parse_node_total),
                    free_bytes: fact(root, &format!("{base}/meminfo"), |t| {
                        meminfo::parse_node_field(t, "MemFree")
                    }),
                    distances: fact(root, &format!("{base}/distance"), |t| {
                        t.split_whitespace()
                            .map(|d| {
                                d.parse()
                                    .map_err(|_| ParseError::new("distance", t, "not a number"))
                            })
                            .collect()
                    }),
                }
            })
            .collect(),
    )
}

fn gather_memory(root: &HostRoot, numa: &Fact<Vec<NumaNode>>) -> Memory {
    let info = fact(root, "/proc/meminfo", meminfo::parse);
    let key = |k: &'static str| {
        info.as_ref().and_then(|m| {
            m.get(k).copied().map_or_else(
                || Fact::unknown(ErrorKind::Absent, format!("/proc/meminfo has no {k}")),
                Fact::Known,
            )
        })
    };
    let thp = "/sys/kernel/mm/transparent_hugepage";
    let choice = |path: String| fact(root, &path, sysfs::selected);
    Memory {
        total_bytes: key("MemTotal"),
        // MemAvailable exists since 3.14; older kernels lack it.
        available_bytes: key("MemAvailable"),
        swap_total_bytes: key("SwapTotal"),
        swap_free_bytes: key("SwapFree"),
        swaps: fact(root, "/proc/swaps", swaps::parse),
        hugetlb: gather_hugetlb(root, numa),
        thp: Thp {
            enabled: choice(format!("{thp}/enabled")),
            defrag: choice(format!("{thp}/defrag")),
            khugepaged_defrag: trimmed(root, &format!("{thp}/khugepaged/defrag")),
            shmem_enabled: choice(format!("{thp}/shmem_enabled")),
        },
        buddy: fact(root, "/proc/buddyinfo", crate::parse::buddyinfo::parse),
        page_bytes: if root.is_live() {
            osml_sys::page_size() as u64
        } else {
            4096
        },
        vmstat: fact(root, "/proc/vmstat", |t| {
            let v = crate::parse::buddyinfo::vmstat(t, &VMSTAT_KEYS);
            if v.is_empty() {
                Err(ParseError::new(
                    "vmstat",
                    t,
                    "none of the counters osml reads",
                ))
            } else {
                Ok(v)
            }
        }),
    }
}

fn gather_hugetlb(root: &HostRoot, numa: &Fact<Vec<NumaNode>>) -> Fact<Vec<HugePool>> {
    let base = "/sys/kernel/mm/hugepages";
    let dirs = match root.list(base) {
        Ok(d) => d,
        Err(e) => return Fact::unknown(e.kind(), format!("{e} (kernel without hugetlbfs?)")),
    };
    let count = |path: String| -> Option<u64> {
        root.read(&path)
            .ok()
            .and_then(|t| sysfs::parse_u64(&t).ok())
    };
    Fact::Known(
        dirs.iter()
            .filter_map(|d| {
                // hugepages-2048kB
                let kb: u64 = d
                    .strip_prefix("hugepages-")?
                    .strip_suffix("kB")?
                    .parse()
                    .ok()?;
                let per_node = numa
                    .known()
                    .map(|nodes| {
                        nodes
                            .iter()
                            .filter_map(|n| {
                                let p = format!("{NODE_SYS}/node{}/hugepages/{d}", n.id);
                                Some((
                                    n.id,
                                    count(format!("{p}/nr_hugepages"))?,
                                    count(format!("{p}/free_hugepages"))?,
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some(HugePool {
                    page_size_bytes: kb.saturating_mul(1024),
                    total: count(format!("{base}/{d}/nr_hugepages"))?,
                    free: count(format!("{base}/{d}/free_hugepages")).unwrap_or(0),
                    reserved: count(format!("{base}/{d}/resv_hugepages")),
                    surplus: count(format!("{base}/{d}/surplus_hugepages")),
                    per_node,
                })
            })
            .collect(),
    )
}

fn gather_shm(root: &HostRoot, mounts: &Fact<Vec<Mount>>) -> Shm {
    let mount = mounts.as_ref().and_then(|m| {
        // The last mount on a path is the one in effect.
        m.iter()
            .rev()
            .find(|m| m.target == "/dev/shm")
            .cloned()
            .map_or_else(
                || Fact::unknown(ErrorKind::Absent, "nothing is mounted on /dev/shm"),
                Fact::Known,
            )
    });
    let usage = if root.is_live() {
        osml_sys::statvfs(std::path::Path::new("/dev/shm"))
            .map_err(|e| (ErrorKind::Unreadable, e.to_string()))
    } else {
        let e = HostError::LiveOnly {
            what: "statvfs(/dev/shm)",
        };
        Err((e.kind(), e.to_string()))
    };
    let size_bytes = match (&usage, mount.known()) {
        (Ok(u), _) => Fact::Known(u.total_bytes),
        (Err(_), Some(m)) => match m.option("size").map(mounts::parse_size) {
            Some(Some(b)) => Fact::Known(b),
            Some(None) => Fact::unknown(
                ErrorKind::NotApplicable,
                format!(
                    "size={} is relative to RAM",
                    m.option("size").unwrap_or_default()
                ),
            ),
            None => Fact::unknown(
                ErrorKind::NotApplicable,
                "no size= option (tmpfs then defaults to half of RAM)",
            ),
        },
        (Err((kind, why)), None) => Fact::unknown(*kind, why.clone()),
    };
    Shm {
        mount,
        size_bytes,
        used_bytes: usage
            .map(|u| u.used_bytes)
            .map_or_else(|(kind, why)| Fact::unknown(kind, why), Fact::Known),
    }
}

/// Block devices that are not storage: loop, RAM disks, compressed swap, optical and floppy.
fn is_pseudo_block(name: &str) -> bool {
    ["loop", "ram", "zram", "sr", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p) && name[p.len()..].chars().all(|c| c.is_ascii_digit()))
}

fn gather_block(root: &HostRoot) -> Fact<Vec<BlockDevice>> {
    let names = match root.list("/sys/block") {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    Fact::Known(
        names
            .into_iter()
            .filter(|n| !is_pseudo_block(n))
            .map(|name| {
                let base = format!("/sys/block/{name}");
                let num = |f: &str| fact(root, &format!("{base}/{f}"), sysfs::parse_u64);
                BlockDevice {
                    scheduler: fact(root, &format!("{base}/queue/scheduler"), sysfs::selected),
                    read_ahead_kb: num("queue/read_ahead_kb"),
                    rotational: num("queue/rotational").map(|r| r == 1),
                    model: trimmed(root, &format!("{base}/device/model")),
                    size_bytes: num("size").map(|s| s.saturating_mul(512)),
                    name,
                }
            })
            .collect(),
    )
}

/// Whether a path component is a PCI address (`0000:3b:00.0`).
fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 12
        && b[b.len() - 2] == b'.'
        && b[b.len() - 5] == b':'
        && b[b.len() - 8] == b':'
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

fn classify(class: u32, vendor: u16) -> PciKind {
    const NVIDIA: u16 = 0x10de;
    const AMD: u16 = 0x1002;
    const MELLANOX: u16 = 0x15b3;
    match class >> 8 {
        // VGA and 3D controllers from the two GPU vendors; an onboard BMC VGA is "other".
        0x0300 | 0x0302 if vendor == NVIDIA || vendor == AMD => PciKind::Gpu,
        0x0380 if vendor == AMD => PciKind::Gpu,
        0x0200 | 0x0207 => PciKind::Nic,
        // Old Mellanox HCAs report "other network controller" or "serial bus / InfiniBand".
        0x0280 | 0x0c06 if vendor == MELLANOX => PciKind::Nic,
        0x0108 => PciKind::Nvme,
        0x0680 if vendor == NVIDIA => PciKind::Nvswitch,
        0x0604 => PciKind::Bridge,
        _ => PciKind::Other,
    }
}

fn gather_pci(root: &HostRoot) -> Fact<Vec<PciDevice>> {
    let base = "/sys/bus/pci/devices";
    let names = match root.list(base) {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    let hex = |t: &str| {
        u32::from_str_radix(t.trim().trim_start_matches("0x"), 16)
            .map_err(|_| ParseError::new("pci id", t, "not hexadecimal"))
    };
    let mut out = Vec::new();
    for address in names {
        let link = format!("{base}/{address}");
        let dir = root.canonicalize(&link).unwrap_or_else(|_| link.clone());
        let Ok(class) = read_with(root, &format!("{dir}/class"), hex) else {
            continue;
        };
        let vendor = read_with(root, &format!("{dir}/vendor"), hex).unwrap_or(0);
        let device = read_with(root, &format!("{dir}/device"), hex).unwrap_or(0);
        let vendor = u16::try_from(vendor).unwrap_or(0);
        let parts: Vec<&str> = dir.split('/').collect();
        let bridges = parts
            .iter()
            .filter(|p| is_pci_address(p) && **p != address)
            .map(|p| (*p).to_owned())
            .collect();
        out.push(PciDevice {
            kind: classify(class, vendor),
            class,
            vendor,
            device: u16::try_from(device).unwrap_or(0),
            numa_node: fact(root, &format!("{dir}/numa_node"), sysfs::parse_i64),
            local_cpus: fact(root, &format!("{dir}/local_cpulist"), CpuList::parse),
            link_speed: trimmed(root, &format!("{dir}/current_link_speed")),
            link_width: fact(root, &format!("{dir}/current_link_width"), |t| {
                sysfs::parse_u64(t).map(|w| u32::try_from(w).unwrap_or(u32::MAX))
            }),
            max_link_speed: trimmed(root, &format!("{dir}/max_link_speed")),
            max_link_width: fact(root, &format!("{dir}/max_link_width"), |t| {
                sysfs::parse_u64(t).map(|w| u32::try_from(w).unwrap_or(u32::MAX))
            }),
            driver: root
                .read_link(&format!("{dir}/driver"))
                .ok()
                .map(|t| basename(&t).to_owned()),
            bridges,
            host_bridge: parts
                .iter()
                .find(|p| p.starts_with("pci") && p.contains(':'))
                .map(|p| (*p).to_owned()),
            address,
        });
    }
    Fact::Known(out)
}

fn gather_rdma(root: &HostRoot) -> Fact<Vec<RdmaPort>> {
    let base = "/sys/class/infiniband";
    let devices = match root.list(base) {
        Ok(d) => d,
        Err(HostError::NotFound { .. }) => return Fact::Known(Vec::new()),
        Err(e) => return e.into(),
    };
    let mut ports = Vec::new();
    for device in devices {
        let pci_address = root
            .read_link(&format!("{base}/{device}/device"))
            .ok()
            .map(|t| basename(&t).to_owned())
            .filter(|a| is_pci_address(a));
        let Ok(numbers) = root.list(&format!("{base}/{device}/ports")) else {
            continue;
        };
        for n in numbers {
            let Ok(port) = n.parse() else { continue };
            let p = format!("{base}/{device}/ports/{n}");
            ports.push(RdmaPort {
                device: device.clone(),
                port,
                state: trimmed(root, &format!("{p}/state")),
                phys_state: trimmed(root, &format!("{p}/phys_state")),
                rate: trimmed(root, &format!("{p}/rate")),
                link_layer: trimmed(root, &format!("{p}/link_layer")),
                pci_address: pci_address.clone(),
            });
        }
    }
    Fact::Known(ports)
}

/// Where a controller's files are for this process: the hierarchy's mount, the path inside it,
/// and the prefix of its files (`cpuset.` unless mounted with `noprefix`).
struct Hierarchy {
    mount: String,
    path: String,
    v2: bool,
    noprefix: bool,
}

impl Hierarchy {
    /// Directories from this process's cgroup up to the hierarchy's root, innermost first.
    /// When the cgroup path is not under the mount (a container sees its own root), the mount
    /// itself is the one directory.
    fn dirs(&self, root: &HostRoot) -> Vec<String> {
        let mut dirs = Vec::new();
        let mut rel = self.path.trim_end_matches('/').to_owned();
        loop {
            let dir = format!("{}{}", self.mount.trim_end_matches('/'), rel);
            if root.exists(&dir) {
                dirs.push(dir);
            }
            match rel.rfind('/') {
                Some(i) => rel.truncate(i),
                None => break,
            }
        }
        if dirs.is_empty() {
            dirs.push(self.mount.clone());
        }
        dirs
    }
}

fn hierarchy_for(
    controller: &str,
    memberships: &[cgroup::Membership],
    mounts: &[Mount],
    cpuset_path: Option<&str>,
) -> Option<Hierarchy> {
    // A v1 hierarchy carrying the controller wins; else the unified one, if it has a path.
    if let Some(m) = mounts.iter().find(|m| {
        (m.fstype == "cgroup" && m.has_option(controller))
            || (controller == "cpuset" && m.fstype == "cpuset")
    }) {
        let path = memberships
            .iter()
            .find(|r| r.controllers.iter().any(|c| c == controller))
            .map(|r| r.path.clone())
            .or_else(|| {
                (controller == "cpuset")
                    .then(|| cpuset_path.map(str::to_owned))
                    .flatten()
            })
            .unwrap_or_else(|| "/".into());
        return Some(Hierarchy {
            mount: m.target.clone(),
            path,
            v2: false,
            noprefix: m.has_option("noprefix") || m.fstype == "cpuset",
        });
    }
    let unified = mounts.iter().find(|m| m.fstype == "cgroup2")?;
    let path = memberships
        .iter()
        .find(|r| r.hierarchy == 0)
        .map(|r| r.path.clone())
        .or_else(|| cpuset_path.map(str::to_owned))
        .unwrap_or_else(|| "/".into());
    Some(Hierarchy {
        mount: unified.target.clone(),
        path,
        v2: true,
        noprefix: false,
    })
}

fn missing_controller<T>(c: &str) -> Fact<T> {
    Fact::unknown(
        ErrorKind::Absent,
        format!("no mounted cgroup hierarchy has the {c} controller"),
    )
}

fn gather_cgroup(root: &HostRoot, mounts: &Fact<Vec<Mount>>) -> Cgroup {
    let Some(mounts) = mounts.known() else {
        let why = format!(
            "mount table unknown: {}",
            mounts.reason().unwrap_or_default()
        );
        let kind = mounts.unknown_kind().unwrap_or_default();
        return Cgroup {
            version: Fact::unknown(kind, why.clone()),
            memory: Fact::unknown(kind, why.clone()),
            cpu: Fact::unknown(kind, why.clone()),
            cpuset: Fact::unknown(kind, why),
        };
    };
    let memberships =
        read_with(root, "/proc/self/cgroup", cgroup::parse_proc_self_cgroup).unwrap_or_default();
    let cpuset_path = root.read_trimmed("/proc/self/cpuset").ok();
    let has_v1 = mounts
        .iter()
        .any(|m| m.fstype == "cgroup" || m.fstype == "cpuset");
    let has_v2 = mounts.iter().any(|m| m.fstype == "cgroup2");
    let version = match (has_v1, has_v2) {
        (true, true) => Fact::Known("hybrid".to_owned()),
        (true, false) => Fact::Known("v1".to_owned()),
        (false, true) => Fact::Known("v2".to_owned()),
        (false, false) => Fact::unknown(ErrorKind::Absent, "no cgroup filesystem is mounted"),
    };
    let find = |c: &str| hierarchy_for(c, &memberships, mounts, cpuset_path.as_deref());

    let memory =
        find("memory").map_or_else(|| missing_controller("memory"), |h| cgroup_memory(root, &h));
    let cpu = find("cpu").map_or_else(|| missing_controller("cpu"), |h| cgroup_cpu(root, &h));
    let cpuset =
        find("cpuset").map_or_else(|| missing_controller("cpuset"), |h| cgroup_cpuset(root, &h));

    Cgroup {
        version,
        memory,
        cpu,
        cpuset,
    }
}

/// The memory limit: the smallest on the way from this process's cgroup to the root.
fn cgroup_memory(root: &HostRoot, h: &Hierarchy) -> Fact<CgroupMemory> {
    let file = if h.v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let dirs = h.dirs(root);
    let mut limit: Option<Option<u64>> = None;
    for dir in &dirs {
        if let Ok(l) = read_with(root, &format!("{dir}/{file}"), cgroup::parse_limit) {
            limit = Some(match (limit.flatten(), l) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            });
        }
    }
    match limit {
        Some(limit_bytes) => Fact::Known(CgroupMemory {
            path: dirs[0].clone(),
            limit_bytes,
        }),
        None => Fact::unknown(ErrorKind::Missing, format!("{}/{file} is absent", dirs[0])),
    }
}

/// The CPU quota: the tightest on the way to the root.
fn cgroup_cpu(root: &HostRoot, h: &Hierarchy) -> Fact<CgroupCpu> {
    let dirs = h.dirs(root);
    let mut seen = false;
    let mut tightest: Option<(u64, u64)> = None;
    for dir in &dirs {
        let quota = if h.v2 {
            read_with(root, &format!("{dir}/cpu.max"), cgroup::parse_cpu_max)
        } else {
            read_with(
                root,
                &format!("{dir}/cpu.cfs_quota_us"),
                cgroup::parse_limit,
            )
            .and_then(|q| {
                let p = read_with(root, &format!("{dir}/cpu.cfs_period_us"), sysfs::parse_u64)?;
                Ok(q.filter(|_| p > 0).map(|q| (q, p)))
            })
        };
        if let Ok(q) = quota {
            seen = true;
            if let Some((q, p)) = q {
                let tighter = tightest.is_none_or(|(tq, tp)| {
                    u128::from(q) * u128::from(tp) < u128::from(tq) * u128::from(p)
                });
                if tighter {
                    tightest = Some((q, p));
                }
            }
        }
    }
    if seen {
        Fact::Known(CgroupCpu {
            path: dirs[0].clone(),
            quota: tightest,
        })
    } else {
        Fact::unknown(
            ErrorKind::Missing,
            format!("no CPU quota file under {}", dirs[0]),
        )
    }
}

fn cgroup_cpuset(root: &HostRoot, h: &Hierarchy) -> Fact<CgroupCpuset> {
    let dir = h.dirs(root).swap_remove(0);
    let (cpus, mems) = if h.v2 {
        ("cpuset.cpus.effective", "cpuset.mems.effective")
    } else if h.noprefix {
        ("cpus", "mems")
    } else {
        ("cpuset.cpus", "cpuset.mems")
    };
    Fact::Known(CgroupCpuset {
        cpus: fact(root, &format!("{dir}/{cpus}"), CpuList::parse),
        mems: fact(root, &format!("{dir}/{mems}"), CpuList::parse),
        path: dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:3b:00.0"));
        assert!(is_pci_address("10000:00:02.0"));
        assert!(!is_pci_address("pci0000:00"));
        assert!(!is_pci_address("infiniband"));
    }

    #[test]
    fn classification() {
        assert_eq!(classify(0x030200, 0x10de), PciKind::Gpu);
        assert_eq!(classify(0x030000, 0x102b), PciKind::Other);
        assert_eq!(classify(0x020700, 0x15b3), PciKind::Nic);
        assert_eq!(classify(0x0c0600, 0x15b3), PciKind::Nic);
        assert_eq!(classify(0x010802, 0x144d), PciKind::Nvme);
        assert_eq!(classify(0x068000, 0x10de), PciKind::Nvswitch);
    }

    #[test]
    fn pseudo_block_devices() {
        assert!(is_pseudo_block("loop0"));
        assert!(is_pseudo_block("ram12"));
        assert!(!is_pseudo_block("nvme0n1"));
        assert!(!is_pseudo_block("sda"));
        assert!(!is_pseudo_block("fd0x"));
    }
}
