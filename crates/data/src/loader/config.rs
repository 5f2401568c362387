//! [`LoaderConfig`] and [`LoaderState`], and the one place they are checked against a dataset
//! ([`check`]): every size is computed with checked arithmetic before anything is allocated.

use serde::{Deserialize, Serialize};

use crate::mixture::{Blend, Mixture, WeightChange, Weights};
use crate::sampler::{Mode, Sampler};
use crate::{DType, DataError, TokenSource};

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
#[allow(clippy::struct_excessive_bools)] // independent switches, each documented
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
    /// Also deliver each row's document boundaries (`position_ids`, `cu_seqlens`), source
    /// and offset, in the same buffer ([`super::Batch::documents`]).
    pub documents: bool,
    /// With `documents`, deliver `position_ids` too (the default). Without them a batch
    /// carries `cu_seqlens`, sources and offsets only: the positions are 4 bytes per token, most
    /// of what the fields cost, and a model that takes `cu_seqlens` (`FlashAttention`'s varlen
    /// functions, a THD layout) can do without them.
    pub positions: bool,
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
            documents: false,
            positions: true,
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
    /// The epoch of the next sample (0 in random mode; for a mixture, of its first source).
    pub epoch: u64,
    /// A mixture's sources and weights (absent for one source read whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixture: Option<MixtureState>,
}

/// What a state records of a mixture: enough to check it is restored onto the same sources
/// and to reproduce every weight it was read with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixtureState {
    /// Tokens of each source (of its subset, under a split), in order.
    pub sources: Vec<u64>,
    /// The weights since sample 0: the first change starts there.
    pub weights: Vec<WeightChange>,
}

impl LoaderState {
    /// This state with `weights` from its cursor on (a step boundary): what
    /// `set_weights` restores, so that the change is part of the record.
    pub fn reweighted(&self, weights: &Weights) -> Result<Self, DataError> {
        let Some(m) = &self.mixture else {
            return Err(DataError::Usage(
                "one source has no weights to change: give the loader a mixture".into(),
            ));
        };
        if weights.shares().len() != m.sources.len() {
            return Err(DataError::Usage(format!(
                "{} weights for a mixture of {} sources",
                weights.shares().len(),
                m.sources.len()
            )));
        }
        let mut history = m.weights.clone();
        history.retain(|c| c.start < self.cursor);
        history.push(WeightChange {
            start: self.cursor,
            shares: weights.shares().to_vec(),
        });
        let mut out = self.clone();
        out.mixture = Some(MixtureState {
            sources: m.sources.clone(),
            weights: history,
        });
        Ok(out)
    }
}

/// Where a batch's document fields lie in its buffer (byte offsets, each 64-byte aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DocLayout {
    /// `position_ids`: B × T int32 (`None` when the loader was asked not to deliver them).
    pub positions: Option<usize>,
    /// `cu_seqlens`: B × (T + 1) int32.
    pub cu_seqlens: usize,
    /// The source of each row: B int32.
    pub sources: usize,
    /// The first token of each row's window in its source's stream: B int64.
    pub offsets: usize,
    /// Not shown to users: B uint32, how many entries at the end of each row's
    /// `cu_seqlens` hold `-1` (see the `documents` module).
    pub padded: usize,
}

/// Sizes of the pool, all checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Tokens per row: T + 1.
    pub row: usize,
    /// Bytes per element of the output.
    pub elem: usize,
    /// Bytes of the tokens of one batch (B × (T + 1) elements).
    pub token_bytes: usize,
    /// Bytes of one batch buffer: the tokens, then the document fields if asked for.
    pub batch_bytes: usize,
    pub docs: Option<DocLayout>,
    /// Batches prepared ahead (the configured depth, or the one chosen).
    pub prefetch: usize,
    /// Buffers allocated up front, and added at each growth.
    pub initial: usize,
    pub max_buffers: usize,
}

/// Which window global sample `i` is: its source (by the blend) and that source's own
/// sampler, over the token range of its subset.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub samplers: Vec<Sampler>,
    /// Token offset of each source's subset in its dataset.
    pub offsets: Vec<u64>,
    pub blend: Blend,
}

impl Plan {
    /// The source of global sample `i` and its window's first token in that source's dataset.
    pub fn window(&self, i: u64) -> (usize, u64) {
        let (s, j) = self.blend.assign(i);
        (s, self.offsets[s] + self.samplers[s].window_start(j))
    }
}

/// A configuration checked against a mixture.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub plan: Plan,
    pub weights_restored: Option<WeightsRestored>,
    pub global_batch: u64,
    pub start_cursor: u64,
    pub rank_offset: u64,
    pub layout: Layout,
}

/// A restored state whose recorded weights are not the ones the configuration gives at its
/// cursor: the record wins (it is what the run drew), and the caller is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightsRestored {
    /// The global sample the loader continues from.
    pub cursor: u64,
    /// The shares the configured weights and schedule give at `cursor`.
    pub configured: Vec<u64>,
    /// The shares in force at `cursor` after the restore (the record's, then the configured
    /// changes past the record's last).
    pub restored: Vec<u64>,
}

/// The shares in force at sample `n` of a list of changes sorted by start (the first at 0),
/// reduced by their gcd so that 14:4:2 and 7:2:1 compare equal.
fn shares_in_force(changes: &[WeightChange], n: u64) -> Vec<u64> {
    let Some(c) = changes.iter().rev().find(|c| c.start <= n) else {
        return Vec::new();
    };
    let g = c.shares.iter().fold(0, |g, &x| gcd(g, x)).max(1);
    c.shares.iter().map(|x| x / g).collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn usage<T>(m: String) -> Result<T, DataError> {
    Err(DataError::Usage(m))
}

/// The seed of source `s`'s sampler: the loader's own for one source (so that a source read
/// alone gives the sequence it always gave), a distinct one per source of a mixture.
fn source_seed(seed: u64, s: usize, sources: usize) -> u64 {
    if sources == 1 {
        seed
    } else {
        crate::sampler::key(seed, s as u64)
    }
}

/// Validates a configuration (and a state to restore) against the sources, before anything
/// is allocated.
#[allow(clippy::too_many_lines)] // one list of checks, in the order they are reported
pub(crate) fn check(
    mixture: &Mixture,
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
    let parts = mixture.parts();
    let dtype = parts[0].dataset.dtype();
    if cfg.output == Output::Source {
        if dtype.is_float() {
            return usage(format!(
                "a {dtype} dataset cannot be delivered in its own dtype as tokens: ask for int64 or int32 (its values are truncated toward zero)"
            ));
        }
        if let Some(p) = parts.iter().find(|p| p.dataset.dtype() != dtype) {
            return usage(format!(
                "source {} holds {} tokens and source {} holds {dtype}: a mixture delivered in the sources' own dtype needs one dtype (ask for int64 or int32)",
                p.name,
                p.dataset.dtype(),
                parts[0].name
            ));
        }
    }
    let seq_len = cfg.seq_len as u64;
    let mut samplers = Vec::with_capacity(parts.len());
    for (s, p) in parts.iter().enumerate() {
        let seed = source_seed(cfg.seed, s, parts.len());
        samplers.push(
            Sampler::new(cfg.mode, seed, seq_len, p.num_tokens()).map_err(|e| {
                if parts.len() == 1 && p.name.is_empty() {
                    e
                } else {
                    DataError::Usage(format!("source {}: {e}", p.name))
                }
            })?,
        );
    }
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
    if let ([sampler], true) = (samplers.as_slice(), mixture.is_single()) {
        if let Some(m) = sampler.samples_per_epoch() {
            if m < global_batch {
                return usage(format!(
                    "the dataset has {m} windows of {} tokens, fewer than one global batch of {global_batch} samples",
                    layout.row
                ));
            }
        }
    }
    let tokens: u64 = parts.iter().map(crate::mixture::Part::num_tokens).sum();
    let mut changes = mixture.changes(global_batch)?;
    let mut weights_restored = None;
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
            if s.tokens != tokens {
                return mismatch("dataset (its token count differs)");
            }
            match (&s.mixture, mixture.is_single()) {
                (None, true) => {}
                (Some(m), false) => {
                    let here: Vec<u64> =
                        parts.iter().map(crate::mixture::Part::num_tokens).collect();
                    if m.sources != here {
                        return mismatch("mixture (its sources' token counts differ)");
                    }
                    // The record is the past; the configured schedule adds what lies past it
                    // (and past the cursor: a stage the record has reached is not gone back
                    // to), each change moved to the next step boundary from the cursor, which
                    // the configured steps miss when the global batch changed.
                    let configured = shares_in_force(&changes, s.cursor);
                    let last = m.weights.last().map_or(0, |c| c.start);
                    let after = last.max(s.cursor);
                    changes.retain(|c| c.start > after);
                    for c in &mut changes {
                        let steps = (c.start - s.cursor).div_ceil(global_batch);
                        c.start = steps
                            .checked_mul(global_batch)
                            .and_then(|d| d.checked_add(s.cursor))
                            .ok_or_else(|| {
                                DataError::Usage(format!(
                                    "a scheduled change at sample {} passes 2^64 from the state's cursor {}",
                                    c.start, s.cursor
                                ))
                            })?;
                    }
                    changes.splice(0..0, m.weights.iter().cloned());
                    let restored = shares_in_force(&changes, s.cursor);
                    if configured != restored {
                        weights_restored = Some(WeightsRestored {
                            cursor: s.cursor,
                            configured,
                            restored,
                        });
                    }
                }
                (None, false) => return mismatch("kind of source (one source, not a mixture)"),
                (Some(_), true) => return mismatch("kind of source (a mixture, not one source)"),
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
    let blend = Blend::new(&changes, parts.len())?;
    Ok(Checked {
        plan: Plan {
            samplers,
            offsets: parts.iter().map(|p| p.tokens.start).collect(),
            blend,
        },
        weights_restored,
        global_batch,
        start_cursor,
        rank_offset,
        layout,
    })
}

/// `n` rounded up to a multiple of 64 bytes, unless it overflows.
fn align64(n: u128) -> u128 {
    n.div_ceil(64) * 64
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
    let (b, t) = (
        u128::from(cfg.batch_size as u64),
        u128::from(cfg.seq_len as u64),
    );
    let tokens = b * u128::from(row as u64) * elem as u128;
    let mut need = tokens;
    let mut docs = None;
    if cfg.documents {
        // Positions count up to T - 1 < 2^31 (checked below): int32, whatever the tokens.
        let positions = align64(need);
        let cu_seqlens = if cfg.positions {
            align64(positions + b * t * 4)
        } else {
            positions
        };
        let sources = align64(cu_seqlens + b * (t + 1) * 4);
        let offsets = align64(sources + b * 4);
        let padded = align64(offsets + b * 8);
        need = padded + b * 4;
        let at = |x: u128| usize::try_from(x).ok();
        if t > u128::from(i32::MAX as u32) {
            return Err(too_large(
                "cu_seqlens are int32, and the sequence length passes 2^31".into(),
            ));
        }
        docs = match (
            at(positions),
            at(cu_seqlens),
            at(sources),
            at(offsets),
            at(padded),
        ) {
            (Some(positions), Some(cu_seqlens), Some(sources), Some(offsets), Some(padded)) => {
                Some(DocLayout {
                    positions: cfg.positions.then_some(positions),
                    cu_seqlens,
                    sources,
                    offsets,
                    padded,
                })
            }
            _ => None,
        };
    }
    let fits = |n: u128| {
        usize::try_from(n)
            .ok()
            .filter(|&b| isize::try_from(b).is_ok())
    };
    let (Some(token_bytes), Some(batch_bytes)) = (fits(tokens), fits(need)) else {
        return Err(too_large(format!("one batch would need {need} bytes")));
    };
    if cfg.documents && docs.is_none() {
        return Err(too_large(format!("one batch would need {need} bytes")));
    }
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
        token_bytes,
        batch_bytes,
        docs,
        prefetch,
        initial,
        max_buffers,
    })
}
