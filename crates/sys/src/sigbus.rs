//! A guard for mapped files that change size under us.
//!
//! Reading a mapped page past the end of a file that was truncated after `mmap` raises
//! `SIGBUS`, which by default kills the process with a bare "Bus error". osml cannot make
//! such a read succeed, but it can say what happened: every [`crate::MappedFile`] registers
//! its address range here, and a `SIGBUS` handler that finds the faulting address in a
//! registered range prints which file changed, and how to avoid it, then exits with status
//! [`EXIT_FILE_CHANGED`]. A `SIGBUS` anywhere else is passed to the action that was installed
//! before osml's (the program's own handler, or the default), and the guard stays armed.
//!
//! The table of ranges grows without bound: chunks of slots are linked, append-only, and never
//! freed, so the handler can walk them while another thread registers a mapping. A slot is
//! reused after its mapping is dropped; each slot is a seqlock — the writer makes its sequence
//! odd, writes, and makes it even again; the handler reads the sequence, the fields and the
//! sequence again, and trusts the fields only if both reads are the same even number. Every
//! field, the path's bytes included, is an atomic, so no read races a write.
//!
//! # Safety
//!
//! The handler only loads atomics, calls `write(2)`, `_exit(2)`, `sigaction(2)`, `raise(3)`
//! and the previous handler, all async-signal-safe; it saves and restores `errno`. The
//! previous action is published (release) before osml's handler is installed, and read with
//! acquire; chunks are leaked, so a pointer read in the handler stays valid.
#![allow(unsafe_code)]

use std::sync::atomic::{fence, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// Exit status after a mapped file changed under the process (`EX_IOERR` of sysexits.h).
pub const EXIT_FILE_CHANGED: i32 = 74;

// Small enough to build on the stack before boxing (each slot holds a 512-byte path).
const CHUNK: usize = 16;
const PATH_MAX: usize = 512;
/// How often the handler re-reads a slot that a writer is changing before it moves on.
const READ_TRIES: usize = 1000;

struct Slot {
    seq: AtomicUsize,
    start: AtomicUsize,
    len: AtomicUsize,
    path_len: AtomicUsize,
    path: [AtomicU8; PATH_MAX],
}

struct Chunk {
    slots: [Slot; CHUNK],
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const BYTE: AtomicU8 = AtomicU8::new(0);
        #[allow(clippy::declare_interior_mutable_const)]
        const EMPTY: Slot = Slot {
            seq: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            path_len: AtomicUsize::new(0),
            path: [BYTE; PATH_MAX],
        };
        Self {
            slots: [EMPTY; CHUNK],
            next: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

static HEAD: Chunk = Chunk::new();
/// Serialises writers (register, unregister); the handler never takes it.
static REGISTRY: Mutex<()> = Mutex::new(());
static INSTALL: Once = Once::new();
/// The action that was installed before osml's handler (leaked; null if none was read).
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

/// Every chunk, head first.
fn chunks() -> impl Iterator<Item = &'static Chunk> {
    std::iter::successors(Some(&HEAD), |c| {
        let next = c.next.load(Ordering::Acquire);
        // SAFETY: chunks are leaked boxes, never freed; a non-null pointer is a live chunk.
        (!next.is_null()).then(|| unsafe { &*next })
    })
}

/// A slot that is taken or released: writers hold REGISTRY.
fn write_slot(slot: &Slot, start: usize, len: usize, path: &[u8]) {
    slot.seq.fetch_add(1, Ordering::Relaxed); // odd: being written
    fence(Ordering::Release);
    let n = path.len().min(PATH_MAX);
    for (cell, &b) in slot.path.iter().zip(&path[..n]) {
        cell.store(b, Ordering::Relaxed);
    }
    slot.path_len.store(n, Ordering::Relaxed);
    slot.start.store(start, Ordering::Relaxed);
    slot.len.store(len, Ordering::Relaxed);
    slot.seq.fetch_add(1, Ordering::Release); // even: stable
}

/// A handle on a registered range; [`unregister`] releases it.
pub(crate) struct Registration(&'static Slot);

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("start", &self.0.start.load(Ordering::Relaxed))
            .field("len", &self.0.len.load(Ordering::Relaxed))
            .finish()
    }
}

/// Registers `[start, start + len)` as a mapping of `path`.
pub(crate) fn register(start: usize, len: usize, path: &std::path::Path) -> Registration {
    INSTALL.call_once(install);
    let _g = REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let slot = chunks()
        .flat_map(|c| c.slots.iter())
        .find(|s| s.len.load(Ordering::Relaxed) == 0)
        .unwrap_or_else(|| {
            let fresh: &'static Chunk = Box::leak(Box::new(Chunk::new()));
            let last = chunks().last().unwrap_or(&HEAD);
            last.next
                .store(std::ptr::from_ref(fresh).cast_mut(), Ordering::Release);
            &fresh.slots[0]
        });
    write_slot(slot, start, len, path.as_os_str().as_encoded_bytes());
    Registration(slot)
}

/// Releases a range registered by [`register`], before its mapping goes.
pub(crate) fn unregister(r: &Registration) {
    let _g = REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    write_slot(r.0, 0, 0, &[]);
}

fn install() {
    // SAFETY: zeroed sigactions are valid; we read the current action, publish it, then
    // install ours with an empty mask. If another thread changed the action in between, the
    // one actually replaced is published instead.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &raw mut old) != 0 {
            return;
        }
        PREVIOUS.store(Box::into_raw(Box::new(old)), Ordering::Release);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&raw mut action.sa_mask);
        let mut replaced: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &raw const action, &raw mut replaced) == 0
            && replaced.sa_sigaction != old.sa_sigaction
        {
            PREVIOUS.store(Box::into_raw(Box::new(replaced)), Ordering::Release);
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

/// The registered range holding `addr`, read consistently: `(start, path bytes, path length)`.
fn find(addr: usize, path: &mut [u8; PATH_MAX]) -> Option<(usize, usize)> {
    for chunk in chunks() {
        for slot in &chunk.slots {
            for _ in 0..READ_TRIES {
                let before = slot.seq.load(Ordering::Acquire);
                if before % 2 == 1 {
                    std::hint::spin_loop();
                    continue;
                }
                let start = slot.start.load(Ordering::Relaxed);
                let len = slot.len.load(Ordering::Relaxed);
                let hit = len != 0 && addr >= start && addr - start < len;
                let n = slot.path_len.load(Ordering::Relaxed).min(PATH_MAX);
                if hit {
                    for (out, cell) in path.iter_mut().zip(&slot.path[..n]) {
                        *out = cell.load(Ordering::Relaxed);
                    }
                }
                fence(Ordering::Acquire);
                if slot.seq.load(Ordering::Relaxed) != before {
                    continue; // changed while read: read again
                }
                if hit {
                    return Some((start, n));
                }
                break;
            }
        }
    }
    None
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: errno is thread-local; saved here and restored before returning.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // Only a fault the kernel raised has a meaningful address (si_code > 0); kill(2),
    // raise(3) and sigqueue(3) give codes <= 0.
    if code > 0 {
        let mut path = [0u8; PATH_MAX];
        if let Some((start, n)) = find(addr, &mut path) {
            let mut digits = [0u8; 24];
            write_all(b"osml: fatal: ");
            write_all(&path[..n]);
            write_all(b" changed while mapped: reading byte ");
            write_all(decimal(addr - start, &mut digits));
            write_all(
                b" failed (SIGBUS), so the file was truncated or rewritten in place while in use.\n\
                  osml: hint: never modify a dataset a job is reading; write a new file and rename it into place (osml data pack does).\n",
            );
            // SAFETY: _exit is async-signal-safe and ends the process without unwinding.
            unsafe { libc::_exit(EXIT_FILE_CHANGED) };
        }
    }
    chain(sig, info, ctx, code);
    // SAFETY: restoring the errno saved above.
    unsafe { *libc::__errno_location() = errno };
}

/// Passes a `SIGBUS` that is not about osml's mappings to the action installed before ours.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, code: i32) {
    let previous = PREVIOUS.load(Ordering::Acquire);
    // SAFETY: a published previous action is a leaked, never-freed sigaction.
    let action = (!previous.is_null()).then(|| unsafe { *previous });
    let handler = action.map_or(libc::SIG_DFL, |a| a.sa_sigaction);
    let siginfo = action.is_some_and(|a| a.sa_flags & libc::SA_SIGINFO != 0);
    match handler {
        libc::SIG_IGN if code <= 0 => {} // a sent signal, ignored as before
        libc::SIG_DFL | libc::SIG_IGN => {
            // The default action ends the process, as it would have without osml. For a fault,
            // returning re-runs the access, which faults again under the default action; a
            // sent signal is raised again, and is delivered when the handler returns.
            // SAFETY: resetting SIGBUS to its default, then raising it; both async-signal-safe.
            unsafe {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
                if code <= 0 {
                    libc::raise(libc::SIGBUS);
                }
            }
        }
        f if siginfo => {
            // SAFETY: the program installed this as an SA_SIGINFO handler.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(f) };
            f(sig, info, ctx);
        }
        f => {
            // SAFETY: the program installed this as a plain handler.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(f) };
            f(sig);
        }
    }
}
