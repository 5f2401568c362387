//! NUMA nodes: their CPUs, memory and distances.

use serde::{Deserialize, Serialize};

use super::fact;
use crate::parse::meminfo;
use crate::{CpuList, ErrorKind, Fact, HostError, HostRoot, ParseError};

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

pub(super) const NODE_SYS: &str = "/sys/devices/system/node";

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
pub(super) fn list_or_mask(
    root: &HostRoot,
    base: &str,
    lists: &[&str],
    mask: &str,
) -> Option<CpuList> {
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

pub(super) fn gather_numa(root: &HostRoot) -> Fact<Vec<NumaNode>> {
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
