//! [`TokenSource`], the one view over every format, and [`TokenDataset`], a source of one or
//! many shards read as one stream of documents.
//!
//! A source is named by paths: a file (or Megatron prefix), a glob (`data/shard_*.bin`), a
//! directory, or a list of these. A glob or a directory expands in sorted path order; a list
//! keeps its order. Every shard is memory-mapped and validated on open; all must have one
//! format and one dtype. A window may cross from one shard into the next, as it crosses
//! document boundaries within one.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

use crate::arrow::ArrowTokens;
use crate::block_index::BlockIndex;
use crate::flat::FlatTokens;
use crate::megatron::{self, MegatronDataset};
use crate::shard::Shard;
use crate::tokens::Window;
use crate::{DType, DataError, FileFormat, Tokens};

/// A token dataset: one stream of tokens in which documents lie end to end.
pub trait TokenSource {
    fn dtype(&self) -> DType;
    /// Tokens in the whole stream.
    fn num_tokens(&self) -> u64;
    /// Documents: those the files record; a flat file (`.bin`, `.npy`, llm.c) is one document
    /// unless an end-of-document token splits it.
    fn num_documents(&self) -> usize;
    /// Token range `[start, end)` of document `i`, or `None` past the last document.
    fn document_range(&self, i: usize) -> Option<(u64, u64)>;
    /// `len` tokens from global offset `start`, across document and shard boundaries as GPT
    /// training concatenates them; `None` when the window runs past the end.
    fn window(&self, start: u64, len: usize) -> Option<Window<'_>>;

    /// The tokens of document `i`.
    fn document(&self, i: usize) -> Option<Window<'_>> {
        let (s, e) = self.document_range(i)?;
        self.window(s, usize::try_from(e - s).ok()?)
    }
}

/// The file formats osml reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Megatron-LM / GPT-NeoX `.bin` + `.idx`.
    Megatron,
    /// A headerless token array, as nanoGPT's `train.bin`.
    Bin,
    /// A 1-D `.npy` array.
    Npy,
    /// An llm.c / modded-nanogpt shard: a 1 KiB header, then tokens.
    Llmc,
    /// An Arrow IPC file with a list-of-integers column (Hugging Face `datasets`).
    Arrow,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Megatron => "megatron",
            Self::Bin => "bin",
            Self::Npy => "npy",
            Self::Llmc => "llmc",
            Self::Arrow => "arrow",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Megatron,
            Self::Bin,
            Self::Npy,
            Self::Llmc,
            Self::Arrow,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }

    /// Whether files of this format record document boundaries.
    pub fn records_documents(self) -> bool {
        matches!(self, Self::Megatron | Self::Arrow)
    }
}

/// The column of an Arrow dataset read when none is named: what tokenizers write.
pub const DEFAULT_COLUMN: &str = "input_ids";

/// How to open a source whose format, dtype or documents cannot be told from it.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Force a format instead of guessing from each shard's name and header.
    pub format: Option<Format>,
    /// The dtype of a raw `.bin` (default `uint16`, nanoGPT's).
    pub dtype: Option<DType>,
    /// The list-of-integers column of an Arrow dataset (default [`DEFAULT_COLUMN`]).
    pub column: Option<String>,
    /// For formats that record no documents (`.bin`, `.npy`, llm.c): the end-of-document
    /// token whose occurrences separate them.
    pub eod_token: Option<u64>,
}

/// Maps a dataset file: the one place this crate maps files.
#[allow(unsafe_code)]
pub(crate) fn map(path: &Path) -> Result<osml_sys::MappedFile, DataError> {
    // SAFETY: osml's contract with its users (README, "A dataset truncated while mapped"):
    // dataset files are written once and renamed into place, never truncated or rewritten
    // while a job reads them. A truncation anyway ends the process through the SIGBUS guard
    // with the file's name, not with a wrong read.
    Ok(unsafe { osml_sys::MappedFile::open(path) }?)
}

/// Whether the start of a file reads as text: no NUL byte in its first KiB (token arrays
/// of small ids are full of them), valid UTF-8 (a character cut at the end allowed), and a
/// line break or an opening JSON bracket.
pub(crate) fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    let utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    let first = head.iter().find(|b| !b.is_ascii_whitespace());
    utf8 && (head.contains(&b'\n') || matches!(first, Some(b'{' | b'[')))
}

/// A run of the stream inside one shard's stream file.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Global index of its first token.
    start: u64,
    tokens: u64,
    shard: usize,
    /// Byte offset of its first token in the shard's stream file.
    offset: usize,
}

/// Documents split at an end-of-document token, found by one scan on first use.
#[derive(Debug)]
struct EodDocuments {
    token: u64,
    /// Global offsets where a document starts, past 0 (the first) and before the end.
    starts: OnceLock<Vec<u64>>,
    /// Where in `starts` each block of tokens begins.
    index: OnceLock<Option<BlockIndex>>,
}

/// A source opened and validated: one or many shards of one format and dtype.
#[derive(Debug)]
pub struct TokenDataset {
    shards: Vec<Shard>,
    format: Format,
    dtype: DType,
    runs: Vec<Run>,
    /// Global token offset of each shard's stream (one more entry: the total).
    token_starts: Vec<u64>,
    /// Global index of each shard's first recorded document (one more entry: the total);
    /// a flat shard counts as one.
    doc_starts: Vec<usize>,
    eod: Option<EodDocuments>,
}

impl TokenDataset {
    /// Opens the source `path` names: a file or Megatron prefix, a glob, or a directory.
    // By value: its callers build the options in place.
    #[allow(clippy::needless_pass_by_value)]
    pub fn open(path: &Path, options: OpenOptions) -> Result<Self, DataError> {
        Self::open_source(std::slice::from_ref(&path.to_path_buf()), &options)
    }

    /// Opens a source of many entries (each a file, prefix, glob or directory), in order.
    pub fn open_source(entries: &[PathBuf], options: &OpenOptions) -> Result<Self, DataError> {
        if let (Some(f), Some(_)) = (options.format, options.eod_token) {
            if f.records_documents() {
                return Err(eod_refused(f));
            }
        }
        let files = resolve(entries, options)?;
        let mut shards = Vec::with_capacity(files.len());
        for (path, format) in &files {
            shards.push(open_shard(path, *format, options)?);
        }
        Self::from_shards(shards, options.eod_token)
    }

    fn from_shards(shards: Vec<Shard>, eod_token: Option<u64>) -> Result<Self, DataError> {
        let first = shards
            .first()
            .ok_or_else(|| DataError::Usage("a source needs at least one shard".into()))?;
        let (format, dtype) = (first.format(), first.dtype());
        let first_path = first.path().to_path_buf();
        if let Some(other) = shards.iter().find(|s| s.dtype() != dtype) {
            return Err(DataError::invalid(
                other.path(),
                FileFormat::Source,
                format!(
                    "its tokens are {}, but {} holds {dtype}: the shards of one source share one dtype",
                    other.dtype(),
                    first_path.display()
                ),
            ));
        }
        if let Some(t) = eod_token {
            if format.records_documents() {
                return Err(eod_refused(format));
            }
            if t > dtype.max_value() || dtype.is_float() {
                return Err(DataError::Usage(format!(
                    "end-of-document token {t} cannot occur in {dtype} tokens (at most {})",
                    dtype.max_value()
                )));
            }
        }
        let mut runs = Vec::new();
        let mut token_starts = Vec::with_capacity(shards.len() + 1);
        let mut doc_starts = Vec::with_capacity(shards.len() + 1);
        let (mut at, mut docs) = (0u64, 0usize);
        for (i, s) in shards.iter().enumerate() {
            token_starts.push(at);
            doc_starts.push(docs);
            for (offset, tokens) in s.runs() {
                if tokens > 0 {
                    runs.push(Run {
                        start: at,
                        tokens,
                        shard: i,
                        offset,
                    });
                    at = at.checked_add(tokens).ok_or_else(|| {
                        DataError::Usage("the source holds 2^64 tokens or more".into())
                    })?;
                }
            }
            docs += s.recorded_documents().unwrap_or(1);
        }
        token_starts.push(at);
        doc_starts.push(docs);
        Ok(Self {
            shards,
            format,
            dtype,
            runs,
            token_starts,
            doc_starts,
            eod: eod_token.map(|token| EodDocuments {
                token,
                starts: OnceLock::new(),
                index: OnceLock::new(),
            }),
        })
    }

    /// The format a path's name (and, for `.bin`, its header) says: `.npy`; `.arrow`;
    /// Megatron when an `.idx` is at the path or beside it; an llm.c shard for a `.bin` that
    /// starts with llm.c's magic and version; raw tokens for any other `.bin`. Any other name
    /// is refused, since a file of the wrong kind would otherwise be read as tokens.
    pub fn guess_format(path: &Path) -> Result<Format, DataError> {
        let ext = path.extension().and_then(|e| e.to_str());
        match ext {
            Some("npy") => return Ok(Format::Npy),
            Some("arrow") => return Ok(Format::Arrow),
            _ => {}
        }
        let (idx, _) = megatron::paths(path);
        if ext == Some("idx") || idx.exists() {
            return Ok(Format::Megatron);
        }
        if ext == Some("bin") {
            return Ok(if starts_as_llmc(path) {
                Format::Llmc
            } else {
                Format::Bin
            });
        }
        if !path.exists() {
            // Let opening say it is missing.
            return Ok(Format::Bin);
        }
        Err(DataError::invalid(
            path,
            FileFormat::Unknown,
            format!(
                "osml tells formats by name (.bin raw tokens or an llm.c shard, .npy, .arrow, a Megatron prefix with its .idx){}; name the format explicitly to read it anyway",
                ext.map(|e| format!(", and .{e} is none of them")).unwrap_or_default()
            ),
        ))
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Global token offset of shard `i`'s first token.
    pub fn shard_start(&self, i: usize) -> u64 {
        self.token_starts[i]
    }

    /// The end-of-document token splitting documents, if one was given.
    pub fn eod_token(&self) -> Option<u64> {
        self.eod.as_ref().map(|e| e.token)
    }

    /// The files behind the source, shard by shard, data first.
    pub fn files(&self) -> Vec<&osml_sys::MappedFile> {
        self.shards.iter().flat_map(Shard::files).collect()
    }

    /// Paths of [`TokenDataset::files`].
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files()
            .iter()
            .map(|f| f.path().to_path_buf())
            .collect()
    }

    /// The Megatron reader of a source of one Megatron shard, for sequence-level access.
    pub fn as_megatron(&self) -> Option<&MegatronDataset> {
        match self.shards.as_slice() {
            [one] => one.as_megatron(),
            _ => None,
        }
    }

    /// The shard holding global token `offset`, and the offset within that shard.
    pub fn locate(&self, offset: u64) -> Option<(&Shard, u64)> {
        if offset >= self.num_tokens() {
            return None;
        }
        let i = self.token_starts.partition_point(|&s| s <= offset) - 1;
        Some((&self.shards[i], offset - self.token_starts[i]))
    }

    /// Calls `f` with each document start in `(from, to)`, in order, once each (documents
    /// without tokens start where the next one does, and are not repeated). Binary search,
    /// then a walk: O(log documents) plus the starts found, the search narrowed to a block
    /// of tokens by a block table (`block_index.rs`).
    pub fn document_starts_in(&self, from: u64, to: u64, mut f: impl FnMut(u64)) {
        if from >= to {
            return;
        }
        let mut last = from;
        let mut emit = |at: u64| {
            if at > last && at < to {
                f(at);
                last = at;
            }
        };
        if let Some((starts, index)) = self.eod_index() {
            let i = match index {
                Some(index) => index.first_after(from, |i| starts[i]),
                None => starts.partition_point(|&s| s <= from),
            };
            for &s in starts[i..].iter().take_while(|&&s| s < to) {
                emit(s);
            }
            return;
        }
        let first = self.token_starts.partition_point(|&s| s <= from).max(1) - 1;
        for k in first..self.shards.len() {
            let base = self.token_starts[k];
            if base >= to {
                break;
            }
            let shard = &self.shards[k];
            let local = from.saturating_sub(base);
            if base > from {
                emit(base);
            }
            shard.document_starts_between(local, to - base, |s| emit(base + s));
        }
    }

    /// `[start, start + len)` of the stream as (shard, byte offset in its stream file, bytes),
    /// in order; empty when it runs past the end.
    pub(crate) fn byte_ranges(
        &self,
        start: u64,
        len: usize,
    ) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let size = self.dtype.size();
        self.runs_of(start, len)
            .map(move |(run, from, n)| (run.shard, run.offset + from * size, n * size))
    }

    /// The runs covering `[start, start + len)`: (run, first token within it, tokens);
    /// nothing when the range is empty or runs past the end.
    fn runs_of(&self, start: u64, len: usize) -> impl Iterator<Item = (&Run, usize, usize)> {
        let fits = start
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.num_tokens());
        let first = if fits && len > 0 {
            self.runs.partition_point(|r| r.start + r.tokens <= start)
        } else {
            self.runs.len()
        };
        let mut left = if fits { len as u64 } else { 0 };
        let mut at = start;
        self.runs[first..].iter().map_while(move |r| {
            if left == 0 {
                return None;
            }
            let from = at - r.start;
            let n = (r.tokens - from).min(left);
            left -= n;
            at += n;
            // Within a run of a mapping, so it fits in usize.
            Some((r, usize::try_from(from).ok()?, usize::try_from(n).ok()?))
        })
    }

    /// The document starts of the end-of-document split, scanning the stream once.
    fn eod_starts(&self) -> Option<&[u64]> {
        let eod = self.eod.as_ref()?;
        Some(
            eod.starts
                .get_or_init(|| self.scan_eod(eod.token, EOD_PIECE)),
        )
    }

    /// The end-of-document starts and their block table.
    fn eod_index(&self) -> Option<(&[u64], &Option<BlockIndex>)> {
        let starts = self.eod_starts()?;
        let eod = self.eod.as_ref()?;
        let index = eod
            .index
            .get_or_init(|| BlockIndex::new(self.num_tokens(), starts.len()));
        Some((starts, index))
    }

    /// Where documents start when `token` separates them. A stream that begins with the token
    /// has it before each document (llm.c's convention: `<|endoftext|>` opens every
    /// document), so each occurrence starts one; otherwise it follows each document
    /// (nanoGPT's and Megatron's), so a document starts after each occurrence. The stream is
    /// scanned in pieces of `piece` tokens, on as many threads as this process may use.
    fn scan_eod(&self, token: u64, piece: u64) -> Vec<u64> {
        let total = self.num_tokens();
        // Matched as the scan matches (the element's bits: a uint64 id past i64::MAX too).
        let leading = self.window(0, 1).is_some_and(|w| {
            let mut hit = false;
            for piece in w.pieces() {
                piece.each_position_of(token, |_| hit = true);
            }
            hit
        });
        let shift = u64::from(!leading);
        let size = self.dtype.size();
        // (the piece's bytes, the global index of its first token), in stream order.
        let pieces: Vec<(&[u8], u64)> = self
            .runs
            .iter()
            .flat_map(|r| {
                let bytes = self.run_bytes(r);
                let step = usize::try_from(piece.max(1)).unwrap_or(usize::MAX);
                bytes
                    .chunks(step.saturating_mul(size))
                    .zip((r.start..).step_by(step))
            })
            .collect();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let chunk = pieces.len().div_ceil(threads).max(1);
        let found: Vec<Vec<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = pieces
                .chunks(chunk)
                .map(|mine| {
                    s.spawn(move || {
                        let mut out = Vec::new();
                        for &(bytes, first) in mine {
                            Tokens::new(self.dtype, bytes).each_position_of(token, |i| {
                                let at = first + i as u64 + shift;
                                if at > 0 && at < total {
                                    out.push(at);
                                }
                            });
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                // A scan that panicked would leave documents out: pass the panic on.
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        found.concat()
    }

    fn run_bytes(&self, r: &Run) -> &[u8] {
        let bytes = self.shards[r.shard].stream_file().bytes();
        let n = usize::try_from(r.tokens).unwrap_or(usize::MAX) * self.dtype.size();
        bytes.get(r.offset..r.offset + n).unwrap_or(&[])
    }
}

/// Tokens per piece of the end-of-document scan: one large shard is scanned by every thread.
const EOD_PIECE: u64 = 1 << 24;

fn eod_refused(format: Format) -> DataError {
    DataError::Usage(format!(
        "an end-of-document token splits formats that record no documents (bin, npy, llmc); {} datasets record theirs",
        format.name()
    ))
}

/// Whether `path` starts with an llm.c header (unreadable files are left to opening).
fn starts_as_llmc(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    osml_sys::file::open_regular(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| crate::llmc::looks_like(&head))
}

fn open_shard(path: &Path, format: Format, options: &OpenOptions) -> Result<Shard, DataError> {
    Ok(match format {
        Format::Megatron => Shard::megatron(MegatronDataset::open(path)?),
        Format::Npy => Shard::flat(format, FlatTokens::open_npy(path)?),
        Format::Llmc => Shard::flat(format, FlatTokens::open_llmc(path)?),
        Format::Arrow => Shard::arrow(ArrowTokens::open(
            path,
            options.column.as_deref().unwrap_or(DEFAULT_COLUMN),
        )?),
        Format::Bin => {
            let map = map(path)?;
            if options.format.is_none() && looks_like_text(map.bytes()) {
                return Err(DataError::invalid(
                    path,
                    FileFormat::RawBin,
                    "its first KiB reads as text (UTF-8 with line breaks or JSON), not as tokens: tokenize it first (osml data pack), or name the format explicitly if it really is a token array",
                ));
            }
            let tokens = FlatTokens::from_raw_map(map, options.dtype.unwrap_or(DType::U16))?;
            Shard::flat(format, tokens)
        }
    })
}

/// Whether a path names a glob rather than a file: it holds `*`, `?` or `[`, is a valid
/// pattern, and neither it nor a Megatron pair of that prefix exists (a file named with
/// brackets is read as itself).
fn is_glob(path: &Path) -> bool {
    let s = path.as_os_str().as_encoded_bytes();
    s.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
        && path.to_str().is_some_and(|p| glob::Pattern::new(p).is_ok())
        && std::fs::symlink_metadata(path).is_err()
        && std::fs::symlink_metadata(megatron::paths(path).0).is_err()
}

/// File names a directory source reads (others, such as READMEs and JSON, are skipped).
fn is_dataset_name(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    !hidden
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("bin" | "idx" | "npy" | "arrow")
        )
}

/// The shards of a source, with their formats, in order; each Megatron pair once.
fn resolve(
    entries: &[PathBuf],
    options: &OpenOptions,
) -> Result<Vec<(PathBuf, Format)>, DataError> {
    if entries.is_empty() {
        return Err(DataError::Usage("a source needs at least one path".into()));
    }
    let mut out: Vec<(PathBuf, Format)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        let expanded = expand(entry)?;
        for path in expanded {
            let format = match options.format {
                Some(f) => f,
                None => TokenDataset::guess_format(&path)?,
            };
            // A Megatron pair is one shard, however it was named.
            let key = if format == Format::Megatron {
                megatron::paths(&path).0
            } else {
                path.clone()
            };
            let key = std::fs::canonicalize(&key).unwrap_or(key);
            if !seen.insert(key) {
                if expanded_pair(entry) {
                    continue;
                }
                return Err(DataError::invalid(
                    &path,
                    FileFormat::Source,
                    "named twice in the source: each shard is read once (a glob and a list that overlap?)",
                ));
            }
            out.push((path, format));
        }
    }
    let Some(&(_, first)) = out.first() else {
        return Err(DataError::Usage("a source needs at least one shard".into()));
    };
    if let Some((odd, f)) = out.iter().find(|(_, f)| *f != first) {
        return Err(DataError::invalid(
            odd,
            FileFormat::Source,
            format!(
                "it reads as {}, but {} reads as {}: the shards of one source share one format (pass --format to read them all as one)",
                f.name(),
                out[0].0.display(),
                first.name()
            ),
        ));
    }
    Ok(out)
}

/// Whether an entry expands to files among which a Megatron pair appears twice (a glob or a
/// directory holding both `x.bin` and `x.idx`): the second is not a duplicate of the user's.
fn expanded_pair(entry: &Path) -> bool {
    is_glob(entry) || entry.is_dir()
}

/// The files one entry names: itself, a glob's matches, a directory's dataset files, or a
/// Hugging Face `save_to_disk` directory's data files (in its `state.json` order).
fn expand(entry: &Path) -> Result<Vec<PathBuf>, DataError> {
    if is_glob(entry) {
        let pattern = entry.to_str().ok_or_else(|| {
            DataError::Usage(format!("{}: a glob must be valid UTF-8", entry.display()))
        })?;
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let paths = glob::glob_with(pattern, opts)
            .map_err(|e| DataError::Usage(format!("{pattern}: not a valid glob: {e}")))?;
        let mut out = Vec::new();
        for p in paths {
            let p = p.map_err(|e| {
                let path = e.path().to_path_buf();
                DataError::io(&path, e.into())
            })?;
            if !p.is_dir() {
                out.push(p);
            }
        }
        return sorted_or(
            out,
            entry,
            "the glob matches no file (quote it, so that the shell does not expand it first)",
        );
    }
    if !entry.is_dir() {
        return Ok(vec![entry.to_path_buf()]);
    }
    if let Some(files) = crate::hf::save_to_disk_files(entry)? {
        return Ok(files);
    }
    let mut out = Vec::new();
    #[allow(clippy::disallowed_methods)] // a dataset directory the user named, not a host fact
    let read = std::fs::read_dir(entry).map_err(|e| DataError::io(entry, e))?;
    for e in read {
        let e = e.map_err(|e| DataError::io(entry, e))?;
        let p = e.path();
        if is_dataset_name(&p) && !p.is_dir() {
            out.push(p);
        }
    }
    sorted_or(
        out,
        entry,
        "the directory holds no dataset file (.bin, .idx, .npy, .arrow, or a save_to_disk state.json)",
    )
}

/// The files an entry expanded to, in sorted path order; none is a source error saying why.
fn sorted_or(
    mut files: Vec<PathBuf>,
    entry: &Path,
    none: &'static str,
) -> Result<Vec<PathBuf>, DataError> {
    if files.is_empty() {
        return Err(DataError::invalid(entry, FileFormat::Source, none));
    }
    files.sort();
    Ok(files)
}

impl TokenSource for TokenDataset {
    fn dtype(&self) -> DType {
        self.dtype
    }

    fn num_tokens(&self) -> u64 {
        self.token_starts.last().copied().unwrap_or(0)
    }

    fn num_documents(&self) -> usize {
        match self.eod_starts() {
            Some(starts) if self.num_tokens() > 0 => starts.len() + 1,
            Some(_) => 0,
            None => self.doc_starts.last().copied().unwrap_or(0),
        }
    }

    fn document_range(&self, i: usize) -> Option<(u64, u64)> {
        if let Some(starts) = self.eod_starts() {
            if i > starts.len() || self.num_tokens() == 0 {
                return None;
            }
            let s = if i == 0 { 0 } else { starts[i - 1] };
            let e = starts.get(i).copied().unwrap_or(self.num_tokens());
            return Some((s, e));
        }
        if i >= self.num_documents() {
            return None;
        }
        let k = self.doc_starts.partition_point(|&d| d <= i) - 1;
        let (s, e) = self.shards[k].document_range(i - self.doc_starts[k])?;
        let base = self.token_starts[k];
        Some((base + s, base + e))
    }

    fn window(&self, start: u64, len: usize) -> Option<Window<'_>> {
        let end = start.checked_add(len as u64)?;
        if end > self.num_tokens() {
            return None;
        }
        let size = self.dtype.size();
        // The common case first: the window lies inside one run.
        let i = self.runs.partition_point(|r| r.start + r.tokens <= start);
        if let Some(r) = self.runs.get(i) {
            if end <= r.start + r.tokens {
                let from = usize::try_from(start - r.start).ok()?;
                let bytes = self.run_bytes(r).get(from * size..(from + len) * size)?;
                return Some(Window::new(Tokens::new(self.dtype, bytes), Vec::new()));
            }
        }
        let mut pieces = self.runs_of(start, len).map(|(r, from, n)| {
            let bytes = self.run_bytes(r);
            Tokens::new(self.dtype, &bytes[from * size..(from + n) * size])
        });
        let first = pieces.next().unwrap_or(Tokens::new(self.dtype, &[]));
        Some(Window::new(first, pieces.collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan finds the same starts whatever its pieces (one token, a few, more than the
    /// stream), across shards, and for both conventions: the token before each document
    /// (the stream starts with it) or after each.
    #[test]
    fn the_scan_finds_every_start_in_any_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let eod = 7u16;
        let mut x = 0x9E37_79B9u64;
        for leading in [true, false] {
            let mut paths = Vec::new();
            let mut all = Vec::new();
            for shard in 0..3 {
                let tokens: Vec<u16> = (0..1_000 + shard * 333)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if (leading && shard == 0 && i == 0) || x.is_multiple_of(41) {
                            eod
                        } else {
                            u16::try_from(x % 7).unwrap()
                        }
                    })
                    .collect();
                let path = dir.path().join(format!("{leading}_{shard}.bin"));
                std::fs::write(&path, bytemuck::cast_slice::<u16, u8>(&tokens)).unwrap();
                all.extend(tokens);
                paths.push(path);
            }
            let options = OpenOptions {
                eod_token: Some(u64::from(eod)),
                ..OpenOptions::default()
            };
            let ds = TokenDataset::open_source(&paths, &options).unwrap();
            let shift = u64::from(!leading);
            let want: Vec<u64> = (0..all.len())
                .filter(|&i| all[i] == eod)
                .map(|i| i as u64 + shift)
                .filter(|&at| at > 0 && at < all.len() as u64)
                .collect();
            for piece in [1, 3, 64, 999, 1 << 24] {
                assert_eq!(
                    ds.scan_eod(u64::from(eod), piece),
                    want,
                    "leading {leading}, piece {piece}"
                );
            }
        }
    }

    /// A uint64 id past `i64::MAX` opening the stream is found leading, as the scan finds it
    /// (the first token is not compared as an `i64`).
    #[test]
    fn a_uint64_id_past_i64_max_is_found_leading() {
        let dir = tempfile::tempdir().unwrap();
        let eod = 1u64 << 63;
        let tokens = [eod, 5, 6, eod, 7, 8, 9];
        let path = dir.path().join("wide.bin");
        std::fs::write(&path, bytemuck::cast_slice::<u64, u8>(&tokens)).unwrap();
        let options = OpenOptions {
            dtype: Some(DType::U64),
            eod_token: Some(eod),
            ..OpenOptions::default()
        };
        let ds = TokenDataset::open_source(&[path], &options).unwrap();
        let mut starts = Vec::new();
        ds.document_starts_in(0, 7, |at| starts.push(at));
        assert_eq!(starts, [3]);
    }
}
