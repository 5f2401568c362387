//! [`HugeBuffer`]: anonymous memory aligned to 2 MiB, with transparent huge pages requested
//! and optionally locked in RAM.
//!
//! # Safety
//!
//! The buffer owns a private anonymous mapping from creation to drop; nothing else refers to
//! it, so handing out `&[u8]` / `&mut [u8]` under Rust's borrow rules is sound, and so is
//! sending it to another thread.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr::NonNull;

use rustix::mm::{Advice, MapFlags, ProtFlags};

use crate::SysError;

/// The huge page size osml aligns to (x86-64 and arm64 with 4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// What happened to the requests made when a buffer was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferReport {
    /// `madvise(MADV_HUGEPAGE)` was accepted (THP `never` or no THP support refuse it).
    pub huge_pages: bool,
    /// `mlock` was requested and succeeded.
    pub locked: bool,
    /// Why locking failed (the memlock limit, usually), when it was requested.
    pub lock_error: Option<String>,
}

/// A zeroed, 2 MiB-aligned, private anonymous mapping.
#[derive(Debug)]
pub struct HugeBuffer {
    ptr: NonNull<u8>,
    len: usize,
    map_len: usize,
}

// SAFETY: the mapping is owned exclusively by this value (see the module's safety section).
unsafe impl Send for HugeBuffer {}
// SAFETY: shared references only read the bytes; writes need `&mut self`.
unsafe impl Sync for HugeBuffer {}

impl HugeBuffer {
    /// Maps `len` bytes (rounded up to whole huge pages), asks for transparent huge pages
    /// (`madvise(MADV_HUGEPAGE)`) and, if `lock`, locks them (`mlock(2)`). Refused advice or
    /// locking is reported, not an error: the buffer works either way.
    pub fn new(len: usize, lock: bool) -> Result<(Self, BufferReport), SysError> {
        Self::with_pages(len, true, lock)
    }

    /// Like [`HugeBuffer::new`], but `huge: false` asks for base pages only
    /// (`MADV_NOHUGEPAGE`), to measure what huge pages change.
    pub fn with_pages(
        len: usize,
        huge: bool,
        lock: bool,
    ) -> Result<(Self, BufferReport), SysError> {
        let err = |call, e: rustix::io::Errno| SysError::Call {
            call,
            path: None,
            error: e.into(),
        };
        // Sizes past isize::MAX cannot be one slice (nor one mapping): refused, not wrapped.
        let map_len = len
            .max(1)
            .checked_next_multiple_of(HUGE_PAGE)
            .filter(|&m| isize::try_from(m + HUGE_PAGE).is_ok())
            .ok_or_else(|| err("mmap", rustix::io::Errno::NOMEM))?;
        // Over-allocate by one huge page, then trim the ends so the start is aligned.
        let raw_len = map_len + HUGE_PAGE;
        // SAFETY: a fresh anonymous private mapping at an address the kernel picks; no
        // existing memory is affected.
        let raw = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                raw_len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(|e| err("mmap", e))?;
        let addr = raw as usize;
        let start = addr.next_multiple_of(HUGE_PAGE);
        let head = start - addr;
        let tail = raw_len - head - map_len;
        // SAFETY: both ranges lie inside the mapping just created and outside the part kept.
        unsafe {
            if head > 0 {
                rustix::mm::munmap(raw, head).map_err(|e| err("munmap", e))?;
            }
            if tail > 0 {
                rustix::mm::munmap((start + map_len) as *mut c_void, tail)
                    .map_err(|e| err("munmap", e))?;
            }
        }
        let ptr =
            NonNull::new(start as *mut u8).ok_or_else(|| err("mmap", rustix::io::Errno::NOMEM))?;
        let buf = Self { ptr, len, map_len };
        let advice = if huge {
            Advice::LinuxHugepage
        } else {
            Advice::LinuxNoHugepage
        };
        // SAFETY: advice and locking over exactly the mapping this value owns.
        let advised =
            unsafe { rustix::mm::madvise(buf.ptr.as_ptr().cast(), map_len, advice) }.is_ok();
        let huge_pages = huge && advised;
        let (locked, lock_error) = if lock {
            // SAFETY: as above.
            match unsafe { rustix::mm::mlock(buf.ptr.as_ptr().cast(), map_len) } {
                Ok(()) => (true, None),
                Err(e) => (
                    false,
                    Some(format!("mlock of {map_len} bytes failed: {e} (raise `ulimit -l`, or run without locking)")),
                ),
            }
        } else {
            (false, None)
        };
        Ok((
            buf,
            BufferReport {
                huge_pages,
                locked,
                lock_error,
            },
        ))
    }

    /// The usable bytes (as requested, not rounded).
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len <= map_len` bytes of an owned, initialised (zero-filled) mapping.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for HugeBuffer {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the range this value owns, once. Locked pages are unlocked
        // by the unmap.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.map_len) };
    }
}

/// What [`HugeBuffer::split`] returns.
#[derive(Debug)]
pub struct Split {
    pub slices: Vec<HugeSlice>,
    pub report: BufferReport,
    /// `(address, length)` of the whole mapping.
    pub region: (usize, usize),
}

/// One of the equal, page-aligned slices of a [`HugeBuffer`] made by [`HugeBuffer::split`].
/// Each slice is owned exclusively; the buffer is unmapped when the last slice is dropped.
#[derive(Debug)]
pub struct HugeSlice {
    arena: std::sync::Arc<HugeBuffer>,
    offset: usize,
    len: usize,
}

impl HugeBuffer {
    /// Carves one mapping into `count` slices of `len` bytes, each starting on a page
    /// boundary, so many small buffers share huge pages instead of rounding each up to 2 MiB.
    /// Returns the slices, the report of [`HugeBuffer::new`], and the whole mapping's address
    /// range (to register it once with a device driver), as a [`Split`].
    pub fn split(len: usize, count: usize, lock: bool) -> Result<Split, SysError> {
        let too_large = || SysError::Call {
            call: "mmap",
            path: None,
            error: rustix::io::Errno::NOMEM.into(),
        };
        let stride = len
            .max(1)
            .checked_next_multiple_of(crate::page_size())
            .ok_or_else(too_large)?;
        let total = stride.checked_mul(count.max(1)).ok_or_else(too_large)?;
        let (buf, report) = Self::new(total, lock)?;
        let region = (buf.ptr.as_ptr() as usize, buf.map_len);
        let arena = std::sync::Arc::new(buf);
        let slices = (0..count)
            .map(|i| HugeSlice {
                arena: std::sync::Arc::clone(&arena),
                offset: i * stride,
                len,
            })
            .collect();
        Ok(Split {
            slices,
            report,
            region,
        })
    }
}

impl HugeSlice {
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `[offset, offset + len)` lies inside the arena's mapping (split() made it
        // so), no other slice overlaps it, and the arena outlives `self` through the Arc.
        unsafe { std::slice::from_raw_parts(self.arena.ptr.as_ptr().add(self.offset), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above; slices never overlap and each is owned by one `HugeSlice`, so
        // `&mut self` gives exclusive access to these bytes even though the arena is shared.
        unsafe {
            std::slice::from_raw_parts_mut(self.arena.ptr.as_ptr().add(self.offset), self.len)
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Pins the calling thread to `cpus` (`sched_setaffinity(2)`).
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), SysError> {
    let mut set = rustix::thread::CpuSet::new();
    for &c in cpus {
        if c < rustix::thread::CpuSet::MAX_CPU {
            set.set(c);
        }
    }
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| SysError::Call {
        call: "sched_setaffinity",
        path: None,
        error: e.into(),
    })
}

/// Resource use of the process or the calling thread (`getrusage(2)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub minor_faults: u64,
    pub major_faults: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// User plus system CPU time, in microseconds.
    pub cpu_us: u64,
}

/// Whose use to read.
#[derive(Debug, Clone, Copy)]
pub enum UsageOf {
    Process,
    Thread,
}

pub fn usage(of: UsageOf) -> Result<Usage, SysError> {
    let who = match of {
        UsageOf::Process => libc::RUSAGE_SELF,
        UsageOf::Thread => libc::RUSAGE_THREAD,
    };
    let mut ru: libc::rusage = unsafe_zeroed_rusage();
    // SAFETY: `ru` is a valid, writable rusage struct for the kernel to fill.
    let rc = unsafe { libc::getrusage(who, &raw mut ru) };
    if rc != 0 {
        return Err(SysError::Call {
            call: "getrusage",
            path: None,
            error: std::io::Error::last_os_error(),
        });
    }
    let n = |v: libc::c_long| u64::try_from(v).unwrap_or(0);
    let us = |t: libc::timeval| n(t.tv_sec) * 1_000_000 + n(t.tv_usec);
    Ok(Usage {
        minor_faults: n(ru.ru_minflt),
        major_faults: n(ru.ru_majflt),
        voluntary_switches: n(ru.ru_nvcsw),
        involuntary_switches: n(ru.ru_nivcsw),
        cpu_us: us(ru.ru_utime) + us(ru.ru_stime),
    })
}

fn unsafe_zeroed_rusage() -> libc::rusage {
    // SAFETY: rusage is plain integers and timevals; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_writable() {
        let (mut b, report) = HugeBuffer::new(3 << 20, false).unwrap();
        assert_eq!(b.as_slice().as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(b.len(), 3 << 20);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[5] = 7;
        assert_eq!(b.as_slice()[5], 7);
        assert!(!report.locked && report.lock_error.is_none());
        let moved = std::thread::spawn(move || b.as_slice()[5]).join().unwrap();
        assert_eq!(moved, 7);
    }

    #[test]
    fn split_slices_are_disjoint_aligned_and_outlive_each_other() {
        let Split {
            mut slices,
            region: (start, len),
            ..
        } = HugeBuffer::split(5000, 3, false).unwrap();
        assert_eq!(start % HUGE_PAGE, 0);
        assert!(len >= 3 * 8192);
        for (i, s) in slices.iter_mut().enumerate() {
            assert_eq!(s.len(), 5000);
            assert_eq!(s.as_slice().as_ptr() as usize % crate::page_size(), 0);
            s.as_mut_slice().fill(u8::try_from(i + 1).unwrap());
        }
        let last = slices.pop().unwrap();
        drop(slices); // the arena stays mapped for the remaining slice
        let moved = std::thread::spawn(move || last.as_slice().iter().all(|&b| b == 3))
            .join()
            .unwrap();
        assert!(moved);
    }

    #[test]
    fn sizes_past_isize_max_are_refused_not_wrapped() {
        assert!(HugeBuffer::new(usize::MAX - 5, false).is_err());
        assert!(HugeBuffer::new(isize::MAX as usize, false).is_err());
        assert!(HugeBuffer::split(1 << 40, 1 << 30, false).is_err());
        assert!(HugeBuffer::split(usize::MAX, 2, false).is_err());
    }

    #[test]
    fn locking_is_reported() {
        let (_b, report) = HugeBuffer::new(4096, true).unwrap();
        // Either locked, or refused with the reason; never an error.
        assert!(
            report.locked
                || report
                    .lock_error
                    .as_deref()
                    .is_some_and(|e| e.contains("mlock"))
        );
    }

    #[test]
    fn usage_counts_faults() {
        let before = usage(UsageOf::Thread).unwrap();
        let v = vec![1u8; 8 << 20];
        assert_eq!(v[4 << 20], 1);
        let after = usage(UsageOf::Thread).unwrap();
        assert!(after.minor_faults > before.minor_faults);
        assert!(usage(UsageOf::Process).unwrap().cpu_us > 0);
    }

    #[test]
    fn pinning_to_an_allowed_cpu() {
        let cpus = crate::allowed_cpus().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(&cpus[..1]).unwrap();
            assert_eq!(crate::allowed_cpus().unwrap(), cpus[..1]);
        })
        .join()
        .unwrap();
    }
}
