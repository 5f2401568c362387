//! [`DataError`]: every way opening, reading or writing a dataset can fail.
//!
//! Each variant carries a kind a front end can decide on ([`FileFormat`], [`Access`], the
//! `std::io::ErrorKind` of an OS error): no caller needs to read the message's wording. An
//! OS error is part of its variant's message, so it is not also the error's `source()`: a
//! chain printed with `{:#}` names it once.

use std::fmt;
use std::path::{Path, PathBuf};

/// What osml was doing to a file when the OS refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Opening or reading an existing file.
    Read,
    /// Creating or writing a file (a temporary one beside the destination, then renaming it).
    Write,
}

/// The kind of file a [`DataError::Invalid`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// A headerless token array (nanoGPT's `.bin`).
    RawBin,
    /// A numpy `.npy` array.
    Npy,
    /// A Megatron `.idx`.
    MegatronIdx,
    /// A Megatron `.bin` (checked against its `.idx`).
    MegatronBin,
    /// An llm.c / modded-nanogpt shard (256-int32 header, then tokens).
    Llmc,
    /// A source of many shards as a whole (a glob matching nothing, mixed formats).
    Source,
    /// A file whose format osml cannot tell from its name.
    Unknown,
    /// Any dataset file, once opened (it changed while being read).
    Dataset,
    /// An Arrow IPC file (stream or file format), such as a Hugging Face `datasets` cache or
    /// `save_to_disk` `.arrow` file.
    Arrow,
    /// A Hugging Face `Dataset.save_to_disk` directory (its `state.json`).
    HfDataset,
    /// A mixture file (`.json` or `.toml`: sources, weights, split, schedule).
    Mixture,
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RawBin => "raw token (.bin)",
            Self::Npy => ".npy",
            Self::MegatronIdx => "Megatron .idx",
            Self::MegatronBin => "Megatron .bin",
            Self::Llmc => "llm.c shard",
            Self::Source => "token source",
            Self::Unknown => "token dataset",
            Self::Dataset => "dataset",
            Self::Arrow => "Arrow IPC (.arrow)",
            Self::HfDataset => "Hugging Face save_to_disk dataset",
            Self::Mixture => "mixture (.json or .toml)",
        })
    }
}

/// Where in a `pack` input a [`DataError::Input`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputAt {
    /// The input as a whole.
    File,
    /// A line (1-based) of the decompressed text.
    Line(u64),
    /// A byte offset into the file as stored (the compressed stream of a `.gz`), where the
    /// data stopped making sense.
    Byte(u64),
    /// A row group (0-based) of a Parquet file.
    RowGroup(usize),
}

impl fmt::Display for InputAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File => Ok(()),
            Self::Line(l) => write!(f, ":{l}"),
            Self::Byte(b) => write!(f, " (at byte {b})"),
            Self::RowGroup(g) => write!(f, " (row group {g})"),
        }
    }
}

/// What went wrong, with the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, read or written: missing, a directory or FIFO, no
    /// permission, I/O error.
    #[error("{}{}: {error}", path.display(), match access { Access::Read => "", Access::Write => ": cannot write here" })]
    Io {
        path: PathBuf,
        access: Access,
        /// The OS error (or osml's typed refusal inside it, see `osml_sys::file::rejection`).
        error: std::io::Error,
    },
    /// A system call about no file failed (allocating memory, starting threads).
    #[error("{call} failed: {error}")]
    System {
        call: &'static str,
        error: std::io::Error,
    },
    /// The file is there but is not a valid dataset of its format.
    #[error("{}: not a valid {format} file: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        format: FileFormat,
        reason: String,
    },
    /// An input of `pack` that cannot be used (a JSON line without the text field, a corrupt
    /// `.gz`…).
    #[error("{}{at}: {reason}", path.display())]
    Input {
        path: PathBuf,
        at: InputAt,
        reason: String,
    },
    /// A request that cannot be honoured (an unknown extension, tokens past a dtype's range…).
    #[error("{0}")]
    Usage(String),
    /// A running loader stopped.
    #[error(transparent)]
    Loader(#[from] crate::loader::LoaderError),
}

impl DataError {
    pub(crate) fn invalid(path: &Path, format: FileFormat, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            format,
            reason: reason.into(),
        }
    }

    /// A failure to open or read `path`.
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            access: Access::Read,
            error,
        }
    }

    /// A failure to create or write `path`.
    pub(crate) fn write(path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            access: Access::Write,
            error,
        }
    }

    /// Whether the failure was reading the file at all (as opposed to its contents).
    pub fn is_io(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}

impl From<osml_sys::SysError> for DataError {
    fn from(e: osml_sys::SysError) -> Self {
        let osml_sys::SysError::Call { call, path, error } = e;
        match path {
            Some(path) => Self::Io {
                path,
                access: Access::Read,
                error,
            },
            None => Self::System { call, error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_about_no_file_names_the_call_not_an_empty_path() {
        let e = DataError::from(osml_sys::SysError::Call {
            call: "mmap",
            path: None,
            // ENOMEM
            error: std::io::Error::from_raw_os_error(12),
        });
        assert!(matches!(e, DataError::System { call: "mmap", .. }));
        let msg = e.to_string();
        assert!(msg.starts_with("mmap failed: "), "{msg}");
        assert_eq!(msg.matches("Cannot allocate memory").count(), 1, "{msg}");
        assert!(std::error::Error::source(&e).is_none());
    }
}
