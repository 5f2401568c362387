//! From samples to a report: one summary per process, totals, and findings with the figures
//! that triggered them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sample::{Key, ProcSample};
use crate::syscalls::{SyscallCounts, SyscallStat};

/// Every sample of one process, with what does not change.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub pid: i32,
    pub ppid: i32,
    pub cmd: String,
    pub exe: Option<String>,
    /// Whether it started after tracing began (its counters then count from zero).
    pub born_traced: bool,
    pub samples: Vec<ProcSample>,
}

/// One process's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessReport {
    pub pid: i32,
    pub ppid: i32,
    pub cmd: String,
    pub first_seen_s: f64,
    pub last_seen_s: f64,
    pub samples: usize,
    pub cpu_seconds: f64,
    pub peak_cpu_percent: f64,
    pub peak_rss_bytes: u64,
    pub peak_pss_bytes: Option<u64>,
    /// PSS at the last sample minus PSS at the first.
    pub pss_growth_bytes: i64,
    pub uss_growth_bytes: i64,
    pub peak_swap_bytes: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub migrations: u64,
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
    /// Bytes returned by read-like system calls (`rchar`), page cache and sockets included.
    pub read_chars: Option<u64>,
    pub peak_threads: u64,
    pub cpus_allowed: Option<String>,
    pub syscalls: Option<u64>,
}

/// Tree-wide figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub processes: usize,
    pub cpu_seconds: f64,
    /// Highest sum of RSS and of PSS over the tree at one sample.
    pub peak_rss_bytes: u64,
    pub peak_pss_bytes: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub involuntary_switches: u64,
    pub migrations: u64,
    /// Most threads runnable at once across the tree.
    pub peak_runnable_threads: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub message: String,
    pub pids: Vec<i32>,
}

/// A point of the timeline, for plots: per process at each sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub t: f64,
    pub rss_bytes: u64,
    pub pss_bytes: Option<u64>,
    pub cpu_percent: f64,
}

/// `osml trace --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub command: String,
    pub interval_ms: u64,
    pub duration_s: f64,
    pub exit_status: Option<i32>,
    pub cpus: usize,
    pub processes: Vec<ProcessReport>,
    pub totals: Totals,
    pub findings: Vec<Finding>,
    /// Syscall name → calls (with `--syscalls`).
    pub syscalls: Option<BTreeMap<String, u64>>,
    /// Syscall name → calls and seconds (with `--syscalls`; seconds are 0 when counted in
    /// the kernel, which does not time them).
    pub syscall_times: Option<BTreeMap<String, SyscallStat>>,
    /// How system calls were counted (with `--syscalls`).
    pub syscall_counting: Option<crate::Counting>,
    /// pid → points over time.
    pub timeline: BTreeMap<i32, Vec<Point>>,
}

fn delta(first: u64, last: u64, born: bool) -> u64 {
    if born {
        last
    } else {
        last.saturating_sub(first)
    }
}

fn signed(a: Option<u64>, b: Option<u64>) -> i64 {
    match (a, b) {
        (Some(a), Some(b)) => {
            i64::try_from(b).unwrap_or(i64::MAX) - i64::try_from(a).unwrap_or(i64::MAX)
        }
        _ => 0,
    }
}

/// Migrations from CPU changes between samples, where the kernel does not count them.
fn cpu_changes(samples: &[ProcSample]) -> u64 {
    samples
        .windows(2)
        .map(|w| {
            w[1].thread_cpus
                .iter()
                .filter(|(tid, cpu)| w[0].thread_cpus.get(tid).is_some_and(|c| c != *cpu))
                .count() as u64
        })
        .sum()
}

fn cpu_percent(w: &[ProcSample]) -> f64 {
    let dt = w[1].t - w[0].t;
    if dt <= 0.0 {
        0.0
    } else {
        100.0 * (w[1].cpu_seconds - w[0].cpu_seconds).max(0.0) / dt
    }
}

impl Series {
    pub fn summary(&self, syscalls: Option<&SyscallCounts>) -> Option<ProcessReport> {
        let first = self.samples.first()?;
        let last = self.samples.last()?;
        let born = self.born_traced;
        let migrations = match (first.migrations, last.migrations) {
            (Some(a), Some(b)) => delta(a, b, born),
            _ => cpu_changes(&self.samples),
        };
        let io = |f: fn(&ProcSample) -> Option<u64>| match (f(first), f(last)) {
            (Some(a), Some(b)) => Some(delta(a, b, born)),
            _ => None,
        };
        Some(ProcessReport {
            pid: self.pid,
            ppid: self.ppid,
            cmd: self.cmd.clone(),
            first_seen_s: first.t,
            last_seen_s: last.t,
            samples: self.samples.len(),
            cpu_seconds: if born {
                last.cpu_seconds
            } else {
                last.cpu_seconds - first.cpu_seconds
            },
            peak_cpu_percent: self.samples.windows(2).map(cpu_percent).fold(0.0, f64::max),
            peak_rss_bytes: self.samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
            peak_pss_bytes: self.samples.iter().filter_map(|s| s.pss_bytes).max(),
            // From the first to the last sample that could read smaps_rollup.
            pss_growth_bytes: signed(
                self.samples.iter().find_map(|s| s.pss_bytes),
                self.samples.iter().rev().find_map(|s| s.pss_bytes),
            ),
            uss_growth_bytes: signed(
                self.samples.iter().find_map(|s| s.uss_bytes),
                self.samples.iter().rev().find_map(|s| s.uss_bytes),
            ),
            peak_swap_bytes: self.samples.iter().map(|s| s.swap_bytes).max().unwrap_or(0),
            minor_faults: delta(first.minor_faults, last.minor_faults, born),
            major_faults: delta(first.major_faults, last.major_faults, born),
            voluntary_switches: delta(first.voluntary_switches, last.voluntary_switches, born),
            involuntary_switches: delta(
                first.involuntary_switches,
                last.involuntary_switches,
                born,
            ),
            migrations,
            read_bytes: io(|s| s.read_bytes),
            write_bytes: io(|s| s.write_bytes),
            read_chars: io(|s| s.read_chars),
            peak_threads: self.samples.iter().map(|s| s.threads).max().unwrap_or(0),
            cpus_allowed: last.cpus_allowed.clone(),
            syscalls: syscalls.map(|c| c.by_pid.get(&self.pid).copied().unwrap_or(0)),
        })
    }

    pub fn timeline(&self) -> Vec<Point> {
        let mut out = Vec::new();
        for (i, s) in self.samples.iter().enumerate() {
            out.push(Point {
                t: s.t,
                rss_bytes: s.rss_bytes,
                pss_bytes: s.pss_bytes,
                cpu_percent: if i == 0 {
                    0.0
                } else {
                    cpu_percent(&self.samples[i - 1..=i])
                },
            });
        }
        out
    }
}

pub fn human_bytes(b: f64) -> String {
    let a = b.abs();
    if a >= f64::from(1u32 << 30) {
        format!("{:.1} GiB", b / f64::from(1u32 << 30))
    } else if a >= f64::from(1u32 << 20) {
        format!("{:.0} MiB", b / f64::from(1u32 << 20))
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

/// Thresholds below which nothing is said.
const COW_MIN_BYTES: i64 = 32 << 20;
const MAJOR_FAULTS_MIN: u64 = 1_000;
const INVOLUNTARY_PER_S: f64 = 100.0;
const MIGRATIONS_PER_S: f64 = 200.0;
const SYSCALLS_PER_S: f64 = 20_000.0;
/// Reads per second, and bytes per read below which reads are small.
const SMALL_READS_PER_S: f64 = 1_000.0;
const SMALL_READ_BYTES: f64 = 64.0 * 1024.0;
/// mmap + munmap per second.
const MMAP_CHURN_PER_S: f64 = 200.0;
/// The read-like system calls whose bytes `rchar` counts.
const READ_CALLS: [&str; 5] = ["read", "pread64", "readv", "preadv", "preadv2"];

/// Findings over the whole trace.
pub fn findings(
    series: &BTreeMap<Key, Series>,
    procs: &[ProcessReport],
    totals: &Totals,
    duration: f64,
    cpus: usize,
    calls: Option<&SyscallCounts>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let by_pid: BTreeMap<i32, &Series> = series.values().map(|s| (s.pid, s)).collect();
    // Copy-on-read: a forked child (same executable as its parent, not exec'd) whose pages
    // shared with the parent became its own.
    for p in procs {
        let (Some(me), Some(parent)) = (by_pid.get(&p.pid), by_pid.get(&p.ppid)) else {
            continue;
        };
        let forked = me.exe.is_some() && me.exe == parent.exe;
        if forked && p.pss_growth_bytes >= COW_MIN_BYTES && p.uss_growth_bytes >= COW_MIN_BYTES {
            let python = me.cmd.contains("python")
                || me.exe.as_deref().is_some_and(|e| e.contains("python"));
            let cause = if python {
                "copy-on-read of Python objects shared from the parent: touching an object writes its reference count, so every page of objects a worker reads becomes its own copy (PyTorch issue 13246); keep datasets in numpy arrays, Arrow or a memory-mapped file instead of Python lists and dicts"
            } else {
                "pages shared with the parent became private (copy-on-write after fork)"
            };
            out.push(Finding {
                id: "mem.copy_on_read",
                message: format!(
                    "worker {} PSS grew {} (private memory +{}): {cause}",
                    p.pid,
                    human_bytes(p.pss_growth_bytes as f64),
                    human_bytes(p.uss_growth_bytes as f64)
                ),
                pids: vec![p.pid],
            });
        }
    }
    if totals.major_faults >= MAJOR_FAULTS_MIN {
        let mut top: Vec<&ProcessReport> = procs.iter().filter(|p| p.major_faults > 0).collect();
        top.sort_by_key(|p| std::cmp::Reverse(p.major_faults));
        out.push(Finding {
            id: "io.major_faults",
            message: format!(
                "major faults: {} ({:.0}/s), most in pid {}: the dataset is read from disk, not the page cache; warm it first, give the page cache more memory, or read it with large sequential reads",
                totals.major_faults,
                totals.major_faults as f64 / duration.max(1e-9),
                top.first().map_or(0, |p| p.pid)
            ),
            pids: top.iter().take(5).map(|p| p.pid).collect(),
        });
    }
    let invol_rate = totals.involuntary_switches as f64 / duration.max(1e-9);
    if invol_rate >= INVOLUNTARY_PER_S && totals.peak_runnable_threads > cpus as u64 {
        out.push(Finding {
            id: "cpu.involuntary_switches",
            message: format!(
                "involuntary switches: {invol_rate:.0}/s, and up to {} threads runnable at once on {cpus} CPU(s): more runnable threads than CPUs; cap OMP_NUM_THREADS / torch.set_num_threads and the number of loader workers",
                totals.peak_runnable_threads
            ),
            pids: procs.iter().filter(|p| p.involuntary_switches > 0).map(|p| p.pid).collect(),
        });
    }
    let mig_rate = totals.migrations as f64 / duration.max(1e-9);
    if mig_rate >= MIGRATIONS_PER_S {
        out.push(Finding {
            id: "cpu.migrations",
            message: format!(
                "threads moved between CPUs {mig_rate:.0} times/s: each move loses warm caches (and, across NUMA nodes, local memory); pin ranks and loader threads (osml affinity, osml run --bind)"
            ),
            pids: procs.iter().filter(|p| p.migrations > 0).map(|p| p.pid).collect(),
        });
    }
    for p in procs {
        let Some(n) = p.syscalls else { continue };
        let life = (p.last_seen_s - p.first_seen_s).max(duration.min(1.0));
        let rate = n as f64 / life.max(1e-9);
        if rate >= SYSCALLS_PER_S {
            out.push(Finding {
                id: "syscalls.rate",
                message: format!(
                    "pid {} made {n} system calls ({rate:.0}/s): per-sample reads or locks; batch them (one read per batch, a memory-mapped dataset)",
                    p.pid
                ),
                pids: vec![p.pid],
            });
        }
    }
    if let Some(calls) = calls {
        out.extend(syscall_patterns(calls, procs, duration));
    }
    out
}

/// Findings from the system calls by name: many small reads, mappings made and torn down.
fn syscall_patterns(calls: &SyscallCounts, procs: &[ProcessReport], duration: f64) -> Vec<Finding> {
    let mut out = Vec::new();
    let count = |name: &str| calls.by_name.get(name).map_or(0, |s| s.count);
    let secs = duration.max(1e-9);
    let reads: u64 = READ_CALLS.iter().map(|n| count(n)).sum();
    let chars: Option<u64> = procs.iter().map(|p| p.read_chars).sum();
    let rate = reads as f64 / secs;
    if let Some(chars) = chars {
        let per_call = chars as f64 / reads.max(1) as f64;
        if rate >= SMALL_READS_PER_S && per_call < SMALL_READ_BYTES {
            out.push(Finding {
                id: "syscalls.small_reads",
                message: format!(
                    "{reads} read calls ({rate:.0}/s) returning {} each on average: many small reads, as a Dataset that reads one sample (or one small file) per call makes; read a batch or a shard per call, or pack the data into one memory-mapped file (osml data pack, osml.TokenLoader)",
                    human_bytes(per_call)
                ),
                pids: top_by(procs, |p| p.read_chars.unwrap_or(0)),
            });
        }
    }
    let (maps, unmaps) = (count("mmap"), count("munmap"));
    let churn = (maps + unmaps) as f64 / secs;
    if churn >= MMAP_CHURN_PER_S && unmaps > 0 {
        out.push(Finding {
            id: "syscalls.mmap_churn",
            message: format!(
                "{maps} mmap and {unmaps} munmap calls ({churn:.0}/s): mappings made and torn down over and over, as a new np.memmap per batch does (nanoGPT's get_batch); each munmap shoots down TLB entries on every CPU the process ran on: map the file once and slice it"
            ),
            pids: top_by(procs, |p| p.syscalls.unwrap_or(0)),
        });
    }
    out
}

/// Up to five processes, highest `key` first, leaving out zeros.
fn top_by(procs: &[ProcessReport], key: impl Fn(&ProcessReport) -> u64) -> Vec<i32> {
    let mut v: Vec<&ProcessReport> = procs.iter().filter(|p| key(p) > 0).collect();
    v.sort_by_key(|p| std::cmp::Reverse(key(p)));
    v.iter().take(5).map(|p| p.pid).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, cpu: f64, pss: u64, uss: u64, majflt: u64) -> ProcSample {
        ProcSample {
            pid: 2,
            ppid: 1,
            start: 100,
            t,
            cpu_seconds: cpu,
            rss_bytes: pss,
            pss_bytes: Some(pss),
            uss_bytes: Some(uss),
            swap_bytes: 0,
            minor_faults: 10,
            major_faults: majflt,
            voluntary_switches: 0,
            involuntary_switches: 0,
            migrations: Some(0),
            thread_cpus: BTreeMap::new(),
            read_bytes: None,
            write_bytes: None,
            read_chars: None,
            threads: 1,
            runnable: 1,
            cpus_allowed: None,
        }
    }

    fn series(pid: i32, parent: i32, exe: &str, samples: Vec<ProcSample>) -> Series {
        Series {
            pid,
            ppid: parent,
            cmd: "python3 train.py".into(),
            exe: Some(exe.into()),
            born_traced: true,
            samples,
        }
    }

    #[test]
    fn copy_on_read_needs_a_forked_child_whose_private_memory_grew() {
        let mb = 1u64 << 20;
        let parent = series(
            1,
            0,
            "/usr/bin/python3",
            vec![sample(0.0, 0.0, 500 * mb, 400 * mb, 0)],
        );
        let worker = series(
            2,
            1,
            "/usr/bin/python3",
            vec![
                sample(0.1, 0.0, 250 * mb, 5 * mb, 0),
                sample(1.1, 0.5, 480 * mb, 300 * mb, 2000),
            ],
        );
        let exec_d = series(
            3,
            1,
            "/usr/bin/cat",
            vec![
                sample(0.1, 0.0, mb, mb, 0),
                sample(1.1, 0.0, 300 * mb, 300 * mb, 0),
            ],
        );
        let map: BTreeMap<Key, Series> =
            [((1, 1), parent), ((2, 2), worker), ((3, 3), exec_d)].into();
        let procs: Vec<ProcessReport> = map.values().filter_map(|s| s.summary(None)).collect();
        let w = procs.iter().find(|p| p.pid == 2).unwrap();
        assert_eq!(w.pss_growth_bytes, (230 * mb).cast_signed());
        assert_eq!(w.major_faults, 2000);
        assert!((w.peak_cpu_percent - 50.0).abs() < 1e-6);
        let totals = Totals {
            major_faults: 2000,
            ..Totals::default()
        };
        let f = findings(&map, &procs, &totals, 1.0, 2, None);
        let cow: Vec<&Finding> = f.iter().filter(|x| x.id == "mem.copy_on_read").collect();
        assert_eq!(cow.len(), 1, "only the forked python worker: {f:?}");
        assert!(
            cow[0].message.contains("worker 2 PSS grew 230 MiB"),
            "{}",
            cow[0].message
        );
        assert!(cow[0].message.contains("13246"));
        assert!(f.iter().any(|x| x.id == "io.major_faults"));
    }

    #[test]
    fn counters_of_processes_seen_before_tracing_are_deltas() {
        let mut s = series(
            2,
            1,
            "/bin/x",
            vec![sample(0.0, 1.0, 1, 1, 100), sample(1.0, 3.0, 1, 1, 150)],
        );
        s.born_traced = false;
        let r = s.summary(None).unwrap();
        assert_eq!(r.major_faults, 50);
        assert!((r.cpu_seconds - 2.0).abs() < 1e-9);
    }

    fn with_calls(pairs: &[(&str, u64)]) -> SyscallCounts {
        SyscallCounts {
            by_name: pairs
                .iter()
                .map(|&(n, count)| {
                    (
                        n.to_owned(),
                        SyscallStat {
                            count,
                            seconds: 0.0,
                        },
                    )
                })
                .collect(),
            by_pid: BTreeMap::new(),
        }
    }

    fn reading(chars: u64) -> Vec<ProcessReport> {
        let mut s = series(
            7,
            1,
            "/usr/bin/python3",
            vec![sample(0.0, 0.0, 1, 1, 0), sample(2.0, 1.0, 1, 1, 0)],
        );
        s.samples[0].read_chars = Some(0);
        s.samples[1].read_chars = Some(chars);
        vec![s.summary(None).unwrap()]
    }

    #[test]
    fn many_small_reads_and_mapping_churn_are_named_with_their_figures() {
        let procs = reading(20_000 * 4096);
        // 20,000 reads of 4 KiB in 2 s: 10,000/s, well under 64 KiB each.
        let calls = with_calls(&[
            ("read", 15_000),
            ("pread64", 5_000),
            ("mmap", 600),
            ("munmap", 600),
        ]);
        let f = syscall_patterns(&calls, &procs, 2.0);
        let small = f
            .iter()
            .find(|x| x.id == "syscalls.small_reads")
            .expect("small reads");
        assert!(
            small
                .message
                .contains("20000 read calls (10000/s) returning 4 KiB"),
            "{}",
            small.message
        );
        assert_eq!(small.pids, vec![7]);
        let churn = f
            .iter()
            .find(|x| x.id == "syscalls.mmap_churn")
            .expect("churn");
        assert!(
            churn
                .message
                .contains("600 mmap and 600 munmap calls (600/s)"),
            "{}",
            churn.message
        );
        // The same calls reading 1 MiB each are large reads; few mappings are no churn.
        let procs = reading(20_000 << 20);
        let calls = with_calls(&[("read", 20_000), ("mmap", 100), ("munmap", 100)]);
        assert!(syscall_patterns(&calls, &procs, 2.0).is_empty());
        // Slow small reads (100/s) are not a pattern either.
        let procs = reading(200 * 4096);
        assert!(syscall_patterns(&with_calls(&[("read", 200)]), &procs, 2.0).is_empty());
    }
}
