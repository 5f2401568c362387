//! Memory: totals, swap, hugetlb pools, transparent huge pages, buddy lists and vmstat.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::numa::{NumaNode, NODE_SYS};
use super::{fact, trimmed};
use crate::parse::{meminfo, swaps, sysfs};
use crate::{ErrorKind, Fact, HostRoot, ParseError, Probes};

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
    /// The page size the buddy orders count in: this host's live, a capture's as recorded,
    /// else 4096.
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

pub(super) fn gather_memory(
    root: &HostRoot,
    probes: &dyn Probes,
    numa: &Fact<Vec<NumaNode>>,
) -> Memory {
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
        page_bytes: probes.page_size().known().copied().unwrap_or(4096),
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
