//! [`LoaderConfig`] and [`LoaderState`], and the one place they are checked against a dataset
//! ([`check`]): every size is computed with checked arithmetic before anything is allocated.

use serde::{Deserialize, Serialize};

use crate::sampler::{Mode, Sampler};
use crate::{DType, DataError, TokenDataset, TokenSource};

/// Most worker threads a loader starts.
pub const MAX_WORKERS: usize = 256;
/// Most batches prepared ahead of the consumer.
pub const MAX_PREFETCH: usize = 1024;
/// The default limit on pool buffers: the pool grows past its initial
/// `prefetch + workers + 1` buffers only while the caller holds batches, up to this many.
pub const DEFAULT_MAX_BUFFERS: usize = 1024;

/// The element type of batch buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// 64-bit signed (PyTorch's `long`, what embedding layers take).
    I64,
    /// 32-bit signed.
    I32,
    /// The dataset's own dtype, copied byte for byte (integer datasets only).
    Source,
}

/// Which of the rank's steps this loader delivers: steps `index`, `index + count`,
/// `index + 2·count`, … (one of `count` interleaved loaders, as the workers of a
/// `torch.utils.data.DataLoader` are; together they deliver every step once, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interleave {
    pub index: u64,
    pub count: u64,
}

impl Default for Interleave {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

/// A fault injected by tests into the fill of one step.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The worker panics.
    Panic { step: u64 },
    /// The worker stalls until the loader is dropped (a wait that only an interrupt ends).
    Stall { step: u64 },
    /// Starting worker thread `worker` fails, as when the process is out of threads.
    SpawnFails { worker: usize },
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
    /// Worker threads (K, at most [`MAX_WORKERS`]); the default is [`default_workers`].
    pub workers: usize,
    /// Batches prepared ahead of the consumer (at most [`MAX_PREFETCH`]); 0 chooses
    /// ([`auto_prefetch`]).
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
    /// The most buffers the pool may grow to while the caller holds batches
    /// ([`DEFAULT_MAX_BUFFERS`]); past it, [`super::LoaderError::PoolExhausted`].
    pub max_buffers: usize,
    /// Which steps this loader delivers (all of them by default).
    pub interleave: Interleave,
    /// Test hook: a fault injected into one step's fill.
    #[doc(hidden)]
    pub fault: Option<Fault>,
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
            prefetch: 0,
            output: Output::I64,
            cpus: Vec::new(),
            lock_memory: false,
            willneed: true,
            populate: false,
            max_buffers: DEFAULT_MAX_BUFFERS,
            interleave: Interleave::default(),
            fault: None,
        }
    }
}

/// The prefetch depth chosen when none is given: as many batches as fill 4 MiB, between 4
/// and 64. A consumer that shares a CPU with other work is scheduled late, by a time slice
/// or more; the workers keep producing meanwhile only if there are buffers to fill, and
/// sleepers are woken once per half of the depth, so a deeper pool also means fewer system
/// calls; a shallower one keeps fresh batches in the CPU's caches. Measured with
/// `osml data bench --contend 1` on 2 CPUs, B=12 T=1024 int64 (96 KiB batches): a depth of 4
/// gave 0.40–0.56 of the idle throughput contended, 16 gave 0.91–1.06, 40 gave 0.92–1.01;
/// 128 gave the fewest system calls but 0.56–0.77 of memcpy idle (a 12 MiB pool leaves the
/// caches). README has the figures of the chosen depth.
pub fn auto_prefetch(batch_bytes: usize) -> usize {
    (AUTO_PREFETCH_BYTES / batch_bytes.max(1)).clamp(4, 64)
}

const AUTO_PREFETCH_BYTES: usize = 4 << 20;

/// One worker per CPU this process may use, less one for the consumer (at least one): the
/// training loop needs a core too.
pub fn default_workers() -> usize {
    osml_sys::allowed_cpus().map_or(1, |c| c.len().saturating_sub(1).clamp(1, MAX_WORKERS))
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

/// Sizes of the pool, all checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Tokens per row: T + 1.
    pub row: usize,
    /// Bytes per element of the output.
    pub elem: usize,
    /// Bytes of one batch.
    pub batch_bytes: usize,
    /// Batches prepared ahead (the configured depth, or the one chosen).
    pub prefetch: usize,
    /// Buffers allocated up front, and added at each growth.
    pub initial: usize,
    pub max_buffers: usize,
}

/// A configuration checked against a dataset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checked {
    pub sampler: Sampler,
    pub global_batch: u64,
    pub start_cursor: u64,
    pub rank_offset: u64,
    pub layout: Layout,
}

fn usage<T>(m: String) -> Result<T, DataError> {
    Err(DataError::Usage(m))
}

/// Validates a configuration (and a state to restore) against the dataset, before anything
/// is allocated.
pub(crate) fn check(
    source: &TokenDataset,
    cfg: &LoaderConfig,
    state: Option<&LoaderState>,
) -> Result<Checked, DataError> {
    if cfg.batch_size == 0 {
        return usage("the batch size must be at least 1".into());
    }
    if cfg.world_size == 0 || cfg.rank >= cfg.world_size {
        return usage(format!(
            "rank {} is not below the world size {}",
            cfg.rank, cfg.world_size
        ));
    }
    if !(1..=MAX_WORKERS).contains(&cfg.workers) {
        return usage(format!(
            "workers must be between 1 and {MAX_WORKERS}, not {}",
            cfg.workers
        ));
    }
    if cfg.prefetch > MAX_PREFETCH {
        return usage(format!(
            "prefetch must be at most {MAX_PREFETCH} (0 chooses), not {}",
            cfg.prefetch
        ));
    }
    if cfg.interleave.count == 0 || cfg.interleave.index >= cfg.interleave.count {
        return usage(format!(
            "interleaved loader {} of {} does not exist",
            cfg.interleave.index, cfg.interleave.count
        ));
    }
    let dtype = source.dtype();
    if cfg.output == Output::Source && dtype.is_float() {
        return usage(format!(
            "a {dtype} dataset cannot be delivered in its own dtype as tokens: ask for int64 or int32 (its values are truncated toward zero)"
        ));
    }
    let seq_len = cfg.seq_len as u64;
    let sampler = Sampler::new(cfg.mode, cfg.seed, seq_len, source.num_tokens())?;
    let global_batch = (cfg.batch_size as u64)
        .checked_mul(cfg.world_size as u64)
        .ok_or_else(|| {
            DataError::Usage(format!(
                "a global batch of {} × {} samples does not fit in 64 bits",
                cfg.batch_size, cfg.world_size
            ))
        })?;
    let layout = layout(cfg, dtype)?;
    // Fits, since rank < world_size.
    let rank_offset = cfg.rank as u64 * cfg.batch_size as u64;
    if let Some(m) = sampler.samples_per_epoch() {
        if m < global_batch {
            return usage(format!(
                "the dataset has {m} windows of {} tokens, fewer than one global batch of {global_batch} samples",
                layout.row
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
            if s.cursor.checked_add(global_batch).is_none() {
                return usage(format!(
                    "the state's cursor {} leaves no room for one more global batch below 2^64",
                    s.cursor
                ));
            }
            s.cursor
        }
    };
    Ok(Checked {
        sampler,
        global_batch,
        start_cursor,
        rank_offset,
        layout,
    })
}

/// The pool's sizes: refused when they overflow, pass `isize::MAX` (the most one mapping or
/// slice may span), or need more memory than the machine has.
fn layout(cfg: &LoaderConfig, dtype: DType) -> Result<Layout, DataError> {
    let elem = match cfg.output {
        Output::I64 => 8,
        Output::I32 => 4,
        Output::Source => dtype.size(),
    };
    let too_large = |what: String| {
        DataError::Usage(format!(
            "batches of {} × {} tokens are too large: {what}",
            cfg.batch_size,
            u128::from(cfg.seq_len as u64) + 1
        ))
    };
    let row = cfg.seq_len.checked_add(1).ok_or_else(|| {
        too_large("the sequence length leaves no room for the target token".into())
    })?;
    let need = u128::from(cfg.batch_size as u64) * u128::from(row as u64) * elem as u128;
    let batch_bytes = usize::try_from(need)
        .ok()
        .filter(|&b| isize::try_from(b).is_ok())
        .ok_or_else(|| too_large(format!("one batch would need {need} bytes")))?;
    let prefetch = if cfg.prefetch == 0 {
        auto_prefetch(batch_bytes)
    } else {
        cfg.prefetch
    };
    let initial = prefetch + cfg.workers + 1;
    let max_buffers = cfg.max_buffers.max(initial);
    let page = osml_sys::page_size() as u128;
    let stride = (batch_bytes as u128).div_ceil(page) * page;
    let pool = stride * initial as u128;
    let memory = osml_sys::physical_memory().map_or(u128::MAX, u128::from);
    if pool > isize::MAX as u128 || pool > memory {
        return Err(too_large(format!(
            "the pool of {initial} buffers (prefetch {} + workers {} + 1) would need {pool} bytes, and this machine has {memory} bytes of memory",
            prefetch, cfg.workers
        )));
    }
    Ok(Layout {
        row,
        elem,
        batch_bytes,
        prefetch,
        initial,
        max_buffers,
    })
}
