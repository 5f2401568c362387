//! The table of checks. Each has a stable id (`mem.thp`), static facts about itself
//! ([`CheckInfo`]) and a judge: a pure function of the snapshot and the profile.

mod cpu;
mod devices;
mod log;
mod memory;
mod p2p;
mod system;
mod watch;

use osml_host::{Fact, HostSnapshot};
use serde::Serialize;

use crate::{Finding, Fix, Profile, Status};

/// What a check is, independent of any host.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CheckInfo {
    pub id: &'static str,
    pub title: &'static str,
    /// The OS mechanism and its effect on ML work, in one sentence.
    pub why: &'static str,
    /// Where the expected value comes from.
    pub source: &'static str,
    /// The files read (globs for per-device files).
    pub evidence: &'static [&'static str],
}

impl CheckInfo {
    /// The area an id belongs to: `mem` for `mem.thp`.
    pub fn area(&self) -> &'static str {
        self.id.split('.').next().unwrap_or(self.id)
    }
}

/// A check: its description and its judge.
pub struct Check {
    pub info: CheckInfo,
    judge: fn(&Ctx<'_>) -> Verdict,
}

impl Check {
    pub(crate) fn run(&self, host: &HostSnapshot, profile: &Profile) -> Finding {
        let v = (self.judge)(&Ctx { host, profile });
        Finding {
            id: self.info.id.to_owned(),
            area: self.info.area().to_owned(),
            title: self.info.title.to_owned(),
            status: v.status,
            observed: v.observed,
            expected: v.expected,
            why: v.why.unwrap_or_else(|| self.info.why.to_owned()),
            fix: v.fix,
            evidence: self.info.evidence.iter().map(|s| (*s).to_owned()).collect(),
            source: self.info.source.to_owned(),
        }
    }
}

pub(crate) struct Ctx<'a> {
    pub host: &'a HostSnapshot,
    pub profile: &'a Profile,
}

/// A judge's answer; [`Check::run`] adds the static parts.
pub(crate) struct Verdict {
    pub status: Status,
    pub observed: String,
    pub expected: String,
    pub fix: Option<Fix>,
    /// Replaces the static `why` when the reason depends on the host.
    pub why: Option<String>,
}

impl Verdict {
    pub fn new(status: Status, observed: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            status,
            observed: observed.into(),
            expected: expected.into(),
            fix: None,
            why: None,
        }
    }

    pub fn skip(reason: impl Into<String>) -> Self {
        Self::new(Status::Skip, reason, "")
    }

    /// A verdict on a fact that could not be read.
    pub fn unknown<T>(fact: &Fact<T>) -> Self {
        Self::skip(format!("unknown: {}", fact.reason().unwrap_or("not read")))
    }

    #[must_use]
    pub fn fix(mut self, runtime: impl Into<String>, persist: impl Into<String>) -> Self {
        // A passing check carries no fix: there is nothing to do.
        if matches!(self.status, Status::Warn | Status::Fail | Status::Info) {
            self.fix = Some(Fix {
                runtime: runtime.into(),
                persist: persist.into(),
            });
        }
        self
    }

    #[must_use]
    pub fn why(mut self, why: impl Into<String>) -> Self {
        self.why = Some(why.into());
        self
    }
}

/// A tunable as an integer, or the skip verdict saying why it is unknown.
// The error is the finding itself, built once per check: no hot path to keep small.
#[allow(clippy::result_large_err)]
pub(crate) fn tunable(cx: &Ctx<'_>, name: &str) -> Result<u64, Verdict> {
    cx.host
        .tunable_u64(name)
        .ok_or_else(|| match cx.host.tunables.get(name) {
            Some(f @ Fact::Unknown { .. }) => Verdict::unknown(f),
            Some(Fact::Known(v)) => Verdict::skip(format!("{name} = {v:?} is not an integer")),
            None => Verdict::skip(format!("{name} is not read by osml-host")),
        })
}

/// The fix for a sysctl: set it now, and keep it in a drop-in file read at boot.
pub(crate) fn sysctl_fix(name: &str, value: impl std::fmt::Display) -> (String, String) {
    (
        format!("sysctl -w {name}={value}"),
        format!(
            "echo '{name} = {value}' >> /etc/sysctl.d/90-osml.conf   (read at boot; `sysctl --system` reloads it)"
        ),
    )
}

macro_rules! check {
    ($id:literal, $title:literal, $judge:path, why: $why:literal, source: $source:literal, evidence: [$($ev:literal),* $(,)?] $(,)?) => {
        $crate::checks::Check {
            info: $crate::checks::CheckInfo {
                id: $id,
                title: $title,
                why: $why,
                source: $source,
                evidence: &[$($ev),*],
            },
            judge: $judge,
        }
    };
}
pub(crate) use check;

/// Every check, in report order (grouped by area).
pub static CHECKS: &[Check] = &[
    cpu::GOVERNOR,
    cpu::SMT,
    cpu::ISOLATION,
    cpu::CGROUP_CPU,
    cpu::CGROUP_MEMORY,
    memory::THP,
    memory::THP_DEFRAG,
    memory::HUGETLB,
    memory::SWAP,
    memory::SWAPPINESS,
    memory::OVERCOMMIT,
    memory::MAX_MAP_COUNT,
    memory::ZONE_RECLAIM,
    memory::DIRTY,
    memory::FRAGMENTATION,
    system::NUMA_BALANCING,
    system::NUMA_TOPOLOGY,
    system::NUMA_MEMORY,
    system::SHM,
    system::NOFILE,
    system::MEMLOCK,
    system::READAHEAD,
    system::SCHEDULER,
    system::KERNEL_VERSION,
    system::IO_URING,
    system::PERF,
    log::OOM_KILL,
    log::MCE,
    log::HUNG_TASK,
    system::PRESSURE_MEMORY,
    system::PRESSURE_IO,
    devices::GPU_NUMA,
    log::XID,
    devices::RDMA_PORTS,
    devices::RDMA_PEERMEM,
    devices::PCI_LINK,
    p2p::PCI_P2P,
    log::AER,
    watch::LINK,
    watch::KERNEL_LOG,
    watch::PRESSURE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut ids: Vec<&str> = CHECKS.iter().map(|c| c.info.id).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate check id");
        for c in CHECKS {
            assert!(c.info.id.contains('.'), "{}", c.info.id);
            assert!(
                c.info.why.ends_with('.'),
                "why of {} is not a sentence",
                c.info.id
            );
            assert!(!c.info.source.is_empty(), "{} has no source", c.info.id);
            assert!(!c.info.evidence.is_empty(), "{} has no evidence", c.info.id);
        }
    }
}
