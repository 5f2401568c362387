//! A guard for mapped files that change size under us.
//!
//! Reading a mapped page past the end of a file that was truncated after `mmap` raises
//! `SIGBUS`, which by default kills the process with a bare "Bus error". osml cannot make
//! such a read succeed, but it can say what happened: every [`crate::MappedFile`] registers
//! its address range here, and a `SIGBUS` handler that finds the faulting address in a
//! registered range prints which file changed, and how to avoid it, then exits with status
//! [`EXIT_FILE_CHANGED`]. A `SIGBUS` anywhere else gets the previous handler back and re-faults
//! as before.
//!
//! # Safety
//!
//! The handler only reads atomics and fixed buffers that were fully written before their
//! slot was published (release/acquire), calls `write(2)` and `_exit(2)`, all async-signal-safe.
//! Slots are written only under a mutex by normal code, never by the handler.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// Exit status after a mapped file changed under the process (`EX_IOERR` of sysexits.h).
pub const EXIT_FILE_CHANGED: i32 = 74;

const SLOTS: usize = 128;
const PATH_MAX: usize = 512;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    path_len: AtomicUsize,
    path: UnsafeCell<[u8; PATH_MAX]>,
}

// SAFETY: `path` is written only while the slot is unpublished (len == 0) under REGISTRY's
// mutex, and read only after an acquire load sees it published.
unsafe impl Sync for Slot {}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    path_len: AtomicUsize::new(0),
    path: UnsafeCell::new([0; PATH_MAX]),
};

static SLOTS_TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static REGISTRY: Mutex<()> = Mutex::new(());
static INSTALL: Once = Once::new();
static mut PREVIOUS: Option<libc::sigaction> = None;

/// Registers `[start, start + len)` as a mapping of `path`; returns the slot to release, or
/// `None` when the table is full (the mapping then just goes unguarded).
pub(crate) fn register(start: usize, len: usize, path: &std::path::Path) -> Option<usize> {
    INSTALL.call_once(install);
    let _g = REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let i = SLOTS_TABLE
        .iter()
        .position(|s| s.len.load(Ordering::Acquire) == 0)?;
    let slot = &SLOTS_TABLE[i];
    let bytes = path.as_os_str().as_encoded_bytes();
    let n = bytes.len().min(PATH_MAX);
    // SAFETY: the slot is unpublished and we hold the registry lock: nobody reads `path`.
    unsafe { (&mut *slot.path.get())[..n].copy_from_slice(&bytes[..n]) };
    slot.path_len.store(n, Ordering::Relaxed);
    slot.start.store(start, Ordering::Relaxed);
    slot.len.store(len, Ordering::Release);
    Some(i)
}

/// Releases a slot taken by [`register`].
pub(crate) fn unregister(i: usize) {
    let _g = REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    SLOTS_TABLE[i].len.store(0, Ordering::Release);
}

fn install() {
    // SAFETY: a zeroed sigaction is valid; we fill handler, flags and an empty mask, and keep
    // the previous action to restore for faults that are not ours.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&raw mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &raw const action, &raw mut old) == 0 {
            PREVIOUS = Some(old);
        }
    }
}

fn write_all(bytes: &[u8]) {
    // SAFETY: write(2) on stderr with a valid buffer; async-signal-safe.
    unsafe {
        libc::write(2, bytes.as_ptr().cast(), bytes.len());
    }
}

/// Formats `n` in decimal into `buf` without allocating; returns the digits.
fn decimal(mut n: usize, buf: &mut [u8; 24]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789"[n % 10];
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &SLOTS_TABLE {
        let len = slot.len.load(Ordering::Acquire);
        let start = slot.start.load(Ordering::Relaxed);
        if len == 0 || addr < start || addr >= start + len {
            continue;
        }
        let n = slot.path_len.load(Ordering::Relaxed);
        // SAFETY: published slot; its path bytes were written before the release store.
        let path = unsafe { &(&*slot.path.get())[..n] };
        let mut digits = [0u8; 24];
        write_all(b"osml: fatal: ");
        write_all(path);
        write_all(b" changed while mapped: reading byte ");
        write_all(decimal(addr - start, &mut digits));
        write_all(
            b" failed (SIGBUS), so the file was truncated or rewritten in place while in use.\n\
              osml: hint: never modify a dataset a job is reading; write a new file and rename it into place (osml data pack does).\n",
        );
        // SAFETY: _exit is async-signal-safe and ends the process without unwinding.
        unsafe { libc::_exit(EXIT_FILE_CHANGED) };
    }
    // Not one of our mappings: put the previous action back; returning re-runs the faulting
    // access, which then gets the default (or the program's own) SIGBUS handling.
    // SAFETY: restoring the action saved at install time.
    unsafe {
        if let Some(old) = PREVIOUS {
            libc::sigaction(libc::SIGBUS, &raw const old, std::ptr::null_mut());
        } else {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        }
    }
}
