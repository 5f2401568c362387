//! Safe wrappers over the operating-system calls that osml makes directly.
//!
//! This is the only crate of the workspace allowed to contain `unsafe`; each wrapper names the
//! system call it makes and returns owned values or RAII types. Today it holds:
//!
//! - [`allowed_cpus`]: `sched_getaffinity(2)` for the calling thread;
//! - [`statvfs`]: `statvfs(3)`, the size and use of a mounted filesystem;
//! - [`probe_io_uring`]: `io_uring_setup(2)`, whether this process may create a ring;
//! - [`MappedFile`]: a read-only `mmap(2)` of a file, with `madvise(2)` and `mincore(2)`, and a
//!   `SIGBUS` guard that names the file when it is truncated under the mapping;
//! - [`HugeBuffer`]: 2 MiB-aligned anonymous memory with `MADV_HUGEPAGE`, optionally `mlock`ed;
//! - [`pin_current_thread`] (`sched_setaffinity(2)`) and [`usage`] (`getrusage(2)`);
//! - [`SyscallCounter`]: this process's system calls, from a perf tracepoint counter;
//! - [`set_mempolicy`] and [`get_mempolicy`]: the thread's NUMA memory policy;
//! - [`UringReader`]: reads at a chosen queue depth through `io_uring`;
//! - [`spawn_traced`]: a child that stops for its `ptrace` tracer at exec; [`syscall_stop`]:
//!   what a tracee at a system-call stop is doing (`PTRACE_GET_SYSCALL_INFO`);
//! - [`TracepointCounter`]: a perf tracepoint counter on a task (and, inherited, on what it
//!   starts afterwards);
//! - [`fork_generation`]: a counter that changes in a child after `fork(2)` (`pthread_atfork`);
//! - [`file::open_regular`] and [`file::read_bounded`]: regular files only, `O_NONBLOCK`, a cap;
//! - [`cleanup`]: paths removed when a terminating signal arrives; [`atomic::TempBeside`]: a
//!   temporary file renamed into place, created under the umask;
//! - [`prefetch`]: cache lines asked for ahead of use (`_mm_prefetch`);
//! - [`fork_exec_status`]: running a command with `fork(2)` and `execve(2)` rather than
//!   `posix_spawn(3)`.
//!
//! ```
//! let cpus = osml_sys::allowed_cpus().expect("sched_getaffinity");
//! assert!(!cpus.is_empty());
//! ```

pub mod atomic;
pub mod bpf;
mod buffer;
pub mod cleanup;
pub mod file;
mod fork;
mod mempolicy;
mod mmap;
mod perf;
mod prefetch;
mod sigbus;
mod syscall_stop;
mod uring;

/// Counted skips of the unit tests, shared with every crate's tests.
#[cfg(test)]
#[path = "../../cli/tests/support/skip.rs"]
mod test_skip;

use std::path::{Path, PathBuf};

pub use buffer::{
    pin_current_thread, usage, BufferReport, HugeBuffer, HugeSlice, Split, Usage, UsageOf,
    HUGE_PAGE,
};
pub use fork::fork_generation;
pub use mempolicy::{get_mempolicy, set_mempolicy, MemPolicy};
pub use mmap::{evict_from_page_cache, page_size, Access, BlockResidency, MappedFile};
pub use perf::{close_fds_in_background, close_in_background, SyscallCounter, TracepointCounter};
pub use prefetch::prefetch;
pub use sigbus::EXIT_FILE_CHANGED;
pub use syscall_stop::{syscall_stop, SyscallStop};
pub use uring::UringReader;

/// Errors from the wrappers: which call failed, on what, and the OS error.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// A system call failed; `path` is set when the call was about a file.
    #[error("{call}{} failed: {error}", path.as_ref().map(|p| format!(" on {}", p.display())).unwrap_or_default())]
    Call {
        call: &'static str,
        path: Option<PathBuf>,
        /// The OS error. It is part of the message, so it is not also the error's `source()`:
        /// a chain printed with `{:#}` names it once.
        error: std::io::Error,
    },
}

/// The CPUs the calling thread may run on, ascending: `sched_getaffinity(2)`.
///
/// See <https://man7.org/linux/man-pages/man2/sched_getaffinity.2.html>.
pub fn allowed_cpus() -> Result<Vec<usize>, SysError> {
    let set = rustix::thread::sched_getaffinity(None).map_err(|e| SysError::Call {
        call: "sched_getaffinity",
        path: None,
        error: e.into(),
    })?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect())
}

/// Size and use of a mounted filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Total size of the filesystem.
    pub total_bytes: u64,
    /// Bytes free for an unprivileged user.
    pub available_bytes: u64,
    /// Bytes in use (`total - free`, where free includes root's reserve).
    pub used_bytes: u64,
}

/// `statvfs(3)` on `path`: how big the filesystem holding it is and how full.
///
/// See <https://man7.org/linux/man-pages/man3/statvfs.3.html>.
pub fn statvfs(path: &Path) -> Result<FsUsage, SysError> {
    let st = rustix::fs::statvfs(path).map_err(|e| SysError::Call {
        call: "statvfs",
        path: Some(path.to_path_buf()),
        error: e.into(),
    })?;
    let block = st.f_frsize;
    Ok(FsUsage {
        total_bytes: st.f_blocks.saturating_mul(block),
        available_bytes: st.f_bavail.saturating_mul(block),
        used_bytes: st.f_blocks.saturating_sub(st.f_bfree).saturating_mul(block),
    })
}

/// Whether this process can create an io_uring instance: `io_uring_setup(2)` with two entries.
///
/// A kernel built without io_uring, `kernel.io_uring_disabled`, or a seccomp filter (Docker's
/// default profile blocks it) each make this fail; the error says which errno came back.
/// See <https://man7.org/linux/man-pages/man2/io_uring_setup.2.html>.
pub fn probe_io_uring() -> Result<(), SysError> {
    io_uring::IoUring::new(2)
        .map(drop)
        .map_err(|error| SysError::Call {
            call: "io_uring_setup",
            path: None,
            error,
        })
}

/// Runs `cmd` to completion with `fork(2)` + `execve(2)` + `wait4(2)`, the way a Python
/// `multiprocessing` fork start or an old-style launcher does, rather than the
/// `posix_spawn(3)` (`clone(CLONE_VM | CLONE_VFORK)`) that `std::process::Command` uses when it
/// can. Giving `Command` a `pre_exec` hook is what makes the standard library fork.
#[allow(unsafe_code)]
pub fn fork_exec_status(
    cmd: &mut std::process::Command,
) -> std::io::Result<std::process::ExitStatus> {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the forked child before exec; it does nothing, so it allocates
    // nothing, takes no lock and is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| Ok(()));
    }
    cmd.status()
}

/// Spawns `cmd` as a tracee of the calling thread: the child calls `ptrace(PTRACE_TRACEME)`
/// before exec, so it stops with `SIGTRAP` at its first instruction and the caller (which
/// must then `waitpid` it from this same thread) decides how to continue.
#[allow(unsafe_code)]
pub fn spawn_traced(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the forked child before exec and makes one system call, which
    // is async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            // SAFETY: PTRACE_TRACEME takes no pointers.
            let r = libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            if r == -1 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
    cmd.spawn()
}

/// Sets `SIGPIPE` back to ignored, as the Rust runtime sets it at start, so that a write into a
/// closed pipe is an `EPIPE` error rather than death. `std`'s `CommandExt::exec` resets it to
/// the default action just before `execve(2)`; when the exec fails, call this before writing
/// the error.
#[allow(unsafe_code)]
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN takes no handler function and cannot fail for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// The machine's physical memory in bytes (`sysinfo(2)`), or `None` if the call fails.
pub fn physical_memory() -> Option<u64> {
    let info = rustix::system::sysinfo();
    // `totalram` is a C `unsigned long`: 32 bits on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    u64::from(info.totalram).checked_mul(u64::from(info.mem_unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cpus_are_the_kernels_cpus_allowed_list() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
        // The kernel's own account of the same mask is the oracle.
        #[allow(clippy::disallowed_methods)]
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim();
        let expected: Vec<usize> = list
            .split(',')
            .flat_map(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()
            })
            .collect();
        assert_eq!(cpus, expected, "Cpus_allowed_list: {list}");
        // std counts the same mask, less any cgroup CPU quota: never more.
        let parallelism = std::thread::available_parallelism().unwrap().get();
        assert!(parallelism <= cpus.len(), "{parallelism} > {}", cpus.len());
    }

    #[test]
    fn statvfs_of_root_is_consistent() {
        let usage = statvfs(Path::new("/")).unwrap();
        assert!(usage.total_bytes > 0);
        assert!(usage.used_bytes <= usage.total_bytes);
        assert!(usage.available_bytes <= usage.total_bytes);
    }

    #[test]
    fn fork_exec_runs_the_command_and_reports_its_status() {
        let ok = fork_exec_status(&mut std::process::Command::new("/bin/true")).unwrap();
        assert!(ok.success());
        let bad = fork_exec_status(&mut std::process::Command::new("/bin/false")).unwrap();
        assert_eq!(bad.code(), Some(1));
        assert!(fork_exec_status(&mut std::process::Command::new("/nonexistent/osml")).is_err());
    }

    #[test]
    fn statvfs_names_the_missing_path() {
        let err = statvfs(Path::new("/nonexistent/osml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("statvfs on /nonexistent/osml"), "{msg}");
    }
}
