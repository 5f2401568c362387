//! Document boundaries of a batch, written into its buffer after the tokens.
//!
//! Layout per batch of B rows of T inputs (each field 64-byte aligned, see `DocLayout`):
//!
//! - `position_ids` `[B, T]` (int64, or int32 with int32 tokens): the position of each input
//!   token within its document, restarting at 0 wherever a document starts inside the
//!   window (the window's first token is position 0 whatever its place in its document: a
//!   model attends within the window only).
//! - `cu_seqlens` `[B, T + 1]` int32: per row, the boundaries `FlashAttention`'s varlen
//!   functions take, `0 = b₀ < b₁ < … < bₘ = T` (every segment non-empty), then `-1` in the
//!   slots past `bₘ`. The shape is fixed, whatever the documents; the segments of row `r`
//!   are `cu_seqlens[r, :m + 1]` with `m + 1` the count of non-negative entries.
//! - `sources` `[B]` int32: the mixture source of each row.
//! - `offsets` `[B]` int64: the first token of each row's window in its source's stream
//!   (with `sources`, what identifies a sample).

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

/// `0, 1, …, T - 1` in both dtypes of `position_ids` (12 bytes per position; empty without
/// document fields): each document's positions are a prefix of it, copied (a `memcpy`, with
/// the widest stores the CPU has) rather than counted out.
pub(crate) struct Ramp {
    i64: Box<[i64]>,
    i32: Box<[i32]>,
}

impl Ramp {
    pub fn new(layout: Option<DocLayout>, t: usize) -> Self {
        let t = if layout.is_some() { t } else { 0 };
        Self {
            i64: (0..t).map(|k| k as i64).collect(),
            i32: (0..t).map(|k| k as i32).collect(),
        }
    }
}

/// The document fields of one buffer, as typed slices.
pub(crate) struct DocFields<'a> {
    positions: Positions<'a>,
    ramp: &'a Ramp,
    cu_seqlens: &'a mut [i32],
    sources: &'a mut [i32],
    offsets: &'a mut [i64],
}

enum Positions<'a> {
    I64(&'a mut [i64]),
    I32(&'a mut [i32]),
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
        let (_, rest) = rest.split_at_mut(layout.positions - base);
        let (positions, rest) = rest.split_at_mut(layout.cu_seqlens - layout.positions);
        let (cu, rest) = rest.split_at_mut(layout.sources - layout.cu_seqlens);
        let (sources, offsets) = rest.split_at_mut(layout.offsets - layout.sources);
        let positions = if layout.position_elem == 4 {
            Positions::I32(bytemuck::cast_slice_mut(positions))
        } else {
            Positions::I64(bytemuck::cast_slice_mut(positions))
        };
        Self {
            positions,
            ramp,
            cu_seqlens: bytemuck::cast_slice_mut(cu),
            sources: bytemuck::cast_slice_mut(&mut sources[..rows * 4]),
            offsets: bytemuck::cast_slice_mut(&mut offsets[..rows * 8]),
        }
    }

    /// Row `j`: `t` inputs from token `start` of `dataset`, source `source`.
    pub fn write_row(
        &mut self,
        j: usize,
        t: usize,
        source: usize,
        start: u64,
        dataset: &TokenDataset,
    ) {
        let cu_row = &mut self.cu_seqlens[j * (t + 1)..(j + 1) * (t + 1)];
        cu_row[0] = 0;
        let mut m = 1;
        // Documents starting inside the inputs; the one starting at `start` is b₀.
        dataset.document_starts_in(start, start + t as u64, |at| {
            // `at` is in (start, start + t), and t < 2^31 was checked.
            cu_row[m] = (at - start) as i32;
            m += 1;
        });
        cu_row[m] = t as i32;
        cu_row[m + 1..].fill(-1);
        let segments = cu_row[..=m].windows(2);
        match &mut self.positions {
            Positions::I64(p) => {
                let row = &mut p[j * t..(j + 1) * t];
                for w in segments {
                    let (a, b) = (w[0] as usize, w[1] as usize);
                    row[a..b].copy_from_slice(&self.ramp.i64[..b - a]);
                }
            }
            Positions::I32(p) => {
                let row = &mut p[j * t..(j + 1) * t];
                for w in segments {
                    let (a, b) = (w[0] as usize, w[1] as usize);
                    row[a..b].copy_from_slice(&self.ramp.i32[..b - a]);
                }
            }
        }
        // At most MAX_SOURCES sources; offsets lie in a mapping (below 2^63).
        self.sources[j] = source as i32;
        self.offsets[j] = start as i64;
    }
}
