//! What a thread stopped at a ptrace system-call stop is doing: `PTRACE_GET_SYSCALL_INFO`
//! (Linux 5.3), which says whether the stop is an entry or an exit and gives the call's number
//! on every architecture, so a tracer needs neither registers nor its own entry/exit toggle
//! (which a signal interrupting a call, or an attach in the middle of one, puts out of step).
//!
//! # Safety
//!
//! The request writes at most the given size into a buffer owned by the caller; the buffer is
//! read as bytes at the offsets of `struct ptrace_syscall_info` (`include/uapi/linux/ptrace.h`:
//! `u8 op; u8 pad[3]; u32 arch; u64 instruction_pointer; u64 stack_pointer;` then the union,
//! whose `entry.nr` is the first `u64`), so no union is read through a typed field.
#![allow(unsafe_code)]

use crate::SysError;

/// `PTRACE_GET_SYSCALL_INFO` (`include/uapi/linux/ptrace.h`).
const PTRACE_GET_SYSCALL_INFO: libc::c_uint = 0x420e;
const OP_ENTRY: u8 = 1;
const OP_EXIT: u8 = 2;
const OP_SECCOMP: u8 = 3;

/// The kind of a system-call stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallStop {
    /// Entering system call `nr`.
    Entry { nr: u64 },
    /// Leaving the call the thread entered.
    Exit,
    /// A seccomp stop before system call `nr`.
    Seccomp { nr: u64 },
    /// Not a system-call stop.
    Other,
}

/// Asks the kernel what the stopped tracee `tid` is doing (`tid` must be in a ptrace stop of
/// this thread's tracing).
pub fn syscall_stop(tid: i32) -> Result<SyscallStop, SysError> {
    let mut info = [0u8; 88];
    // SAFETY: the kernel writes at most `info.len()` bytes into `info`, which lives across
    // the call.
    let r = unsafe {
        libc::ptrace(
            PTRACE_GET_SYSCALL_INFO,
            tid as libc::pid_t,
            info.len(),
            info.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(SysError::Call {
            call: "ptrace(PTRACE_GET_SYSCALL_INFO)",
            path: None,
            error: std::io::Error::last_os_error(),
        });
    }
    let nr = u64::from_ne_bytes(info[24..32].try_into().unwrap_or([0; 8]));
    Ok(match info[0] {
        OP_ENTRY => SyscallStop::Entry { nr },
        OP_EXIT => SyscallStop::Exit,
        OP_SECCOMP => SyscallStop::Seccomp { nr },
        _ => SyscallStop::Other,
    })
}
