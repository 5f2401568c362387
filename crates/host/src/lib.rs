//! Facts about a Linux host, for ML work: CPUs, NUMA, memory, huge pages, tunables, limits,
//! `/dev/shm`, block and PCI devices, RDMA ports, cgroups, pressure and the kernel.
//!
//! Every read goes through a [`HostRoot`], either the live `/` or a directory standing in for
//! it (a capture or a test fixture), and every system call behind [`Probes`]: the live host's
//! ([`LiveProbes`]), or the answers a capture recorded ([`ReplayedProbes`]).
//! [`HostSnapshot::gather`] reads everything into one serialisable value. Parsers in [`parse`]
//! are pure functions of text. A file that is missing or unreadable becomes a
//! [`Fact::Unknown`] with the reason, never a panic.
//!
//! ```no_run
//! use osml_host::{HostRoot, HostSnapshot};
//!
//! let host = HostSnapshot::gather(&HostRoot::live());
//! if let Some(total) = host.memory.total_bytes.known() {
//!     println!("{} GiB of RAM", total >> 30);
//! }
//! ```

pub mod affinity;
pub mod capture;
mod cpulist;
mod fact;
pub mod p2p;
pub mod parse;
pub mod probes;
mod root;
mod snapshot;
pub mod topology;
pub mod watch;

pub use cpulist::CpuList;
pub use fact::Fact;
pub use osml_sys::file::FileKind;
use osml_sys::file::Rejection;
pub use parse::cmdline::KernelParams;
pub use parse::limits::{Limit, LimitValue, Limits};
pub use parse::mounts::Mount;
pub use parse::pressure::{Psi, PsiAverages};
pub use parse::swaps::SwapDevice;
pub use probes::{FsUsage, LiveProbes, ProbeRecord, Probes, ReplayedProbes, PROBES_PATH};
pub use root::{HostRoot, RandomFile, Recorded, MAX_FILE_BYTES, MAX_KMSG_BYTES};
pub use snapshot::*;
pub use topology::Topology;

/// Why a file of the host could not be read. Each variant's text names its cause, so none
/// exposes it again as `source()`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    #[error("{path} is absent")]
    NotFound { path: String },
    #[error("{path} is not readable (permission denied)")]
    PermissionDenied { path: String },
    /// A FIFO, a device, a directory… where a regular file is expected.
    #[error("{path} is {} where a regular file is expected", .kind.describe())]
    NotRegular { path: String, kind: FileKind },
    /// A file longer than its reader's cap ([`MAX_FILE_BYTES`] for a root's files).
    #[error("{path} is larger than the {} MiB osml reads from one file", .limit >> 20)]
    TooLarge { path: String, limit: u64 },
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("cannot parse {path}: {error}")]
    Parse { path: String, error: ParseError },
    /// Only the running host can tell (a probe such as `statvfs` or `io_uring_setup`).
    #[error("{what} is measured on the live host only")]
    LiveOnly { what: String },
    /// A `--root` path that is neither a directory nor a tar archive osml can read.
    #[error("{path} is not a capture: {reason}")]
    NotACapture { path: String, reason: String },
    /// An archive that would unpack past one of [`capture`]'s limits.
    #[error("{path}: {limit}")]
    ArchiveLimit { path: String, limit: capture::Limit },
}

/// What kind of failure a [`HostError`] or an unknown [`Fact`] is, for code that must decide
/// on it (the text is for people).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The file is absent.
    Missing,
    /// The file exists but may not be read.
    Denied,
    /// Not a regular file, over its cap, or another I/O error.
    #[default]
    Unreadable,
    /// Read, but not in the expected shape.
    Malformed,
    /// The host was read and has no such thing (nothing mounted on `/dev/shm`, no NUMA
    /// node listed).
    Absent,
    /// Measured on the running host only, and this is a directory root.
    LiveOnly,
    /// Does not apply to this host (cgroup v1 has no such file, no device of that kind).
    NotApplicable,
}

impl HostError {
    pub(crate) fn io(path: &str, e: &std::io::Error) -> Self {
        let path = path.to_owned();
        match osml_sys::file::rejection(e) {
            Some(Rejection::NotRegular(kind)) => return Self::NotRegular { path, kind },
            Some(Rejection::TooLarge { limit }) => return Self::TooLarge { path, limit },
            None => {}
        }
        match e.kind() {
            std::io::ErrorKind::NotFound => Self::NotFound { path },
            std::io::ErrorKind::PermissionDenied => Self::PermissionDenied { path },
            _ => Self::Io {
                path,
                message: e.to_string(),
            },
        }
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::Missing,
            Self::PermissionDenied { .. } => ErrorKind::Denied,
            Self::NotRegular { .. } | Self::TooLarge { .. } | Self::Io { .. } => {
                ErrorKind::Unreadable
            }
            Self::Parse { .. } | Self::NotACapture { .. } | Self::ArchiveLimit { .. } => {
                ErrorKind::Malformed
            }
            Self::LiveOnly { .. } => ErrorKind::LiveOnly,
        }
    }
}

/// Text that did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason} (in {excerpt:?})")]
pub struct ParseError {
    pub what: &'static str,
    pub reason: &'static str,
    /// The start of the offending text, for the error message.
    pub excerpt: String,
}

impl ParseError {
    pub fn new(what: &'static str, text: &str, reason: &'static str) -> Self {
        Self {
            what,
            reason,
            excerpt: text.chars().take(60).collect(),
        }
    }
}
