//! CPU frequency, SMT, isolation and the cgroup limits that bound a job.

use osml_host::{CpuList, Fact};

use super::{check, Check, Ctx, Verdict};
use crate::{human_bytes, Status};

pub const GOVERNOR: Check = check!(
    "cpu.governor", "CPU frequency governor", governor,
    why: "A governor other than `performance` lowers clocks between bursts, so the loader and the Python step loop wake up slow and the GPU waits for its next batch.",
    source: "tuned throughput-performance and accelerator-performance (governor=performance)",
    evidence: ["/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor", "/sys/devices/system/cpu/cpu*/cpufreq/scaling_driver"],
);

fn governor(cx: &Ctx<'_>) -> Verdict {
    let target = cx.profile.governor;
    let groups = match &cx.host.cpu.frequency {
        Fact::Known(g) => g,
        Fact::Unknown { unknown, .. } => {
            return Verdict::skip(format!("frequency scaling is not exposed: {unknown}"));
        }
    };
    let observed = groups
        .iter()
        .map(|g| format!("{} ({}) on CPUs {}", g.governor, g.driver, g.cpus))
        .collect::<Vec<_>>()
        .join("; ");
    let slow: CpuList = groups
        .iter()
        .filter(|g| g.governor != target)
        .flat_map(|g| g.cpus.ids().iter().copied())
        .collect();
    if slow.is_empty() {
        return Verdict::new(Status::Pass, observed, target);
    }
    Verdict::new(Status::Warn, observed, format!("{target} on every CPU"))
        .fix(
            format!("cpupower frequency-set -g {target}   (or: echo {target} | tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)"),
            format!("echo 'w /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor - - - - {target}' > /etc/tmpfiles.d/osml-governor.conf"),
        )
}

pub const SMT: Check = check!(
    "cpu.smt", "Simultaneous multithreading", smt,
    why: "Sibling hyperthreads share one core's execution units and caches, so pinning two busy loader or rank threads to siblings gives each about half a core; placement must know which CPUs are siblings.",
    source: "NHC check_hw_cpuinfo; ROCm MI300X tuning guide (SMT off for compute-bound hosts)",
    evidence: ["/sys/devices/system/cpu/smt/control", "/sys/devices/system/cpu/smt/active", "/sys/devices/system/cpu/cpu*/topology/thread_siblings_list"],
);

fn smt(cx: &Ctx<'_>) -> Verdict {
    let cpu = &cx.host.cpu;
    let shape = match (
        cpu.sockets.known(),
        cpu.cores.known(),
        cpu.threads_per_core.known(),
    ) {
        (Some(s), Some(c), Some(t)) => {
            format!("{s} socket(s), {c} core(s), {t} thread(s) per core")
        }
        _ => "topology unknown".to_owned(),
    };
    let observed = match &cpu.smt {
        Fact::Known(s) => format!(
            "SMT {}{}; {shape}",
            s.control,
            match s.active {
                Some(true) => ", active",
                Some(false) => ", inactive",
                None => "",
            }
        ),
        Fact::Unknown { .. } => format!("SMT control not exposed; {shape}"),
    };
    Verdict::new(
        Status::Info,
        observed,
        "known, so that threads are placed on distinct cores",
    )
}

pub const ISOLATION: Check = check!(
    "cpu.isolation", "Isolated and tickless CPUs", isolation,
    why: "CPUs in `isolcpus` are skipped by the scheduler's load balancing and `nohz_full` CPUs lose the tick, so threads land there only when pinned explicitly; a job that is not pinned leaves them idle.",
    source: "kernel-parameters.txt (isolcpus, nohz_full)",
    evidence: ["/proc/cmdline", "/proc/self/status"],
);

fn isolation(cx: &Ctx<'_>) -> Verdict {
    let p = &cx.host.kernel.params;
    if cx.host.kernel.cmdline.known().is_none() {
        return Verdict::unknown(&cx.host.kernel.cmdline);
    }
    match (&p.isolcpus, &p.nohz_full) {
        (None, None) => Verdict::new(Status::Pass, "no isolcpus or nohz_full", "known isolation"),
        (iso, nohz) => {
            let show = |l: &Option<CpuList>| {
                l.as_ref()
                    .map_or_else(|| "none".to_owned(), ToString::to_string)
            };
            let observed = format!("isolcpus={} nohz_full={}", show(iso), show(nohz));
            let allowed = cx.host.cpu.allowed.known();
            let in_reach = iso
                .as_ref()
                .zip(allowed)
                .map(|(i, a)| i.intersection(a))
                .filter(|l| !l.is_empty());
            match in_reach {
                Some(l) => Verdict::new(
                    Status::Warn,
                    format!("{observed}; isolated CPUs {l} are in this process's affinity"),
                    "isolated CPUs used only by explicitly pinned threads",
                )
                .fix(
                    format!("pin work onto them explicitly (taskset -c {l} …), or leave them out of the job's CPU list"),
                    "remove isolcpus= from the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) if they are not reserved on purpose",
                ),
                None => Verdict::new(Status::Info, observed, "known isolation"),
            }
        }
    }
}

pub const CGROUP_CPU: Check = check!(
    "cgroup.cpu", "cgroup CPU quota and cpuset", cgroup_cpu,
    why: "A CFS quota below the number of visible CPUs throttles the whole job once per period (100 ms by default) when loader threads and intra-op pools run at once, which shows up as periodic GPU idle gaps.",
    source: "cgroup-v2.rst (cpu.max), sched-bwc.rst; osml judgment: quota >= allowed CPUs",
    evidence: ["/proc/self/cgroup", "/proc/self/mounts", "/sys/fs/cgroup/**/cpu.max", "/sys/fs/cgroup/cpu/**/cpu.cfs_quota_us", "/sys/fs/cgroup/**/cpuset.cpus.effective"],
);

fn cgroup_cpu(cx: &Ctx<'_>) -> Verdict {
    let cg = &cx.host.cgroup;
    let allowed = cx.host.cpu.allowed.known().map(CpuList::len);
    let cpuset = cg.cpuset.known().and_then(|c| c.cpus.known().cloned());
    let set_text = cpuset
        .as_ref()
        .map_or_else(String::new, |c| format!("; cpuset {c} ({} CPUs)", c.len()));
    match &cg.cpu {
        Fact::Known(cpu) => match (cpu.cpus(), allowed) {
            (Some(q), Some(n)) if q + 1e-9 < n as f64 => Verdict::new(
                Status::Warn,
                format!("quota {q:.2} CPUs in {}{set_text}, while {n} CPUs are allowed", cpu.path),
                format!("quota >= {n} CPUs, or threads sized to the quota"),
            )
            .fix(
                format!("size thread pools to the quota: OMP_NUM_THREADS={} and at most {} loader threads", q.floor().max(1.0), q.floor().max(1.0)),
                "raise the quota at its source (Kubernetes resources.limits.cpu, Slurm --cpus-per-task, docker --cpus), or drop the CPU limit and keep only the request",
            ),
            (Some(q), _) => Verdict::new(Status::Pass, format!("quota {q:.2} CPUs in {}{set_text}", cpu.path), "quota >= allowed CPUs"),
            (None, _) => Verdict::new(Status::Pass, format!("no CPU quota{set_text}"), "quota >= allowed CPUs"),
        },
        Fact::Unknown { unknown, .. } => match cpuset {
            Some(_) => Verdict::new(Status::Info, format!("quota unknown ({unknown}){set_text}"), "quota >= allowed CPUs"),
            None => Verdict::skip(format!("no CPU controller: {unknown}")),
        },
    }
}

pub const CGROUP_MEMORY: Check = check!(
    "cgroup.memory", "cgroup memory limit", cgroup_memory,
    why: "The memory cgroup charges page cache, anonymous memory and /dev/shm files alike, so a limit smaller than the dataset's working set plus shared-memory batches makes the OOM killer end workers mid-epoch.",
    source: "cgroup-v2.rst (memory.max; tmpfs pages are charged to the cgroup); osml judgment",
    evidence: ["/proc/self/cgroup", "/sys/fs/cgroup/**/memory.max", "/sys/fs/cgroup/memory/**/memory.limit_in_bytes", "/proc/meminfo"],
);

fn cgroup_memory(cx: &Ctx<'_>) -> Verdict {
    let mem = match &cx.host.cgroup.memory {
        Fact::Known(m) => m,
        Fact::Unknown { unknown, .. } => {
            return Verdict::skip(format!("no memory controller: {unknown}"))
        }
    };
    let total = cx.host.memory.total_bytes.known().copied();
    let Some(limit) = mem.limit_bytes.filter(|&l| total.is_none_or(|t| l < t)) else {
        return Verdict::new(
            Status::Pass,
            format!("no memory limit below RAM ({})", mem.path),
            "a limit that leaves room for data and /dev/shm",
        );
    };
    let shm = cx.host.shm.size_bytes.known().copied();
    let observed = format!(
        "limit {} in {}{}",
        human_bytes(limit),
        mem.path,
        total.map_or_else(String::new, |t| format!(
            " ({:.0}% of RAM)",
            100.0 * limit as f64 / t as f64
        ))
    );
    match shm {
        Some(s) if s > limit => Verdict::new(
            Status::Warn,
            format!("{observed}; /dev/shm may grow to {}", human_bytes(s)),
            "/dev/shm smaller than the memory limit",
        )
        .why("Files in /dev/shm are charged to this cgroup, and /dev/shm may grow past the memory limit, so DataLoader workers that share batches through it are OOM-killed before /dev/shm reports full.")
        .fix(
            format!("mount -o remount,size={} /dev/shm", limit / 2),
            "raise the job's memory limit at its source (Kubernetes resources.limits.memory, Slurm --mem, docker --memory), or size /dev/shm below it",
        ),
        _ => Verdict::new(Status::Info, observed, "a limit that leaves room for data and /dev/shm"),
    }
}
