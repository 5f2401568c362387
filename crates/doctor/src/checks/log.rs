//! The kernel log (`/dev/kmsg`): what killed or stalled jobs since boot. Each check reads the
//! classes `osml_host::parse::kmsg` found; counts, first and last time, device or cgroup.

use osml_host::parse::kmsg::{xid_class, KernelLog, Seen, XidClass};
use osml_host::{ErrorKind, Fact};

use super::{check, Check, Ctx, Verdict};
use crate::{human_bytes, Status};

/// The parsed log, or the verdict saying why it could not be read.
// The error is the finding itself, built once per check.
#[allow(clippy::result_large_err)]
fn log<'a>(cx: &'a Ctx<'_>) -> Result<&'a KernelLog, Verdict> {
    match &cx.host.kernel.log {
        Fact::Known(l) => Ok(l),
        f @ Fact::Unknown { .. } => {
            let mut v = Verdict::unknown(f);
            if f.unknown_kind() == Some(ErrorKind::Denied) {
                v.observed += " (reading the kernel log needs root, or CAP_SYSLOG, where kernel.dmesg_restrict = 1)";
            }
            Err(v)
        }
    }
}

/// `3 times, 12.0 s – 3650.2 s after boot`.
fn when(s: &Seen) -> String {
    if s.count == 1 {
        format!("once, {:.1} s after boot", s.first_s)
    } else {
        format!(
            "{} times, {:.1} s – {:.1} s after boot",
            s.count, s.first_s, s.last_s
        )
    }
}

fn none(l: &KernelLog, what: &str) -> Verdict {
    Verdict::new(
        Status::Pass,
        format!(
            "no {what} among {} log records (from {:.1} s after boot)",
            l.records, l.first_s
        ),
        format!("no {what}"),
    )
}

pub const OOM_KILL: Check = check!(
    "kernel.oom_kill", "OOM kills in the kernel log", oom_kill,
    why: "A job killed for memory shows only as a dead rank or a DataLoader worker that 'exited unexpectedly'; the kernel log says which process died, how much it held and whether a cgroup limit, not the host, ran out.",
    source: "mm/oom_kill.c (oom-kill: and Killed process lines); Documentation/ABI/testing/dev-kmsg",
    evidence: ["/dev/kmsg"],
);

fn oom_kill(cx: &Ctx<'_>) -> Verdict {
    let l = match log(cx) {
        Ok(l) => l,
        Err(v) => return v,
    };
    if l.oom.count == 0 {
        return none(l, "OOM kill");
    }
    let victims = l
        .oom_kills
        .iter()
        .take(5)
        .map(|k| {
            format!(
                "{} (pid {}{}{}) at {:.1} s",
                k.command.as_deref().unwrap_or("?"),
                k.pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                k.anon_rss_bytes
                    .map_or_else(String::new, |b| format!(", {} anonymous", human_bytes(b))),
                k.cgroup
                    .as_deref()
                    .map_or_else(String::new, |c| format!(", cgroup {c}")),
                k.time_s
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let in_cgroup = l.oom_kills.iter().any(|k| k.cgroup.is_some());
    Verdict::new(
        Status::Warn,
        format!("{} kill(s), {}: {victims}", l.oom.count, when(&l.oom).split_once(", ").map_or("", |(_, t)| t)),
        "no OOM kill",
    )
    .fix(
        if in_cgroup {
            "a cgroup limit was hit: raise the container's memory limit or shrink the job (fewer DataLoader workers, smaller prefetch, osml.TokenLoader's shared pool instead of per-worker copies); `osml trace` shows which process grows"
        } else {
            "the host ran out of memory: shrink the job or add memory; `osml trace` shows which process grows, and `osml doctor --only mem.swap,mem.overcommit` what the kernel can fall back on"
        },
        "size containers and workers for the job's peak (osml trace's peak PSS), not its average",
    )
}

pub const XID: Check = check!(
    "gpu.xid", "NVIDIA Xid errors in the kernel log", xid,
    why: "An Xid is the NVIDIA driver reporting a GPU fault: some are the application's (an illegal address), others the hardware's (ECC, NVLink, a GPU off the bus); telling them apart decides between fixing the job and draining the node.",
    source: "NVIDIA, Xid Errors (docs.nvidia.com/deploy/xid-errors): application-caused 13, 31, 43, 45; hardware or driver 48, 61-64, 74, 79, 92, 94, 95, 119, 120",
    evidence: ["/dev/kmsg"],
);

fn xid(cx: &Ctx<'_>) -> Verdict {
    let l = match log(cx) {
        Ok(l) => l,
        Err(v) => return v,
    };
    if l.xid.is_empty() {
        return none(l, "Xid error");
    }
    let mut status = Status::Info;
    let mut hardware = Vec::new();
    let parts: Vec<String> = l
        .xid
        .iter()
        .map(|(code, dev, seen)| {
            let (class, what) = xid_class(*code);
            status = status.max(match class {
                XidClass::Hardware => Status::Fail,
                XidClass::Application => Status::Warn,
                XidClass::Unknown => Status::Info,
            });
            if class == XidClass::Hardware {
                hardware.push(dev.clone());
            }
            format!(
                "Xid {code} on {dev} ({what}; {}): {}",
                class_word(class),
                when(seen)
            )
        })
        .collect();
    hardware.dedup();
    let v = Verdict::new(status, parts.join("; "), "no Xid error");
    if hardware.is_empty() {
        v.fix(
            "application-caused: look at the job that ran then (compute-sanitizer, CUDA_LAUNCH_BLOCKING=1); the node is fine",
            "nothing to change on the host",
        )
    } else {
        v.fix(
            format!("drain the node and check GPU(s) {}: nvidia-smi -q -d ECC,ROW_REMAPPER,PERFORMANCE; dcgmi diag -r 3; reseat or replace after repeated hardware Xids", hardware.join(", ")),
            "track Xids per GPU across the fleet (osml doctor --format prometheus): repeated hardware codes on one GPU mean RMA",
        )
    }
}

fn class_word(c: XidClass) -> &'static str {
    match c {
        XidClass::Application => "application",
        XidClass::Hardware => "hardware",
        XidClass::Unknown => "unclassified",
    }
}

pub const AER: Check = check!(
    "pci.aer", "PCIe AER errors in the kernel log", aer,
    why: "Corrected PCIe errors mean a marginal link that retrains and retries (lost bandwidth to a GPU or NIC); uncorrected ones reset the device or take it off the bus, which a job sees as a hang or an NCCL error.",
    source: "drivers/pci/pcie/aer.c; PCI Express Base Specification, Advanced Error Reporting",
    evidence: ["/dev/kmsg"],
);

fn aer(cx: &Ctx<'_>) -> Verdict {
    let l = match log(cx) {
        Ok(l) => l,
        Err(v) => return v,
    };
    if l.aer.is_empty() {
        return none(l, "AER error");
    }
    let uncorrected = l.aer.iter().any(|(sev, _, _)| sev != "corrected");
    let parts: Vec<String> = l
        .aer
        .iter()
        .map(|(sev, dev, seen)| format!("{sev} on {dev}: {}", when(seen)))
        .collect();
    Verdict::new(
        if uncorrected { Status::Fail } else { Status::Warn },
        parts.join("; "),
        "no AER error",
    )
    .fix(
        "lspci -vvv -s DEVICE (LnkSta: speed and width against LnkCap; the AER status registers); reseat the card or cable, check the riser and the slot's power; `osml doctor --only pci.link` once links are checked",
        "replace the part on repeated uncorrected errors; a growing count of corrected ones is the early warning",
    )
}

pub const MCE: Check = check!(
    "kernel.mce", "Machine checks in the kernel log", mce,
    why: "A machine check is the CPU or memory controller reporting a hardware error: corrected ones predict DIMM failures, uncorrected ones crash processes or the host.",
    source: "arch/x86/kernel/cpu/mce/core.c; rasdaemon(8)",
    evidence: ["/dev/kmsg"],
);

fn mce(cx: &Ctx<'_>) -> Verdict {
    warn_on_any(
        cx,
        |l| &l.mce,
        "machine check",
        "ras-mc-ctl --errors (rasdaemon) or mcelog to see which DIMM or core; drain the node if they repeat",
        "replace the DIMM or CPU named by repeated errors",
    )
}

/// The verdict of a class that warns on any record: when, and its examples.
fn warn_on_any(
    cx: &Ctx<'_>,
    class: fn(&KernelLog) -> &Seen,
    what: &str,
    now: &str,
    persist: &str,
) -> Verdict {
    let l = match log(cx) {
        Ok(l) => l,
        Err(v) => return v,
    };
    let seen = class(l);
    if seen.count == 0 {
        return none(l, what);
    }
    Verdict::new(
        Status::Warn,
        format!("{}: {}", when(seen), seen.examples.join(" | ")),
        format!("no {what}"),
    )
    .fix(now, persist)
}

pub const HUNG_TASK: Check = check!(
    "kernel.hung_task", "Hung tasks in the kernel log", hung_task,
    why: "A task blocked in the kernel for minutes (usually on I/O: a stalled NFS or Lustre mount, a dying disk) is a training step, checkpoint or DataLoader worker that never returns.",
    source: "kernel/hung_task.c (kernel.hung_task_timeout_secs)",
    evidence: ["/dev/kmsg"],
);

fn hung_task(cx: &Ctx<'_>) -> Verdict {
    warn_on_any(
        cx,
        |l| &l.hung_task,
        "hung task",
        "cat /proc/PID/stack of the task (as root) to see what it waits on; check the filesystem or device it reads (mount, dmesg around the time)",
        "fix or replace the storage the tasks wait on; give checkpoints and datasets a local disk",
    )
}
