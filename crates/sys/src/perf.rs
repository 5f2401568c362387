//! Counting system calls in the kernel with perf tracepoint counters.
//!
//! - [`SyscallCounter`]: every system call of this process (`raw_syscalls:sys_enter`).
//! - [`TracepointCounter`]: one tracepoint (`syscalls:sys_enter_read`, …) of one task, and with
//!   `inherit` of every thread and process it starts afterwards; a read gives the total of the
//!   task and of its descendants, live or exited.
//!
//! Written here rather than through a perf crate: counting a tracepoint is a few lines over the
//! system call, with the attribute block laid out as the kernel's documented
//! `struct perf_event_attr`. (Per-task counts at exit through `inherit_stat` would spare
//! opening a counter per thread, but 6.18 writes no `PERF_RECORD_READ` for an exiting task: its
//! context is marked dead before its events are synced; and the kernel refuses to map the ring
//! buffer of an inherited counter that follows a task across CPUs.)
//!
//! # Safety
//!
//! `perf_event_open(2)` has no libc wrapper; it is called through `syscall(2)` with an
//! attribute block laid out as the kernel's `struct perf_event_attr` (version 0, 64 bytes),
//! and the returned descriptor is owned immediately.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;

use crate::SysError;

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_ATTR_SIZE_VER0: u32 = 64;
/// Flags word (`perf_event_attr`, offset 40), bit 1: count in threads and processes created
/// after the counter, too.
const INHERIT: u64 = 1 << 1;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
fn call_error(call: &'static str, error: std::io::Error) -> SysError {
    SysError::Call {
        call,
        path: None,
        error,
    }
}

fn open_event(tracepoint_id: u64, tid: i32, flags: u64) -> Result<File, SysError> {
    // struct perf_event_attr, version 0: type u32, size u32, config u64, sample_period u64,
    // sample_type u64, read_format u64, flags u64, wakeup u32, bp_type u32, config1 u64.
    let mut attr = [0u8; PERF_ATTR_SIZE_VER0 as usize];
    attr[0..4].copy_from_slice(&PERF_TYPE_TRACEPOINT.to_ne_bytes());
    attr[4..8].copy_from_slice(&PERF_ATTR_SIZE_VER0.to_ne_bytes());
    attr[8..16].copy_from_slice(&tracepoint_id.to_ne_bytes());
    attr[40..48].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: `attr` is a valid version-0 perf_event_attr for the duration of the call; `tid`
    // 0 is the calling thread, cpu -1 any CPU, group -1 none.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            tid as libc::pid_t,
            -1 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(call_error(
            "perf_event_open",
            std::io::Error::last_os_error(),
        ));
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| {
        call_error(
            "perf_event_open",
            std::io::Error::other("descriptor out of range"),
        )
    })?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn read_count(mut file: &File) -> Result<u64, SysError> {
    let mut b = [0u8; 8];
    file.read_exact(&mut b)
        .map_err(|e| call_error("read(perf counter)", e))?;
    Ok(u64::from_ne_bytes(b))
}

/// Counts `raw_syscalls:sys_enter` events of this process: every system call of the calling
/// thread and of threads and children it starts afterwards (children's counts included, live
/// or exited).
pub struct SyscallCounter {
    file: File,
}

impl SyscallCounter {
    /// Opens the counter. `tracepoint_id` is the content of
    /// `/sys/kernel/tracing/events/raw_syscalls/sys_enter/id` (read by the caller, through
    /// its host root). Fails without `CAP_PERFMON` when `perf_event_paranoid` > 1.
    pub fn open(tracepoint_id: u64) -> Result<Self, SysError> {
        Ok(Self {
            file: open_event(tracepoint_id, 0, INHERIT)?,
        })
    }

    /// System calls counted so far.
    pub fn read(&mut self) -> Result<u64, SysError> {
        read_count(&self.file)
    }
}

/// One tracepoint counted for one task (a thread id) and, with `inherit`, for every task it
/// starts afterwards. Counting starts when it is opened.
pub struct TracepointCounter {
    file: File,
}

impl TracepointCounter {
    /// Fails with `EACCES` without `CAP_PERFMON` where `perf_event_paranoid` > 1 (or for
    /// another user's task), `ESRCH` when the task is gone, `EMFILE` when this process has no
    /// descriptor left, `ENOENT`/`EINVAL` for an unknown tracepoint id.
    pub fn open(tracepoint_id: u64, tid: i32, inherit: bool) -> Result<Self, SysError> {
        Ok(Self {
            file: open_event(tracepoint_id, tid, if inherit { INHERIT } else { 0 })?,
        })
    }

    /// Events counted so far, of the task and of its (inherited) descendants.
    pub fn read(&self) -> Result<u64, SysError> {
        read_count(&self.file)
    }
}

/// Closes `counters` without waiting for the kernel. Closing the last counter on a tracepoint
/// unregisters it, which waits for an RCU grace period under a global mutex: ~37 ms each on
/// this VM, so 360 per-syscall counters take 13 s to close one after the other, on any thread.
/// A forked child takes them over: it holds a second reference to each, so this process's
/// closes only drop a reference and return at once, and the child closes them (the slow part,
/// no CPU spent) after closing its standard streams, so that nothing waits for it. It is never
/// waited for: when this process exits it is reparented and reaped by init. Where fork fails,
/// the counters are closed here.
pub fn close_in_background(counters: Vec<TracepointCounter>) {
    close_fds_in_background(
        counters
            .into_iter()
            .map(|c| std::os::fd::OwnedFd::from(c.file))
            .collect(),
    );
}

/// [`close_in_background`] for any descriptors whose last close waits on the kernel (a BPF
/// program attached to a tracepoint unregisters it on its last close, the same wait).
pub fn close_fds_in_background(fds: Vec<std::os::fd::OwnedFd>) {
    use std::os::fd::AsRawFd;
    if fds.is_empty() {
        return;
    }
    let raw: Vec<libc::c_int> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: the child calls only close(2) and _exit(2), which are async-signal-safe, on
    // descriptors it inherited; it touches no memory the parent could have been changing.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: see above; `raw` was built before the fork and is only read.
        unsafe {
            for fd in 0..3 {
                libc::close(fd);
            }
            for &fd in &raw {
                libc::close(fd);
            }
            libc::_exit(0);
        }
    }
    drop(fds);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_skip::skip;

    /// A tracepoint id, mounting tracefs when it is missing and we are root; why not when
    /// this machine cannot count.
    fn tracepoint_id(event: &str) -> Result<u64, String> {
        let path = format!("/sys/kernel/tracing/events/{event}/id");
        if !std::path::Path::new(&path).exists() && rustix::process::geteuid().is_root() {
            let _ = std::process::Command::new("mount")
                .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
                .status();
        }
        #[allow(clippy::disallowed_methods)] // a test probing the machine, not host facts
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("no {path} ({e}); tracefs is needed to count system calls"))?;
        text.trim()
            .parse()
            .map_err(|e| format!("{path}: {text:?} is not a tracepoint id ({e})"))
    }

    /// Skips (visibly) where perf counters cannot be opened: not root and a paranoid kernel.
    fn refused(test: &str, e: &SysError) -> bool {
        if rustix::process::geteuid().is_root() {
            return false;
        }
        skip(
            test,
            &format!("{e} (needs root or perf_event_paranoid <= 1)"),
        );
        true
    }

    #[test]
    fn counts_system_calls() {
        const TEST: &str = "perf::tests::counts_system_calls";
        let id = match tracepoint_id("raw_syscalls/sys_enter") {
            Ok(id) => id,
            Err(why) => return skip(TEST, &why),
        };
        let mut c = match SyscallCounter::open(id) {
            Ok(c) => c,
            Err(e) if refused(TEST, &e) => return,
            Err(e) => panic!("{e}"),
        };
        let before = c.read().unwrap();
        for _ in 0..100 {
            let _ = rustix::process::getppid();
            let _ = std::fs::metadata("/");
        }
        let after = c.read().unwrap();
        assert!(after - before >= 100, "{before} -> {after}");
        // A thread started after the counter is counted once it has exited.
        let base = c.read().unwrap();
        std::thread::spawn(|| {
            for _ in 0..50 {
                let _ = std::fs::metadata("/");
            }
        })
        .join()
        .unwrap();
        assert!(c.read().unwrap() - base >= 50);
    }

    #[test]
    fn one_tracepoint_of_a_thread_exactly_and_of_the_threads_it_starts() {
        const TEST: &str =
            "perf::tests::one_tracepoint_of_a_thread_exactly_and_of_the_threads_it_starts";
        let id = match tracepoint_id("syscalls/sys_enter_getppid") {
            Ok(id) => id,
            Err(why) => return skip(TEST, &why),
        };
        let inherited = match TracepointCounter::open(id, 0, true) {
            Ok(c) => c,
            Err(e) if refused(TEST, &e) => return,
            Err(e) => panic!("{e}"),
        };
        let plain = TracepointCounter::open(id, 0, false).unwrap();
        for _ in 0..1000 {
            let _ = rustix::process::getppid();
        }
        // getppid is made by nothing else in this thread: the counts are exact.
        assert_eq!(plain.read().unwrap(), 1000);
        // A counter on another thread, opened by its id, counts that thread alone.
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            tx.send(rustix::thread::gettid().as_raw_nonzero().get())
                .unwrap();
            go_rx.recv().unwrap();
            for _ in 0..321 {
                let _ = rustix::process::getppid();
            }
        });
        let tid = rx.recv().unwrap();
        let other = TracepointCounter::open(id, tid, false).unwrap();
        go_tx.send(()).unwrap();
        worker.join().unwrap();
        assert_eq!(other.read().unwrap(), 321, "read after the thread exited");
        assert_eq!(
            inherited.read().unwrap(),
            1321,
            "the thread's calls join the total"
        );
        assert_eq!(
            plain.read().unwrap(),
            1000,
            "without inherit, only this thread"
        );
    }
}
