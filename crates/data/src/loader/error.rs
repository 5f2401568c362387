//! [`LoaderError`]: how a running loader stops, as kinds a front end can act on.

use crate::DataError;

/// Why a loader could not deliver a batch. After any of these but
/// [`LoaderError::PoolExhausted`] the stream has ended: the next call says
/// [`LoaderError::Ended`].
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// A worker panicked while filling a step (a bug in osml: please report it).
    #[error("loader worker panicked while preparing step {step}: {message}")]
    WorkerPanicked { step: u64, message: String },
    /// Filling a step failed. The cause is part of the message, so it is not also the
    /// error's `source()` (a chain printed with `{:#}` names it once).
    #[error("step {step}: {error}")]
    Step { step: u64, error: Box<DataError> },
    /// The consumer holds every buffer and the pool may not grow further.
    #[error(
        "the caller holds {held} batches and the buffer pool is at its limit of {limit} buffers"
    )]
    PoolExhausted { held: usize, limit: usize },
    /// The loader was made in another process: after `fork` its threads exist only there.
    #[error(
        "this loader was created in process {created_in} and is used in a forked child; its worker threads exist only in the parent: create the loader in the child"
    )]
    Forked { created_in: u32 },
    /// The sample index of a step passes 2^64 (a restored cursor near the end of the range).
    #[error("the global sample index of step {step} passes 2^64")]
    SampleOverflow { step: u64 },
    /// The stream ended earlier (after the error reported then).
    #[error("the loader has stopped after an earlier error")]
    Ended,
}
