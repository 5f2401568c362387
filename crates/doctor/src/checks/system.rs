//! NUMA, IPC, limits, block I/O, kernel features and pressure.

use osml_host::{ErrorKind, Fact, LimitValue, Psi};

use super::{check, sysctl_fix, Check, Ctx, Verdict};
use crate::{human_bytes, Status};

pub const NUMA_BALANCING: Check = check!(
    "numa.balancing", "Automatic NUMA balancing", numa_balancing,
    why: "NUMA balancing unmaps pages periodically to learn who touches them, so pinned ranks take extra page faults and their memory migrates under them; ranks that are already bound to their GPU's node gain nothing from it.",
    source: "ROCm MI300X system optimization guide; tuned hpc-compute (kernel.numa_balancing=0); azhpc-images GB200 cmdline numa_balancing=disable",
    evidence: ["/proc/sys/kernel/numa_balancing", "/proc/cmdline", "/sys/devices/system/node"],
);

fn numa_balancing(cx: &Ctx<'_>) -> Verdict {
    let nodes = cx.host.cpu_nodes().len();
    let Some(v) = cx.host.tunable_u64("kernel.numa_balancing") else {
        if nodes <= 1 {
            return Verdict::skip("one NUMA node and no kernel.numa_balancing: nothing to balance");
        }
        return Verdict::unknown(&cx.host.tunables["kernel.numa_balancing"]);
    };
    let observed = format!("{v} on {nodes} node(s) with CPUs");
    if v == 0 || nodes <= 1 || !cx.profile.numa_balancing_off {
        let status = if v != 0 && nodes > 1 {
            Status::Info
        } else {
            Status::Pass
        };
        return Verdict::new(
            status,
            observed,
            if nodes > 1 && cx.profile.numa_balancing_off {
                "0"
            } else {
                "any (one node, or unpinned workload)"
            },
        );
    }
    let (now, persist) = sysctl_fix("kernel.numa_balancing", 0);
    Verdict::new(
        Status::Warn,
        observed,
        "0 when ranks are pinned to their GPU's node",
    )
    .fix(now, persist)
}

pub const NUMA_TOPOLOGY: Check = check!(
    "numa.topology", "NUMA topology", numa_topology,
    why: "Memory on the other socket costs 1.5-2x the latency and a fraction of the bandwidth, so each rank and its loader threads belong on the node of their GPU; nodes without CPUs (GPU or CXL memory) must not receive threads.",
    source: "torch numa/binding.py; hwloc fixtures (CPU-less GPU memory nodes)",
    evidence: ["/sys/devices/system/node/node*/cpulist", "/sys/devices/system/node/node*/meminfo", "/sys/devices/system/node/node*/distance"],
);

fn numa_topology(cx: &Ctx<'_>) -> Verdict {
    let nodes = match &cx.host.numa {
        Fact::Known(n) => n,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let describe = nodes
        .iter()
        .map(|n| {
            let cpus = if n.cpus.is_empty() {
                "no CPUs".to_owned()
            } else {
                format!("CPUs {}", n.cpus)
            };
            let mem = n
                .memory_bytes
                .known()
                .map_or_else(|| "memory ?".to_owned(), |&b| human_bytes(b));
            format!("node{}: {cpus}, {mem}", n.id)
        })
        .collect::<Vec<_>>()
        .join("; ");
    let memless: Vec<String> = nodes
        .iter()
        .filter(|n| !n.cpus.is_empty() && n.memory_bytes.known() == Some(&0))
        .map(|n| format!("node{}", n.id))
        .collect();
    if !memless.is_empty() {
        return Verdict::new(Status::Warn, describe, "every node with CPUs has local memory")
            .why(format!("{} have CPUs but no memory, so every allocation of threads running there is remote; check the DIMM population or BIOS NUMA settings.", memless.join(", ")));
    }
    let cpuless = nodes.iter().filter(|n| n.cpus.is_empty()).count();
    let expected = if cpuless > 0 {
        "threads placed only on nodes with CPUs"
    } else {
        "ranks placed on their GPU's node"
    };
    Verdict::new(Status::Info, describe, expected)
}

pub const SHM: Check = check!(
    "ipc.shm", "/dev/shm size", shm,
    why: "PyTorch DataLoader workers hand every batch to the main process through files in /dev/shm and NCCL keeps its intra-node buffers there; when it fills, workers die with `Bus error` (SIGBUS), and Docker's default is only 64 MiB.",
    source: "pytorch README (--ipc=host or --shm-size); NCCL troubleshooting (--shm-size=1g); moby/moby#29492",
    evidence: ["/proc/self/mounts", "statvfs(/dev/shm)"],
);

fn shm(cx: &Ctx<'_>) -> Verdict {
    let shm = &cx.host.shm;
    if let Fact::Unknown { unknown, kind } = &shm.mount {
        // The mount table was read and has no /dev/shm, or this is the live host: a failure.
        // A capture whose mount table could not be read only leaves it unknown.
        if cx.host.live || *kind == ErrorKind::Absent {
            return Verdict::new(Status::Fail, format!("no /dev/shm: {unknown}"), "a tmpfs on /dev/shm")
                .fix("mount -t tmpfs -o size=16g tmpfs /dev/shm", "tmpfs /dev/shm tmpfs defaults,size=16g 0 0   (in /etc/fstab; containers: --shm-size=16g or --ipc=host)");
        }
        return Verdict::unknown(&shm.mount);
    }
    let size = match &shm.size_bytes {
        Fact::Known(s) => *s,
        // No size= means the tmpfs default, half of RAM.
        Fact::Unknown { .. } => match cx.host.memory.total_bytes.known() {
            Some(t) => t / 2,
            None => return Verdict::unknown(&shm.size_bytes),
        },
    };
    let used = shm.used_bytes.known().copied();
    let observed = match used {
        Some(u) => format!("{} ({} used)", human_bytes(size), human_bytes(u)),
        None => human_bytes(size),
    };
    let p = cx.profile;
    let expected = format!(">= {}", human_bytes(p.shm_warn_below));
    let suggest = cx
        .host
        .memory
        .total_bytes
        .known()
        // A quarter of RAM, capped at 64 GiB: room for many workers' batches without letting
        // a runaway job pin half the machine in tmpfs.
        .map_or(16 << 30, |t| (t / 4).clamp(p.shm_warn_below, 64 << 30));
    let gib = suggest.div_ceil(1 << 30);
    let fix = (
        format!("mount -o remount,size={gib}g /dev/shm"),
        format!("tmpfs /dev/shm tmpfs defaults,size={gib}g 0 0   (in /etc/fstab; Docker: --shm-size={gib}g or --ipc=host; Kubernetes: an emptyDir with medium: Memory on /dev/shm)"),
    );
    if size < p.shm_fail_below {
        return Verdict::new(Status::Fail, observed, expected).fix(fix.0, fix.1);
    }
    if size < p.shm_warn_below {
        return Verdict::new(Status::Warn, observed, expected).fix(fix.0, fix.1);
    }
    if used.is_some_and(|u| u * 10 > size * 8) {
        return Verdict::new(Status::Warn, observed, "less than 80% used")
            .why("/dev/shm is more than 80% full; leftover segments of crashed jobs are a common cause, and the next job's workers will die with `Bus error` when it fills.")
            .fix("ls -la /dev/shm   (remove segments of jobs that are gone)", fix.1);
    }
    Verdict::new(Status::Pass, observed, expected)
}

pub const NOFILE: Check = check!(
    "limits.nofile", "Open file limit", nofile,
    why: "PyTorch's default `file_descriptor` sharing strategy keeps one descriptor per shared tensor in flight, and sharded datasets open a file per shard, so a soft limit of 1024 ends in `Too many open files` from worker processes.",
    source: "PyTorch multiprocessing docs; azhpc-images hpc-tuning.sh (nofile 1048576)",
    evidence: ["/proc/self/limits", "/proc/sys/fs/nr_open", "/proc/sys/fs/file-max"],
);

fn nofile(cx: &Ctx<'_>) -> Verdict {
    let l = match &cx.host.limits {
        Fact::Known(l) => l.nofile,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let min = cx.profile.nofile_min;
    let observed = format!("soft {}, hard {}", l.soft, l.hard);
    let expected = format!("soft >= {min}");
    if l.soft.at_least(min) {
        return Verdict::new(Status::Pass, observed, expected);
    }
    let runtime = if l.hard.at_least(min) {
        format!("ulimit -n {min}   (in the job's shell; the hard limit allows it)")
    } else {
        format!("the hard limit {} is below {min}: raise it as root (prlimit --pid $$ --nofile={min}:{min})", l.hard)
    };
    Verdict::new(Status::Warn, observed, expected).fix(
        runtime,
        format!("echo '* - nofile {min}' > /etc/security/limits.d/90-osml.conf; for services and containers: LimitNOFILE={min} (systemd) or --ulimit nofile={min}:{min}"),
    )
}

pub const MEMLOCK: Check = check!(
    "limits.memlock", "Locked memory limit", memlock,
    why: "RDMA NICs (NCCL over InfiniBand or RoCE, GPUDirect) must pin every registered buffer, and a memlock limit below the buffers makes registration fail, so NCCL falls back to TCP or aborts.",
    source: "NCCL troubleshooting (--ulimit memlock=-1); azhpc-images hpc-tuning.sh",
    evidence: ["/proc/self/limits", "/sys/class/infiniband"],
);

fn memlock(cx: &Ctx<'_>) -> Verdict {
    let l = match &cx.host.limits {
        Fact::Known(l) => l.memlock,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let observed = format!(
        "soft {}, hard {}",
        show_bytes_limit(l.soft),
        show_bytes_limit(l.hard)
    );
    if l.soft == LimitValue::Unlimited {
        return Verdict::new(Status::Pass, observed, "unlimited");
    }
    let rdma = cx.host.rdma.ports.known().is_some_and(|p| !p.is_empty());
    let status = if rdma { Status::Fail } else { Status::Info };
    let v = Verdict::new(status, observed, if rdma { "unlimited (RDMA devices present)" } else { "unlimited where RDMA or mlock'd buffers are used" })
        .fix(
            "ulimit -l unlimited   (needs the hard limit to allow it; Docker: --ulimit memlock=-1)",
            "echo '* - memlock unlimited' > /etc/security/limits.d/90-osml-memlock.conf; for systemd services and Slurm: LimitMEMLOCK=infinity",
        );
    if rdma {
        v
    } else {
        v.why("Without RDMA devices the limit matters only to programs that lock memory (osml's loader can mlock its batch buffers, and reports when the limit forbids it).")
    }
}

fn show_bytes_limit(v: LimitValue) -> String {
    match v {
        LimitValue::Unlimited => "unlimited".into(),
        LimitValue::Value(b) => human_bytes(b),
    }
}

pub const READAHEAD: Check = check!(
    "io.readahead", "Block device read-ahead", readahead,
    why: "Read-ahead decides how much the kernel fetches ahead of a sequential reader; at the 128 KiB default a dataset scan from disk issues small requests and leaves much of an NVMe's bandwidth unused.",
    source: "tuned throughput-performance (readahead >4096); azhpc-images NFS read_ahead_kb",
    evidence: ["/sys/block/*/queue/read_ahead_kb", "/sys/block/*/queue/rotational"],
);

/// The block devices, or the verdict when there are none or they are unknown.
#[allow(clippy::result_large_err)] // see `super::tunable`
fn block_devices<'a>(cx: &Ctx<'a>) -> Result<&'a [osml_host::BlockDevice], Verdict> {
    match &cx.host.block_devices {
        Fact::Known(d) if !d.is_empty() => Ok(d),
        Fact::Known(_) => Err(Verdict::skip("no block devices")),
        f @ Fact::Unknown { .. } => Err(Verdict::unknown(f)),
    }
}

/// `vda 8192 KiB, vdb 128 KiB`: one value per device, for `observed`.
fn per_device(
    devs: &[osml_host::BlockDevice],
    value: impl Fn(&osml_host::BlockDevice) -> String,
) -> String {
    devs.iter()
        .map(|d| format!("{} {}", d.name, value(d)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn readahead(cx: &Ctx<'_>) -> Verdict {
    let devs = match block_devices(cx) {
        Ok(d) => d,
        Err(v) => return v,
    };
    let observed = per_device(devs, |d| {
        d.read_ahead_kb
            .known()
            .map_or_else(|| "?".to_owned(), |k| format!("{k} KiB"))
    });
    let Some(min) = cx.profile.readahead_min_kb else {
        return Verdict::new(Status::Info, observed, "any (this profile reads at random)");
    };
    let low: Vec<&str> = devs
        .iter()
        .filter(|d| d.read_ahead_kb.known().is_some_and(|&k| k < min))
        .map(|d| d.name.as_str())
        .collect();
    if low.is_empty() {
        return Verdict::new(Status::Pass, observed, format!(">= {min} KiB"));
    }
    let runtime = low
        .iter()
        .map(|d| format!("echo {min} > /sys/block/{d}/queue/read_ahead_kb"))
        .collect::<Vec<_>>()
        .join("; ");
    Verdict::new(Status::Warn, observed, format!(">= {min} KiB on dataset disks")).fix(
        runtime,
        format!("echo 'ACTION==\"add|change\", SUBSYSTEM==\"block\", KERNEL==\"{}\", ATTR{{queue/read_ahead_kb}}=\"{min}\"' > /etc/udev/rules.d/60-osml-readahead.rules", low.join("|")),
    )
}

pub const SCHEDULER: Check = check!(
    "io.scheduler", "Block I/O scheduler", io_scheduler,
    why: "NVMe drives queue and reorder requests themselves, so an I/O scheduler on them only adds CPU time per request; `bfq` in particular caps random-read IOPS well below what the drive does.",
    source: "block/switching-sched.rst; osml judgment (none or mq-deadline on NVMe)",
    evidence: ["/sys/block/*/queue/scheduler"],
);

fn io_scheduler(cx: &Ctx<'_>) -> Verdict {
    let devs = match block_devices(cx) {
        Ok(d) => d,
        Err(v) => return v,
    };
    let observed = per_device(devs, |d| {
        d.scheduler.known().map_or("?", String::as_str).to_owned()
    });
    let slow: Vec<&str> = devs
        .iter()
        .filter(|d| d.name.starts_with("nvme") && d.scheduler.known().is_some_and(|s| s == "bfq"))
        .map(|d| d.name.as_str())
        .collect();
    if slow.is_empty() {
        return Verdict::new(Status::Info, observed, "none or mq-deadline on NVMe");
    }
    Verdict::new(Status::Warn, observed, "none or mq-deadline on NVMe").fix(
        slow.iter().map(|d| format!("echo none > /sys/block/{d}/queue/scheduler")).collect::<Vec<_>>().join("; "),
        "echo 'ACTION==\"add|change\", KERNEL==\"nvme[0-9]*n[0-9]*\", ATTR{queue/scheduler}=\"none\"' > /etc/udev/rules.d/60-osml-scheduler.rules",
    )
}

pub const KERNEL_VERSION: Check = check!(
    "kernel.version", "Kernel version", kernel_version,
    why: "The kernel release decides what osml and the frameworks can use: pressure stall information needs 4.20, a usable io_uring for file reads 5.10, and `kernel.io_uring_disabled` 6.6.",
    source: "psi.rst (4.20); io_uring man pages; kernel commit 76d3ccecfa18 (6.6)",
    evidence: ["/proc/sys/kernel/osrelease", "/proc/cmdline"],
);

/// `6.1.0-18-amd64` gives `(6, 1)`.
pub(crate) fn release_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn kernel_version(cx: &Ctx<'_>) -> Verdict {
    let release = match &cx.host.kernel.release {
        Fact::Known(r) => r,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    match release_version(release) {
        Some(v) if v >= (5, 10) => Verdict::new(Status::Pass, release.clone(), ">= 5.10"),
        Some(_) => Verdict::new(Status::Warn, release.clone(), ">= 5.10").fix(
            "none at run time",
            "upgrade to a distribution kernel >= 5.10 (pressure stall information, io_uring reads, THP for shmem)",
        ),
        None => Verdict::new(Status::Info, format!("{release} (release not understood)"), ">= 5.10"),
    }
}

pub const IO_URING: Check = check!(
    "kernel.io_uring", "io_uring", io_uring,
    why: "io_uring lets one thread keep dozens of reads in flight without a syscall each, which is how osml streams datasets larger than RAM from NVMe; `kernel.io_uring_disabled` and container seccomp profiles (Docker's default) turn it off.",
    source: "kernel commit 76d3ccecfa18 (io_uring_disabled); moby/moby#46762",
    evidence: ["/proc/sys/kernel/io_uring_disabled", "io_uring_setup(2) probe"],
);

fn io_uring(cx: &Ctx<'_>) -> Verdict {
    let disabled = cx.host.tunable_u64("kernel.io_uring_disabled");
    let probe = &cx.host.kernel.io_uring_setup;
    let knob = match disabled {
        Some(0) => "io_uring_disabled=0".to_owned(),
        Some(1) => "io_uring_disabled=1 (only the io_uring_group may use it)".to_owned(),
        Some(2) => "io_uring_disabled=2 (off for everyone)".to_owned(),
        Some(v) => format!("io_uring_disabled={v}"),
        None => "no io_uring_disabled knob (kernel before 6.6)".to_owned(),
    };
    let (now, persist) = sysctl_fix("kernel.io_uring_disabled", 0);
    match (probe, disabled) {
        (Fact::Known(true), _) => Verdict::new(Status::Pass, format!("{knob}; io_uring_setup works"), "usable"),
        // A failed probe, live or replayed from a capture's probes.json.
        (Fact::Unknown { unknown, kind }, _) if cx.host.live || *kind != ErrorKind::LiveOnly => {
            Verdict::new(Status::Warn, format!("{knob}; {unknown}"), "usable").fix(
                if disabled.is_some_and(|d| d > 0) { now } else { "in a container: allow io_uring_setup, io_uring_enter and io_uring_register in its seccomp profile".to_owned() },
                persist,
            )
        }
        (_, Some(d)) if d > 0 => Verdict::new(Status::Warn, knob, "usable").fix(now, persist),
        (_, Some(_)) => Verdict::new(Status::Pass, format!("{knob} (not probed: not the live host)"), "usable"),
        (_, None) => Verdict::skip(format!("{knob}; not probed: not the live host")),
    }
}

pub const PERF: Check = check!(
    "kernel.perf", "perf_event_paranoid", perf,
    why: "Profilers (perf, Nsight Systems' CPU sampling, `osml trace`) need perf events, which a paranoid level above 2 denies to users who are not root.",
    source: "Nsight Systems installation guide (paranoid <= 2); perf_event_open(2)",
    evidence: ["/proc/sys/kernel/perf_event_paranoid"],
);

fn perf(cx: &Ctx<'_>) -> Verdict {
    let Some(level) = cx.host.tunables["kernel.perf_event_paranoid"]
        .known()
        .and_then(|v| v.trim().parse::<i64>().ok())
    else {
        return Verdict::unknown(&cx.host.tunables["kernel.perf_event_paranoid"]);
    };
    if level <= 2 {
        return Verdict::new(Status::Pass, level.to_string(), "<= 2");
    }
    let (now, persist) = sysctl_fix("kernel.perf_event_paranoid", 2);
    Verdict::new(Status::Info, level.to_string(), "<= 2 when profiling").fix(now, persist)
}

fn pressure(cx: &Ctx<'_>, psi: &Fact<Psi>, resource: &str) -> Verdict {
    let psi = match psi {
        Fact::Known(p) => p,
        Fact::Unknown { unknown, .. } => {
            return Verdict::skip(format!(
                "no pressure stall information ({unknown}; needs 4.20+ and not psi=0)"
            ));
        }
    };
    let warn = cx.profile.pressure_full_warn;
    let full = psi.full.map_or(0.0, |f| f.avg10.max(f.avg60));
    let observed = format!(
        "some {:.2}/{:.2}/{:.2}%, full {}",
        psi.some.avg10,
        psi.some.avg60,
        psi.some.avg300,
        psi.full.map_or_else(
            || "n/a".to_owned(),
            |f| format!("{:.2}/{:.2}/{:.2}%", f.avg10, f.avg60, f.avg300)
        )
    );
    let expected = format!("full avg10 and avg60 < {warn}%");
    if full >= warn {
        let hint = if resource == "memory" {
            "find what fills memory: osml doctor's mem.* checks, `ps aux --sort=-rss | head`, and the cgroup limit"
        } else {
            "find who reads: `iostat -x 1`, `cat /proc/pressure/io`; check io.readahead and the dataset's page-cache residency"
        };
        return Verdict::new(Status::Warn, observed, expected)
            .fix(hint, "none: pressure is a symptom; fix its cause");
    }
    Verdict::new(Status::Pass, observed, expected)
}

pub const PRESSURE_MEMORY: Check = check!(
    "pressure.memory", "Memory pressure (PSI)", pressure_memory,
    why: "Memory `full` pressure is the share of time every runnable task waited on reclaim or swap-in at once; above a percent or two the job is thrashing and steps slow down long before anything is OOM-killed.",
    source: "psi.rst; osml judgment",
    evidence: ["/proc/pressure/memory"],
);

fn pressure_memory(cx: &Ctx<'_>) -> Verdict {
    pressure(cx, &cx.host.pressure.memory, "memory")
}

pub const PRESSURE_IO: Check = check!(
    "pressure.io", "I/O pressure (PSI)", pressure_io,
    why: "I/O `full` pressure is the share of time all runnable tasks waited on storage at once; a data loader reading a cold dataset shows here first, as GPU idle time.",
    source: "psi.rst; osml judgment",
    evidence: ["/proc/pressure/io"],
);

fn pressure_io(cx: &Ctx<'_>) -> Verdict {
    pressure(cx, &cx.host.pressure.io, "io")
}

pub const NUMA_MEMORY: Check = check!(
    "numa.memory", "Free memory per NUMA node", numa_memory,
    why: "When one node's memory is nearly full, the kernel places new pages of the processes bound or running there on another node, so ranks pinned next to their GPU silently read remote memory at 1.5-2x the latency; or, with a strict binding, they reclaim or are killed although the host has memory free.",
    source: "mm/page_alloc.c zone fallback; numastat(8); osml judgment: warn when a node has under 5% free while another has over 25%",
    evidence: ["/sys/devices/system/node/node*/meminfo"],
);

const NODE_NEARLY_FULL: f64 = 0.05;
const NODE_ROOMY: f64 = 0.25;

fn numa_memory(cx: &Ctx<'_>) -> Verdict {
    let nodes = match &cx.host.numa {
        Fact::Known(n) => n,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    // Nodes with memory whose free figure could be read: (id, total, free).
    let mem: Vec<(usize, u64, u64)> = nodes
        .iter()
        .filter_map(|n| {
            let total = *n.memory_bytes.known()?;
            let free = *n.free_bytes.known()?;
            (total > 0).then_some((n.id, total, free))
        })
        .collect();
    if mem.len() < 2 {
        return Verdict::skip(format!(
            "not applicable: {} node(s) with memory, so there is no other node to spill to",
            mem.len()
        ));
    }
    let share = |&(_, total, free): &(usize, u64, u64)| free as f64 / total as f64;
    let observed = mem
        .iter()
        .map(|n| {
            format!(
                "node{} {} free of {} ({:.0}%)",
                n.0,
                human_bytes(n.2),
                human_bytes(n.1),
                share(n) * 100.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let expected = format!(
        "no node under {:.0}% free while another has over {:.0}%",
        NODE_NEARLY_FULL * 100.0,
        NODE_ROOMY * 100.0
    );
    let full: Vec<usize> = mem
        .iter()
        .filter(|n| share(n) < NODE_NEARLY_FULL)
        .map(|n| n.0)
        .collect();
    let roomy = mem.iter().any(|n| share(n) > NODE_ROOMY);
    if full.is_empty() || !roomy {
        return Verdict::new(Status::Pass, observed, expected);
    }
    let list = full
        .iter()
        .map(|n| format!("node{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Verdict::new(Status::Warn, observed, expected)
        .why(format!(
            "{list} is nearly full while another node has room: new pages of the processes there go to a remote node (1.5-2x the latency), or, under a strict binding, reclaim or the OOM killer step in although the host has memory free."
        ))
        .fix(
            format!("numastat -m   (what fills {list}: page cache, a hugetlb pool, /dev/shm, or one process; `numastat -p PID`); drop the page cache of datasets no longer read, move or shrink what is pinned there, or bind ranks with osml run --bind so that each uses its own node's memory"),
            "size hugetlb pools per node (/sys/devices/system/node/nodeN/hugepages), and start ranks with osml run --bind",
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert_eq!(super::release_version("6.18.0-osml"), Some((6, 18)));
        assert_eq!(
            super::release_version("2.6.32-754.el6.x86_64"),
            Some((2, 6))
        );
        assert_eq!(super::release_version("weird"), None);
    }
}
