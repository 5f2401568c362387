//! CPUs: model, online and allowed sets, topology, SMT and frequency scaling.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::numa::list_or_mask;
use super::{fact, read_with};
use crate::parse::{cpuinfo, status, sysfs};
use crate::{CpuList, ErrorKind, Fact, HostRoot, Probes};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub model: Fact<String>,
    pub online: Fact<CpuList>,
    /// CPUs this process may run on: `sched_getaffinity`, live or as a capture recorded it,
    /// else `Cpus_allowed_list` of `/proc/self/status` under a root.
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

const CPU_SYS: &str = "/sys/devices/system/cpu";

pub(super) fn gather_cpu(root: &HostRoot, probes: &dyn Probes) -> Cpu {
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
    let allowed = match probes.allowed_cpus() {
        // Hand-made roots and captures from before probes were recorded give the affinity
        // as the text of /proc/self/status.
        Fact::Unknown {
            kind: ErrorKind::LiveOnly,
            ..
        } => fact(root, "/proc/self/status", status::cpus_allowed_list),
        answer => answer,
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
