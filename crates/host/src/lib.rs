//! Facts about a Linux host, for ML work: CPUs, NUMA, memory, huge pages, tunables, limits,
//! `/dev/shm`, block and PCI devices, RDMA ports, cgroups, pressure and the kernel.
//!
//! Every read goes through a [`HostRoot`], either the live `/` or a directory standing in for
//! it (a capture or a test fixture). [`HostSnapshot::gather`] reads everything into one
//! serialisable value. Parsers in [`parse`] are pure functions of text. A file that is missing
//! or unreadable becomes a [`Fact::Unknown`] with the reason, never a panic.
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
mod cpulist;
mod fact;
pub mod parse;
mod root;
mod snapshot;
pub mod topology;

pub use cpulist::CpuList;
pub use fact::Fact;
pub use parse::cmdline::KernelParams;
pub use parse::limits::{Limit, LimitValue, Limits};
pub use parse::mounts::Mount;
pub use parse::pressure::{Psi, PsiAverages};
pub use parse::swaps::SwapDevice;
pub use root::{HostRoot, Recorded};
pub use snapshot::*;
pub use topology::Topology;

/// Why a file of the host could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    #[error("{path} is absent")]
    NotFound { path: String },
    #[error("{path} is not readable (permission denied)")]
    PermissionDenied { path: String },
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("cannot parse {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: ParseError,
    },
}

impl HostError {
    pub(crate) fn io(path: &str, e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => Self::NotFound {
                path: path.to_owned(),
            },
            std::io::ErrorKind::PermissionDenied => Self::PermissionDenied {
                path: path.to_owned(),
            },
            _ => Self::Io {
                path: path.to_owned(),
                message: e.to_string(),
            },
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
