//! [`BlockIndex`]: where documents start, by block of tokens, learnt as windows ask.
//!
//! A window's document boundaries are a search of a shard's document index for the first
//! document starting after the window's first token. Over the whole index every step of
//! that search misses the cache (twice for a Megatron `.idx`: document index, then pointer),
//! and the loader makes B such searches per batch: measured on the `mixtures` bench they
//! cost more than the document fields' stores. Two tables of lazily filled entries narrow
//! it to the documents of one 4 Ki-token block (a few, for real corpora), whose entries lie
//! in one or two cache lines:
//!
//! - a fine entry per `2^FINE_SHIFT` tokens: the first document starting at or after the
//!   block's first token, found (the first time) among the documents of its coarse block;
//! - a coarse entry per `2^COARSE_SHIFT` tokens, found (the first time) over the whole index.
//!
//! Entries are `u32` (the document plus one, 0 until asked for), in zeroed memory that the
//! kernel maps as pages are first touched: 1 byte per 1 Ki tokens, about 10 MiB for 10 B
//! tokens, nothing at open. Workers racing on an entry store the same value. Indexes of
//! `u32::MAX` documents or more get no table and search the whole index.

use std::sync::atomic::{AtomicU32, Ordering};

const FINE_SHIFT: u32 = 12;
const COARSE_SHIFT: u32 = 16;

#[derive(Debug)]
pub(crate) struct BlockIndex {
    /// Documents indexed; entries hold one more than a document, so at most `u32::MAX - 1`.
    documents: usize,
    fine: Box<[AtomicU32]>,
    coarse: Box<[AtomicU32]>,
}

impl BlockIndex {
    /// A table for `documents` documents over `tokens` tokens; `None` when the entries
    /// cannot hold the documents' numbers (or the table its size).
    pub fn new(tokens: u64, documents: usize) -> Option<Self> {
        if documents >= u32::MAX as usize {
            return None;
        }
        let entries = |shift: u32| usize::try_from(tokens >> shift).ok()?.checked_add(2);
        Some(Self {
            documents,
            fine: bytemuck::try_zeroed_slice_box(entries(FINE_SHIFT)?).ok()?,
            coarse: bytemuck::try_zeroed_slice_box(entries(COARSE_SHIFT)?).ok()?,
        })
    }

    /// The first document whose start (`start(i)`, non-decreasing in `i`) is after `local`;
    /// the count of documents when none is.
    pub fn first_after(&self, local: u64, start: impl Fn(usize) -> u64) -> usize {
        let Ok(b) = usize::try_from(local >> FINE_SHIFT) else {
            return first_where(0, self.documents, |i| start(i) > local);
        };
        let (lo, hi) = self.block_span(b, &start);
        first_where(lo, hi, |i| start(i) > local)
    }

    /// The documents that may start in fine block `b`, `fine(b)..fine(b + 1)`: those
    /// before start before the block, those from the end start after it.
    pub fn block_span(&self, b: usize, start: &impl Fn(usize) -> u64) -> (usize, usize) {
        (self.fine(b, start), self.fine(b.saturating_add(1), start))
    }

    /// The fine block of token `local`.
    pub fn block_of(local: u64) -> Option<usize> {
        usize::try_from(local >> FINE_SHIFT).ok()
    }

    /// The first document starting at or after the first token of fine block `b`.
    fn fine(&self, b: usize, start: &impl Fn(usize) -> u64) -> usize {
        let Some(entry) = self.fine.get(b) else {
            return self.documents;
        };
        known(entry).unwrap_or_else(|| {
            let at = (b as u64) << FINE_SHIFT;
            let c = b >> (COARSE_SHIFT - FINE_SHIFT);
            let (lo, hi) = (self.coarse(c, start), self.coarse(c + 1, start));
            learn(entry, first_where(lo, hi, |i| start(i) >= at))
        })
    }

    /// The first document starting at or after the first token of coarse block `c`.
    fn coarse(&self, c: usize, start: &impl Fn(usize) -> u64) -> usize {
        let Some(entry) = self.coarse.get(c) else {
            return self.documents;
        };
        known(entry).unwrap_or_else(|| {
            let at = (c as u64) << COARSE_SHIFT;
            learn(entry, first_where(0, self.documents, |i| start(i) >= at))
        })
    }
}

fn known(entry: &AtomicU32) -> Option<usize> {
    (entry.load(Ordering::Relaxed) as usize).checked_sub(1)
}

fn learn(entry: &AtomicU32, document: usize) -> usize {
    // `document` is at most `documents`, below `u32::MAX` (checked in `new`).
    entry.store(u32::try_from(document + 1).unwrap_or(0), Ordering::Relaxed);
    document
}

/// The first `i` in `lo..hi` where `pred` holds, given that it holds from some point on
/// (`hi` when it holds nowhere there).
pub(crate) fn first_where(mut lo: usize, mut hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a search of the whole list, for any starts, including repeated ones
        /// (empty documents) and ones far apart (empty blocks), and queries in any order.
        #[test]
        fn agrees_with_a_whole_search(
            gaps in proptest::collection::vec(
                prop_oneof![Just(0u64), 1u64..600, 4_000u64..200_000], 1..400),
            queries in proptest::collection::vec(any::<u64>(), 1..200),
        ) {
            let mut starts = Vec::with_capacity(gaps.len());
            let mut at = 0u64;
            for g in &gaps {
                at += g;
                starts.push(at);
            }
            let tokens = at + 1_000;
            let index = BlockIndex::new(tokens, starts.len()).unwrap();
            for q in queries {
                let local = q % (tokens + 10_000);
                let expected = starts.partition_point(|&s| s <= local);
                prop_assert_eq!(index.first_after(local, |i| starts[i]), expected, "at {}", local);
            }
        }
    }

    #[test]
    fn refuses_more_documents_than_its_entries_hold() {
        assert!(BlockIndex::new(1 << 40, u32::MAX as usize).is_none());
        assert!(BlockIndex::new(1 << 20, u32::MAX as usize - 1).is_some());
    }
}
