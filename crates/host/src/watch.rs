//! [`watch`]: what changes on a host over a window: PCIe links that retrain (a flapping
//! link), records the kernel logs, and how long tasks stalled (PSI).
//!
//! A snapshot sees one instant; a link that drops from x16 to x8 and back under load, or an
//! Xid logged mid-job, shows only over time. `osml doctor --watch DURATION` gathers the
//! snapshot, then re-reads at each interval the link attributes of the devices `pci.link`
//! judges, the kernel log (records numbered above the last one already read) and the PSI
//! totals, and judges the window with the `watch.*` checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::parse::kmsg::{self, KernelLog};
use crate::parse::{pressure, sysfs};
use crate::{Fact, HostRoot, HostSnapshot, PciKind, Probes};

/// One link's state at one read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    /// `current_link_speed`, e.g. `32.0 GT/s PCIe`; `None` when unreadable at that read.
    pub speed: Option<String>,
    pub width: Option<u32>,
}

/// A change of a link between two reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkChange {
    pub address: String,
    pub kind: PciKind,
    /// Milliseconds since the watch began.
    pub at_ms: u64,
    pub from: LinkState,
    pub to: LinkState,
}

/// Stall over the window as a percentage of it, from the PSI totals at its two ends; `None`
/// where a total is unreadable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowPressure {
    pub cpu_some_pct: Option<f64>,
    pub memory_some_pct: Option<f64>,
    pub memory_full_pct: Option<f64>,
    pub io_some_pct: Option<f64>,
    pub io_full_pct: Option<f64>,
}

/// What a watch saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    /// The window asked for and the one observed (shorter when interrupted).
    pub requested_ms: u64,
    pub observed_ms: u64,
    pub interval_ms: u64,
    /// Reads made after the snapshot.
    pub samples: u64,
    /// Ended early by the stop flag (`osml doctor` sets it on SIGINT).
    pub interrupted: bool,
    /// The links watched (GPUs, NICs, NVMe drives and the bridges above them).
    pub links_watched: usize,
    pub link_changes: Vec<LinkChange>,
    /// Records logged during the window; unknown when the log cannot be read.
    pub log: Fact<KernelLog>,
    pub pressure: WindowPressure,
}

/// How long, how often, and what stops it early.
pub struct WatchSpec<'a> {
    pub duration: Duration,
    pub interval: Duration,
    /// Set by a signal handler: the watch ends at the next tick with what it saw.
    pub stop: &'a AtomicBool,
}

fn link_state(root: &HostRoot, address: &str) -> LinkState {
    let dir = format!("/sys/bus/pci/devices/{address}");
    LinkState {
        speed: root.read_trimmed(&format!("{dir}/current_link_speed")).ok(),
        width: root
            .read(&format!("{dir}/current_link_width"))
            .ok()
            .and_then(|t| sysfs::parse_u64(&t).ok())
            .and_then(|w| u32::try_from(w).ok()),
    }
}

/// PSI totals: (cpu some, memory some, memory full, io some, io full), microseconds.
fn totals(root: &HostRoot) -> [Option<u64>; 5] {
    let read = |r: &str| {
        root.read(&format!("/proc/pressure/{r}"))
            .ok()
            .and_then(|t| pressure::parse(&t).ok())
    };
    let (cpu, mem, io) = (read("cpu"), read("memory"), read("io"));
    [
        cpu.and_then(|p| p.some.total_us),
        mem.and_then(|p| p.some.total_us),
        mem.and_then(|p| p.full.and_then(|f| f.total_us)),
        io.and_then(|p| p.some.total_us),
        io.and_then(|p| p.full.and_then(|f| f.total_us)),
    ]
}

/// Watches the host behind `root` for `spec.duration`, after `snap` was gathered from it;
/// the kernel log comes from `probes` (live `/dev/kmsg`, re-read whole at each tick and
/// filtered by sequence number, or a root's `dev/kmsg`).
pub fn watch(
    root: &HostRoot,
    snap: &HostSnapshot,
    spec: &WatchSpec<'_>,
    probes: &dyn Probes,
) -> Watch {
    let start = Instant::now();
    let interval = spec.interval.max(Duration::from_millis(10));
    let mut watched = watched_links(snap);
    let mut after = snap.kernel.log.known().and_then(|l| l.last_seq);
    let mut log: Fact<KernelLog> = Fact::Known(KernelLog::default());
    let mut log_failed = snap.kernel.log.known().is_none();
    // Lines that are not records carry no sequence number: each re-read counts them all, so
    // only an increase is new.
    let mut malformed_before = snap.kernel.log.known().map_or(0, |l| l.malformed_lines);
    if let Some(reason) = snap.kernel.log.reason() {
        log = Fact::unknown(
            snap.kernel.log.unknown_kind().unwrap_or_default(),
            reason.to_owned(),
        );
    }
    let first = totals(root);
    let mut changes = Vec::new();
    let mut samples = 0;
    let mut interrupted = false;
    loop {
        // Sleep to the next tick in short steps, so a signal ends the watch within 50 ms.
        let next = start + interval * u32::try_from(samples + 1).unwrap_or(u32::MAX);
        let end = start + spec.duration;
        let wake = next.min(end);
        while Instant::now() < wake {
            if spec.stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(
                wake.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
        if spec.stop.load(Ordering::Relaxed) {
            interrupted = true;
        }
        samples += 1;
        let at_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        for (address, kind, last) in &mut watched {
            let now = link_state(root, address);
            if now != *last {
                changes.push(LinkChange {
                    address: address.clone(),
                    kind: *kind,
                    at_ms,
                    from: last.clone(),
                    to: now.clone(),
                });
                *last = now;
            }
        }
        if !log_failed {
            match probes.kernel_log() {
                Ok(text) => {
                    let mut new = kmsg::summarise_after(&text, after);
                    after = new.last_seq.or(after);
                    let malformed = new.malformed_lines;
                    new.malformed_lines = malformed.saturating_sub(malformed_before);
                    malformed_before = malformed;
                    if let Fact::Known(acc) = &mut log {
                        merge(acc, new);
                    }
                }
                Err(e) => {
                    log = e.into();
                    log_failed = true;
                }
            }
        }
        if interrupted || Instant::now() >= end {
            break;
        }
    }
    let last = totals(root);
    let observed = start.elapsed();
    let pct = |i: usize| match (first[i], last[i]) {
        (Some(a), Some(b)) if b >= a && !observed.is_zero() => {
            Some((b - a) as f64 / 1e4 / observed.as_secs_f64())
        }
        _ => None,
    };
    Watch {
        requested_ms: u64::try_from(spec.duration.as_millis()).unwrap_or(u64::MAX),
        observed_ms: u64::try_from(observed.as_millis()).unwrap_or(u64::MAX),
        interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        samples,
        interrupted,
        links_watched: watched.len(),
        link_changes: changes,
        log,
        pressure: WindowPressure {
            cpu_some_pct: pct(0),
            memory_some_pct: pct(1),
            memory_full_pct: pct(2),
            io_some_pct: pct(3),
            io_full_pct: pct(4),
        },
    }
}

/// The links `pci.link` judges (GPUs, NICs, NVMe drives and the bridges above them) that
/// have link attributes, with their state in the snapshot.
fn watched_links(snap: &HostSnapshot) -> Vec<(String, PciKind, LinkState)> {
    snap.data_path_devices()
        .into_iter()
        .map(|d| {
            let state = LinkState {
                speed: d.link_speed.known().cloned(),
                width: d.link_width.known().copied(),
            };
            (d.address.clone(), d.kind, state)
        })
        .filter(|(_, _, s)| s.speed.is_some() || s.width.is_some())
        .collect()
}

/// Adds the records of `new` (read after `acc`'s) to `acc`.
fn merge(acc: &mut KernelLog, new: KernelLog) {
    if new.records == 0 {
        acc.malformed_lines += new.malformed_lines;
        acc.last_seq = new.last_seq.or(acc.last_seq);
        return;
    }
    if acc.records == 0 {
        acc.first_s = new.first_s;
    }
    acc.records += new.records;
    acc.malformed_lines += new.malformed_lines;
    acc.last_s = new.last_s;
    acc.last_seq = new.last_seq.or(acc.last_seq);
    merge_seen(&mut acc.oom, new.oom);
    let room = kmsg::MAX_OOM_KILLS.saturating_sub(acc.oom_kills.len());
    acc.oom_kills.extend(new.oom_kills.into_iter().take(room));
    for (code, dev, seen) in new.xid {
        if let Some(i) = acc.xid.iter().position(|(c, d, _)| *c == code && *d == dev) {
            merge_seen(&mut acc.xid[i].2, seen);
        } else if acc.xid.len() < kmsg::MAX_GROUPS {
            acc.xid.push((code, dev, seen));
        }
    }
    for (sev, dev, seen) in new.aer {
        if let Some(i) = acc.aer.iter().position(|(v, d, _)| *v == sev && *d == dev) {
            merge_seen(&mut acc.aer[i].2, seen);
        } else if acc.aer.len() < kmsg::MAX_GROUPS {
            acc.aer.push((sev, dev, seen));
        }
    }
    merge_seen(&mut acc.mce, new.mce);
    merge_seen(&mut acc.hung_task, new.hung_task);
}

fn merge_seen(acc: &mut kmsg::Seen, new: kmsg::Seen) {
    if new.count == 0 {
        return;
    }
    if acc.count == 0 {
        acc.first_s = new.first_s;
    }
    acc.count += new.count;
    acc.last_s = new.last_s;
    let room = kmsg::MAX_EXAMPLES.saturating_sub(acc.examples.len());
    acc.examples.extend(new.examples.into_iter().take(room));
}
