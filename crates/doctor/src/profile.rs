//! Profiles: the target values a host is judged against.
//!
//! One table serves `doctor` (compare) and, later, `tune` (apply): each field is a target that
//! a check reads and whose fix command sets. The source of each value is named in the `source`
//! of the check that reads it (`checks/`); where sources disagree the check's `why` says which
//! side osml takes.

use serde::Serialize;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Target values for one kind of host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub name: &'static str,
    pub summary: &'static str,
    /// THP `enabled` values that pass; the first is the one `fix` sets.
    pub thp_enabled: &'static [&'static str],
    /// THP `defrag` values that pass; the first is the one `fix` sets.
    pub thp_defrag: &'static [&'static str],
    pub swappiness_max: u64,
    pub max_map_count_min: u64,
    /// `(vm.dirty_ratio, vm.dirty_background_ratio)` to suggest for checkpoint bursts.
    pub dirty_ratios: (u64, u64),
    /// Whether automatic NUMA balancing should be off on multi-node hosts.
    pub numa_balancing_off: bool,
    /// `/dev/shm` below this size warns.
    pub shm_warn_below: u64,
    /// `/dev/shm` below this size fails (Docker's default is 64 MiB).
    pub shm_fail_below: u64,
    pub nofile_min: u64,
    /// Block read-ahead to ask for, in KiB; `None` when the workload reads at random.
    pub readahead_min_kb: Option<u64>,
    pub governor: &'static str,
    /// PSI `full avg10` (percent) above which memory or I/O pressure warns.
    pub pressure_full_warn: f64,
}

/// Training: large sequential dataset reads, many DataLoader workers, pinned ranks, RDMA.
pub const TRAINING: Profile = Profile {
    name: "training",
    summary: "multi-GPU training: sequential dataset reads, many loader workers, pinned ranks",
    thp_enabled: &["madvise"],
    thp_defrag: &["madvise", "defer+madvise", "defer", "never"],
    swappiness_max: 10,
    max_map_count_min: 1_048_576,
    dirty_ratios: (40, 10),
    numa_balancing_off: true,
    shm_warn_below: GIB,
    shm_fail_below: 256 * MIB,
    nofile_min: 1_048_576,
    readahead_min_kb: Some(4096),
    governor: "performance",
    pressure_full_warn: 1.0,
};

/// Inference: latency-bound serving, fewer processes, random reads of weights once.
pub const INFERENCE: Profile = Profile {
    name: "inference",
    summary: "serving: latency first, fewer processes, weights read once",
    thp_enabled: &["madvise", "never"],
    thp_defrag: &["madvise", "defer+madvise", "defer", "never"],
    swappiness_max: 10,
    max_map_count_min: 262_144,
    dirty_ratios: (20, 10),
    numa_balancing_off: false,
    shm_warn_below: 512 * MIB,
    shm_fail_below: 128 * MIB,
    nofile_min: 65_536,
    readahead_min_kb: None,
    governor: "performance",
    pressure_full_warn: 0.5,
};

/// Every profile, the default first.
pub const PROFILES: &[&Profile] = &[&TRAINING, &INFERENCE];

impl Profile {
    /// Looks a profile up by name.
    pub fn by_name(name: &str) -> Option<&'static Profile> {
        PROFILES.iter().copied().find(|p| p.name == name)
    }

    /// The names of all profiles, for error messages and `--help`.
    pub fn names() -> Vec<&'static str> {
        PROFILES.iter().map(|p| p.name).collect()
    }
}
