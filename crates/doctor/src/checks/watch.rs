//! What changed over an `osml doctor --watch DURATION` window: link flaps, new kernel log
//! records, stall time. These run only with `--watch` (or when named with `--only`).

use osml_host::parse::kmsg::{xid_class, XidClass};
use osml_host::watch::{LinkState, Watch};
use osml_host::{Fact, PciKind};

use super::{check, Check, Ctx, Verdict};
use crate::Status;

/// The watch, or the verdict saying it was not run.
// The error is the finding itself, built once per check.
#[allow(clippy::result_large_err)]
fn watched<'a>(cx: &'a Ctx<'_>) -> Result<&'a Watch, Verdict> {
    cx.host.watch.as_ref().ok_or_else(|| {
        Verdict::skip("judged over a window: run with --watch DURATION (e.g. --watch 60s)")
    })
}

fn window(w: &Watch) -> String {
    format!(
        "{:.1} s{}",
        w.observed_ms as f64 / 1000.0,
        if w.interrupted { ", interrupted" } else { "" }
    )
}

pub const LINK: Check = check!(
    "watch.pci_link", "PCIe link changes over the window", link,
    why: "A link that retrains while the host works (x16 to x8, 32 to 8 GT/s and back) is a marginal riser, cable or slot: transfers slow down in bursts and AER errors often follow; a snapshot at rest does not see it.",
    source: "sysfs current_link_speed/current_link_width re-read at each interval; osml judgment: a width change fails, a speed change warns (GPUs lower their link speed at idle)",
    evidence: ["/sys/bus/pci/devices/*/current_link_speed", "/sys/bus/pci/devices/*/current_link_width"],
);

fn state(s: &LinkState) -> String {
    format!(
        "x{} {}",
        s.width.map_or_else(|| "?".to_owned(), |w| w.to_string()),
        s.speed.as_deref().unwrap_or("?")
    )
}

fn link(cx: &Ctx<'_>) -> Verdict {
    let w = match watched(cx) {
        Ok(w) => w,
        Err(v) => return v,
    };
    if w.links_watched == 0 {
        return Verdict::skip(
            "no PCIe link to watch: no GPU, NIC or NVMe drive with link attributes",
        );
    }
    let expected = "every link keeps its speed and width";
    if w.link_changes.is_empty() {
        return Verdict::new(
            Status::Pass,
            format!(
                "{} link(s) unchanged over {} ({} reads)",
                w.links_watched,
                window(w),
                w.samples
            ),
            expected,
        );
    }
    let narrowed = w.link_changes.iter().any(|c| c.from.width != c.to.width);
    let gpus_only = w.link_changes.iter().all(|c| c.kind == PciKind::Gpu);
    let mut devices: Vec<&str> = w.link_changes.iter().map(|c| c.address.as_str()).collect();
    devices.sort_unstable();
    devices.dedup();
    let shown: Vec<String> = w
        .link_changes
        .iter()
        .take(6)
        .map(|c| {
            format!(
                "{} {} → {} at {:.1} s",
                c.address,
                state(&c.from),
                state(&c.to),
                c.at_ms as f64 / 1000.0
            )
        })
        .collect();
    let observed = format!(
        "{} change(s) on {} link(s) over {}: {}{}",
        w.link_changes.len(),
        devices.len(),
        window(w),
        shown.join("; "),
        if w.link_changes.len() > shown.len() {
            "; …"
        } else {
            ""
        }
    );
    let mut v = Verdict::new(
        if narrowed { Status::Fail } else { Status::Warn },
        observed,
        expected,
    );
    if !narrowed && gpus_only {
        v = v.why("Only the speed of GPU links changed: a GPU lowers its link speed when idle and raises it under load, so this is normal across idle periods; a link that drops while a job runs is not.");
    }
    v.fix(
        format!(
            "watch the link under load: `lspci -vv -s {} | grep -E 'LnkSta|LnkCap'` while a job runs, and look for AER records (osml doctor --only pci.aer)",
            devices[0]
        ),
        "reseat the card and check its riser or cable; drain the node if the width keeps dropping",
    )
}

pub const KERNEL_LOG: Check = check!(
    "watch.kernel_log", "Kernel log records over the window", kernel_log,
    why: "A record logged while the host works (an Xid, an AER error, an OOM kill, a hung task) ties a job's failure to the host at the moment it happened, where the log since boot cannot say when the host was last healthy.",
    source: "/dev/kmsg records numbered above the last one the snapshot read; the classes and the Xid catalog of the kernel.* and gpu.xid checks",
    evidence: ["/dev/kmsg"],
);

fn kernel_log(cx: &Ctx<'_>) -> Verdict {
    let w = match watched(cx) {
        Ok(w) => w,
        Err(v) => return v,
    };
    let l = match &w.log {
        Fact::Known(l) => l,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let expected =
        "no new record of a class that costs jobs (OOM kill, Xid, AER, machine check, hung task)";
    if l.records == 0 {
        return Verdict::new(
            Status::Pass,
            format!("no new record over {}", window(w)),
            expected,
        );
    }
    let mut status = Status::Info;
    let mut parts = Vec::new();
    let mut raise = |s: Status| {
        if s > status {
            status = s;
        }
    };
    if l.oom.count > 0 {
        raise(Status::Warn);
        parts.push(format!("{} OOM kill(s)", l.oom.count));
    }
    for (code, device, seen) in &l.xid {
        let (class, _) = xid_class(*code);
        raise(match class {
            XidClass::Hardware => Status::Fail,
            XidClass::Application => Status::Warn,
            XidClass::Unknown => Status::Info,
        });
        parts.push(format!("Xid {code} on {device} ×{}", seen.count));
    }
    for (severity, device, seen) in &l.aer {
        raise(if severity == "corrected" {
            Status::Warn
        } else {
            Status::Fail
        });
        parts.push(format!("AER {severity} on {device} ×{}", seen.count));
    }
    if l.mce.count > 0 {
        raise(Status::Warn);
        parts.push(format!("{} machine check record(s)", l.mce.count));
    }
    if l.hung_task.count > 0 {
        raise(Status::Warn);
        parts.push(format!("{} hung task(s)", l.hung_task.count));
    }
    let observed = if parts.is_empty() {
        format!(
            "{} new record(s) over {}, none of a judged class",
            l.records,
            window(w)
        )
    } else {
        format!(
            "{} new record(s) over {}: {}",
            l.records,
            window(w),
            parts.join(", ")
        )
    };
    Verdict::new(status, observed, expected).fix(
        "read them: `dmesg --time-format iso | tail -n 50`; the kernel.oom_kill, gpu.xid and pci.aer checks say what each class means and what to do",
        "a hardware class (Xid 48/63/64/74/79/…, uncorrected AER, machine checks) that recurs: drain the node and open a hardware ticket",
    )
}

pub const PRESSURE: Check = check!(
    "watch.pressure", "Stall time over the window (PSI)", pressure,
    why: "The PSI averages of a snapshot blur the last 10 to 300 seconds; the totals read at the two ends of the window say exactly how much of it tasks spent waiting for memory, I/O or a CPU while the job ran.",
    source: "psi.rst (`total=` in microseconds); osml judgment: the profile's `full` threshold, as pressure.memory and pressure.io",
    evidence: ["/proc/pressure/cpu", "/proc/pressure/memory", "/proc/pressure/io"],
);

fn pressure(cx: &Ctx<'_>) -> Verdict {
    let w = match watched(cx) {
        Ok(w) => w,
        Err(v) => return v,
    };
    let p = &w.pressure;
    let pct = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}%"));
    let observed = format!(
        "over {}: memory some {} full {}, I/O some {} full {}, CPU some {}",
        window(w),
        pct(p.memory_some_pct),
        pct(p.memory_full_pct),
        pct(p.io_some_pct),
        pct(p.io_full_pct),
        pct(p.cpu_some_pct)
    );
    if p.memory_some_pct.is_none() && p.io_some_pct.is_none() && p.cpu_some_pct.is_none() {
        return Verdict::skip(format!(
            "no pressure stall totals to compare ({observed}; PSI needs 4.20+ and not psi=0)"
        ));
    }
    let warn = cx.profile.pressure_full_warn;
    let expected = format!("memory and I/O full < {warn}% of the window");
    let memory = p.memory_full_pct.unwrap_or(0.0) >= warn;
    let io = p.io_full_pct.unwrap_or(0.0) >= warn;
    if memory || io {
        return Verdict::new(Status::Warn, observed, expected).fix(
            if memory {
                "find what fills memory: osml doctor's mem.* checks, `ps aux --sort=-rss | head`, the cgroup limit"
            } else {
                "find who reads: `iostat -x 1`; check io.readahead and the dataset's page-cache residency (osml data)"
            },
            "none: pressure is a symptom; fix its cause",
        );
    }
    Verdict::new(Status::Pass, observed, expected)
}
