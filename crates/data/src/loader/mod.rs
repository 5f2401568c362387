//! The loader: worker threads gather token windows into reusable batch buffers and hand them
//! over strictly in step order.
//!
//! ```text
//! sampler (seed, cursor, rank, world) ─▶ window starts of step s
//!   worker k: pool.claim() ─▶ gather B windows of T+1 tokens, widening in the copy
//!             ─▶ pool.publish(s, buffer)            (a failure: pool.fail(s, buffer, error))
//!   consumer: spin briefly on the step's flag, then pool.take(s) ─▶ Batch
//!             (x = columns 0..T, y = columns 1..T+1 of one buffer)
//!             ─▶ dropping the Batch: pool.release(buffer)
//! ```
//!
//! - `config`: [`LoaderConfig`], [`LoaderState`] and the checks (every size computed with
//!   checked arithmetic before anything is allocated).
//! - `pool`: the buffers and the protocol between workers and consumer, in one place,
//!   model-checked with loom.
//! - `readahead`: the thread that keeps a cold dataset's next windows coming from the disk.
//!
//! Buffers are page-aligned slices of [`osml_sys::HugeBuffer`]s (2 MiB aligned, transparent
//! huge pages requested, optionally locked). The pool starts with `prefetch + workers + 1`
//! and grows by as many again when the caller holds every buffer (batches kept in a list,
//! GPU copies in flight), up to [`LoaderConfig::max_buffers`]. The sampler's state is
//! `(seed, epoch, cursor)`: a loader restored from [`Loader::state`] produces the same
//! batches as one that never stopped, for any worker count, and for any world size with the
//! same global batch.
//!
//! System calls: a batch that is ready when asked for costs none (an atomic flag, then an
//! uncontended lock). A consumer that waits polls for a budget that adapts to how soon the
//! steps it waited for were published (at most 50 µs with a spare CPU, 2 µs without), then
//! sleeps on a condition variable until half the prefetch depth is ready; workers that are
//! ahead sleep until half of it is free. So waiting costs two futex calls per half-depth of
//! batches. The read-ahead thread sleeps until workers cross its horizon; it makes
//! `madvise`/`mincore` calls only for a dataset that is not cached.
//!
//! Written here rather than taken from a crate: ordered hand-over of reusable, typed, pinned
//! buffers with per-step sample arithmetic is what this crate exists for.

mod config;
mod documents;
mod error;
mod pool;
mod readahead;
mod sync;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use osml_sys::{BufferReport, HugeSlice};
use serde::Serialize;

#[doc(hidden)]
pub use config::Fault;
pub use config::{
    auto_prefetch, default_workers, Interleave, LoaderConfig, LoaderState, MixtureState, Output,
    WeightsRestored, DEFAULT_MAX_BUFFERS, MAX_PREFETCH, MAX_WORKERS,
};
pub use error::LoaderError;

use crate::mixture::Mixture;
use crate::{DType, DataError, TokenDataset, TokenSource};
use config::{Layout, Plan};
use documents::DocFields;
use pool::{Pool, Take};

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
    /// Windows given `madvise(WILLNEED)` because they touched blocks not in the page cache.
    pub willneed_calls: u64,
    /// Bytes of the mapping whose page tables were filled ahead (`MADV_POPULATE_READ`) because
    /// the dataset was already in the page cache (`populate`).
    pub populated_bytes: u64,
    /// Batches prepared ahead (as configured, or as [`auto_prefetch`] chose).
    pub prefetch: usize,
    /// Buffers in the pool now, and how many of them the caller holds.
    pub buffers: usize,
    pub held: usize,
    /// Times the pool grew because the caller held every buffer.
    pub pool_grows: u64,
    /// Whether the buffers got `MADV_HUGEPAGE`, were locked, and why not.
    pub huge_pages: bool,
    pub locked: bool,
    pub lock_error: Option<String>,
    pub pin_error: Option<String>,
    /// Each source: what it holds and how much of it the batches so far have read.
    pub sources: Vec<crate::mixture::SourceUse>,
}

struct Shared {
    mixture: Mixture,
    plan: Plan,
    /// The loader's seed (each source of a mixture derives its own from it).
    seed: u64,
    /// Index of each source's first shard file in the read-ahead's list of files.
    file_base: Vec<usize>,
    start_cursor: u64,
    global_batch: u64,
    rank_offset: u64,
    interleave: Interleave,
    batch_size: usize,
    layout: Layout,
    output: Output,
    /// Per source: the largest id the output holds, when the source's dtype has values past
    /// it (or negative ones): each window is then checked before it is converted.
    output_max: Vec<Option<u64>>,
    prefetch: u64,
    populate: bool,
    fault: Option<Fault>,
    pool: Pool<HugeSlice>,
    readahead: readahead::Waker,
    stopping: AtomicBool,
    willneed_calls: AtomicU64,
    populated_bytes: AtomicU64,
    pin_error: Mutex<Option<String>>,
    /// `osml_sys::fork_generation` when the loader was made: batches dropped in a forked
    /// child must not touch the pool (its lock may have been held at the fork).
    fork_generation: u64,
    /// Positions 0, 1, … of one row, copied into `position_ids` segment by segment (empty
    /// without document fields).
    ramp: documents::Ramp,
}

/// Rows between the one written and the one whose data is asked for; see `Shared::prepare`.
const AHEAD: usize = 4;

/// Rows between the one written and the one whose document boundaries are found; see
/// `Shared::fill` (1, 2 and 3 measured alike on the `mixtures` bench).
const SEARCH_AHEAD: usize = 1;
/// Rows whose segment counts are kept: those from the row written to the one searched.
const SEGMENTS: usize = SEARCH_AHEAD + 1;
// A row's window must still be in `ahead` when its boundaries are found (`Shared::fill`).
const _: () = assert!(SEARCH_AHEAD >= 1 && SEARCH_AHEAD < AHEAD);

/// Cache lines of a window asked for ahead (512 bytes): the stream prefetcher takes over a
/// sequential read after its first misses, and a prefetch that finds every fill buffer busy
/// waits like a load (measured with `perf annotate` on the `mixtures` bench: asking for a
/// whole 2 KiB window spent most of the worker's time on the prefetches; 8 lines gave the
/// most tokens/s of 4, 8, 16 and 256).
const PREFETCH_LINES: usize = 8;

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// The global sample index of row `j` of this loader's `step`, unless it passes 2^64.
    fn sample(&self, step: u64, j: usize) -> Option<u64> {
        let global_step = step
            .checked_mul(self.interleave.count)?
            .checked_add(self.interleave.index)?;
        self.start_cursor
            .checked_add(global_step.checked_mul(self.global_batch)?)?
            .checked_add(self.rank_offset)?
            .checked_add(j as u64)
    }

    /// The source of row `j` of `step` and its window's first token in that source.
    fn window(&self, step: u64, j: usize) -> Option<(usize, u64)> {
        self.sample(step, j).map(|i| self.plan.window(i))
    }

    fn dataset(&self, source: usize) -> &TokenDataset {
        &self.mixture.parts()[source].dataset
    }

    /// Writes the B windows of `step` into `buf`.
    fn fill(&self, step: u64, buf: &mut HugeSlice) -> Result<(), DataError> {
        match self.fault {
            Some(Fault::Panic { step: s }) if s == step => {
                panic!("injected panic at step {step} (test hook)")
            }
            Some(Fault::Stall { step: s }) if s == step => {
                while !self.stopping() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            _ => {}
        }
        let t1 = self.layout.row;
        let row_bytes = t1 * self.layout.elem;
        let (tokens_part, rest) =
            buf.as_mut_slice()[..self.layout.batch_bytes].split_at_mut(self.layout.token_bytes);
        let mut docs = self.layout.docs.map(|d| {
            DocFields::new(
                d,
                rest,
                self.layout.token_bytes,
                self.batch_size,
                &self.ramp,
            )
        });
        // Rows are prepared ahead of their writing (`Shared::prepare`): row `j + AHEAD`'s
        // window is found, and its first tokens asked for, while row `j` is written.
        let rows = self.batch_size;
        let window = |j: usize| {
            self.window(step, j)
                .ok_or(LoaderError::SampleOverflow { step })
        };
        let mut ahead = [(0usize, 0u64); AHEAD];
        for (j, w) in ahead.iter_mut().enumerate().take(rows) {
            *w = window(j)?;
            self.prepare(*w);
        }
        // Rows `0..SEARCH_AHEAD` have their boundaries found before the loop, which finds
        // row `j + SEARCH_AHEAD`'s at row `j`, before `ahead` takes its later windows.
        let mut segments = [0usize; SEGMENTS];
        if let Some(d) = docs.as_mut() {
            for (r, &(s, at)) in ahead.iter().enumerate().take(SEARCH_AHEAD.min(rows)) {
                segments[r % SEGMENTS] = d.write_boundaries(r, t1 - 1, s, at, self.dataset(s));
            }
        }
        for (j, row) in tokens_part.chunks_exact_mut(row_bytes).enumerate() {
            let (source, start) = ahead[j % AHEAD];
            if j + AHEAD < rows {
                let next = window(j + AHEAD)?;
                self.prepare(next);
                ahead[j % AHEAD] = next;
                if let Some(d) = &docs {
                    osml_sys::prefetch(d.last_slot(j + AHEAD, t1 - 1), 1);
                }
            }
            let dataset = self.dataset(source);
            let tokens = dataset.window(start, t1).ok_or_else(|| {
                DataError::Usage(format!(
                    "window at token {start} runs past the dataset's end"
                ))
            })?;
            if let Some(max) = self.output_max[source] {
                if let Some((i, value)) = tokens.first_unfit(max) {
                    return Err(unfit_token(dataset, start + i as u64, value, max));
                }
            }
            // The boundaries of row `j + SEARCH_AHEAD` first: their search is a chain of
            // dependent reads, which the stores of this row's tokens after it overlap; this
            // row's positions last.
            // `ahead` holds row `r`'s window until the loop reaches row `r` (which replaces
            // it with row `r + AHEAD`'s), so it is still there at row `j < r`.
            if let Some(d) = docs.as_mut() {
                let r = j + SEARCH_AHEAD;
                if r < rows {
                    let (s, at) = ahead[r % AHEAD];
                    segments[r % SEGMENTS] = d.write_boundaries(r, t1 - 1, s, at, self.dataset(s));
                }
            }
            let m = segments[j % SEGMENTS];
            match self.output {
                Output::I64 => tokens.write_i64(bytemuck::cast_slice_mut(row)),
                Output::I32 => tokens.write_i32(bytemuck::cast_slice_mut(row)),
                Output::Source => tokens.copy_bytes(row),
            }
            if let Some(d) = docs.as_mut() {
                d.write_positions(j, t1 - 1, m);
            }
        }
        Ok(())
    }

    /// Asks for the first lines of a window's tokens, some rows before it is written: rows
    /// start at random places in data far larger than the caches, so each row's first lines
    /// miss to memory, and asked for ahead those misses overlap with the writing of the rows
    /// before. (The document search needs no such help: its reads are a few lines of the
    /// block table and the index, and asking for them ahead, in two stages, measured the same
    /// as not, on a small index and on one of 2 M documents, `mixtures` bench.)
    fn prepare(&self, (source, start): (usize, u64)) {
        if let Some(w) = self.dataset(source).window(start, self.layout.row) {
            for piece in w.pieces() {
                osml_sys::prefetch(piece.bytes(), PREFETCH_LINES);
            }
        }
    }

    fn worker(&self, index: usize, cpus: &[usize]) {
        if !cpus.is_empty() {
            if let Err(e) = osml_sys::pin_current_thread(&[cpus[index % cpus.len()]]) {
                *self
                    .pin_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
            }
        }
        while let Some((step, mut buf)) = self.pool.claim() {
            self.readahead.claimed(step);
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.fill(step, &mut buf)));
            match result {
                Ok(Ok(())) => {
                    self.pool.publish(step, buf);
                    if step == 0 {
                        self.readahead.published_first();
                    }
                }
                Ok(Err(DataError::Loader(e))) => self.pool.fail(step, buf, e.into()),
                Ok(Err(e)) => self.pool.fail(
                    step,
                    buf,
                    LoaderError::Step {
                        step,
                        error: Box::new(e),
                    }
                    .into(),
                ),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "a panic without a message".into());
                    self.pool.fail(
                        step,
                        buf,
                        LoaderError::WorkerPanicked { step, message }.into(),
                    );
                }
            }
        }
    }
}

/// How long the consumer polls before it sleeps, adapted to how batches have been arriving.
/// A batch that came while polling lengthens the budget a little. One that came soon after
/// the consumer went to sleep (within the longest budget) lengthens it to 1.5× that wait: a
/// little more polling would have saved two futex calls. One that took longer halves it: the
/// worker was not running (another job had its CPU), and polling would only take CPU from the
/// very worker awaited. Without a spare CPU the longest budget is 2 µs.
#[derive(Debug, Clone, Copy)]
struct Spin {
    budget: Duration,
    max: Duration,
}

impl Spin {
    const FLOOR: Duration = Duration::from_micros(1);

    fn new(spare_cpu: bool) -> Self {
        let max = if spare_cpu {
            Duration::from_micros(50)
        } else {
            Duration::from_micros(2)
        };
        Self { budget: max, max }
    }

    /// Polls `ready` until it is true or the budget is spent; whether it became true.
    fn wait(&mut self, ready: impl Fn() -> bool) -> bool {
        if ready() {
            return true;
        }
        let t = Instant::now();
        let mut polls = 0u32;
        loop {
            std::hint::spin_loop();
            if ready() {
                self.budget = (self.budget + self.budget / 4 + Self::FLOOR).min(self.max);
                return true;
            }
            polls += 1;
            // Reading the clock (vDSO) every 64 polls keeps its cost out of the loop.
            if polls.is_multiple_of(64) && t.elapsed() >= self.budget {
                return false;
            }
        }
    }

    /// The batch came after sleeping, `waited` after the consumer asked for it.
    fn slept(&mut self, waited: Duration) {
        self.budget = if waited < self.max {
            self.budget.max(waited + waited / 2).min(self.max)
        } else {
            (self.budget / 2).max(Self::FLOOR)
        };
    }
}

/// An iterator of batches over a dataset.
pub struct Loader {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    next_step: u64,
    /// The stream ended with an error reported earlier.
    ended: bool,
    created_in: u32,
    started: Instant,
    usage0: osml_sys::Usage,
    consumer_wait: Duration,
    report: BufferReport,
    lock_memory: bool,
    spin: Spin,
    regions: Vec<(usize, usize)>,
    pool_grows: u64,
    weights_restored: Option<WeightsRestored>,
}

/// A batch's document fields, views of its buffer (layout: the `documents` module).
#[derive(Debug, Clone, Copy)]
pub struct Documents<'a> {
    /// `[B, T]` int32: each input's position within its document (`None` when the loader
    /// was made with [`LoaderConfig::positions`] off).
    pub positions: Option<&'a [i32]>,
    /// `[B, T + 1]` int32: each row's boundaries `0 … T`, then `-1`.
    pub cu_seqlens: &'a [i32],
    /// `[B]`: each row's source.
    pub sources: &'a [i32],
    /// `[B]`: each row's first token in its source's stream.
    pub offsets: &'a [i64],
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
        self.shared.layout.row
    }

    pub fn output(&self) -> Output {
        self.shared.output
    }

    /// The dtype of the elements: int64, int32 or the source's.
    pub fn dtype(&self) -> DType {
        match self.shared.output {
            Output::I64 => DType::I64,
            Output::I32 => DType::I32,
            Output::Source => self.shared.dataset(0).dtype(),
        }
    }

    /// All `B × (T + 1)` elements as bytes, row-major.
    pub fn bytes(&self) -> &[u8] {
        let n = self.shared.layout.token_bytes;
        self.buffer.as_ref().map_or(&[], |b| &b.as_slice()[..n])
    }

    /// The document fields, when the loader was asked for them ([`LoaderConfig::documents`]).
    pub fn documents(&self) -> Option<Documents<'_>> {
        let d = self.shared.layout.docs?;
        let buf = self.buffer.as_ref()?.as_slice();
        let (b, t) = (self.rows(), self.row_len() - 1);
        Some(Documents {
            positions: d
                .positions
                .map(|at| bytemuck::cast_slice(&buf[at..at + b * t * 4])),
            cu_seqlens: bytemuck::cast_slice(&buf[d.cu_seqlens..d.cu_seqlens + b * (t + 1) * 4]),
            sources: bytemuck::cast_slice(&buf[d.sources..d.sources + b * 4]),
            offsets: bytemuck::cast_slice(&buf[d.offsets..d.offsets + b * 8]),
        })
    }

    /// The source of row `i` and its window's first token in that source's stream.
    pub fn origin(&self, i: usize) -> Option<(usize, u64)> {
        (i < self.rows())
            .then(|| self.shared.window(self.step, i))
            .flatten()
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
        let row = self.row_len();
        self.as_i64()?.get(i * row..i * row + row - 1)
    }

    /// Targets of row `i` (its last T tokens: the inputs shifted by one) as a view of the same
    /// buffer ([`Output::I64`] only).
    pub fn y_i64(&self, i: usize) -> Option<&[i64]> {
        let row = self.row_len();
        self.as_i64()?.get(i * row + 1..(i + 1) * row)
    }

    /// Row `i` widened to `i64` whatever the output type (for tests and tools); empty past
    /// the last row.
    pub fn row_i64(&self, i: usize) -> Vec<i64> {
        let n = self.row_len() * self.shared.layout.elem;
        self.bytes()
            .get(i * n..(i + 1) * n)
            .map_or_else(Vec::new, |row| {
                crate::Tokens::new(self.dtype(), row).to_vec()
            })
    }

    /// The global sample index of row `i` (`None` past 2^64, which a delivered batch never
    /// reaches).
    pub fn sample_index(&self, i: usize) -> Option<u64> {
        self.shared.sample(self.step, i)
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(buf) = self.buffer.take() {
            if osml_sys::fork_generation() == self.shared.fork_generation {
                self.shared.pool.release(buf);
            } else {
                // A forked child: the pool's lock may have been held at the fork.
                std::mem::forget(buf);
            }
        }
    }
}

/// See `Shared::output_max`. `Source` delivers the file's own bytes, unconverted.
fn output_max(dtype: DType, output: Output) -> Option<u64> {
    let max = match output {
        Output::I64 => i64::MAX.unsigned_abs(),
        Output::I32 => i32::MAX.unsigned_abs().into(),
        Output::Source => return None,
    };
    crate::Tokens::may_not_fit(dtype, max).then_some(max)
}

/// A token that the output cannot hold: refused with the shard and its offset there (and in
/// the stream), never delivered wrapped.
pub(crate) fn unfit_token(source: &TokenDataset, offset: u64, value: i128, max: u64) -> DataError {
    let (path, local) = source
        .locate(offset)
        .map_or((std::path::PathBuf::new(), offset), |(s, l)| {
            (s.path().to_path_buf(), l)
        });
    let place = if local == offset {
        format!("token {offset} of the stream")
    } else {
        format!("token {local} of this shard (token {offset} of the source's stream)")
    };
    DataError::invalid(
        &path,
        crate::FileFormat::Dataset,
        format!(
            "{place} is {value}, which is not a token id in 0..={max} (the {} output's range){}",
            if max == i64::MAX.unsigned_abs() {
                "int64"
            } else {
                "int32"
            },
            if value > i128::from(max) && max < i64::MAX.unsigned_abs() {
                ": ask for int64 output"
            } else {
                ""
            }
        ),
    )
}

impl Loader {
    /// Starts the workers over `source`; `state` continues where another loader stopped.
    /// Everything is checked before anything is allocated; if a thread cannot be started,
    /// those already started are stopped and joined before the error returns.
    pub fn new(
        source: Arc<TokenDataset>,
        cfg: &LoaderConfig,
        state: Option<&LoaderState>,
    ) -> Result<Self, DataError> {
        Self::with_mixture(Mixture::single(source), cfg, state)
    }

    /// Starts the workers over a mixture (or one part of one source, under a split).
    pub fn with_mixture(
        mixture: Mixture,
        cfg: &LoaderConfig,
        state: Option<&LoaderState>,
    ) -> Result<Self, DataError> {
        let checked = config::check(&mixture, cfg, state)?;
        let layout = checked.layout;
        let weights_restored = checked.weights_restored.clone();
        // One huge-page-backed mapping carved into page-aligned buffers: a pool of small
        // batches shares huge pages instead of rounding every buffer up to 2 MiB.
        let osml_sys::Split {
            slices,
            report,
            region,
        } = osml_sys::HugeBuffer::split(layout.batch_bytes, layout.initial, cfg.lock_memory)?;
        let fork_generation = osml_sys::fork_generation();
        let output_max = mixture
            .parts()
            .iter()
            .map(|p| output_max(p.dataset.dtype(), cfg.output))
            .collect();
        let mut file_base = Vec::with_capacity(mixture.parts().len());
        let mut files = 0;
        for p in mixture.parts() {
            file_base.push(files);
            files += p.dataset.shards().len();
        }
        if cfg.documents {
            // Documents split at an end-of-document token are found by one scan: before the
            // first batch, not inside a worker's first fill.
            for p in mixture.parts() {
                p.dataset.num_documents();
            }
        }
        let shared = Arc::new(Shared {
            mixture,
            plan: checked.plan,
            seed: cfg.seed,
            file_base,
            start_cursor: checked.start_cursor,
            global_batch: checked.global_batch,
            rank_offset: checked.rank_offset,
            interleave: cfg.interleave,
            batch_size: cfg.batch_size,
            layout,
            output: cfg.output,
            output_max,
            prefetch: layout.prefetch as u64,
            populate: cfg.populate,
            fault: cfg.fault,
            pool: Pool::new(
                slices,
                layout.prefetch.div_ceil(2),
                layout.prefetch.div_ceil(2),
            ),
            readahead: readahead::Waker::new(),
            stopping: AtomicBool::new(false),
            willneed_calls: AtomicU64::new(0),
            populated_bytes: AtomicU64::new(0),
            pin_error: Mutex::new(None),
            fork_generation,
            ramp: documents::Ramp::new(layout.docs, cfg.seq_len),
        });
        let spare_cpu = cfg.workers < osml_sys::allowed_cpus().map_or(1, |c| c.len());
        // The loader owns its threads from here on: an error below drops it, which stops and
        // joins whatever was started.
        let mut loader = Self {
            shared,
            threads: Vec::with_capacity(cfg.workers + 1),
            next_step: 0,
            ended: false,
            created_in: std::process::id(),
            started: Instant::now(),
            usage0: osml_sys::usage(osml_sys::UsageOf::Process).unwrap_or_default(),
            consumer_wait: Duration::ZERO,
            report,
            lock_memory: cfg.lock_memory,
            spin: Spin::new(spare_cpu),
            regions: vec![region],
            pool_grows: 0,
            weights_restored,
        };
        if cfg.willneed {
            let s = Arc::clone(&loader.shared);
            if let Ok(t) = std::thread::Builder::new()
                .name("osml-loader-readahead".into())
                .spawn(move || s.read_ahead())
            {
                loader.shared.readahead.set_thread(t.thread().clone());
                loader.threads.push(t);
            }
        }
        for k in 0..cfg.workers {
            if cfg.fault == Some(Fault::SpawnFails { worker: k }) {
                return Err(DataError::Usage(format!(
                    "cannot start loader threads: thread {k} refused (test hook)"
                )));
            }
            let s = Arc::clone(&loader.shared);
            let cpus = cfg.cpus.clone();
            let t = std::thread::Builder::new()
                .name(format!("osml-loader-{k}"))
                .spawn(move || s.worker(k, &cpus))
                .map_err(|e| DataError::Usage(format!("cannot start loader threads: {e}")))?;
            loader.threads.push(t);
        }
        Ok(loader)
    }

    /// Checks a configuration against a mixture as [`Loader::with_mixture`] does, without
    /// starting anything.
    pub fn validate(mixture: &Mixture, cfg: &LoaderConfig) -> Result<(), DataError> {
        config::check(mixture, cfg, None).map(|_| ())
    }

    /// Address and length of each memory region holding pool buffers. A region never moves;
    /// the pool grows by adding regions (a caller that registers them with a device driver,
    /// for page-locking, registers the new ones after each batch).
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
        loop {
            if let Some(b) = self.next_within(None)? {
                return Ok(b);
            }
        }
    }

    /// The next batch, or `None` if it is not ready within `timeout` (so that a caller can
    /// check for signals between waits and call again).
    pub fn next_batch_timeout(&mut self, timeout: Duration) -> Result<Option<Batch>, DataError> {
        self.next_within(Some(Instant::now() + timeout))
    }

    fn next_within(&mut self, deadline: Option<Instant>) -> Result<Option<Batch>, DataError> {
        if self.ended {
            return Err(LoaderError::Ended.into());
        }
        if osml_sys::fork_generation() != self.shared.fork_generation {
            self.ended = true;
            return Err(LoaderError::Forked {
                created_in: self.created_in,
            }
            .into());
        }
        let step = self.next_step;
        let waited = Instant::now();
        let pool = &self.shared.pool;
        let polled = self.spin.wait(|| pool.is_published(step));
        let result = loop {
            match self.shared.pool.take(step, deadline) {
                Take::Ready(buffer) => break Ok(Some(buffer)),
                Take::TimedOut => break Ok(None),
                Take::Starved { held, total } => {
                    if let Err(e) = self.grow(held, total) {
                        break Err(e);
                    }
                }
                Take::Failed(e) => {
                    self.ended = true;
                    break Err(e);
                }
                Take::Stopped => {
                    self.ended = true;
                    break Err(LoaderError::Ended.into());
                }
            }
        };
        if !polled && matches!(result, Ok(Some(_))) {
            // How long the step itself took to come, not how long the consumer slept (it
            // sleeps on until several steps are ready).
            let own = self
                .shared
                .pool
                .awaited_published()
                .map_or_else(|| waited.elapsed(), |t| t.saturating_duration_since(waited));
            self.spin.slept(own);
        }
        self.consumer_wait += waited.elapsed();
        Ok(result?.map(|buffer| {
            self.next_step += 1;
            Batch {
                buffer: Some(buffer),
                shared: Arc::clone(&self.shared),
                step,
            }
        }))
    }

    /// The caller holds every buffer: add as many as the pool started with, up to the limit.
    fn grow(&mut self, held: usize, total: usize) -> Result<(), DataError> {
        let layout = self.shared.layout;
        let add = layout.initial.min(layout.max_buffers.saturating_sub(total));
        if add == 0 {
            return Err(LoaderError::PoolExhausted {
                held,
                limit: layout.max_buffers,
            }
            .into());
        }
        let split = osml_sys::HugeBuffer::split(layout.batch_bytes, add, self.lock_memory)?;
        self.regions.push(split.region);
        self.shared.pool.add(split.slices);
        self.pool_grows += 1;
        Ok(())
    }

    /// The state after the batches handed out so far (for an interleaved loader, the position
    /// of the next step it would deliver).
    pub fn state(&self) -> LoaderState {
        let s = &self.shared;
        let cursor = s
            .sample(self.next_step, 0)
            .map_or(u64::MAX, |i| i - s.rank_offset);
        let parts = s.mixture.parts();
        let first = s.plan.samplers[0];
        // The weights up to the cursor: the schedule's later changes are the configuration's,
        // placed by the global batch of the run that restores (see `config::check`).
        let mixture = (!s.mixture.is_single()).then(|| MixtureState {
            sources: parts.iter().map(crate::mixture::Part::num_tokens).collect(),
            weights: s
                .plan
                .blend
                .changes()
                .into_iter()
                .filter(|c| c.start <= cursor)
                .collect(),
        });
        let epoch = if mixture.is_some() {
            first.epoch_of(s.plan.blend.counts(cursor)[0])
        } else {
            first.epoch_of(cursor)
        };
        LoaderState {
            version: 1,
            mode: first.mode(),
            seed: s.seed,
            seq_len: first.seq_len(),
            tokens: parts.iter().map(crate::mixture::Part::num_tokens).sum(),
            global_batch: s.global_batch,
            cursor,
            epoch,
            mixture,
        }
    }

    /// Set when the state this loader restored records other weights at its cursor than its
    /// configuration gives: the record's are followed (callers should tell the user).
    pub fn weights_restored(&self) -> Option<&WeightsRestored> {
        self.weights_restored.as_ref()
    }

    /// The mixture read (one part for one source).
    pub fn mixture(&self) -> &Mixture {
        &self.shared.mixture
    }

    /// What the first `samples` global samples read of each source, with the weights this
    /// loader follows (its record and scheduled changes).
    pub fn plan(&self, samples: u64) -> Vec<crate::mixture::SourceUse> {
        let s = &self.shared;
        s.mixture
            .uses(&s.plan.blend, s.plan.samplers[0].seq_len(), samples)
    }

    /// Samples per global step (B × W).
    pub fn global_batch(&self) -> u64 {
        self.shared.global_batch
    }

    /// Each source, and how far the global sequence has read it at this loader's position.
    pub fn sources(&self) -> Vec<crate::mixture::SourceUse> {
        let s = &self.shared;
        let cursor = s
            .sample(self.next_step, 0)
            .map_or(u64::MAX, |i| i - s.rank_offset);
        s.mixture
            .uses(&s.plan.blend, s.plan.samplers[0].seq_len(), cursor)
    }

    pub fn stats(&self) -> LoaderStats {
        let now = osml_sys::usage(osml_sys::UsageOf::Process).unwrap_or_default();
        let u0 = self.usage0;
        let counts = self.shared.pool.counts();
        let tokens_per_batch = (self.shared.batch_size * (self.shared.layout.row - 1)) as u64;
        LoaderStats {
            batches: self.next_step,
            tokens: self.next_step.saturating_mul(tokens_per_batch),
            elapsed_s: self.started.elapsed().as_secs_f64(),
            consumer_wait_s: self.consumer_wait.as_secs_f64(),
            worker_wait_s: self.shared.pool.worker_wait().as_secs_f64(),
            minor_faults: now.minor_faults.saturating_sub(u0.minor_faults),
            major_faults: now.major_faults.saturating_sub(u0.major_faults),
            voluntary_switches: now.voluntary_switches.saturating_sub(u0.voluntary_switches),
            involuntary_switches: now
                .involuntary_switches
                .saturating_sub(u0.involuntary_switches),
            cpu_s: now.cpu_us.saturating_sub(u0.cpu_us) as f64 / 1e6,
            willneed_calls: self.shared.willneed_calls.load(Ordering::Relaxed),
            populated_bytes: self.shared.populated_bytes.load(Ordering::Relaxed),
            prefetch: self.shared.layout.prefetch,
            buffers: counts.total,
            held: counts.held(),
            pool_grows: self.pool_grows,
            huge_pages: self.report.huge_pages,
            locked: self.report.locked,
            lock_error: self.report.lock_error.clone(),
            pin_error: self
                .shared
                .pin_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            sources: self.sources(),
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, DataError>;

    /// The next batch; after an error (reported once), `None`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        Some(self.next_batch())
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        if osml_sys::fork_generation() != self.shared.fork_generation {
            // A forked child: the threads exist only in the parent, and the pool's lock may
            // have been held at the fork. Leave both alone.
            for t in self.threads.drain(..) {
                std::mem::forget(t);
            }
            return;
        }
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.pool.stop();
        self.shared.readahead.wake();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
