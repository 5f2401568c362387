//! [`Fact`]: a value read from the host, or the reason it could not be.

use serde::{Deserialize, Serialize};

use crate::{ErrorKind, HostError};

/// A fact about the host: known, or unknown with the kind of failure and the reason why.
///
/// In JSON a known fact is its bare value and an unknown one is
/// `{"unknown": "reason", "kind": "missing"}`, so consumers read `host.memory.total_bytes`
/// directly and test for the object when they care. Code decides on `kind`; `unknown` is for
/// people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Fact<T> {
    Known(T),
    Unknown {
        unknown: String,
        /// Absent in reports written before kinds existed: read as `unreadable`.
        #[serde(default)]
        kind: ErrorKind,
    },
}

impl<T> Fact<T> {
    /// An unknown fact of `kind`, with its reason.
    pub fn unknown(kind: ErrorKind, reason: impl Into<String>) -> Self {
        Self::Unknown {
            unknown: reason.into(),
            kind,
        }
    }

    /// The value, if known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Self::Known(v) => Some(v),
            Self::Unknown { .. } => None,
        }
    }

    /// Why the fact is unknown, if it is.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Known(_) => None,
            Self::Unknown { unknown, .. } => Some(unknown),
        }
    }

    /// The kind of failure, if the fact is unknown.
    pub fn unknown_kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Known(_) => None,
            Self::Unknown { kind, .. } => Some(*kind),
        }
    }

    /// Maps a known value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Fact<U> {
        match self {
            Self::Known(v) => Fact::Known(f(v)),
            Self::Unknown { unknown, kind } => Fact::Unknown { unknown, kind },
        }
    }

    /// Chains a step that may itself leave the fact unknown.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Fact<U>) -> Fact<U> {
        match self {
            Self::Known(v) => f(v),
            Self::Unknown { unknown, kind } => Fact::Unknown { unknown, kind },
        }
    }

    /// Borrows the value.
    pub fn as_ref(&self) -> Fact<&T> {
        match self {
            Self::Known(v) => Fact::Known(v),
            Self::Unknown { unknown, kind } => Fact::Unknown {
                unknown: unknown.clone(),
                kind: *kind,
            },
        }
    }
}

impl<T> From<HostError> for Fact<T> {
    fn from(e: HostError) -> Self {
        Self::unknown(e.kind(), e.to_string())
    }
}

impl<T> From<Result<T, HostError>> for Fact<T> {
    fn from(r: Result<T, HostError>) -> Self {
        match r {
            Ok(v) => Self::Known(v),
            Err(e) => e.into(),
        }
    }
}
