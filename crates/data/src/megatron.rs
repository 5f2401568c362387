//! Megatron's indexed dataset: a `.bin` of concatenated tokens and an `.idx` describing it.
//!
//! The `.idx` layout, all little-endian and packed (no alignment):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 9 | magic `MMIDIDX\0\0` |
//! | 9 | 8 | version, `1` |
//! | 17 | 1 | dtype code (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16) |
//! | 18 | 8 | sequence count S |
//! | 26 | 8 | document count D (= documents + 1) |
//! | 34 | 4·S | sequence lengths, int32 |
//! | 34+4S | 8·S | sequence byte offsets into the `.bin`, int64 |
//! | 34+12S | 8·D | document boundaries as sequence indices, int64: `[0, …, S]` |
//! | 34+12S+8D | S | sequence modes, int8 (multimodal datasets only) |

use std::path::{Path, PathBuf};

use osml_sys::MappedFile;

use crate::tokens::{le_i32, le_u64};
use crate::{DType, DataError, FileFormat, Tokens};

pub(crate) const MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";
pub(crate) const HEADER_LEN: usize = 34;
const FORMAT: FileFormat = FileFormat::MegatronIdx;

/// The `.idx` and `.bin` of a Megatron dataset, mapped and validated.
#[derive(Debug)]
pub struct MegatronDataset {
    idx: MappedFile,
    bin: MappedFile,
    dtype: DType,
    sequences: usize,
    /// Entries of the document index (documents + 1).
    doc_entries: usize,
    has_modes: bool,
    tokens: u64,
    /// Entry `i` of the document index is `i`: each document is one sequence (what
    /// Megatron's `preprocess_data.py` writes unless told to split sentences), so a
    /// document's start is one read (its pointer) instead of two dependent ones.
    one_sequence_each: bool,
}

/// `prefix.idx` and `prefix.bin` for a path given as the prefix, the `.idx` or the `.bin`.
pub fn paths(path: &Path) -> (PathBuf, PathBuf) {
    let prefix = match path.extension().and_then(|e| e.to_str()) {
        Some("idx" | "bin") => path.with_extension(""),
        _ => path.to_path_buf(),
    };
    let with = |ext: &str| {
        let mut p = prefix.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    (with(".idx"), with(".bin"))
}

impl MegatronDataset {
    /// Opens and validates `prefix.idx` + `prefix.bin`: magic, version, dtype code, counts
    /// against the file size, every length and pointer (the sequences must tile the `.bin`
    /// from byte 0 without gaps or overlaps), and the document index (non-decreasing, from 0
    /// to S).
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let (idx_path, bin_path) = paths(path);
        let idx = crate::source::map(&idx_path)?;
        let bin = crate::source::map(&bin_path)?;
        let b = idx.bytes();
        let bad = |reason: String| DataError::invalid(&idx_path, FORMAT, reason);
        if b.len() < HEADER_LEN {
            return Err(bad(format!(
                "{} bytes, shorter than the 34-byte header (truncated?)",
                b.len()
            )));
        }
        if &b[..9] != MAGIC {
            return Err(bad(format!(
                "magic is {:?}, expected \"MMIDIDX\\0\\0\": not a Megatron index",
                String::from_utf8_lossy(&b[..9])
            )));
        }
        let version = le_u64(&b[9..17], 0);
        if version != 1 {
            return Err(bad(format!("version {version}, only version 1 exists")));
        }
        let code = b[17];
        let dtype = DType::from_megatron_code(code)
            .ok_or_else(|| bad(format!("dtype code {code} is not one of 1-8")))?;
        let s = le_u64(&b[18..26], 0);
        let d = le_u64(&b[26..34], 0);
        let too_big = || bad(format!("counts S={s}, D={d} do not fit in memory"));
        let s_us = usize::try_from(s).map_err(|_| too_big())?;
        let d_us = usize::try_from(d).map_err(|_| too_big())?;
        let need = s_us
            .checked_mul(12)
            .and_then(|x| x.checked_add(d_us.checked_mul(8)?))
            .and_then(|x| x.checked_add(HEADER_LEN))
            .ok_or_else(too_big)?;
        let has_modes = match b.len() {
            n if n == need => false,
            n if Some(n) == need.checked_add(s_us) && s_us > 0 => true,
            n if n < need => {
                return Err(bad(format!(
                    "{n} bytes, but S={s} sequences and D={d} document entries need {need} (truncated?)"
                )))
            }
            n => {
                return Err(bad(format!(
                    "{n} bytes, but S={s} sequences and D={d} document entries need {need} ({} with sequence modes): the counts are wrong",
                    need + s_us
                )))
            }
        };
        if d == 0 {
            return Err(bad(
                "document count is 0; it counts the leading 0 boundary, so it is at least 1".into(),
            ));
        }
        let ds = Self {
            idx,
            bin,
            dtype,
            sequences: s_us,
            doc_entries: d_us,
            has_modes,
            tokens: 0,
            one_sequence_each: false,
        };
        let (tokens, one_sequence_each) = ds.validate(&idx_path, &bin_path)?;
        Ok(Self {
            tokens,
            one_sequence_each,
            ..ds
        })
    }

    fn lengths(&self) -> &[u8] {
        &self.idx.bytes()[HEADER_LEN..HEADER_LEN + 4 * self.sequences]
    }

    fn pointers(&self) -> &[u8] {
        let start = HEADER_LEN + 4 * self.sequences;
        &self.idx.bytes()[start..start + 8 * self.sequences]
    }

    fn doc_index(&self) -> &[u8] {
        let start = HEADER_LEN + 12 * self.sequences;
        &self.idx.bytes()[start..start + 8 * self.doc_entries]
    }

    /// Checks lengths, pointers and document boundaries; returns the token count and whether
    /// each document is one sequence.
    fn validate(&self, idx_path: &Path, bin_path: &Path) -> Result<(u64, bool), DataError> {
        let bad = |reason: String| DataError::invalid(idx_path, FORMAT, reason);
        let size = self.dtype.size() as u64;
        let (lengths, pointers) = (self.lengths(), self.pointers());
        let mut expected = 0u64;
        for i in 0..self.sequences {
            let len = le_i32(lengths, i);
            let len = u64::try_from(len)
                .map_err(|_| bad(format!("sequence {i} has negative length {len}")))?;
            let ptr = le_u64(pointers, i);
            if ptr != expected {
                let what = if ptr < expected {
                    "decreasing or overlapping"
                } else {
                    "a gap before it"
                };
                return Err(bad(format!(
                    "sequence {i} starts at byte {ptr} of the .bin but the sequences before it end at byte {expected} ({what}): pointers disagree with lengths"
                )));
            }
            expected += len * size;
        }
        let bin_len = self.bin.len() as u64;
        if expected > bin_len {
            return Err(DataError::invalid(
                bin_path,
                FileFormat::MegatronBin,
                format!(
                    "{bin_len} bytes, but the index describes {expected} ({} tokens of {}): truncated, or the .idx belongs to another .bin",
                    expected / size,
                    self.dtype
                ),
            ));
        }
        let docs = self.doc_index();
        let mut prev = 0u64;
        let mut identity = true;
        for i in 0..self.doc_entries {
            let v = le_u64(docs, i);
            identity &= v == i as u64;
            if i == 0 && v != 0 {
                return Err(bad(format!("document index starts at {v}, not 0")));
            }
            if v < prev {
                return Err(bad(format!(
                    "document index decreases at entry {i} ({prev} then {v})"
                )));
            }
            prev = v;
        }
        if prev != self.sequences as u64 {
            return Err(bad(format!(
                "document index ends at sequence {prev}, not at the sequence count {}",
                self.sequences
            )));
        }
        Ok((expected / size, identity))
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    pub fn num_sequences(&self) -> usize {
        self.sequences
    }

    pub fn num_documents(&self) -> usize {
        self.doc_entries - 1
    }

    pub fn has_sequence_modes(&self) -> bool {
        self.has_modes
    }

    /// Length of sequence `i` in tokens.
    pub fn sequence_len(&self, i: usize) -> usize {
        // Validated non-negative at open.
        usize::try_from(le_i32(self.lengths(), i)).unwrap_or(0)
    }

    /// First token of sequence `i` (in tokens from the start of the `.bin`).
    pub fn sequence_start(&self, i: usize) -> u64 {
        // Token sizes are powers of two: a shift, not a division, on the documents' hot path.
        le_u64(self.pointers(), i) >> self.dtype.size().trailing_zeros()
    }

    /// The tokens of sequence `i`.
    pub fn sequence(&self, i: usize) -> Tokens<'_> {
        let start = usize::try_from(le_u64(self.pointers(), i)).unwrap_or(usize::MAX);
        let end = start.saturating_add(self.sequence_len(i) * self.dtype.size());
        Tokens::new(self.dtype, self.bin.bytes().get(start..end).unwrap_or(&[]))
    }

    /// The sequences `[first, last)` of document `i`.
    pub fn document_sequences(&self, i: usize) -> (usize, usize) {
        let d = self.doc_index();
        let to = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        (to(le_u64(d, i)), to(le_u64(d, i + 1)))
    }

    /// First token of document `i` (the stream's end for an empty document past the last
    /// sequence): the start [`MegatronDataset::document_range`] gives, in two reads.
    pub fn document_start(&self, i: usize) -> u64 {
        let first = if self.one_sequence_each {
            i
        } else {
            usize::try_from(le_u64(self.doc_index(), i)).unwrap_or(usize::MAX)
        };
        if first < self.sequences {
            self.sequence_start(first)
        } else {
            self.tokens
        }
    }

    /// The starts of documents `first..` as one slice of little-endian byte offsets and the
    /// shift that makes them tokens, when each document is one sequence (its pointer): a
    /// search can then walk them in a tight loop rather than call
    /// [`MegatronDataset::document_start`] for each.
    pub(crate) fn pointer_starts(&self, first: usize) -> Option<(&[u8], u32)> {
        let pointers = self.pointers();
        (self.one_sequence_each && first <= self.sequences)
            .then(|| (&pointers[first * 8..], self.dtype.size().trailing_zeros()))
    }

    /// Token range `[start, end)` of document `i` in the stream.
    pub fn document_range(&self, i: usize) -> (u64, u64) {
        let (first, last) = self.document_sequences(i);
        if first == last {
            let at = if first < self.sequences {
                self.sequence_start(first)
            } else {
                self.tokens
            };
            return (at, at);
        }
        let start = self.sequence_start(first);
        let end = self.sequence_start(last - 1) + self.sequence_len(last - 1) as u64;
        (start, end)
    }

    pub(crate) fn bin(&self) -> &MappedFile {
        &self.bin
    }

    pub(crate) fn idx(&self) -> &MappedFile {
        &self.idx
    }
}
