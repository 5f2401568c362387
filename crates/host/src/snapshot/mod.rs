//! [`HostSnapshot`]: everything osml knows about a host, gathered in one pass.
//!
//! The field layout is API: it is the `host` object of `osml doctor --json`
//! (see `docs/doctor-json.md`). Add fields freely; rename or remove only with a new
//! `schema_version`.

mod block;
mod cgroup;
mod cpu;
mod kernel;
mod memory;
mod numa;
mod pci;
mod pressure;
mod rdma;
mod shm;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::parse::{limits, mounts};
use crate::probes::Recorder;
use crate::{
    Fact, HostError, HostRoot, Limits, LiveProbes, Mount, ParseError, Probes, ReplayedProbes,
};

pub use block::BlockDevice;
pub use cgroup::{Cgroup, CgroupCpu, CgroupCpuset, CgroupMemory};
pub use cpu::{Cpu, CpuFreqGroup, CpuTopology, Smt};
pub use kernel::Kernel;
pub use memory::{HugePool, Memory, Thp, VMSTAT_KEYS};
pub use numa::NumaNode;
pub use pci::{Iommu, IommuGroup, PciDevice, PciKind};
pub use pressure::Pressure;
pub use rdma::{Rdma, RdmaPort};
pub use shm::Shm;

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
    pub iommu: Iommu,
    pub rdma: Rdma,
    pub cgroup: Cgroup,
    pub pressure: Pressure,
    /// What changed over an `osml doctor --watch` window, when one was watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<crate::watch::Watch>,
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
    /// Reads every fact, with the live probes for the live root and a directory's recorded
    /// answers ([`ReplayedProbes`]) for a directory. Never fails: what cannot be read is
    /// recorded as unknown.
    pub fn gather(root: &HostRoot) -> Self {
        if root.is_live() {
            Self::gather_with(root, &LiveProbes)
        } else {
            Self::gather_with(root, &ReplayedProbes::new(root))
        }
    }

    /// [`gather`](Self::gather) with the answers of `probes`. A recording root also records
    /// what they answered, as [`PROBES_PATH`](crate::PROBES_PATH) (and the kernel log as
    /// `/dev/kmsg`), so that a capture replays them.
    pub fn gather_with(root: &HostRoot, probes: &dyn Probes) -> Self {
        if root.is_recording() {
            let recorder = Recorder::new(root, probes);
            let host = Self::gather_from(root, &recorder);
            recorder.finish();
            host
        } else {
            Self::gather_from(root, probes)
        }
    }

    fn gather_from(root: &HostRoot, probes: &dyn Probes) -> Self {
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
        let kernel = kernel::gather_kernel(root, probes);
        let numa = numa::gather_numa(root);
        Self {
            root: root.base().display().to_string(),
            live: root.is_live(),
            hostname: trimmed(root, "/proc/sys/kernel/hostname"),
            cpu: cpu::gather_cpu(root, probes),
            memory: memory::gather_memory(root, probes, &numa),
            numa,
            tunables: TUNABLES
                .iter()
                .map(|name| ((*name).to_owned(), trimmed(root, &sysctl_path(name))))
                .collect(),
            limits: fact(root, "/proc/self/limits", limits::parse),
            shm: shm::gather_shm(probes, &mounts),
            block_devices: block::gather_block(root),
            pci_devices: pci::gather_pci(root),
            iommu: pci::gather_iommu(root),
            rdma: Rdma {
                ports: rdma::gather_rdma(root),
            },
            cgroup: cgroup::gather_cgroup(root, &mounts),
            pressure: pressure::gather_pressure(root),
            kernel,
            watch: None,
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

    /// The GPUs, NICs and NVMe drives and every bridge above one of them, each once, in
    /// address order: the links `pci.link` judges and `--watch` re-reads.
    pub fn data_path_devices(&self) -> Vec<&PciDevice> {
        let Some(devices) = self.pci_devices.known() else {
            return Vec::new();
        };
        let mut wanted: Vec<&str> = Vec::new();
        for d in devices
            .iter()
            .filter(|d| matches!(d.kind, PciKind::Gpu | PciKind::Nic | PciKind::Nvme))
        {
            wanted.extend(d.bridges.iter().map(String::as_str));
            wanted.push(&d.address);
        }
        wanted.sort_unstable();
        wanted.dedup();
        wanted
            .into_iter()
            .filter_map(|a| devices.iter().find(|d| d.address == a))
            .collect()
    }

    /// NUMA nodes that have CPUs.
    pub fn cpu_nodes(&self) -> Vec<&NumaNode> {
        self.numa
            .known()
            .map(|n| n.iter().filter(|n| !n.cpus.is_empty()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CpuList, ErrorKind, FsUsage, PROBES_PATH};

    fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    const STATUS: (&str, &str) = ("proc/self/status", "Name:\tosml\nCpus_allowed_list:\t0-3\n");

    #[test]
    fn a_probes_file_answers_and_the_status_file_stands_in_for_the_affinity() {
        let dir = root_with(&[STATUS]);
        let host = HostSnapshot::gather(&HostRoot::at(dir.path()));
        assert_eq!(
            host.cpu.allowed,
            Fact::Known(CpuList::parse("0-3").unwrap())
        );
        assert_eq!(
            host.kernel.io_uring_setup.unknown_kind(),
            Some(ErrorKind::LiveOnly)
        );
        assert_eq!(host.memory.page_bytes, 4096);

        let dir = root_with(&[
            STATUS,
            (
                ".osml/probes.json",
                r#"{"schema_version": 1, "allowed_cpus": "2", "io_uring_setup": true,
                    "page_size": 16384,
                    "statvfs": {"/dev/shm": {"total_bytes": 100, "used_bytes": 40}}}"#,
            ),
        ]);
        let host = HostSnapshot::gather(&HostRoot::at(dir.path()));
        assert_eq!(host.cpu.allowed, Fact::Known(CpuList::parse("2").unwrap()));
        assert_eq!(host.kernel.io_uring_setup, Fact::Known(true));
        assert_eq!(host.memory.page_bytes, 16384);
        assert_eq!(host.shm.size_bytes, Fact::Known(100));
        assert_eq!(host.shm.used_bytes, Fact::Known(40));
        assert!(!host.live);
    }

    /// Probes of a host that is not this one.
    struct Elsewhere;

    impl Probes for Elsewhere {
        fn allowed_cpus(&self) -> Fact<CpuList> {
            Fact::Known(CpuList::parse("5-6").unwrap())
        }
        fn statvfs(&self, _: &str) -> Fact<FsUsage> {
            Fact::unknown(ErrorKind::Unreadable, "statvfs: EACCES")
        }
        fn io_uring_setup(&self) -> Fact<bool> {
            Fact::Known(true)
        }
        fn page_size(&self) -> Fact<u64> {
            Fact::Known(65536)
        }
        fn kernel_log(&self) -> Result<String, HostError> {
            Err(HostError::PermissionDenied {
                path: "/dev/kmsg".into(),
            })
        }
    }

    #[test]
    fn gather_with_uses_the_probes_given_and_a_recording_root_keeps_them() {
        let dir = root_with(&[STATUS]);
        let root = HostRoot::at(dir.path()).recording();
        let host = HostSnapshot::gather_with(&root, &Elsewhere);
        assert_eq!(host.cpu.allowed, Elsewhere.allowed_cpus());
        assert_eq!(host.memory.page_bytes, 65536);
        assert_eq!(
            host.shm.used_bytes.unknown_kind(),
            Some(ErrorKind::Unreadable)
        );
        assert_eq!(host.kernel.log.unknown_kind(), Some(ErrorKind::Denied));
        let recorded = root.recorded();
        assert!(recorded.contains_key(PROBES_PATH), "{:?}", recorded.keys());
        // Answers replace /proc/self/status: a recording reads it no more.
        assert!(!recorded.contains_key("/proc/self/status"));
        assert!(!recorded.contains_key("/dev/kmsg"));
    }
}
