//! What a job does to the operating system.
//!
//! [`trace`] runs a command (or watches a running process) and samples its whole process tree
//! from `/proc` at an interval: CPU, RSS, PSS and USS, swap, faults, context switches,
//! migrations, I/O, threads and affinity, following children as they come and go. With
//! `syscalls` it also counts every system call of the tree: in the kernel with perf tracepoint
//! counters ([`kernel`], the job never stops), or through `ptrace` ([`syscalls`], the fallback,
//! two stops per call). The
//! [`report::Report`] has one summary per process, totals, findings (copy-on-read in forked
//! workers, major faults, oversubscribed CPUs, migrations, syscall storms) and a timeline that
//! [`plot::svg`] draws. [`mem::explain`] breaks one process's memory down by region.

pub mod bpf;
pub mod kernel;
pub mod mem;
pub mod plot;
pub mod report;
pub mod sample;
pub mod syscalls;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::report::{findings, ProcessReport, Report, Series, Totals};
use crate::sample::Key;
use crate::syscalls::SyscallCounts;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot run {cmd}: {error}")]
    Spawn {
        cmd: String,
        /// Part of the message, so not also the `source()`.
        error: std::io::Error,
    },
    #[error("ptrace failed: {0} (a seccomp filter or kernel.yama.ptrace_scope may forbid it)")]
    Ptrace(String),
    #[error("no process {0}")]
    NoSuchProcess(i32),
    #[error("{what}: {error}")]
    Io {
        what: String,
        /// Part of the message, so not also the `source()`.
        error: std::io::Error,
    },
    #[error("{0}")]
    Proc(String),
    #[error("cannot count system calls in the kernel: {0}")]
    Kernel(kernel::Unavailable),
    #[error("--syscalls=ptrace needs a command: ptrace cannot count a running process's calls here without stopping it; use --syscalls=perf (or auto)")]
    PtraceNeedsCommand,
}

/// How `--syscalls` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyscallMode {
    /// BPF where the kernel allows it, else perf counters, else ptrace (with a warning).
    Auto,
    /// BPF only: an error where the programs cannot be loaded.
    Bpf,
    /// Kernel counters only: an error where they cannot be opened.
    Perf,
    /// ptrace only (commands only).
    Ptrace,
}

/// The mechanism a trace counted system calls with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    Bpf,
    Perf,
    Ptrace,
}

/// How system calls were counted, in the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Counting {
    pub mechanism: Mechanism,
    /// Why this mechanism (what was asked, and for `auto`, why kernel counting was not used).
    pub reason: String,
    /// Whether `auto` fell back to ptrace: the job ran much slower than it would alone.
    pub fell_back: bool,
    /// Whether the time in each call was measured (ptrace only).
    pub times_measured: bool,
    /// Kernel counting: tasks, names counted, late tasks, lost exits.
    pub coverage: Option<kernel::Coverage>,
}

/// The mechanism chosen before anything runs.
enum Choice {
    /// Loaded and attached, counting nothing yet.
    Bpf(Box<bpf::BpfCounter>, String),
    Perf(kernel::Tracepoints, String),
    Ptrace(String, bool),
}

fn choose(
    mode: SyscallMode,
    pid_target: bool,
    names: kernel::NameSet,
) -> Result<Choice, TraceError> {
    if mode == SyscallMode::Ptrace {
        if pid_target {
            return Err(TraceError::PtraceNeedsCommand);
        }
        return Ok(Choice::Ptrace("--syscalls=ptrace".into(), false));
    }
    kernel::mount_tracefs();
    let host = osml_host::HostRoot::live();
    let mut bpf_refused = None;
    if matches!(mode, SyscallMode::Auto | SyscallMode::Bpf) {
        match bpf::setup(&host).and_then(|s| bpf::BpfCounter::open(&s, names)) {
            Ok(k) => {
                let why = if mode == SyscallMode::Auto {
                    "--syscalls=auto: BPF is allowed here"
                } else {
                    "--syscalls=bpf"
                };
                return Ok(Choice::Bpf(Box::new(k), why.into()));
            }
            Err(u) if mode == SyscallMode::Bpf => return Err(TraceError::Kernel(u)),
            Err(u) => bpf_refused = Some(u),
        }
    }
    let ready = kernel::tracepoints(&host).and_then(|tp| kernel::probe(&tp).map(|()| tp));
    match (ready, mode) {
        (Ok(tp), _) => {
            let why = match bpf_refused {
                Some(u) => format!("--syscalls=auto: BPF unavailable ({u}); perf counters allowed"),
                None => "--syscalls=perf".to_owned(),
            };
            Ok(Choice::Perf(tp, why))
        }
        (Err(u), SyscallMode::Auto) if !pid_target => Ok(Choice::Ptrace(
            format!("kernel counting unavailable ({u}); ptrace stops the job twice per system call, which slows a syscall-heavy job by one to two orders of magnitude"),
            true,
        )),
        (Err(u), _) => Err(TraceError::Kernel(u)),
    }
}

/// What to trace.
#[derive(Debug, Clone)]
pub enum Target {
    Command(Vec<OsString>),
    Pid(i32),
}

/// The shortest interval between samples: a sample of a large tree reads several `/proc` files
/// per process, and below this the sampler measures mostly itself.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The longest interval: a trace with fewer samples than this says little.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// The longest `--pid` trace: a week of samples at the longest interval.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct Options {
    /// Between [`MIN_INTERVAL`] and [`MAX_INTERVAL`] (the front end refuses others).
    pub interval: Duration,
    /// Count system calls, and how (`None`: not counted).
    pub syscalls: Option<SyscallMode>,
    /// With kernel counting: which system calls are counted by name.
    pub syscall_names: kernel::NameSet,
    /// Stop after this long (for `--pid`), at most [`MAX_DURATION`].
    pub duration: Option<Duration>,
}

/// How a watched process's exit is noticed: a pidfd becomes readable when the process exits
/// (`pidfd_open(2)`, Linux 5.3); without one (`ENOSYS`, or a seccomp filter), its `/proc` entry
/// is looked at between short sleeps.
struct ExitWatch {
    pid: i32,
    pidfd: Option<std::os::fd::OwnedFd>,
}

/// How often a wait looks at the stop flag (Ctrl-C) and, without a pidfd, at the process.
const SLICE: Duration = Duration::from_millis(50);

impl ExitWatch {
    fn new(pid: i32) -> Self {
        let pidfd = rustix::process::Pid::from_raw(pid).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        Self { pid, pidfd }
    }

    /// Whether the process has exited (a zombie has: it will never run again).
    fn exited(&self) -> bool {
        sample::process(&osml_host::HostRoot::live(), self.pid)
            .and_then(|p| p.stat().ok())
            .is_none_or(|s| s.state == 'Z' || s.state == 'X')
    }

    /// Waits until `until`, `stop`, or the process's exit, whichever comes first. True when
    /// the process has exited.
    fn wait(&self, until: Instant, stop: &AtomicBool) -> bool {
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            let slice = (until - now).min(SLICE);
            let Some(fd) = &self.pidfd else {
                std::thread::sleep(slice);
                if self.exited() {
                    return true;
                }
                continue;
            };
            let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(slice.subsec_nanos()),
            };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(n) if n > 0 => return true,
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                // A pidfd that cannot be polled: fall back to sleeping.
                Err(_) => std::thread::sleep(slice),
            }
        }
    }
}

/// Samples of every process seen, and tree-wide peaks.
struct Collector {
    t0: Instant,
    /// Clock ticks since boot when tracing began: processes started later count from zero.
    start_ticks: u64,
    series: BTreeMap<Key, Series>,
    host: osml_host::HostRoot,
    peak_rss: u64,
    peak_pss: u64,
    peak_runnable: u64,
    /// (process id, thread id) of every thread in the latest sample.
    last_tasks: Vec<(i32, i32)>,
}

impl Collector {
    fn new() -> Self {
        let host = osml_host::HostRoot::live();
        let ticks = procfs::ticks_per_second() as f64;
        let uptime = host
            .read("/proc/uptime")
            .ok()
            .and_then(|t| {
                t.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        Self {
            t0: Instant::now(),
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            start_ticks: (uptime * ticks) as u64,
            series: BTreeMap::new(),
            host,
            peak_rss: 0,
            peak_pss: 0,
            peak_runnable: 0,
            last_tasks: Vec::new(),
        }
    }

    /// One sample of the tree under `root`; false when the root is gone.
    fn sample(&mut self, root: i32) -> bool {
        let procs = sample::tree(&self.host, &[root]);
        let (mut rss, mut pss, mut runnable) = (0, 0, 0);
        let mut root_seen = false;
        self.last_tasks.clear();
        for p in &procs {
            let Some(s) = sample::read(p, self.t0, &self.host) else {
                continue;
            };
            root_seen |= s.pid == root;
            self.last_tasks
                .extend(s.thread_cpus.keys().map(|&tid| (s.pid, tid)));
            rss += s.rss_bytes;
            pss += s.pss_bytes.unwrap_or(0);
            runnable += s.runnable;
            let key = (s.pid, s.start);
            let born = s.start >= self.start_ticks;
            let series = self.series.entry(key).or_insert_with(|| Series {
                pid: s.pid,
                ppid: s.ppid,
                cmd: String::new(),
                exe: None,
                born_traced: born,
                samples: Vec::new(),
            });
            // A process may exec (a shell wrapper becoming python): keep the latest.
            series.cmd = sample::command(p);
            if let Some(exe) = sample::exe(p) {
                series.exe = Some(exe);
            }
            series.samples.push(s);
        }
        self.peak_rss = self.peak_rss.max(rss);
        self.peak_pss = self.peak_pss.max(pss);
        self.peak_runnable = self.peak_runnable.max(runnable);
        root_seen
    }

    fn report(
        self,
        command: String,
        opts: &Options,
        exit_status: Option<i32>,
        calls: Option<(SyscallCounts, Counting)>,
    ) -> Report {
        let (calls, counting) = calls.unzip();
        let duration = self.t0.elapsed().as_secs_f64();
        let procs: Vec<ProcessReport> = self
            .series
            .values()
            .filter_map(|s| s.summary(calls.as_ref()))
            .collect();
        let totals = Totals {
            processes: procs.len(),
            cpu_seconds: procs.iter().map(|p| p.cpu_seconds).sum(),
            peak_rss_bytes: self.peak_rss,
            peak_pss_bytes: self.peak_pss,
            minor_faults: procs.iter().map(|p| p.minor_faults).sum(),
            major_faults: procs.iter().map(|p| p.major_faults).sum(),
            involuntary_switches: procs.iter().map(|p| p.involuntary_switches).sum(),
            migrations: procs.iter().map(|p| p.migrations).sum(),
            peak_runnable_threads: self.peak_runnable,
        };
        let cpus = osml_sys::allowed_cpus().map_or(1, |c| c.len());
        let findings = findings(
            &self.series,
            &procs,
            &totals,
            duration,
            cpus,
            calls.as_ref(),
        );
        let timeline = self
            .series
            .values()
            .map(|s| (s.pid, s.timeline()))
            .collect();
        Report {
            schema_version: 1,
            command,
            interval_ms: u64::try_from(opts.interval.as_millis()).unwrap_or(u64::MAX),
            duration_s: duration,
            exit_status,
            cpus,
            processes: procs,
            totals,
            findings,
            syscalls: calls.as_ref().map(|c| {
                c.by_name
                    .iter()
                    .map(|(k, v)| (k.clone(), v.count))
                    .collect()
            }),
            syscall_times: calls.map(|c| c.by_name),
            syscall_counting: counting,
            timeline,
        }
    }
}

/// Sleeps up to `d`, waking early when `stop` is set.
fn nap(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(20)));
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Every task (process id, thread id) of the tree under `root`.
fn tree_tasks(host: &osml_host::HostRoot, root: i32) -> Vec<(i32, i32)> {
    sample::tree(host, &[root])
        .iter()
        .flat_map(|p| {
            p.tasks()
                .into_iter()
                .flatten()
                .flatten()
                .map(move |t| (p.pid, t.tid))
        })
        .collect()
}

/// Kernel counters on every thread of a running tree. Threads that appear while they are
/// being opened are not given counters of their own (one started by a thread already counted
/// inherits its creator's, and a second set would count it twice): they are reported as late,
/// each counted only if its creator already was.
fn attach(
    host: &osml_host::HostRoot,
    tp: &kernel::Tracepoints,
    names: kernel::NameSet,
    root: i32,
) -> Result<kernel::KernelCounter, TraceError> {
    let tasks = tree_tasks(host, root);
    let mut k = kernel::KernelCounter::open(tp, &tasks, names).map_err(TraceError::Kernel)?;
    let seen: std::collections::BTreeSet<i32> = tasks.iter().map(|t| t.1).collect();
    let late = tree_tasks(host, root)
        .iter()
        .filter(|t| !seen.contains(&t.1))
        .count();
    k.note_late(late);
    Ok(k)
}

fn command_text(cmd: &[OsString]) -> String {
    cmd.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn spawn_error(cmd: &[OsString], error: std::io::Error) -> TraceError {
    TraceError::Spawn {
        cmd: cmd[0].to_string_lossy().into_owned(),
        error,
    }
}

/// Starts `cmd` with kernel counting on it from its first instruction: the child stops for
/// ptrace at exec, `start` begins counting it, `c` takes its first sample (so a command that
/// ends at once is still in the report), and it is let go (no longer traced).
fn spawn_counted<K>(
    cmd: &[OsString],
    c: &mut Collector,
    start: impl FnOnce(i32) -> Result<K, kernel::Unavailable>,
) -> Result<(std::process::Child, K), TraceError> {
    use nix::sys::wait::{waitpid, WaitStatus};
    let mut command = std::process::Command::new(&cmd[0]);
    command.args(&cmd[1..]);
    let mut child = osml_sys::spawn_traced(&mut command).map_err(|e| spawn_error(cmd, e))?;
    let pid = child.id().cast_signed();
    let nix_pid = nix::unistd::Pid::from_raw(pid);
    let ptrace_err = |e: nix::Error| TraceError::Ptrace(e.to_string());
    match waitpid(nix_pid, None).map_err(ptrace_err)? {
        WaitStatus::Stopped(_, _) => {}
        other => {
            return Err(TraceError::Proc(format!(
                "the command did not stop at exec: {other:?}"
            )))
        }
    }
    let counter = match start(pid) {
        Ok(k) => k,
        Err(u) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TraceError::Kernel(u));
        }
    };
    c.sample(pid);
    nix::sys::ptrace::detach(nix_pid, None).map_err(ptrace_err)?;
    Ok((child, counter))
}

/// Samples `pid` at each interval until `child` exits, calling `each` after every sample;
/// the child's exit status.
fn sample_until_exit(
    c: &mut Collector,
    mut child: std::process::Child,
    interval: Duration,
    mut each: impl FnMut(&Collector),
) -> Result<i32, TraceError> {
    let pid = child.id().cast_signed();
    // A waiter thread reports the exit at once, so the trace ends with the command, not up
    // to an interval later.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    loop {
        c.sample(pid);
        each(c);
        match rx.recv_timeout(interval) {
            Ok(r) => {
                let status = r.map_err(|e| TraceError::Io {
                    what: "waiting for the command".into(),
                    error: e,
                })?;
                return Ok(exit_code(status));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(TraceError::Proc("the waiting thread ended".into()));
            }
        }
    }
}

fn kernel_counting(mechanism: Mechanism, reason: String, coverage: kernel::Coverage) -> Counting {
    Counting {
        mechanism,
        reason,
        fell_back: false,
        times_measured: false,
        coverage: Some(coverage),
    }
}

/// Kernel counting of a tree: BPF or perf counters.
enum Counter {
    Bpf(Box<bpf::BpfCounter>),
    Perf(kernel::KernelCounter),
}

impl Counter {
    fn watch(&mut self, tasks: &[(i32, i32)]) {
        match self {
            Self::Bpf(k) => k.watch(tasks),
            Self::Perf(k) => k.watch(tasks),
        }
    }

    fn finish(self, execve_of: Option<i32>, reason: String) -> (SyscallCounts, Counting) {
        let (mechanism, (counts, coverage)) = match self {
            Self::Bpf(k) => (Mechanism::Bpf, k.finish(execve_of)),
            Self::Perf(k) => (Mechanism::Perf, k.finish(execve_of)),
        };
        (counts, kernel_counting(mechanism, reason, coverage))
    }
}

/// Samples a command started with kernel counting until it exits, and reports.
fn run_counted(
    mut c: Collector,
    child: std::process::Child,
    mut k: Counter,
    reason: String,
    text: String,
    opts: &Options,
) -> Result<Report, TraceError> {
    let root = child.id().cast_signed();
    let status = sample_until_exit(&mut c, child, opts.interval, |c| k.watch(&c.last_tasks))?;
    let calls = k.finish(Some(root), reason);
    Ok(c.report(text, opts, Some(status), Some(calls)))
}

/// Watches the running tree of `pid` until it exits, `stop` is set or the duration passes.
fn trace_pid(
    mut c: Collector,
    pid: i32,
    choice: Option<Choice>,
    opts: &Options,
    stop: &AtomicBool,
) -> Result<Report, TraceError> {
    if sample::process(&c.host, pid).is_none() {
        return Err(TraceError::NoSuchProcess(pid));
    }
    let mut counter = match choice {
        Some(Choice::Perf(tp, why)) => Some((
            Counter::Perf(attach(&c.host, &tp, opts.syscall_names, pid)?),
            why,
        )),
        Some(Choice::Bpf(mut k, why)) => {
            k.add(&tree_tasks(&c.host, pid))
                .map_err(TraceError::Kernel)?;
            Some((Counter::Bpf(k), why))
        }
        _ => None,
    };
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let watch = ExitWatch::new(pid);
    // A sample at each interval and one at the deadline; the wait ends early when the
    // process exits or Ctrl-C sets `stop`.
    while c.sample(pid)
        && !stop.load(Ordering::Relaxed)
        && deadline.is_none_or(|d| Instant::now() < d)
    {
        if let Some((k, _)) = &mut counter {
            k.watch(&c.last_tasks);
        }
        let next = Instant::now() + opts.interval;
        let until = deadline.map_or(next, |d| d.min(next));
        if watch.wait(until, stop) {
            break;
        }
    }
    let cmd =
        sample::process(&c.host, pid).map_or_else(|| format!("pid {pid}"), |p| sample::command(&p));
    let calls = counter.map(|(k, why)| k.finish(None, why));
    Ok(c.report(cmd, opts, None, calls))
}

/// Traces `target` until it exits (or `stop` is set, or the duration passes for a pid).
pub fn trace(target: &Target, opts: &Options, stop: &AtomicBool) -> Result<Report, TraceError> {
    let choice = opts
        .syscalls
        .map(|m| choose(m, matches!(target, Target::Pid(_)), opts.syscall_names))
        .transpose()?;
    let mut c = Collector::new();
    match target {
        Target::Pid(pid) => trace_pid(c, *pid, choice, opts, stop),
        Target::Command(cmd) => {
            let text = command_text(cmd);
            match choice {
                Some(Choice::Ptrace(reason, fell_back)) => {
                    let root = AtomicI32::new(0);
                    let done = AtomicBool::new(false);
                    let outcome = std::thread::scope(|s| {
                        let (root, done) = (&root, &done);
                        let sampler = s.spawn(move || {
                            while root.load(Ordering::Acquire) == 0 && !done.load(Ordering::Acquire)
                            {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            let pid = root.load(Ordering::Acquire);
                            while pid != 0 && !done.load(Ordering::Acquire) {
                                c.sample(pid);
                                nap(opts.interval, done);
                            }
                            c
                        });
                        let r = syscalls::run(cmd, |pid| root.store(pid, Ordering::Release));
                        done.store(true, Ordering::Release);
                        (r, sampler.join())
                    });
                    let (r, c) = outcome;
                    let c =
                        c.map_err(|_| TraceError::Proc("the sampling thread panicked".into()))?;
                    let (calls, status) = r?;
                    let counting = Counting {
                        mechanism: Mechanism::Ptrace,
                        reason,
                        fell_back,
                        times_measured: true,
                        coverage: None,
                    };
                    Ok(c.report(text, opts, Some(status), Some((calls, counting))))
                }
                Some(Choice::Perf(tp, reason)) => {
                    let names = opts.syscall_names;
                    let (child, k) = spawn_counted(cmd, &mut c, |pid| {
                        kernel::KernelCounter::open(&tp, &[(pid, pid)], names)
                    })?;
                    run_counted(c, child, Counter::Perf(k), reason, text, opts)
                }
                Some(Choice::Bpf(k, reason)) => {
                    let mut k = Some(k);
                    let (child, k) = spawn_counted(cmd, &mut c, |pid| {
                        let mut k = k.take().ok_or_else(|| {
                            kernel::Unavailable::Bpf("the BPF counter was used twice".into())
                        })?;
                        k.add(&[(pid, pid)])?;
                        Ok(k)
                    })?;
                    run_counted(c, child, Counter::Bpf(k), reason, text, opts)
                }
                None => {
                    let child = std::process::Command::new(&cmd[0])
                        .args(&cmd[1..])
                        .spawn()
                        .map_err(|e| spawn_error(cmd, e))?;
                    let status = sample_until_exit(&mut c, child, opts.interval, |_| {})?;
                    Ok(c.report(text, opts, Some(status), None))
                }
            }
        }
    }
}
