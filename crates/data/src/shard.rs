//! [`Shard`]: one dataset file (or Megatron pair) of a source, opened and validated in its
//! format.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use osml_sys::MappedFile;

use crate::arrow::ArrowTokens;
use crate::flat::FlatTokens;
use crate::megatron::MegatronDataset;
use crate::{DType, Format};

/// One shard of a source: its own stream of tokens, and the documents it records.
#[derive(Debug)]
pub struct Shard {
    kind: Kind,
    /// Where documents start, by block of `2^BLOCK_SHIFT` tokens, filled as windows ask.
    starts: OnceLock<BlockStarts>,
}

/// Tokens per block of [`BlockStarts`]: 8 bytes of index per 64 Ki tokens (1.2 MiB for 10 B
/// tokens), and a block holds some tens to hundreds of documents of real corpora.
const BLOCK_SHIFT: u32 = 16;

/// Entry `b`: the first recorded document starting at or after token `b · 2^BLOCK_SHIFT`,
/// `usize::MAX` until some window needs it. A window's boundaries are then a search among
/// the documents of one block, whose index entries lie together, instead of a search over
/// the whole index: on a corpus of millions of documents each step of that would miss the
/// cache, twice (document index, then pointer). Filled lazily, so opening stays O(1);
/// workers racing on an entry store the same value.
#[derive(Debug)]
struct BlockStarts(Box<[AtomicUsize]>);

#[derive(Debug)]
enum Kind {
    Megatron(MegatronDataset),
    Flat { format: Format, tokens: FlatTokens },
    Arrow(ArrowTokens),
}

impl Shard {
    pub(crate) fn megatron(m: MegatronDataset) -> Self {
        Self {
            kind: Kind::Megatron(m),
            starts: OnceLock::new(),
        }
    }

    pub(crate) fn flat(format: Format, tokens: FlatTokens) -> Self {
        Self {
            kind: Kind::Flat { format, tokens },
            starts: OnceLock::new(),
        }
    }

    pub(crate) fn arrow(a: ArrowTokens) -> Self {
        Self {
            kind: Kind::Arrow(a),
            starts: OnceLock::new(),
        }
    }

    pub fn format(&self) -> Format {
        match &self.kind {
            Kind::Megatron(_) => Format::Megatron,
            Kind::Flat { format, .. } => *format,
            Kind::Arrow(_) => Format::Arrow,
        }
    }

    pub fn dtype(&self) -> DType {
        match &self.kind {
            Kind::Megatron(m) => m.dtype(),
            Kind::Flat { tokens, .. } => tokens.dtype(),
            Kind::Arrow(a) => a.dtype(),
        }
    }

    pub fn num_tokens(&self) -> u64 {
        match &self.kind {
            Kind::Megatron(m) => m.tokens(),
            Kind::Flat { tokens, .. } => tokens.tokens(),
            Kind::Arrow(a) => a.tokens(),
        }
    }

    /// The documents the file records: `None` for flat formats, which record none.
    pub fn recorded_documents(&self) -> Option<usize> {
        match &self.kind {
            Kind::Megatron(m) => Some(m.num_documents()),
            Kind::Flat { .. } => None,
            Kind::Arrow(a) => Some(a.num_documents()),
        }
    }

    /// Token range of recorded document `i` in this shard's own stream.
    pub(crate) fn document_range(&self, i: usize) -> Option<(u64, u64)> {
        match &self.kind {
            Kind::Megatron(m) => (i < m.num_documents()).then(|| m.document_range(i)),
            Kind::Flat { tokens, .. } => (i == 0).then_some((0, tokens.tokens())),
            Kind::Arrow(a) => a.document_range(i),
        }
    }

    /// First token of recorded document `i` (`i` below [`Shard::recorded_documents`]).
    fn document_start(&self, i: usize) -> u64 {
        match &self.kind {
            Kind::Megatron(m) => m.document_start(i),
            Kind::Flat { .. } => 0,
            Kind::Arrow(a) => a.document_range(i).map_or(a.tokens(), |(s, _)| s),
        }
    }

    /// The first of documents `lo..hi` that starts after token `local`, given that those
    /// before `lo` do not and those from `hi` on do (`hi` when none of them does).
    fn first_start_after(&self, mut lo: usize, mut hi: usize, local: u64) -> usize {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.document_start(mid) <= local {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The first recorded document that starts after token `local` of this shard's stream
    /// (the count of documents when none does). Document starts are non-decreasing.
    pub(crate) fn first_document_after(&self, local: u64) -> usize {
        let docs = self.recorded_documents().unwrap_or(1);
        let blocks = self.starts.get_or_init(|| {
            let n = usize::try_from(self.num_tokens() >> BLOCK_SHIFT).unwrap_or(0) + 2;
            BlockStarts((0..n).map(|_| AtomicUsize::new(usize::MAX)).collect())
        });
        // The first document starting at or after block `b`'s first token.
        let block = |b: usize| -> usize {
            let Some(entry) = blocks.0.get(b) else {
                return docs;
            };
            let known = entry.load(Ordering::Relaxed);
            if known != usize::MAX {
                return known;
            }
            let at = (b as u64) << BLOCK_SHIFT;
            // Starting at or after `at` is starting after `at - 1` (block 0: every document).
            let first = if at == 0 {
                0
            } else {
                self.first_start_after(0, docs, at - 1)
            };
            entry.store(first, Ordering::Relaxed);
            first
        };
        let b = usize::try_from(local >> BLOCK_SHIFT).unwrap_or(usize::MAX);
        self.first_start_after(block(b), block(b.saturating_add(1)), local)
    }

    /// Recorded documents `from..` with their starts, in order.
    pub(crate) fn document_starts_from(&self, from: usize) -> impl Iterator<Item = u64> + '_ {
        (from..self.recorded_documents().unwrap_or(1)).map(|i| self.document_start(i))
    }

    /// The file holding the token stream (`.bin` of a Megatron pair).
    pub fn stream_file(&self) -> &MappedFile {
        match &self.kind {
            Kind::Megatron(m) => m.bin(),
            Kind::Flat { tokens, .. } => tokens.map(),
            Kind::Arrow(a) => a.map(),
        }
    }

    /// The path that names the shard in messages: its stream file.
    pub fn path(&self) -> &Path {
        self.stream_file().path()
    }

    /// Every file behind the shard, data first.
    pub fn files(&self) -> Vec<&MappedFile> {
        match &self.kind {
            Kind::Megatron(m) => vec![m.bin(), m.idx()],
            Kind::Flat { tokens, .. } => vec![tokens.map()],
            Kind::Arrow(a) => vec![a.map()],
        }
    }

    /// The Megatron reader, for sequence-level access.
    pub fn as_megatron(&self) -> Option<&MegatronDataset> {
        match &self.kind {
            Kind::Megatron(m) => Some(m),
            _ => None,
        }
    }

    /// The token stream as runs of [`Shard::stream_file`]: (byte offset, tokens), in order.
    pub(crate) fn runs(&self) -> Vec<(usize, u64)> {
        match &self.kind {
            Kind::Megatron(m) => vec![(0, m.tokens())],
            Kind::Flat { tokens, .. } => {
                vec![(tokens.map().len() - tokens.data().len(), tokens.tokens())]
            }
            Kind::Arrow(a) => a.pieces().to_vec(),
        }
    }
}
