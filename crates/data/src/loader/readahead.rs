//! The read-ahead thread, so that workers make no system calls of their own.
//!
//! - It parks until the first batch is out (the residency scan competes for a CPU and holds
//!   the mmap lock in slices), then scans the page cache in 64 KiB blocks
//!   ([`osml_sys::MappedFile::residency_blocks`]: a bit per block, not a byte per page).
//! - Mostly (≥ 90%) cached: with `populate` it fills the page tables once
//!   (`MADV_POPULATE_READ`, 8 MiB at a time) and ends; without, it just ends.
//! - Otherwise it gives `madvise(WILLNEED)` to the windows of the next `2 × prefetch` steps
//!   that touch a block that was not resident, then parks until the workers have claimed
//!   half of that horizon: a worker wakes it (one atomic load per step, `unpark` only when
//!   the horizon is crossed), never a timer. The residency is scanned again after 20 times
//!   the last scan's duration (at least 2 s), so rescanning costs at most 5% of a core.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::Shared;

const BLOCK: usize = 64 << 10;
const POPULATE_CHUNK: usize = 8 << 20;

/// How workers wake the read-ahead thread.
#[derive(Default)]
pub(crate) struct Waker {
    thread: OnceLock<Thread>,
    /// Wake the thread once a step at or past this is claimed (`u64::MAX`: it is not waiting).
    wake_at: AtomicU64,
    first_published: AtomicBool,
}

impl Waker {
    pub fn new() -> Self {
        Self {
            wake_at: AtomicU64::new(u64::MAX),
            ..Self::default()
        }
    }

    pub fn set_thread(&self, t: Thread) {
        let _ = self.thread.set(t);
    }

    /// A worker claimed `step`.
    pub fn claimed(&self, step: u64) {
        if step >= self.wake_at.load(Ordering::Relaxed) {
            self.wake_at.store(u64::MAX, Ordering::Relaxed);
            self.wake();
        }
    }

    /// A worker published its first step.
    pub fn published_first(&self) {
        if !self.first_published.swap(true, Ordering::Release) {
            self.wake();
        }
    }

    pub fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

impl Shared {
    pub(crate) fn read_ahead(&self) {
        let waker = &self.readahead;
        while !waker.first_published.load(Ordering::Acquire) && !self.stopping() {
            std::thread::park();
        }
        // Each shard's stream file, scanned and advised on its own.
        let files: Vec<&osml_sys::MappedFile> = self
            .mixture
            .parts()
            .iter()
            .flat_map(|p| p.dataset.shards().iter().map(crate::Shard::stream_file))
            .collect();
        let total: usize = files.iter().map(|f| f.len()).sum();
        let scan = || {
            let t = Instant::now();
            let blocks = files
                .iter()
                .map(|f| f.residency_blocks(BLOCK).ok())
                .collect::<Option<Vec<_>>>()?;
            Some((blocks, t.elapsed()))
        };
        let fraction = |blocks: &[osml_sys::BlockResidency]| {
            let resident: f64 = blocks
                .iter()
                .zip(&files)
                .map(|(b, f)| b.fraction() * f.len() as f64)
                .sum();
            resident / total.max(1) as f64
        };
        let Some((mut blocks, mut took)) = scan() else {
            return;
        };
        if fraction(&blocks) >= 0.9 {
            if self.populate {
                'files: for file in &files {
                    let mut at = 0;
                    while at < file.len() {
                        if self.stopping() {
                            break 'files;
                        }
                        let len = POPULATE_CHUNK.min(file.len() - at);
                        if file
                            .advise_range(osml_sys::Access::Populate, at, len)
                            .is_err()
                        {
                            break 'files; // kernels before 5.14 lack MADV_POPULATE_READ
                        }
                        self.populated_bytes
                            .fetch_add(len as u64, Ordering::Relaxed);
                        at += len;
                    }
                }
            }
            return;
        }
        let row = self.layout.row;
        let ahead = 2 * self.prefetch;
        let mut scanned = Instant::now();
        let mut next = 0u64;
        while !self.stopping() {
            let claimed = self.pool.claimed();
            let horizon = claimed + ahead;
            for step in next.max(claimed)..horizon {
                for j in 0..self.batch_size {
                    let Some((source, start)) = self.window(step, j) else {
                        continue;
                    };
                    let base = self.file_base[source];
                    for (shard, from, len) in self.dataset(source).byte_ranges(start, row) {
                        let shard = base + shard;
                        if !blocks[shard].is_resident(from, len) {
                            let _ =
                                files[shard].advise_range(osml_sys::Access::WillNeed, from, len);
                            self.willneed_calls.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            next = horizon;
            let rescan = (took * 20).max(Duration::from_secs(2));
            if scanned.elapsed() >= rescan {
                match scan() {
                    Some((b, _)) if fraction(&b) >= 0.9 => return, // cached since

                    Some((b, t)) => (blocks, took) = (b, t),
                    None => return,
                }
                scanned = Instant::now();
            }
            // Sleep until the workers are half-way to the horizon (or the rescan is due).
            waker.wake_at.store(
                horizon.saturating_sub(ahead / 2).max(claimed + 1),
                Ordering::Relaxed,
            );
            if self.pool.claimed() < horizon.saturating_sub(ahead / 2) && !self.stopping() {
                std::thread::park_timeout(rescan.saturating_sub(scanned.elapsed()));
            }
            waker.wake_at.store(u64::MAX, Ordering::Relaxed);
        }
    }
}
