//! Rust errors as Python exceptions, in one place.
//!
//! | Rust | Python |
//! |---|---|
//! | `DataError::Io`, file missing | `FileNotFoundError` |
//! | `DataError::Io`, no permission | `PermissionError` |
//! | `DataError::Io`, a directory | `IsADirectoryError` |
//! | `DataError::Io`, other (a FIFO or device included) | `OSError` |
//! | `DataError::System` | `OSError` (`MemoryError` when out of memory) |
//! | `DataError::Invalid`, `DataError::Input` | `osml.InvalidDatasetError` (an `osml.OsmlError`) |
//! | `DataError::Usage` | `ValueError` |
//! | `LoaderError::PoolExhausted` | `osml.PoolExhaustedError` (an `osml.LoaderError`) |
//! | `LoaderError::Forked` | `osml.ForkedLoaderError` (an `osml.LoaderError`) |
//! | other `LoaderError`s | `osml.LoaderError` (an `osml.OsmlError`) |
//! | `HostError::NotFound` (a `root=` that does not exist) | `FileNotFoundError` |
//! | `HostError::PermissionDenied` | `PermissionError` |
//! | `HostError::NotRegular` (a FIFO, a device: neither a directory nor an archive) | `NotADirectoryError` |
//! | `HostError::NotACapture`, `ArchiveLimit`, `TooLarge`, `Parse`, `LiveOnly` | `osml.OsmlError` |
//! | `HostError::Io` | `OSError` |

use osml_data::DataError;
use osml_host::HostError;
use pyo3::exceptions::PyNotADirectoryError;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyIsADirectoryError, PyOSError};
use pyo3::exceptions::{PyMemoryError, PyPermissionError, PyValueError};
use pyo3::{create_exception, PyErr};

create_exception!(_osml, OsmlError, PyException, "An error reported by osml.");
create_exception!(
    _osml,
    InvalidDatasetError,
    OsmlError,
    "A dataset file that is not valid: the message names the file and the reason."
);

create_exception!(
    _osml,
    LoaderError,
    OsmlError,
    "The loader stopped: a worker failed or panicked (the message names the step), or the loader was misused."
);
create_exception!(
    _osml,
    PoolExhaustedError,
    LoaderError,
    "The caller holds every batch buffer and the pool may not grow further."
);
create_exception!(
    _osml,
    ForkedLoaderError,
    LoaderError,
    "A loader used in a process forked after it was made."
);

pub fn data_err(e: DataError) -> PyErr {
    use osml_data::loader::LoaderError as Kind;
    let msg = e.to_string();
    match &e {
        DataError::Io { error, .. } => match error.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
            _ if error.raw_os_error() == Some(21)
                || osml_sys::file::rejection(error)
                    == Some(osml_sys::file::Rejection::NotRegular(
                        osml_sys::file::FileKind::Directory,
                    )) =>
            {
                PyIsADirectoryError::new_err(msg)
            }
            _ => PyOSError::new_err(msg),
        },
        DataError::System { error, .. } if error.kind() == std::io::ErrorKind::OutOfMemory => {
            PyMemoryError::new_err(msg)
        }
        DataError::System { .. } => PyOSError::new_err(msg),
        DataError::Invalid { .. } | DataError::Input { .. } => InvalidDatasetError::new_err(msg),
        DataError::Usage(_) => PyValueError::new_err(msg),
        DataError::Loader(Kind::PoolExhausted { .. }) => PoolExhaustedError::new_err(format!(
            "{msg}: keep copies (x.copy(), tensor.clone()) of the batches you keep, or raise max_buffers="
        )),
        DataError::Loader(Kind::Forked { .. }) => ForkedLoaderError::new_err(msg),
        DataError::Loader(_) => LoaderError::new_err(msg),
    }
}

/// A `root=` that could not be opened, as the CLI's `--root` refuses it (exit 2).
pub fn host_err(e: HostError) -> PyErr {
    let msg = e.to_string();
    match e {
        HostError::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        HostError::PermissionDenied { .. } => PyPermissionError::new_err(msg),
        HostError::NotRegular { .. } => PyNotADirectoryError::new_err(msg),
        HostError::Io { .. } => PyOSError::new_err(msg),
        HostError::NotACapture { .. }
        | HostError::ArchiveLimit { .. }
        | HostError::TooLarge { .. }
        | HostError::Parse { .. }
        | HostError::LiveOnly { .. } => OsmlError::new_err(msg),
    }
}
