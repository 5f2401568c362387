//! Counting system calls of a whole process tree with `ptrace`, as `strace -c -f` does: every
//! thread of every descendant stops at each syscall entry and exit; the tracer asks the kernel
//! which of the two each stop is and the call's number (`PTRACE_GET_SYSCALL_INFO`, so it works
//! on every architecture and stays in step when a signal interrupts a call), and records the
//! time from entry to exit. The fallback of [`crate::kernel`]: it slows a syscall-heavy job
//! by two orders of magnitude.
//!
//! The loop must run on the thread that spawned the command (ptrace requests come from the
//! tracer thread). Sampling `/proc` can run beside it on another thread.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::time::Instant;

use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::Serialize;

use osml_sys::SyscallStop;

use crate::TraceError;

/// Calls and time of one syscall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SyscallStat {
    pub count: u64,
    /// Seconds between entry and exit stops, summed (includes the tracer's own stop latency).
    pub seconds: f64,
}

/// What the tracer saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyscallCounts {
    /// Syscall name → calls and time, for the whole tree.
    pub by_name: BTreeMap<String, SyscallStat>,
    /// Process (thread group) id → calls.
    pub by_pid: BTreeMap<i32, u64>,
}

fn name_of(nr: u64) -> String {
    usize::try_from(nr)
        .ok()
        .and_then(syscalls::Sysno::new)
        .map_or_else(|| format!("syscall_{nr}"), |s| s.name().to_owned())
}

/// The thread group (process) of a thread, from `/proc/TID/status`.
fn tgid_of(tid: i32, host: &osml_host::HostRoot) -> i32 {
    host.read(&format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

/// Runs `cmd` under ptrace, following forks, vforks, clones and execs, until every traced
/// task has exited. `started` receives the child's pid as soon as it exists. Returns the
/// counts and the child's exit status (128 + signal when killed).
pub fn run(
    cmd: &[OsString],
    started: impl FnOnce(i32),
) -> Result<(SyscallCounts, i32), TraceError> {
    let mut command = std::process::Command::new(&cmd[0]);
    command.args(&cmd[1..]);
    let child = osml_sys::spawn_traced(&mut command).map_err(|e| TraceError::Spawn {
        cmd: cmd[0].to_string_lossy().into_owned(),
        error: e,
    })?;
    let root = Pid::from_raw(child.id().cast_signed());
    started(root.as_raw());
    let ptrace_err = |e: nix::Error| TraceError::Ptrace(e.to_string());
    // The child stops with SIGTRAP at exec.
    waitpid(root, None).map_err(ptrace_err)?;
    ptrace::setoptions(
        root,
        ptrace::Options::PTRACE_O_TRACESYSGOOD
            | ptrace::Options::PTRACE_O_TRACEFORK
            | ptrace::Options::PTRACE_O_TRACEVFORK
            | ptrace::Options::PTRACE_O_TRACECLONE
            | ptrace::Options::PTRACE_O_TRACEEXEC
            | ptrace::Options::PTRACE_O_EXITKILL,
    )
    .map_err(ptrace_err)?;
    ptrace::syscall(root, None).map_err(ptrace_err)?;

    let host = osml_host::HostRoot::live();
    let mut counts = SyscallCounts::default();
    // The command's own execve completed before the first stop (PTRACE_TRACEME stops after
    // exec): count it, as strace -c does, with no time.
    counts.by_name.entry("execve".to_owned()).or_default().count += 1;
    counts.by_pid.insert(root.as_raw(), 1);
    // Per thread: the syscall it is inside (number, entry time), if any.
    let mut inside: HashMap<Pid, Option<(u64, Instant)>> = HashMap::new();
    let mut tgid: HashMap<Pid, i32> = HashMap::new();
    let mut exit_status = 0;
    loop {
        let status = match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(s) => s,
            Err(nix::errno::Errno::ECHILD) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(ptrace_err(e)),
        };
        match status {
            WaitStatus::PtraceSyscall(pid) => {
                let state = inside.entry(pid).or_insert(None);
                match osml_sys::syscall_stop(pid.as_raw()) {
                    Ok(SyscallStop::Entry { nr }) => *state = Some((nr, Instant::now())),
                    Ok(SyscallStop::Exit) => {
                        // An exit without a recorded entry (the thread was already inside a
                        // call when it was first seen) is not counted.
                        if let Some((nr, t)) = state.take() {
                            let s = counts.by_name.entry(name_of(nr)).or_default();
                            s.count += 1;
                            s.seconds += t.elapsed().as_secs_f64();
                            let g = *tgid
                                .entry(pid)
                                .or_insert_with(|| tgid_of(pid.as_raw(), &host));
                            *counts.by_pid.entry(g).or_default() += 1;
                        }
                    }
                    // A thread that vanished (killed meanwhile) or a stop of another kind.
                    Ok(SyscallStop::Seccomp { .. } | SyscallStop::Other) | Err(_) => {}
                }
                let _ = ptrace::syscall(pid, None);
            }
            WaitStatus::PtraceEvent(pid, _, event) => {
                // After exec the thread is in the middle of execve: its exit stop follows.
                if event == libc_event_exec() {
                    tgid.remove(&pid);
                }
                let _ = ptrace::syscall(pid, None);
            }
            WaitStatus::Stopped(pid, sig) => {
                // New tasks start with SIGSTOP; other signals are delivered.
                let deliver = if sig == Signal::SIGSTOP && !inside.contains_key(&pid) {
                    inside.insert(pid, None);
                    None
                } else if sig == Signal::SIGTRAP {
                    None
                } else {
                    Some(sig)
                };
                let _ = ptrace::syscall(pid, deliver);
            }
            WaitStatus::Exited(pid, code) => {
                // A thread or process that exits inside `exit_group` never reaches its exit
                // stop: count the call it was in.
                if let Some(Some((nr, t))) = inside.remove(&pid) {
                    let s = counts.by_name.entry(name_of(nr)).or_default();
                    s.count += 1;
                    s.seconds += t.elapsed().as_secs_f64();
                    let g = tgid.get(&pid).copied().unwrap_or(pid.as_raw());
                    *counts.by_pid.entry(g).or_default() += 1;
                }
                if pid == root {
                    exit_status = code;
                }
            }
            WaitStatus::Signaled(pid, sig, _) => {
                inside.remove(&pid);
                if pid == root {
                    exit_status = 128 + sig as i32;
                }
            }
            _ => {}
        }
    }
    Ok((counts, exit_status))
}

const fn libc_event_exec() -> i32 {
    // PTRACE_EVENT_EXEC (include/uapi/linux/ptrace.h).
    4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_numbers() {
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(name_of(0), "read");
            assert_eq!(name_of(110), "getppid");
        }
        assert_eq!(name_of(u64::MAX), format!("syscall_{}", u64::MAX));
    }
}
