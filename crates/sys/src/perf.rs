//! Counting this process's system calls with a perf tracepoint counter.
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
/// Bit 1 of the flags word: count in threads created after the counter, too.
const INHERIT: u64 = 1 << 1;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// Counts `raw_syscalls:sys_enter` events of this process: every system call of the calling
/// thread and of threads it starts afterwards. Children's counts join the total when they
/// exit, so read it after joining them.
pub struct SyscallCounter {
    file: File,
}

impl SyscallCounter {
    /// Opens the counter. `tracepoint_id` is the content of
    /// `/sys/kernel/tracing/events/raw_syscalls/sys_enter/id` (read by the caller, through
    /// its host root). Fails without `CAP_PERFMON` when `perf_event_paranoid` > 1.
    pub fn open(tracepoint_id: u64) -> Result<Self, SysError> {
        let mut attr = [0u8; PERF_ATTR_SIZE_VER0 as usize];
        attr[0..4].copy_from_slice(&PERF_TYPE_TRACEPOINT.to_ne_bytes());
        attr[4..8].copy_from_slice(&PERF_ATTR_SIZE_VER0.to_ne_bytes());
        attr[8..16].copy_from_slice(&tracepoint_id.to_ne_bytes());
        attr[40..48].copy_from_slice(&INHERIT.to_ne_bytes());
        // SAFETY: `attr` is a valid version-0 perf_event_attr for the duration of the call;
        // pid 0 / cpu -1 means this process on any CPU, no group.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr.as_ptr(),
                0 as libc::pid_t,
                -1 as libc::c_int,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(SysError::Call {
                call: "perf_event_open",
                path: None,
                error: std::io::Error::last_os_error(),
            });
        }
        let fd = libc::c_int::try_from(fd).map_err(|_| SysError::Call {
            call: "perf_event_open",
            path: None,
            error: std::io::Error::other("descriptor out of range"),
        })?;
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(Self { file })
    }

    /// System calls counted so far.
    pub fn read(&mut self) -> Result<u64, SysError> {
        let mut b = [0u8; 8];
        self.file
            .read_exact(&mut b)
            .map_err(|error| SysError::Call {
                call: "read(perf counter)",
                path: None,
                error,
            })?;
        Ok(u64::from_ne_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_skip::skip;

    /// The tracepoint id, mounting tracefs when it is missing and we are root; why not when
    /// this machine cannot count.
    fn tracepoint_id() -> Result<u64, String> {
        let path = "/sys/kernel/tracing/events/raw_syscalls/sys_enter/id";
        if !std::path::Path::new(path).exists() && rustix::process::geteuid().is_root() {
            let _ = std::process::Command::new("mount")
                .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
                .status();
        }
        #[allow(clippy::disallowed_methods)] // a test probing the machine, not host facts
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("no {path} ({e}); tracefs is needed to count system calls"))?;
        text.trim()
            .parse()
            .map_err(|e| format!("{path}: {text:?} is not a tracepoint id ({e})"))
    }

    #[test]
    fn counts_system_calls() {
        const TEST: &str = "perf::tests::counts_system_calls";
        let id = match tracepoint_id() {
            Ok(id) => id,
            Err(why) => return skip(TEST, &why),
        };
        let mut c = match SyscallCounter::open(id) {
            Ok(c) => c,
            Err(e) if !rustix::process::geteuid().is_root() => {
                return skip(
                    TEST,
                    &format!("{e} (needs root or perf_event_paranoid <= 1)"),
                );
            }
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
}
