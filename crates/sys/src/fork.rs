//! [`fork_generation`]: how many times this process's ancestry forked since it registered,
//! read with one atomic load, so that objects that own threads can tell they are in a child.
//!
//! # Safety
//!
//! `pthread_atfork(3)` registers a child handler that only increments an atomic, which is
//! async-signal-safe and allowed after `fork` in a multi-threaded process.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static FORKS: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

extern "C" fn in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// A number that changes in a child process after `fork(2)` (Python's `os.fork`,
/// multiprocessing's fork start method). The first call registers the handler; call it
/// once when creating the object to compare against later. No system call after the first.
pub fn fork_generation() -> u64 {
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler with no prepare or parent handler; the handler
        // is a plain `extern "C" fn` that lives for the whole program.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        }
    });
    FORKS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_sees_a_new_generation() {
        let before = fork_generation();
        // SAFETY: the child only reads an atomic and calls _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = i32::from(fork_generation() == before + 1);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        unsafe { libc::waitpid(pid, &raw mut status, 0) };
        assert!(libc::WIFEXITED(status));
        assert_eq!(
            libc::WEXITSTATUS(status),
            1,
            "the child saw the same generation"
        );
        assert_eq!(
            fork_generation(),
            before,
            "the parent's generation is unchanged"
        );
    }
}
