//! [`TokenSource`], the one view over every format, and [`TokenDataset`], which opens any of
//! them by path.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::flat::FlatTokens;
use crate::megatron::{self, MegatronDataset};
use crate::{DType, DataError, FileFormat, Tokens};

/// A token dataset: one stream of tokens in which documents lie end to end.
pub trait TokenSource {
    fn dtype(&self) -> DType;
    /// Tokens in the whole stream.
    fn num_tokens(&self) -> u64;
    /// Documents (a flat `.bin` or `.npy` is one document: it records no boundaries).
    fn num_documents(&self) -> usize;
    /// Token range `[start, end)` of document `i`, or `None` past the last document.
    fn document_range(&self, i: usize) -> Option<(u64, u64)>;
    /// `len` tokens from global offset `start`, across document boundaries as GPT training
    /// concatenates them; `None` when the window runs past the end.
    fn window(&self, start: u64, len: usize) -> Option<Tokens<'_>>;

    /// The tokens of document `i`.
    fn document(&self, i: usize) -> Option<Tokens<'_>> {
        let (s, e) = self.document_range(i)?;
        self.window(s, usize::try_from(e - s).ok()?)
    }
}

/// The file formats osml reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Megatron-LM / GPT-NeoX `.bin` + `.idx`.
    Megatron,
    /// A headerless token array, as nanoGPT's `train.bin`.
    Bin,
    /// A 1-D `.npy` array.
    Npy,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Megatron => "megatron",
            Self::Bin => "bin",
            Self::Npy => "npy",
        }
    }
}

/// How to open a path whose format or dtype cannot be told from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Force a format instead of guessing from the extension.
    pub format: Option<Format>,
    /// The dtype of a raw `.bin` (default `uint16`, nanoGPT's).
    pub dtype: Option<DType>,
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

/// Any dataset osml reads, opened and validated.
#[derive(Debug)]
pub enum TokenDataset {
    Megatron(MegatronDataset),
    Flat { format: Format, tokens: FlatTokens },
}

impl TokenDataset {
    /// Opens `path` in `options.format`, or in the format its name says: `.npy`; a Megatron
    /// prefix, `.idx`, or `.bin` beside an `.idx`; a raw token array for any other `.bin`
    /// (of `options.dtype`, default uint16). Any other name needs an explicit format. A `.bin`
    /// whose format was guessed and whose first KiB reads as text is refused: it is a corpus
    /// to tokenize, not tokens.
    pub fn open(path: &Path, options: OpenOptions) -> Result<Self, DataError> {
        let format = match options.format {
            Some(f) => f,
            None => Self::guess_format(path)?,
        };
        Ok(match format {
            Format::Megatron => Self::Megatron(MegatronDataset::open(path)?),
            Format::Npy => Self::Flat {
                format,
                tokens: FlatTokens::open_npy(path)?,
            },
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
                Self::Flat { format, tokens }
            }
        })
    }

    /// The format a path's name says: `.npy`; Megatron when an `.idx` is at the path or
    /// beside it; raw tokens for `.bin`. Any other name is refused, since a file of the wrong
    /// kind would otherwise be read as tokens.
    pub fn guess_format(path: &Path) -> Result<Format, DataError> {
        let ext = path.extension().and_then(|e| e.to_str());
        if ext == Some("npy") {
            return Ok(Format::Npy);
        }
        let (idx, _) = megatron::paths(path);
        if ext == Some("idx") || idx.exists() {
            return Ok(Format::Megatron);
        }
        if ext == Some("bin") {
            return Ok(Format::Bin);
        }
        if !path.exists() {
            // Let opening say it is missing.
            return Ok(Format::Bin);
        }
        Err(DataError::invalid(
            path,
            FileFormat::Unknown,
            format!(
                "osml tells formats by name (.bin raw tokens, .npy, a Megatron prefix with its .idx){}; name the format explicitly to read it anyway",
                ext.map(|e| format!(", and .{e} is none of them")).unwrap_or_default()
            ),
        ))
    }

    pub fn format(&self) -> Format {
        match self {
            Self::Megatron(_) => Format::Megatron,
            Self::Flat { format, .. } => *format,
        }
    }

    /// The files behind the dataset, data first.
    pub fn files(&self) -> Vec<&osml_sys::MappedFile> {
        match self {
            Self::Megatron(m) => vec![m.bin(), m.idx()],
            Self::Flat { tokens, .. } => vec![tokens.map()],
        }
    }

    /// Paths of [`TokenDataset::files`].
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files()
            .iter()
            .map(|f| f.path().to_path_buf())
            .collect()
    }

    /// The Megatron reader, for sequence-level access.
    pub fn as_megatron(&self) -> Option<&MegatronDataset> {
        match self {
            Self::Megatron(m) => Some(m),
            Self::Flat { .. } => None,
        }
    }

    /// The mapped file holding the token stream, and the byte offset of its first token.
    pub fn stream_file(&self) -> (&osml_sys::MappedFile, usize) {
        match self {
            Self::Megatron(m) => (m.bin(), 0),
            Self::Flat { tokens, .. } => (tokens.map(), tokens.map().len() - tokens.data().len()),
        }
    }

    /// The bytes of the token stream (the `.bin`, or the array after the `.npy` header).
    pub fn stream_bytes(&self) -> &[u8] {
        match self {
            Self::Megatron(m) => m.bin().bytes(),
            Self::Flat { tokens, .. } => tokens.data(),
        }
    }
}

impl TokenSource for TokenDataset {
    fn dtype(&self) -> DType {
        match self {
            Self::Megatron(m) => m.dtype(),
            Self::Flat { tokens, .. } => tokens.dtype(),
        }
    }

    fn num_tokens(&self) -> u64 {
        match self {
            Self::Megatron(m) => m.tokens(),
            Self::Flat { tokens, .. } => tokens.tokens(),
        }
    }

    fn num_documents(&self) -> usize {
        match self {
            Self::Megatron(m) => m.num_documents(),
            Self::Flat { .. } => 1,
        }
    }

    fn document_range(&self, i: usize) -> Option<(u64, u64)> {
        if i >= self.num_documents() {
            return None;
        }
        match self {
            Self::Megatron(m) => Some(m.document_range(i)),
            Self::Flat { tokens, .. } => Some((0, tokens.tokens())),
        }
    }

    fn window(&self, start: u64, len: usize) -> Option<Tokens<'_>> {
        let end = start.checked_add(len as u64)?;
        if end > self.num_tokens() {
            return None;
        }
        let size = self.dtype().size();
        let from = usize::try_from(start).ok()?.checked_mul(size)?;
        let bytes = self.stream_bytes().get(from..from + len * size)?;
        Some(Tokens::new(self.dtype(), bytes))
    }
}
