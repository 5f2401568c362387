//! Counting a process tree's system calls in the kernel: on each task counted from the start
//! (the command, or every thread of a running tree), one perf counter per
//! `syscalls:sys_enter_<name>` tracepoint (and a `raw_syscalls:sys_enter` counter for the
//! total where the descriptor limit leaves some names out), all with `inherit`, so that every
//! thread and process started afterwards is counted too. The traced tasks never stop: the
//! kernel adds one to two counters at each entry (its name's and the thread's own, below),
//! ~40 ns each here, and nothing runs in user space per call (ptrace stops twice per call).
//!
//! Per-process attribution: every thread gets its own `raw_syscalls` counter without
//! `inherit`: the tasks counted from the start when they are, the others when the sampler
//! first sees them (at most one interval after they start), and each one's count can still be
//! read after it exits. Calls a thread made before its counter opened are in the totals (by
//! name and overall) but no process's figure: the coverage reports them as `unattributed`.
//! (The kernel could report each inherited task's own count at its exit through
//! `inherit_stat`, but 6.18 writes no such record; see `osml_sys::TracepointCounter`.) Time
//! spent in system calls is not measured in this mode.

use std::collections::BTreeMap;
use std::io;

use osml_host::HostRoot;
use osml_sys::{SysError, TracepointCounter};

use crate::syscalls::{SyscallCounts, SyscallStat};

/// Where tracefs is mounted (or, on older systems, under debugfs).
pub(crate) const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The system calls counted by name with [`NameSet::Common`], or when the descriptor limit
/// cannot hold one counter per system call for every task: those a data loader's and a
/// training step's behaviour shows in.
pub const ESSENTIAL: [&str; 32] = [
    "read",
    "pread64",
    "readv",
    "preadv",
    "preadv2",
    "write",
    "pwrite64",
    "openat",
    "close",
    "mmap",
    "munmap",
    "mprotect",
    "madvise",
    "brk",
    "futex",
    "ioctl",
    "lseek",
    "newfstatat",
    "fstat",
    "statx",
    "getdents64",
    "epoll_wait",
    "epoll_pwait",
    "poll",
    "ppoll",
    "select",
    "sched_yield",
    "clock_nanosleep",
    "nanosleep",
    "io_uring_enter",
    "recvfrom",
    "sendto",
];

/// Which system calls are counted by name. Every counter on a task is scheduled in and out
/// with it at each context switch, so the per-name counters cost a job that switches often:
/// measured here (`benchmarks/trace_overhead.py`'s loader job, 2 fork workers), all 360 made
/// its step 1.31× slower, the 32 common ones 1.06×, totals alone 0.99×.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NameSet {
    /// Every system call with a tracepoint (the default).
    All,
    /// [`ESSENTIAL`]: what loaders and training steps show in; the rest as `other`.
    Common,
    /// None: totals by process only (everything is `other`).
    None,
}

/// Descriptors kept for per-thread counters of threads that appear during the trace, when
/// the limit is counted out before counters are opened.
const THREAD_HEADROOM: u64 = 4096;

/// Why the kernel cannot count here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// tracefs is not mounted (and could not be), so no tracepoint ids.
    NoTracefs,
    /// tracefs is there but this user cannot read it (root's alone by default).
    TracefsUnreadable,
    /// `perf_event_open` refused: permissions (`perf_event_paranoid`, `CAP_PERFMON`) or a
    /// kernel without tracepoint counters; the OS error.
    Refused(i32),
    /// Not enough file descriptors for even one counter per task.
    Descriptors { needed: u64, limit: u64 },
    /// BPF counting cannot start here: what the kernel or tracefs said.
    Bpf(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoTracefs => write!(
                f,
                "tracefs is not mounted at /sys/kernel/tracing (mount -t tracefs nodev /sys/kernel/tracing, as root)"
            ),
            Self::TracefsUnreadable => write!(
                f,
                "tracefs (/sys/kernel/tracing) is not readable by this user: it is root's by default, and counting needs root or CAP_PERFMON, or kernel.perf_event_paranoid <= 1 with tracefs readable"
            ),
            Self::Refused(errno) => {
                let e = io::Error::from_raw_os_error(*errno);
                if matches!(*errno, libc::EACCES | libc::EPERM) {
                    write!(f, "perf_event_open refused ({e}): needs root or CAP_PERFMON, or kernel.perf_event_paranoid <= 1")
                } else {
                    write!(f, "perf_event_open failed ({e})")
                }
            }
            Self::Descriptors { needed, limit } => write!(
                f,
                "{needed} perf counters needed, and the descriptor limit (RLIMIT_NOFILE) is {limit}"
            ),
            Self::Bpf(why) => write!(f, "{why}"),
        }
    }
}

/// The tracepoints to count, from tracefs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracepoints {
    /// `raw_syscalls:sys_enter`: every system call.
    pub raw: u64,
    /// `syscalls:sys_enter_<name>` ids, by name.
    pub by_name: Vec<(String, u64)>,
}

/// The system call a tracepoint counts, by the name strace and ptrace mode give it: a few
/// tracepoints carry the kernel's internal name (`sys_enter_newfstat` counts `fstat`).
fn syscall_name(tracepoint: &str) -> &str {
    match tracepoint {
        "newstat" => "stat",
        "newfstat" => "fstat",
        "newlstat" => "lstat",
        "newuname" => "uname",
        "umount" => "umount2",
        "sendfile64" => "sendfile",
        other => other,
    }
}

/// Reads the tracepoint ids from tracefs under `host`.
pub fn tracepoints(host: &HostRoot) -> Result<Tracepoints, Unavailable> {
    for t in TRACEFS {
        let Ok(raw) = host.read_trimmed(&format!("{t}/events/raw_syscalls/sys_enter/id")) else {
            continue;
        };
        let Ok(raw) = raw.parse() else { continue };
        let mut by_name = Vec::new();
        for entry in host
            .list(&format!("{t}/events/syscalls"))
            .unwrap_or_default()
        {
            let Some(name) = entry.strip_prefix("sys_enter_") else {
                continue;
            };
            if let Some(id) = host
                .read_trimmed(&format!("{t}/events/syscalls/{entry}/id"))
                .ok()
                .and_then(|s| s.parse().ok())
            {
                by_name.push((syscall_name(name).to_owned(), id));
            }
        }
        by_name.sort();
        return Ok(Tracepoints { raw, by_name });
    }
    Err(tracefs_unavailable(host))
}

/// Why tracefs files could not be read: tracefs is mounted but not readable by this user, or
/// not mounted.
pub(crate) fn tracefs_unavailable(host: &HostRoot) -> Unavailable {
    let mounted = host.read("/proc/self/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(2) == Some("tracefs"))
    });
    if mounted {
        Unavailable::TracefsUnreadable
    } else {
        Unavailable::NoTracefs
    }
}

/// Mounts tracefs at `/sys/kernel/tracing` when it is missing and this process is root (the
/// kernel publishes tracepoint ids only there). Nothing otherwise.
pub fn mount_tracefs() {
    let at = "/sys/kernel/tracing";
    if !rustix::process::geteuid().is_root() || HostRoot::live().exists(&format!("{at}/events")) {
        return;
    }
    let _ = rustix::mount::mount(
        "nodev",
        at,
        "tracefs",
        rustix::mount::MountFlags::empty(),
        None,
    );
}

fn errno(e: &SysError) -> i32 {
    let SysError::Call { error, .. } = e;
    error.raw_os_error().unwrap_or(libc::EIO)
}

/// Whether this process may open tracepoint counters: one is opened on itself and closed.
pub fn probe(tp: &Tracepoints) -> Result<(), Unavailable> {
    TracepointCounter::open(tp.raw, 0, false)
        .map(drop)
        .map_err(|e| Unavailable::Refused(errno(&e)))
}

/// The inherited counters of one task counted from the start.
struct RootCounters {
    /// (index into the names, counter)
    by_name: Vec<(usize, TracepointCounter)>,
    /// `raw_syscalls:sys_enter`, where not every system call is counted by name (every
    /// system call the kernel implements has a per-name tracepoint, so otherwise the names add
    /// up to it, and each counter costs every call ~40 ns).
    all: Option<TracepointCounter>,
}

/// How the counting went, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Coverage {
    /// Tasks counted from the start (1 for a command; every thread of a running tree).
    pub tasks: usize,
    /// System calls counted by name, of those the kernel has tracepoints for; calls of the
    /// others appear as `other`.
    pub counted_by_name: usize,
    pub tracepoints: usize,
    /// Tasks found while the counters were being opened on a running tree: each is counted
    /// only if the thread that started it already was.
    pub late_tasks: usize,
    /// Threads given a counter of their own for per-process figures.
    pub threads: usize,
    /// Threads seen that could not be given one (no descriptor left).
    pub threads_unwatched: usize,
    /// Calls in the totals that no process's figure holds: made by threads before the sampler
    /// first saw them, or by threads without a counter of their own.
    pub unattributed: u64,
}

/// Counters on a set of tasks.
pub struct KernelCounter {
    names: Vec<String>,
    roots: Vec<RootCounters>,
    /// Thread id → (process id, its own counter).
    threads: BTreeMap<i32, (i32, TracepointCounter)>,
    coverage: Coverage,
    /// Names counted per task (indices into `names`).
    counted: Vec<usize>,
    raw: u64,
    ids: Vec<u64>,
}

/// The descriptor budget: the soft limit, raised to the hard limit when `needed` does not
/// fit, less what is open and a margin for the files the trace itself opens.
fn descriptor_budget(needed: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let open = HostRoot::live()
        .list("/proc/self/fd")
        .map_or(64, |l| l.len() as u64);
    let margin = 256;
    let mut current = lim.current.unwrap_or(u64::MAX);
    if current < needed + open + margin && lim.maximum.is_none_or(|max| max > current) {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            current = lim.maximum.unwrap_or(u64::MAX);
        }
    }
    current.saturating_sub(open + margin)
}

impl KernelCounter {
    /// Opens counters on each of `tasks` (process id, thread id), counting by name the system
    /// calls of `set`. A task that is gone by then is left out. When the descriptor limit
    /// cannot hold a counter per system call for every task, only [`ESSENTIAL`] are counted by
    /// name (or none: totals only), and the coverage says so.
    pub fn open(tp: &Tracepoints, tasks: &[(i32, i32)], set: NameSet) -> Result<Self, Unavailable> {
        let names: Vec<String> = tp.by_name.iter().map(|(n, _)| n.clone()).collect();
        let n = tasks.len().max(1) as u64;
        let all: Vec<usize> = (0..names.len()).collect();
        let essential: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| ESSENTIAL.contains(&names[i].as_str()))
            .collect();
        // Per task: the by-name counters, the total where not every call is counted by name,
        // its own counter; and room for threads that start later.
        let per_task = |by_name: usize| n * (2 + by_name as u64);
        let budget = descriptor_budget(per_task(names.len()) + THREAD_HEADROOM);
        let wanted = match set {
            NameSet::All => all.len(),
            NameSet::Common => essential.len(),
            NameSet::None => 0,
        };
        let counted = if wanted == all.len() && per_task(names.len()) + n <= budget {
            all
        } else if wanted >= essential.len() && per_task(essential.len()) + n <= budget {
            essential
        } else if per_task(0) <= budget {
            Vec::new()
        } else {
            return Err(Unavailable::Descriptors {
                needed: per_task(0),
                limit: budget,
            });
        };
        let mut me = Self {
            names,
            roots: Vec::new(),
            threads: BTreeMap::new(),
            coverage: Coverage {
                counted_by_name: counted.len(),
                tracepoints: tp.by_name.len(),
                ..Coverage::default()
            },
            counted,
            raw: tp.raw,
            ids: tp.by_name.iter().map(|(_, id)| *id).collect(),
        };
        for &(tgid, tid) in tasks {
            me.add_root(tgid, tid)?;
        }
        Ok(me)
    }

    /// Opens the inherited counters and the thread's own on one task; false when it is gone.
    fn add_root(&mut self, process: i32, tid: i32) -> Result<bool, Unavailable> {
        let partial = self.counted.len() < self.ids.len();
        let mut opened: Vec<TracepointCounter> = Vec::with_capacity(self.counted.len() + 2);
        let mut failed = None;
        for (id, inherit) in partial
            .then_some((self.raw, true))
            .into_iter()
            .chain(self.counted.iter().map(|&i| (self.ids[i], true)))
            .chain(std::iter::once((self.raw, false)))
        {
            match TracepointCounter::open(id, tid, inherit) {
                Ok(c) => opened.push(c),
                Err(e) => {
                    failed = Some(errno(&e));
                    break;
                }
            }
        }
        if let Some(errno) = failed {
            // Closed by a helper: closing hundreds here would take seconds.
            osml_sys::close_in_background(opened);
            return if errno == libc::ESRCH {
                Ok(false)
            } else {
                Err(Unavailable::Refused(errno))
            };
        }
        let own = opened
            .pop()
            .expect("the thread's own counter was opened last");
        let mut rest = opened.into_iter();
        let all = if partial { rest.next() } else { None };
        let by_name = self.counted.iter().copied().zip(rest).collect();
        self.threads.insert(tid, (process, own));
        self.roots.push(RootCounters { by_name, all });
        self.coverage.tasks += 1;
        Ok(true)
    }

    /// Marks `n` tasks as found late (see [`Coverage::late_tasks`]).
    pub fn note_late(&mut self, n: usize) {
        self.coverage.late_tasks += n;
    }

    /// Gives each thread of `tasks` (process id, thread id) not seen before a counter of its
    /// own (call it at each sample). A thread that is already gone is skipped.
    pub fn watch(&mut self, tasks: &[(i32, i32)]) {
        for &(tgid, tid) in tasks {
            if self.threads.contains_key(&tid) {
                continue;
            }
            match TracepointCounter::open(self.raw, tid, false) {
                Ok(c) => {
                    self.threads.insert(tid, (tgid, c));
                }
                Err(e) if errno(&e) == libc::ESRCH => {}
                Err(_) => self.coverage.threads_unwatched += 1,
            }
        }
    }

    /// The counts: by name (with `other` for calls not counted by name), by process, and how
    /// the counting went. `execve_of`: the process whose `execve` completed before its counter
    /// opened (the command), counted once as ptrace mode counts it.
    pub fn finish(mut self, execve_of: Option<i32>) -> (SyscallCounts, Coverage) {
        let mut counts = SyscallCounts::default();
        let mut by_name: BTreeMap<usize, u64> = BTreeMap::new();
        for r in &self.roots {
            for (i, c) in &r.by_name {
                *by_name.entry(*i).or_default() += c.read().unwrap_or(0);
            }
        }
        let named: u64 = by_name.values().sum();
        let total: u64 = self
            .roots
            .iter()
            .map(|r| r.all.as_ref().map_or(0, |c| c.read().unwrap_or(0)))
            .sum::<u64>()
            .max(named);
        let mut attributed = 0;
        for (tgid, c) in self.threads.values() {
            let n = c.read().unwrap_or(0);
            attributed += n;
            *counts.by_pid.entry(*tgid).or_default() += n;
        }
        self.coverage.threads = self.threads.len();
        self.coverage.unattributed = total.saturating_sub(attributed);
        for (i, n) in by_name {
            if n > 0 {
                counts.by_name.insert(
                    self.names[i].clone(),
                    SyscallStat {
                        count: n,
                        seconds: 0.0,
                    },
                );
            }
        }
        // raw_syscalls counts every call, including those without a per-name tracepoint.
        if total > named {
            counts.by_name.insert(
                "other".to_owned(),
                SyscallStat {
                    count: total - named,
                    seconds: 0.0,
                },
            );
        }
        if let Some(pid) = execve_of {
            counts.by_name.entry("execve".to_owned()).or_default().count += 1;
            *counts.by_pid.entry(pid).or_default() += 1;
        }
        counts.by_pid.retain(|_, n| *n > 0);
        (counts, std::mem::take(&mut self.coverage))
    }
}

impl Drop for KernelCounter {
    /// The counters are closed by a helper process (see `osml_sys::close_in_background`):
    /// closing hundreds here would stall the trace's end for seconds.
    fn drop(&mut self) {
        let mut all: Vec<TracepointCounter> = Vec::new();
        for r in std::mem::take(&mut self.roots) {
            all.extend(r.all);
            all.extend(r.by_name.into_iter().map(|(_, c)| c));
        }
        all.extend(
            std::mem::take(&mut self.threads)
                .into_values()
                .map(|(_, c)| c),
        );
        osml_sys::close_in_background(all);
    }
}
