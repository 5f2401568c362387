//! The loader: worker threads gather token windows into reusable batch buffers and hand them
//! over strictly in step order.
//!
//! ```text
//! sampler (seed, cursor, rank, world) ─▶ window starts of step s
//!   worker k: take a free buffer ─▶ gather B windows of T+1 tokens, widening in the copy
//!             ─▶ publish (s, buffer)
//!   consumer: wait for step `next` ─▶ Batch (x = columns 0..T, y = columns 1..T+1 of one buffer)
//!             ─▶ dropping the Batch returns its buffer to the pool
//! ```
//!
//! Buffers are allocated once, as page-aligned slices of one [`osml_sys::HugeBuffer`] (2 MiB
//! aligned, transparent huge pages requested, optionally locked). Hand-over uses one mutex-protected map; a consumer spins
//! briefly before sleeping and nobody is woken unless someone sleeps, so in steady state a
//! batch costs no system call. The sampler's state is `(seed, epoch, cursor)`: a loader
//! restored from [`Loader::state`] produces the same batches as one that never stopped, for
//! any worker count, and for any world size with the same global batch.
//!
//! Written here rather than taken from a crate: ordered hand-over of reusable, typed, pinned
//! buffers with per-step sample arithmetic is what this crate exists for.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use osml_sys::{BufferReport, HugeSlice};
use serde::{Deserialize, Serialize};

use crate::sampler::{Mode, Sampler};
use crate::{DType, DataError, TokenDataset, TokenSource};

/// The element type of batch buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// 64-bit signed (PyTorch's `long`, what embedding layers take).
    I64,
    /// 32-bit signed.
    I32,
    /// The dataset's own dtype, copied byte for byte.
    Source,
}

/// How to load.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Samples per batch on this rank (B).
    pub batch_size: usize,
    /// Tokens per sample (T); each row holds T + 1 tokens.
    pub seq_len: usize,
    pub mode: Mode,
    pub seed: u64,
    pub rank: usize,
    pub world_size: usize,
    /// Worker threads (K); the default is [`default_workers`].
    pub workers: usize,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
    pub output: Output,
    /// CPUs for the workers: worker k is pinned to `cpus[k % len]`; empty leaves them unpinned.
    pub cpus: Vec<usize>,
    /// `mlock` the batch buffers (reported, not fatal, when the memlock limit forbids).
    pub lock_memory: bool,
    /// `madvise(WILLNEED)` the windows of upcoming batches that are not in the page cache.
    pub willneed: bool,
    /// Map a cached dataset into the page tables once, for gathers without page faults; the
    /// whole dataset then counts in RSS. Off by default.
    pub populate: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 12,
            seq_len: 1024,
            mode: Mode::Random,
            seed: 0,
            rank: 0,
            world_size: 1,
            workers: default_workers(),
            prefetch: 4,
            output: Output::I64,
            cpus: Vec::new(),
            lock_memory: false,
            willneed: true,
            populate: false,
        }
    }
}

/// One worker per CPU this process may use, less one for the consumer (at least one): the
/// training loop needs a core too, and a spare one lets the consumer poll instead of sleep.
pub fn default_workers() -> usize {
    osml_sys::allowed_cpus().map_or(1, |c| c.len().saturating_sub(1).max(1))
}

/// Where a loader is in the global sample sequence; restore it to continue exactly there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    pub version: u32,
    #[serde(flatten)]
    pub mode: Mode,
    pub seed: u64,
    pub seq_len: u64,
    /// Tokens in the dataset the state was taken on (a guard against restoring onto another).
    pub tokens: u64,
    /// Samples per global batch (B × W) when the state was taken.
    pub global_batch: u64,
    /// Global samples consumed so far.
    pub cursor: u64,
    /// The epoch of the next sample (0 in random mode).
    pub epoch: u64,
}

/// Counters of a loader since it started.
#[derive(Debug, Clone, Serialize)]
pub struct LoaderStats {
    pub batches: u64,
    pub tokens: u64,
    pub elapsed_s: f64,
    /// Time the consumer spent waiting for a batch.
    pub consumer_wait_s: f64,
    /// Time workers spent waiting for a free buffer.
    pub worker_wait_s: f64,
    /// Process-wide counters over the loader's life (`getrusage`).
    pub minor_faults: u64,
    pub major_faults: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub cpu_s: f64,
    /// Windows given `madvise(WILLNEED)` because they were not in the page cache.
    pub willneed_calls: u64,
    /// Bytes of the mapping whose page tables were filled ahead (`MADV_POPULATE_READ`) because
    /// the dataset was already in the page cache (`populate`).
    pub populated_bytes: u64,
    /// Whether the buffers got `MADV_HUGEPAGE`, were locked, and why not.
    pub huge_pages: bool,
    pub locked: bool,
    pub lock_error: Option<String>,
    pub pin_error: Option<String>,
}

struct Inner {
    free: Vec<HugeSlice>,
    ready: BTreeMap<u64, HugeSlice>,
    next_claim: u64,
    stop: bool,
    failed: Option<String>,
}

struct Shared {
    source: Arc<TokenDataset>,
    sampler: Sampler,
    start_cursor: u64,
    global_batch: u64,
    rank_offset: u64,
    batch_size: usize,
    row: usize,
    elem: usize,
    output: Output,
    prefetch: u64,
    #[allow(dead_code)]
    willneed: bool,
    inner: Mutex<Inner>,
    batch_ready: Condvar,
    buffer_free: Condvar,
    /// `published[s % len] == s` once step `s` is in `ready`: lets the consumer poll without
    /// taking the lock (steps in flight are fewer than buffers, so slots never collide).
    published: Vec<AtomicU64>,
    consumer_waiting: AtomicBool,
    producers_waiting: AtomicUsize,
    worker_wait_ns: AtomicU64,
    willneed_calls: AtomicU64,
    populated_bytes: AtomicU64,
    populate: bool,
    stopping: AtomicBool,
    /// Steps claimed by workers so far (a copy of `Inner::next_claim` readable without the lock).
    claimed: AtomicU64,
    pin_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked leaves consistent data behind (it only inserts whole entries).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long the consumer polls before sleeping when it has a CPU of its own (fewer workers
/// than CPUs): a batch usually lands within microseconds, and sleeping costs a futex call on
/// each side. With as many workers as CPUs, spinning would take a core from the worker
/// filling the very batch awaited, so the consumer polls briefly and sleeps.
const SPIN_POLLS: u32 = 20_000;
const SPIN_POLLS_OVERSUBSCRIBED: u32 = 64;

impl Shared {
    fn sample(&self, step: u64, j: usize) -> u64 {
        self.start_cursor + step * self.global_batch + self.rank_offset + j as u64
    }

    /// Writes the B windows of `step` into `buf`.
    fn fill(&self, step: u64, buf: &mut HugeSlice) -> Result<(), DataError> {
        let t1 = self.row;
        let bytes = &mut buf.as_mut_slice()[..self.batch_size * t1 * self.elem];
        for j in 0..self.batch_size {
            let start = self.sampler.window_start(self.sample(step, j));
            let tokens = self.source.window(start, t1).ok_or_else(|| {
                DataError::Usage(format!(
                    "window at token {start} runs past the dataset's end"
                ))
            })?;
            let row = &mut bytes[j * t1 * self.elem..(j + 1) * t1 * self.elem];
            match self.output {
                Output::I64 => tokens.write_i64(bytemuck::cast_slice_mut(row)),
                Output::I32 => tokens.write_i32(bytemuck::cast_slice_mut(row)),
                Output::Source => row.copy_from_slice(tokens.bytes()),
            }
        }
        Ok(())
    }

    /// The read-ahead thread, so that workers make no system calls of their own.
    ///
    /// - Cold parts: it stays ahead of the workers, giving `madvise(WILLNEED)` to the windows
    ///   of upcoming batches whose pages `mincore` last saw missing (refreshed every 2 s, in
    ///   slices so other threads' mmaps are not blocked).
    /// - With `populate`, and the dataset ≥ 90% cached, it instead fills the page tables once
    ///   (`MADV_POPULATE_READ`, 8 MiB at a time): no page faults in gathers, at the price of
    ///   the whole dataset counting in RSS.
    fn read_ahead(&self) {
        // Populating holds the mmap lock for its range: small chunks keep other threads' mmaps
        // (stacks, allocator arenas) from waiting behind it.
        const CHUNK: usize = 8 << 20;
        const REFRESH: Duration = Duration::from_secs(2);
        // The residency scan holds the mmap lock in slices and competes for a CPU: let the
        // first batch go out before it starts.
        while self
            .published
            .iter()
            .all(|p| p.load(Ordering::Relaxed) == u64::MAX)
            && !self.stopping.load(Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        let (file, offset) = self.source.stream_file();
        let Ok(mut pages) = file.residency_map() else {
            return;
        };
        let resident = pages.iter().filter(|&&p| p & 1 == 1).count();
        let mostly_cached = !pages.is_empty() && resident * 10 >= pages.len() * 9;
        if self.populate && mostly_cached {
            let mut at = 0;
            while at < file.len() && !self.stopping.load(Ordering::Relaxed) {
                let len = CHUNK.min(file.len() - at);
                if file
                    .advise_range(osml_sys::Access::Populate, at, len)
                    .is_err()
                {
                    break; // kernels before 5.14 lack MADV_POPULATE_READ
                }
                self.populated_bytes
                    .fetch_add(len as u64, Ordering::Relaxed);
                at += len;
            }
            return;
        }
        let page = osml_sys::page_size();
        let size = self.source.dtype().size();
        let mut refreshed = Instant::now();
        let mut next = 0u64;
        while !self.stopping.load(Ordering::Relaxed) {
            let horizon = self.claimed.load(Ordering::Relaxed) + 2 * self.prefetch;
            if mostly_cached {
                return; // nothing to read ahead
            }
            if next >= horizon {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            if refreshed.elapsed() > REFRESH {
                if let Ok(p) = file.residency_map() {
                    pages = p;
                }
                refreshed = Instant::now();
            }
            for step in next.max(self.claimed.load(Ordering::Relaxed))..horizon {
                for j in 0..self.batch_size {
                    let start = self.sampler.window_start(self.sample(step, j));
                    let from = offset + usize::try_from(start).unwrap_or(usize::MAX) * size;
                    let to = from + self.row * size;
                    let end = to.div_ceil(page).min(pages.len());
                    let Some(range) = pages.get_mut(from / page..end) else {
                        continue;
                    };
                    if range.iter().any(|&p| p & 1 == 0) {
                        let _ = file.advise_range(osml_sys::Access::WillNeed, from, to - from);
                        for p in range.iter_mut() {
                            *p |= 1;
                        }
                        self.willneed_calls.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            next = horizon;
        }
    }

    fn worker(&self, index: usize, cpus: &[usize]) {
        if !cpus.is_empty() {
            if let Err(e) = osml_sys::pin_current_thread(&[cpus[index % cpus.len()]]) {
                *lock(&self.pin_error) = Some(e.to_string());
            }
        }
        loop {
            let (step, mut buf) = {
                let mut g = lock(&self.inner);
                loop {
                    if g.stop {
                        return;
                    }
                    if let Some(b) = g.free.pop() {
                        let s = g.next_claim;
                        g.next_claim += 1;
                        self.claimed.store(g.next_claim, Ordering::Relaxed);
                        break (s, b);
                    }
                    let t = Instant::now();
                    self.producers_waiting.fetch_add(1, Ordering::SeqCst);
                    g = self
                        .buffer_free
                        .wait(g)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    self.producers_waiting.fetch_sub(1, Ordering::SeqCst);
                    self.worker_wait_ns
                        .fetch_add(nanos(t.elapsed()), Ordering::Relaxed);
                }
            };
            let result = self.fill(step, &mut buf);
            let mut g = lock(&self.inner);
            match result {
                Ok(()) => {
                    g.ready.insert(step, buf);
                    let slot = usize::try_from(step % self.published.len() as u64).unwrap_or(0);
                    self.published[slot].store(step, Ordering::Release);
                }
                Err(e) => {
                    g.failed.get_or_insert_with(|| e.to_string());
                    g.free.push(buf);
                }
            }
            drop(g);
            if self.consumer_waiting.load(Ordering::SeqCst) {
                self.batch_ready.notify_all();
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// An iterator of batches over a dataset.
pub struct Loader {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    next_step: u64,
    started: Instant,
    usage0: osml_sys::Usage,
    consumer_wait: Duration,
    report: BufferReport,
    batch_size: usize,
    seq_len: usize,
    spin_polls: u32,
    regions: Vec<(usize, usize)>,
}

/// One batch: `[B, T + 1]` tokens in one buffer, lent until dropped.
pub struct Batch {
    buffer: Option<HugeSlice>,
    shared: Arc<Shared>,
    step: u64,
}

impl Batch {
    /// The step (0 for the first batch after the loader's starting point).
    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn rows(&self) -> usize {
        self.shared.batch_size
    }

    /// Tokens per row: T + 1.
    pub fn row_len(&self) -> usize {
        self.shared.row
    }

    pub fn output(&self) -> Output {
        self.shared.output
    }

    /// The dtype of the elements: int64, int32 or the source's.
    pub fn dtype(&self) -> DType {
        match self.shared.output {
            Output::I64 => DType::I64,
            Output::I32 => DType::I32,
            Output::Source => self.shared.source.dtype(),
        }
    }

    /// All `B × (T + 1)` elements as bytes, row-major.
    pub fn bytes(&self) -> &[u8] {
        let n = self.shared.batch_size * self.shared.row * self.shared.elem;
        self.buffer.as_ref().map_or(&[], |b| &b.as_slice()[..n])
    }

    /// The elements as `i64` (only for [`Output::I64`]).
    pub fn as_i64(&self) -> Option<&[i64]> {
        (self.shared.output == Output::I64).then(|| bytemuck::cast_slice(self.bytes()))
    }

    /// The elements as `i32` (only for [`Output::I32`]).
    pub fn as_i32(&self) -> Option<&[i32]> {
        (self.shared.output == Output::I32).then(|| bytemuck::cast_slice(self.bytes()))
    }

    /// Inputs of row `i` (its first T tokens) as a view of the buffer ([`Output::I64`] only).
    pub fn x_i64(&self, i: usize) -> Option<&[i64]> {
        let row = self.shared.row;
        self.as_i64().map(|a| &a[i * row..i * row + row - 1])
    }

    /// Targets of row `i` (its last T tokens: the inputs shifted by one) as a view of the same
    /// buffer ([`Output::I64`] only).
    pub fn y_i64(&self, i: usize) -> Option<&[i64]> {
        let row = self.shared.row;
        self.as_i64().map(|a| &a[i * row + 1..(i + 1) * row])
    }

    /// Row `i` widened to `i64` whatever the output type (for tests and tools).
    pub fn row_i64(&self, i: usize) -> Vec<i64> {
        let elem = self.shared.elem;
        let row = &self.bytes()[i * self.shared.row * elem..(i + 1) * self.shared.row * elem];
        crate::Tokens::new(self.dtype(), row).to_vec()
    }

    /// The global sample index of row `i`.
    pub fn sample_index(&self, i: usize) -> u64 {
        self.shared.sample(self.step, i)
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(buf) = self.buffer.take() {
            lock(&self.shared.inner).free.push(buf);
            if self.shared.producers_waiting.load(Ordering::SeqCst) > 0 {
                self.shared.buffer_free.notify_one();
            }
        }
    }
}

impl Loader {
    /// Starts the workers over `source`; `state` continues where another loader stopped.
    pub fn new(
        source: Arc<TokenDataset>,
        cfg: &LoaderConfig,
        state: Option<&LoaderState>,
    ) -> Result<Self, DataError> {
        let (sampler, global_batch, start_cursor) = Self::check(&source, cfg, state)?;
        let elem = match cfg.output {
            Output::I64 => 8,
            Output::I32 => 4,
            Output::Source => source.dtype().size(),
        };
        let row = cfg.seq_len + 1;
        let bytes = cfg.batch_size * row * elem;
        // Buffers: the prefetch depth, one per worker in flight, one in the consumer's hands.
        let count = cfg.prefetch + cfg.workers + 1;
        // One huge-page-backed mapping carved into page-aligned buffers: a pool of small
        // batches shares huge pages instead of rounding every buffer up to 2 MiB.
        let osml_sys::Split {
            slices: free,
            report,
            region,
        } = osml_sys::HugeBuffer::split(bytes, count, cfg.lock_memory)?;
        let regions = vec![region];
        let shared = Arc::new(Shared {
            source,
            sampler,
            start_cursor,
            global_batch,
            rank_offset: (cfg.rank * cfg.batch_size) as u64,
            batch_size: cfg.batch_size,
            row,
            elem,
            output: cfg.output,
            prefetch: cfg.prefetch as u64,
            willneed: cfg.willneed,
            inner: Mutex::new(Inner {
                free,
                ready: BTreeMap::new(),
                next_claim: 0,
                stop: false,
                failed: None,
            }),
            batch_ready: Condvar::new(),
            buffer_free: Condvar::new(),
            published: (0..count).map(|_| AtomicU64::new(u64::MAX)).collect(),
            consumer_waiting: AtomicBool::new(false),
            producers_waiting: AtomicUsize::new(0),
            worker_wait_ns: AtomicU64::new(0),
            willneed_calls: AtomicU64::new(0),
            populated_bytes: AtomicU64::new(0),
            populate: cfg.populate,
            stopping: AtomicBool::new(false),
            claimed: AtomicU64::new(0),
            pin_error: Mutex::new(None),
        });
        let usage0 = osml_sys::usage(osml_sys::UsageOf::Process).unwrap_or_default();
        let mut threads = Vec::with_capacity(cfg.workers + 1);
        if cfg.willneed {
            let s = Arc::clone(&shared);
            if let Ok(t) = std::thread::Builder::new()
                .name("osml-loader-readahead".into())
                .spawn(move || s.read_ahead())
            {
                threads.push(t);
            }
        }
        for k in 0..cfg.workers {
            let s = Arc::clone(&shared);
            let cpus = cfg.cpus.clone();
            let t = std::thread::Builder::new()
                .name(format!("osml-loader-{k}"))
                .spawn(move || s.worker(k, &cpus))
                .map_err(|e| DataError::Usage(format!("cannot start loader threads: {e}")))?;
            threads.push(t);
        }
        Ok(Self {
            shared,
            threads,
            next_step: 0,
            started: Instant::now(),
            usage0,
            consumer_wait: Duration::ZERO,
            report,
            batch_size: cfg.batch_size,
            seq_len: cfg.seq_len,
            regions,
            spin_polls: if cfg.workers < osml_sys::allowed_cpus().map_or(1, |c| c.len()) {
                SPIN_POLLS
            } else {
                SPIN_POLLS_OVERSUBSCRIBED
            },
        })
    }

    /// Validates a configuration (and a state to restore) against the dataset.
    fn check(
        source: &TokenDataset,
        cfg: &LoaderConfig,
        state: Option<&LoaderState>,
    ) -> Result<(Sampler, u64, u64), DataError> {
        let usage = |m: String| Err(DataError::Usage(m));
        if cfg.batch_size == 0 {
            return usage("the batch size must be at least 1".into());
        }
        if cfg.world_size == 0 || cfg.rank >= cfg.world_size {
            return usage(format!(
                "rank {} is not below the world size {}",
                cfg.rank, cfg.world_size
            ));
        }
        if cfg.workers == 0 || cfg.prefetch == 0 {
            return usage("workers and prefetch must be at least 1".into());
        }
        let seq_len = cfg.seq_len as u64;
        let sampler = Sampler::new(cfg.mode, cfg.seed, seq_len, source.num_tokens())?;
        let global_batch = (cfg.batch_size * cfg.world_size) as u64;
        if let Some(m) = sampler.samples_per_epoch() {
            if m < global_batch {
                return usage(format!(
                    "the dataset has {m} windows of {} tokens, fewer than one global batch of {global_batch} samples",
                    cfg.seq_len + 1
                ));
            }
        }
        let start_cursor = match state {
            None => 0,
            Some(s) => {
                let mismatch = |what: &str| {
                    usage(format!(
                        "the state is for another {what}: cannot restore it here"
                    ))
                };
                if s.version != 1 {
                    return mismatch("version of osml");
                }
                if s.mode != cfg.mode || s.seed != cfg.seed {
                    return mismatch("sampling mode or seed");
                }
                if s.seq_len != seq_len {
                    return mismatch("sequence length");
                }
                if s.tokens != source.num_tokens() {
                    return mismatch("dataset (its token count differs)");
                }
                s.cursor
            }
        };
        Ok((sampler, global_batch, start_cursor))
    }

    /// Address and length of the memory holding every buffer of the pool. It never moves: a
    /// caller may register it once with a device driver (page-locking for DMA).
    pub fn buffer_regions(&self) -> &[(usize, usize)] {
        &self.regions
    }

    /// A loader that continues exactly where the one that produced `state` stopped.
    pub fn restore(
        source: Arc<TokenDataset>,
        cfg: &LoaderConfig,
        state: &LoaderState,
    ) -> Result<Self, DataError> {
        Self::new(source, cfg, Some(state))
    }

    /// The next batch, in step order. Blocks until it is ready.
    pub fn next_batch(&mut self) -> Result<Batch, DataError> {
        let step = self.next_step;
        let waited = Instant::now();
        let mut polls = 0;
        let buffer = loop {
            // Spin first: a batch usually arrives within microseconds, and sleeping costs a
            // futex call on each side.
            if polls < self.spin_polls {
                polls += 1;
                let slot = usize::try_from(step % self.shared.published.len() as u64).unwrap_or(0);
                if self.shared.published[slot].load(Ordering::Acquire) != step {
                    std::hint::spin_loop();
                    continue;
                }
            }
            let mut g = lock(&self.shared.inner);
            let b = loop {
                if let Some(b) = g.ready.remove(&step) {
                    break b;
                }
                if let Some(e) = &g.failed {
                    return Err(DataError::Usage(e.clone()));
                }
                self.shared.consumer_waiting.store(true, Ordering::SeqCst);
                g = self
                    .shared
                    .batch_ready
                    .wait(g)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                self.shared.consumer_waiting.store(false, Ordering::SeqCst);
            };
            break b;
        };
        self.consumer_wait += waited.elapsed();
        self.next_step += 1;
        Ok(Batch {
            buffer: Some(buffer),
            shared: Arc::clone(&self.shared),
            step,
        })
    }

    /// The state after the batches handed out so far.
    pub fn state(&self) -> LoaderState {
        let s = &self.shared;
        let cursor = s.start_cursor + self.next_step * s.global_batch;
        LoaderState {
            version: 1,
            mode: s.sampler.mode(),
            seed: s.sampler.seed(),
            seq_len: s.sampler.seq_len(),
            tokens: s.sampler.tokens(),
            global_batch: s.global_batch,
            cursor,
            epoch: s.sampler.epoch_of(cursor),
        }
    }

    pub fn stats(&self) -> LoaderStats {
        let now = osml_sys::usage(osml_sys::UsageOf::Process).unwrap_or_default();
        let u0 = self.usage0;
        LoaderStats {
            batches: self.next_step,
            tokens: self.next_step * (self.batch_size * self.seq_len) as u64,
            elapsed_s: self.started.elapsed().as_secs_f64(),
            consumer_wait_s: self.consumer_wait.as_secs_f64(),
            worker_wait_s: self.shared.worker_wait_ns.load(Ordering::Relaxed) as f64 / 1e9,
            minor_faults: now.minor_faults.saturating_sub(u0.minor_faults),
            major_faults: now.major_faults.saturating_sub(u0.major_faults),
            voluntary_switches: now.voluntary_switches.saturating_sub(u0.voluntary_switches),
            involuntary_switches: now
                .involuntary_switches
                .saturating_sub(u0.involuntary_switches),
            cpu_s: now.cpu_us.saturating_sub(u0.cpu_us) as f64 / 1e6,
            willneed_calls: self.shared.willneed_calls.load(Ordering::Relaxed),
            populated_bytes: self.shared.populated_bytes.load(Ordering::Relaxed),
            huge_pages: self.report.huge_pages,
            locked: self.report.locked,
            lock_error: self.report.lock_error.clone(),
            pin_error: lock(&self.shared.pin_error).clone(),
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_batch())
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        lock(&self.shared.inner).stop = true;
        self.shared.buffer_free.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
