//! Control groups: version, memory limit, CPU quota and cpuset of this process.

use serde::{Deserialize, Serialize};

use super::{fact, read_with};
use crate::parse::{cgroup, sysfs};
use crate::{CpuList, ErrorKind, Fact, HostRoot, Mount};

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

pub(super) fn gather_cgroup(root: &HostRoot, mounts: &Fact<Vec<Mount>>) -> Cgroup {
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
