//! [`Shard`]: one dataset file (or Megatron pair) of a source, opened and validated in its
//! format.

use std::path::Path;
use std::sync::OnceLock;

use osml_sys::MappedFile;

use crate::arrow::ArrowTokens;
use crate::block_index::{first_where, BlockIndex};
use crate::flat::FlatTokens;
use crate::megatron::MegatronDataset;
use crate::{DType, Format};

/// Documents starting in one 4 Ki-token block up to which they are counted rather than
/// bisected.
const WALK: usize = 16;

/// One shard of a source: its own stream of tokens, and the documents it records.
#[derive(Debug)]
pub struct Shard {
    kind: Kind,
    /// Where documents start, by block of tokens, learnt as windows ask.
    starts: OnceLock<Option<BlockIndex>>,
}

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

    /// The first recorded document that starts after token `local` of this shard's stream
    /// (the count of documents when none does). Document starts are non-decreasing.
    pub(crate) fn first_document_after(&self, local: u64) -> usize {
        let docs = self.recorded_documents().unwrap_or(1);
        let start = |i: usize| self.document_start(i);
        match self.index() {
            Some(index) => index.first_after(local, start),
            None => first_where(0, docs, |i| start(i) > local),
        }
    }

    /// The block table, made on first use (`None` past its limits).
    fn index(&self) -> Option<&BlockIndex> {
        self.starts
            .get_or_init(|| {
                BlockIndex::new(self.num_tokens(), self.recorded_documents().unwrap_or(1))
            })
            .as_ref()
    }

    /// Calls `f` with the start of each recorded document that starts in `(local, to)` of
    /// this shard's stream, in order (repeats included: the caller drops them).
    pub(crate) fn document_starts_between(&self, local: u64, to: u64, mut f: impl FnMut(u64)) {
        if let Kind::Megatron(m) = &self.kind {
            if let (Some((pointers, shift)), Some(index), Some(b)) = (
                m.pointer_starts(0),
                self.index(),
                BlockIndex::block_of(local),
            ) {
                // The documents of `local`'s block that start at or before it are counted
                // without branches (a search's branches, and a walk's end, are mispredicted
                // each time: measured, they were most of the search's cost); a block of very
                // many documents is searched.
                let start = |i: usize| m.document_start(i);
                let (lo, hi) = index.block_span(b, &start);
                let first = if hi - lo <= WALK {
                    let block = pointers.get(lo * 8..hi * 8).unwrap_or(&[]);
                    lo + block
                        .chunks_exact(8)
                        .map(|p| {
                            let mut a = [0u8; 8];
                            a.copy_from_slice(p);
                            usize::from(u64::from_le_bytes(a) >> shift <= local)
                        })
                        .sum::<usize>()
                } else {
                    first_where(lo, hi, |i| start(i) > local)
                };
                for p in pointers.get(first * 8..).unwrap_or(&[]).chunks_exact(8) {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(p);
                    let s = u64::from_le_bytes(a) >> shift;
                    if s >= to {
                        return;
                    }
                    f(s);
                }
                return;
            }
        }
        for s in self.document_starts_from(self.first_document_after(local)) {
            if s >= to {
                return;
            }
            f(s);
        }
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
