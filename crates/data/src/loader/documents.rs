//! Document boundaries of a batch, written into its buffer after the tokens.
//!
//! Layout per batch of B rows of T inputs (each field 64-byte aligned, see `DocLayout`):
//!
//! - `position_ids` `[B, T]` int32 (unless `LoaderConfig::positions` is off: then no bytes
//!   are kept for them): the position of each input token within its document,
//!   restarting at 0 wherever a document starts inside the window (the window's first token
//!   is position 0 whatever its place in its document: a model attends within the window
//!   only). Int32 whatever the tokens: positions are below T < 2^31, torch indexes and
//!   embeds with int32 as with int64, and half the bytes is most of what the fields cost
//!   (measured: int64 positions took the fields' throughput from 0.85 to 0.71 of one source
//!   without them, `cargo bench -p osml-data --bench mixtures`).
//! - `cu_seqlens` `[B, T + 1]` int32: per row, the boundaries `FlashAttention`'s varlen
//!   functions take, `0 = b₀ < b₁ < … < bₘ = T` (every segment non-empty), then `-1` in the
//!   slots past `bₘ`. The shape is fixed, whatever the documents; the segments of row `r`
//!   are `cu_seqlens[r, :m + 1]` with `m + 1` the count of non-negative entries.
//! - `sources` `[B]` int32: the mixture source of each row.
//! - `offsets` `[B]` int64: the first token of each row's window in its source's stream
//!   (with `sources`, what identifies a sample).
//!
//! The `-1` padding is most of `cu_seqlens`, and rewriting it for every batch cost more
//! than the positions (4 bytes per token through memory: the pool is larger than the
//! caches). A buffer keeps its padding from one use to the next, so only the slots that
//! held boundaries last time are reset: a hidden field (`DocLayout::padded`) counts, per
//! row, the trailing slots known to hold `-1`. A caller who wrote into the padding (the
//! arrays are writable) is caught by the padding's first or last slot, which the usual
//! writes change (`cu += k`, `cu[cu < 0] = T`, `cu[r, m + 1:] = T`, appending a boundary
//! at `cu[r, m + 1]`): the row's whole padding is then written again. A write that leaves
//! both at `-1` and changes a slot between them is not caught, and stays in later batches
//! of that buffer: write into a copy for that.

// Positions and boundaries are below T, checked below 2^31 in `config::layout`; offsets lie in
// a mapping (below 2^63); sources are fewer than `MAX_SOURCES`.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::many_single_char_names
)]

use super::config::DocLayout;
use crate::TokenDataset;

/// `0, 1, …, T - 1` (empty without document fields): each document's positions are a
/// prefix of it, copied (a `memcpy`, with the widest stores the CPU has) rather than counted
/// out.
pub(crate) struct Ramp(Box<[i32]>);

impl Ramp {
    pub fn new(layout: Option<DocLayout>, t: usize) -> Self {
        let t = if layout.is_some_and(|d| d.positions.is_some()) {
            t
        } else {
            0
        };
        Self((0..t).map(|k| k as i32).collect())
    }
}

/// The document fields of one buffer, as typed slices.
pub(crate) struct DocFields<'a> {
    positions: &'a mut [i32],
    ramp: &'a Ramp,
    cu_seqlens: &'a mut [i32],
    sources: &'a mut [i32],
    offsets: &'a mut [i64],
    padded: &'a mut [u32],
}

impl<'a> DocFields<'a> {
    /// The fields inside `rest`, the part of the buffer that starts `base` bytes in (right
    /// after the tokens).
    pub fn new(
        layout: DocLayout,
        rest: &'a mut [u8],
        base: usize,
        rows: usize,
        ramp: &'a Ramp,
    ) -> Self {
        // Without positions, an empty field where they would be.
        let at = layout.positions.unwrap_or(layout.cu_seqlens);
        let (_, rest) = rest.split_at_mut(at - base);
        let (positions, rest) = rest.split_at_mut(layout.cu_seqlens - at);
        let (cu, rest) = rest.split_at_mut(layout.sources - layout.cu_seqlens);
        let (sources, rest) = rest.split_at_mut(layout.offsets - layout.sources);
        let (offsets, padded) = rest.split_at_mut(layout.padded - layout.offsets);
        Self {
            positions: bytemuck::cast_slice_mut(positions),
            ramp,
            cu_seqlens: bytemuck::cast_slice_mut(cu),
            sources: bytemuck::cast_slice_mut(&mut sources[..rows * 4]),
            offsets: bytemuck::cast_slice_mut(&mut offsets[..rows * 8]),
            padded: bytemuck::cast_slice_mut(&mut padded[..rows * 4]),
        }
    }

    /// The last slot of row `j`'s `cu_seqlens` (for a prefetch: `write_boundaries` reads it).
    pub fn last_slot(&self, j: usize, t: usize) -> &[i32] {
        let at = (j + 1) * (t + 1) - 1;
        &self.cu_seqlens[at..=at]
    }

    /// The boundaries, source and offset of row `j`: `t` inputs from token `start` of
    /// `dataset`, source `source`. Returns the row's segment count `m` for
    /// [`DocFields::write_positions`].
    pub fn write_boundaries(
        &mut self,
        j: usize,
        t: usize,
        source: usize,
        start: u64,
        dataset: &TokenDataset,
    ) -> usize {
        let cu_row = &mut self.cu_seqlens[j * (t + 1)..(j + 1) * (t + 1)];
        // Trailing slots known to hold -1; none if the caller wrote into the padding (its
        // first or last slot changed: see the module documentation). The count is cleared
        // before the row is written, so a row left half-written is padded whole the next time.
        let mut padded = (self.padded[j] as usize).min(t);
        if cu_row[t] != -1 || (padded > 0 && cu_row[t + 1 - padded] != -1) {
            padded = 0;
        }
        self.padded[j] = 0;
        cu_row[0] = 0;
        let mut m = 1;
        // Documents starting inside the inputs; the one starting at `start` is b₀.
        dataset.document_starts_in(start, start + t as u64, |at| {
            // `at` is in (start, start + t), and t < 2^31 was checked.
            cu_row[m] = (at - start) as i32;
            m += 1;
        });
        cu_row[m] = t as i32;
        // Slots m + 1 ..= t must hold -1; those from t + 1 - padded on already do.
        cu_row[m + 1..(t + 1 - padded).max(m + 1)].fill(-1);
        self.padded[j] = (t - m) as u32;
        // At most MAX_SOURCES sources; offsets lie in a mapping (below 2^63).
        self.sources[j] = source as i32;
        self.offsets[j] = start as i64;
        m
    }

    /// The positions of row `j`, whose boundaries [`DocFields::write_boundaries`] wrote (`m`
    /// segments); nothing when the loader delivers no positions.
    pub fn write_positions(&mut self, j: usize, t: usize, m: usize) {
        if self.positions.is_empty() {
            return;
        }
        let cu_row = &self.cu_seqlens[j * (t + 1)..=j * (t + 1) + m];
        let row = &mut self.positions[j * t..(j + 1) * t];
        for w in cu_row.windows(2) {
            let (a, b) = (w[0] as usize, w[1] as usize);
            row[a..b].copy_from_slice(&self.ramp.0[..b - a]);
        }
    }
}
