//! [`DataError`]: every way opening, reading or writing a dataset can fail.

use std::path::{Path, PathBuf};

/// What went wrong, with the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read: missing, a directory, no permission, I/O error.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is there but is not a valid dataset of its format.
    #[error("{}: not a valid {format} file: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    /// An input of `pack` that cannot be used (a JSON line without the text field…).
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Input {
        path: PathBuf,
        line: Option<u64>,
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
    pub(crate) fn invalid(path: &Path, format: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            format,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the failure was reading the file at all (as opposed to its contents).
    pub fn is_io(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}

impl From<osml_sys::SysError> for DataError {
    fn from(e: osml_sys::SysError) -> Self {
        let osml_sys::SysError::Call {
            path,
            error: source,
            ..
        } = e;
        Self::Io {
            path: path.unwrap_or_default(),
            source,
        }
    }
}
