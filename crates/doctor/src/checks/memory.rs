//! Memory: huge pages, swap, overcommit, map count, reclaim and writeback.

use osml_host::Fact;

use super::{check, sysctl_fix, Check, Ctx, Verdict};
use crate::{human_bytes, Status};

const THP_DIR: &str = "/sys/kernel/mm/transparent_hugepage";

pub const THP: Check = check!(
    "mem.thp", "Transparent huge pages", thp,
    why: "With `madvise`, buffers that ask for huge pages (osml's batch pool, PyTorch's pinned allocator) get 2 MiB pages and 512x fewer TLB misses, while nothing else pays for compaction; `always` also helps programs that never ask but has caused multi-second stalls in kcompactd under page-cache-heavy loading, and `never` denies huge pages to everyone.",
    source: "transhuge.rst; tuned hpc-compute (always) vs network-latency (never); juicedata/juicefs#6147; osml judgment: madvise",
    evidence: ["/sys/kernel/mm/transparent_hugepage/enabled", "/proc/cmdline"],
);

fn thp(cx: &Ctx<'_>) -> Verdict {
    let enabled = match &cx.host.memory.thp.enabled {
        Fact::Known(e) => e,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let ok = cx.profile.thp_enabled;
    let target = ok[0];
    let pinned = cx.host.kernel.params.transparent_hugepage.as_deref();
    let observed = match pinned {
        Some(p) => format!("{enabled} (command line pins transparent_hugepage={p})"),
        None => enabled.clone(),
    };
    if ok.contains(&enabled.as_str()) {
        return Verdict::new(Status::Pass, observed, ok.join(" or "));
    }
    let persist = if pinned.is_some() {
        format!("replace transparent_hugepage={} with transparent_hugepage={target} in GRUB_CMDLINE_LINUX (/etc/default/grub), then update-grub and reboot", pinned.unwrap_or_default())
    } else {
        format!("echo 'w {THP_DIR}/enabled - - - - {target}' > /etc/tmpfiles.d/osml-thp.conf   (or transparent_hugepage={target} on the kernel command line)")
    };
    Verdict::new(Status::Warn, observed, ok.join(" or "))
        .fix(format!("echo {target} > {THP_DIR}/enabled"), persist)
}

pub const THP_DEFRAG: Check = check!(
    "mem.thp_defrag", "THP defragmentation", thp_defrag,
    why: "`always` makes every faulting thread compact memory synchronously when no free 2 MiB page exists, so allocations in the training loop stall for milliseconds on a host whose memory is full of page cache; `madvise` confines that to regions that asked.",
    source: "transhuge.rst (defrag); kernel default madvise since 4.6",
    evidence: ["/sys/kernel/mm/transparent_hugepage/defrag", "/sys/kernel/mm/transparent_hugepage/khugepaged/defrag"],
);

fn thp_defrag(cx: &Ctx<'_>) -> Verdict {
    let defrag = match &cx.host.memory.thp.defrag {
        Fact::Known(d) => d,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let ok = cx.profile.thp_defrag;
    let observed = match cx.host.memory.thp.khugepaged_defrag.known() {
        Some(k) => format!("{defrag} (khugepaged defrag {k})"),
        None => defrag.clone(),
    };
    if ok.contains(&defrag.as_str()) {
        return Verdict::new(Status::Pass, observed, ok.join(", "));
    }
    Verdict::new(Status::Warn, observed, ok.join(", ")).fix(
        format!("echo {} > {THP_DIR}/defrag", ok[0]),
        format!(
            "echo 'w {THP_DIR}/defrag - - - - {}' > /etc/tmpfiles.d/osml-thp-defrag.conf",
            ok[0]
        ),
    )
}

pub const HUGETLB: Check = check!(
    "mem.hugetlb", "hugetlb page pools", hugetlb,
    why: "Pages in a hugetlb pool are taken from RAM at reservation time and serve only programs that map hugetlbfs or MAP_HUGETLB, so a pool nobody uses is memory the page cache and the loader cannot have.",
    source: "hugetlbpage.rst; osml judgment: no pool unless a program uses it",
    evidence: ["/sys/kernel/mm/hugepages/hugepages-*/nr_hugepages", "/sys/kernel/mm/hugepages/hugepages-*/free_hugepages", "/sys/devices/system/node/node*/hugepages"],
);

fn hugetlb(cx: &Ctx<'_>) -> Verdict {
    let pools = match &cx.host.memory.hugetlb {
        Fact::Known(p) => p,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let used: Vec<_> = pools.iter().filter(|p| p.total > 0).collect();
    if used.is_empty() {
        let sizes: Vec<String> = pools
            .iter()
            .map(|p| human_bytes(p.page_size_bytes))
            .collect();
        return Verdict::new(
            Status::Pass,
            format!(
                "no pages reserved (sizes available: {})",
                if sizes.is_empty() {
                    "none".into()
                } else {
                    sizes.join(", ")
                }
            ),
            "no pool, or a pool that is in use",
        );
    }
    let describe = |p: &osml_host::HugePool| {
        let nodes = if p.per_node.len() > 1 {
            format!(
                " [{}]",
                p.per_node
                    .iter()
                    .map(|(n, t, _)| format!("node{n}: {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        format!(
            "{} x {} = {}, {} free{nodes}",
            p.total,
            human_bytes(p.page_size_bytes),
            human_bytes(p.total * p.page_size_bytes),
            p.free
        )
    };
    let observed = used
        .iter()
        .map(|p| describe(p))
        .collect::<Vec<_>>()
        .join("; ");
    let idle: u64 = used
        .iter()
        .map(|p| p.free.saturating_sub(p.reserved.unwrap_or(0)) * p.page_size_bytes)
        .sum();
    let total = cx
        .host
        .memory
        .total_bytes
        .known()
        .copied()
        .unwrap_or(u64::MAX);
    if idle >= (1 << 30) || idle > total / 20 {
        let p = used[0];
        return Verdict::new(
            Status::Warn,
            observed,
            "reserved huge pages in use",
        )
        .why(format!("{} of RAM sits in hugetlb pools that no program has mapped: it is taken from the page cache and from every process that does not use hugetlbfs.", human_bytes(idle)))
        .fix(
            format!("echo 0 > /sys/kernel/mm/hugepages/hugepages-{}kB/nr_hugepages   (if nothing is meant to use it)", p.page_size_bytes / 1024),
            "remove vm.nr_hugepages from /etc/sysctl.d and hugepages= from the kernel command line",
        );
    }
    Verdict::new(Status::Info, observed, "reserved huge pages in use")
}

pub const SWAP: Check = check!(
    "mem.swap", "Swap", swap,
    why: "A training step touches its whole working set every iteration, so any of it on swap turns memory reads into disk reads and the step time grows by orders of magnitude instead of the job failing fast.",
    source: "azurehpc-health-checks (check_hw_swap 0kB 0kB on GPU SKUs)",
    evidence: ["/proc/swaps", "/proc/meminfo"],
);

fn swap(cx: &Ctx<'_>) -> Verdict {
    let m = &cx.host.memory;
    let (Some(&total), Some(&free)) = (m.swap_total_bytes.known(), m.swap_free_bytes.known())
    else {
        return Verdict::unknown(&m.swap_total_bytes);
    };
    let devices = m
        .swaps
        .known()
        .filter(|s| !s.is_empty())
        .map(|s| {
            format!(
                " ({})",
                s.iter()
                    .map(|d| d.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .unwrap_or_default();
    if total == 0 {
        return Verdict::new(
            Status::Pass,
            "no swap",
            "no swap, or swap that stays unused",
        );
    }
    let used = total.saturating_sub(free);
    let observed = format!(
        "{} of swap{devices}, {} in use",
        human_bytes(total),
        human_bytes(used)
    );
    let fix = (
        "swapoff -a   (moves swapped pages back to RAM; needs enough free memory)",
        "comment out the swap lines in /etc/fstab (and mask any systemd swap units)",
    );
    if used >= 64 << 20 {
        Verdict::new(Status::Warn, observed, "no swap in use").fix(fix.0, fix.1)
    } else {
        Verdict::new(Status::Info, observed, "no swap, or swap that stays unused").fix(fix.0, fix.1)
    }
}

pub const SWAPPINESS: Check = check!(
    "mem.swappiness", "vm.swappiness", swappiness,
    why: "Swappiness sets how readily reclaim swaps anonymous memory instead of dropping page cache; a high value lets a large mmap'd dataset push model and optimizer memory out to swap.",
    source: "tuned throughput-performance and accelerator-performance (vm.swappiness=10)",
    evidence: ["/proc/sys/vm/swappiness", "/proc/swaps"],
);

fn swappiness(cx: &Ctx<'_>) -> Verdict {
    let v = match super::tunable(cx, "vm.swappiness") {
        Ok(v) => v,
        Err(v) => return v,
    };
    let max = cx.profile.swappiness_max;
    let expected = format!("<= {max}");
    if v <= max {
        return Verdict::new(Status::Pass, v.to_string(), expected);
    }
    // Without swap, reclaim never scans anonymous memory (mm/vmscan.c get_scan_count: "If we
    // have no swap space, do not bother scanning anon folios"): the value does nothing, so
    // the check does not apply. `osml tune` does not plan it either.
    if cx.host.memory.swap_total_bytes.known() == Some(&0) {
        return Verdict::skip(format!(
            "not applicable: no swap is configured, so vm.swappiness {v} has no effect"
        ));
    }
    let (now, persist) = sysctl_fix("vm.swappiness", max);
    Verdict::new(Status::Warn, v.to_string(), expected).fix(now, persist)
}

pub const OVERCOMMIT: Check = check!(
    "mem.overcommit", "Memory overcommit", overcommit,
    why: "Mode 2 (strict) counts every private writable mapping against a commit limit, so forking DataLoader workers from a large process or reserving big virtual ranges fails with ENOMEM although RAM is free.",
    source: "overcommit-accounting.rst; osml judgment (warn on 2)",
    evidence: ["/proc/sys/vm/overcommit_memory", "/proc/sys/vm/overcommit_ratio"],
);

fn overcommit(cx: &Ctx<'_>) -> Verdict {
    let mode = match super::tunable(cx, "vm.overcommit_memory") {
        Ok(v) => v,
        Err(v) => return v,
    };
    let ratio = cx.host.tunable_u64("vm.overcommit_ratio");
    let observed = match (mode, ratio) {
        (2, Some(r)) => format!("2 (strict, ratio {r}%)"),
        (0, _) => "0 (heuristic)".to_owned(),
        (1, _) => "1 (always)".to_owned(),
        (m, _) => m.to_string(),
    };
    if mode == 2 {
        let (now, persist) = sysctl_fix("vm.overcommit_memory", 0);
        return Verdict::new(Status::Warn, observed, "0 (heuristic) or 1").fix(now, persist);
    }
    Verdict::new(Status::Pass, observed, "0 (heuristic) or 1")
}

pub const MAX_MAP_COUNT: Check = check!(
    "mem.max_map_count", "vm.max_map_count", max_map_count,
    why: "Each mmap'd shard, each shared-memory tensor a DataLoader worker passes and each allocator arena is one or more memory mappings; at the 65530 default a large job fails with `Cannot allocate memory` from mmap although RAM is free.",
    source: "Fedora 39 (1048576); tuned openshift (262144); Azure/azhpc-images#445; kohya-ss/sd-scripts#1790",
    evidence: ["/proc/sys/vm/max_map_count"],
);

fn max_map_count(cx: &Ctx<'_>) -> Verdict {
    let v = match super::tunable(cx, "vm.max_map_count") {
        Ok(v) => v,
        Err(v) => return v,
    };
    let min = cx.profile.max_map_count_min;
    if v >= min {
        return Verdict::new(Status::Pass, v.to_string(), format!(">= {min}"));
    }
    let (now, persist) = sysctl_fix("vm.max_map_count", min);
    Verdict::new(Status::Warn, v.to_string(), format!(">= {min}")).fix(now, persist)
}

pub const ZONE_RECLAIM: Check = check!(
    "mem.zone_reclaim", "vm.zone_reclaim_mode", zone_reclaim,
    why: "With zone reclaim on, a NUMA node that runs short reclaims its own page cache before allocating from the other node, so a dataset that does not fit one node is re-read from disk every epoch; HPC profiles turn it on for node-local compute, but data loading wants the cache.",
    source: "kernel commit 4f9b16a64753 (off by default); tuned hpc-compute and azhpc-images set 1; osml judgment: 0",
    evidence: ["/proc/sys/vm/zone_reclaim_mode"],
);

fn zone_reclaim(cx: &Ctx<'_>) -> Verdict {
    let v = match super::tunable(cx, "vm.zone_reclaim_mode") {
        Ok(v) => v,
        Err(v) => return v,
    };
    if v == 0 {
        return Verdict::new(Status::Pass, "0", "0");
    }
    if cx.host.cpu_nodes().len() <= 1 && cx.host.numa.known().is_some_and(|n| n.len() <= 1) {
        return Verdict::new(Status::Pass, format!("{v} (one NUMA node: no effect)"), "0");
    }
    let (now, persist) = sysctl_fix("vm.zone_reclaim_mode", 0);
    Verdict::new(Status::Warn, v.to_string(), "0").fix(now, persist)
}

pub const DIRTY: Check = check!(
    "mem.dirty", "Dirty page writeback limits", dirty,
    why: "A checkpoint is written as a burst of dirty page cache; when it passes vm.dirty_ratio the writing thread is throttled to disk speed, stalling the training step that saves, so throughput profiles raise the ratio.",
    source: "tuned throughput-performance and accelerator-performance (dirty 40% / background 10%)",
    evidence: ["/proc/sys/vm/dirty_ratio", "/proc/sys/vm/dirty_bytes", "/proc/sys/vm/dirty_background_ratio", "/proc/sys/vm/dirty_background_bytes"],
);

fn dirty(cx: &Ctx<'_>) -> Verdict {
    let t = |n: &str| cx.host.tunable_u64(n);
    let (ratio, bg) = cx.profile.dirty_ratios;
    let expected = format!("dirty_ratio {ratio}%, dirty_background_ratio {bg}%");
    let show = |r: Option<u64>, b: Option<u64>| match (r, b) {
        (_, Some(b)) if b > 0 => human_bytes(b),
        (Some(r), _) => format!("{r}%"),
        _ => "unknown".to_owned(),
    };
    let (r, rb) = (t("vm.dirty_ratio"), t("vm.dirty_bytes"));
    let (b, bb) = (
        t("vm.dirty_background_ratio"),
        t("vm.dirty_background_bytes"),
    );
    if r.is_none() && rb.is_none() {
        return Verdict::unknown(&cx.host.tunables["vm.dirty_ratio"]);
    }
    let observed = format!("dirty {}, background {}", show(r, rb), show(b, bb));
    let uses_bytes = rb.is_some_and(|v| v > 0) || bb.is_some_and(|v| v > 0);
    if !uses_bytes && r == Some(ratio) && b == Some(bg) {
        return Verdict::new(Status::Pass, observed, expected);
    }
    Verdict::new(Status::Info, observed, expected).fix(
        format!("sysctl -w vm.dirty_ratio={ratio} vm.dirty_background_ratio={bg}"),
        format!("printf 'vm.dirty_ratio = {ratio}\\nvm.dirty_background_ratio = {bg}\\n' >> /etc/sysctl.d/90-osml.conf"),
    )
}

pub const FRAGMENTATION: Check = check!(
    "mem.fragmentation", "Free memory in 2 MiB blocks", fragmentation,
    why: "A transparent huge page needs a free, aligned 2 MiB block: on a fragmented host the fault falls back to 4 KiB pages silently (thp_fault_fallback) or stalls in direct compaction, so the pool and pinned buffers that asked for huge pages get the TLB misses they were meant to avoid.",
    source: "mm/vmstat.c (buddyinfo, thp_fault_fallback, compact_stall); transhuge.rst; osml judgment: warn under 20% of free memory in 2 MiB blocks (with 1 GiB or more free) or over 10% of huge-page faults falling back",
    evidence: ["/proc/buddyinfo", "/proc/vmstat"],
);

/// Free memory in blocks of 2 MiB or more, of the zones that serve user memory.
const HUGE_BLOCK: u64 = 2 << 20;
const MIN_HUGE_SHARE: f64 = 0.20;
const MAX_FALLBACK_SHARE: f64 = 0.10;
/// Below this much free memory the share of 2 MiB blocks says little.
const MIN_FREE_FOR_SHARE: u64 = 1 << 30;
/// Huge-page faults since boot below which the fallback share says little.
const MIN_THP_FAULTS: u64 = 1000;

fn fragmentation(cx: &Ctx<'_>) -> Verdict {
    let m = &cx.host.memory;
    let zones = match &m.buddy {
        Fact::Known(z) => z,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let page = m.page_bytes;
    // ZONE_DMA is 16 MiB of legacy memory no process gets.
    let user: Vec<_> = zones.iter().filter(|z| z.zone != "DMA").collect();
    let free: u64 = user.iter().map(|z| z.free_bytes(page)).sum();
    let huge: u64 = user
        .iter()
        .map(|z| z.free_bytes_in_blocks_of(page, HUGE_BLOCK))
        .sum();
    let share = huge as f64 / free.max(1) as f64;
    let counter = |k: &str| m.vmstat.known().and_then(|v| v.get(k).copied());
    let (alloc, fallback) = (
        counter("thp_fault_alloc").unwrap_or(0),
        counter("thp_fault_fallback").unwrap_or(0),
    );
    let faults = alloc + fallback;
    let fallback_share = fallback as f64 / faults.max(1) as f64;
    let stalls = counter("compact_stall").unwrap_or(0);
    let observed = format!(
        "{} of {} free in 2 MiB blocks ({:.0}%); huge-page faults since boot: {alloc} allocated, {fallback} fell back ({:.0}%); {stalls} direct compaction stalls",
        human_bytes(huge),
        human_bytes(free),
        share * 100.0,
        fallback_share * 100.0
    );
    let expected = format!(
        ">= {:.0}% of free memory in 2 MiB blocks, <= {:.0}% of huge-page faults falling back",
        MIN_HUGE_SHARE * 100.0,
        MAX_FALLBACK_SHARE * 100.0
    );
    let scarce = free >= MIN_FREE_FOR_SHARE && share < MIN_HUGE_SHARE;
    let falling_back = faults >= MIN_THP_FAULTS && fallback_share > MAX_FALLBACK_SHARE;
    if !scarce && !falling_back {
        return Verdict::new(Status::Pass, observed, expected);
    }
    let (proactive, persist) = sysctl_fix("vm.compaction_proactiveness", 50);
    Verdict::new(Status::Warn, observed, expected).fix(
        format!(
            "echo 1 > /proc/sys/vm/compact_memory   (compacts now; then {proactive} keeps compacting in the background; if the page cache holds most memory, `sync; echo 1 > /proc/sys/vm/drop_caches` frees it, at the cost of re-reading the dataset; a reboot is the last resort)"
        ),
        persist,
    )
}
