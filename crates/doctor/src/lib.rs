//! Judgments about a host for ML work.
//!
//! [`diagnose`] compares a [`HostSnapshot`] with a [`Profile`] and returns a [`Report`]: one
//! [`Finding`] per check, each with what was seen, what is expected, why it matters and the
//! exact fix. [`compare`] lines up several reports (a fleet) and shows where hosts differ.
//!
//! ```
//! use osml_doctor::{diagnose, TRAINING};
//! use osml_host::{HostRoot, HostSnapshot};
//!
//! let host = HostSnapshot::gather(&HostRoot::at("/nonexistent"));
//! let report = diagnose(host, &TRAINING, &[]).unwrap();
//! // Nothing could be read, so nothing passes or fails: checks skip with their reason.
//! assert_eq!(report.summary.fail, 0);
//! ```

mod checks;
pub mod compare;
mod profile;

use serde::{Deserialize, Serialize};

pub use checks::{CheckInfo, CHECKS};
pub use osml_host::HostSnapshot;
pub use profile::{Profile, INFERENCE, PROFILES, TRAINING};

/// The version of the JSON of [`Report`]. Raised on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error("unknown check id `{id}` (known ids: {known})")]
    UnknownCheck { id: String, known: String },
    #[error("{path}: not a doctor report ({reason})")]
    NotAReport { path: String, reason: String },
    /// A report of a version this osml cannot read (written by a newer one, or tampered).
    #[error("{path}: a doctor report of schema_version {found}, which this osml cannot read (it reads version {supported})")]
    UnsupportedSchema {
        path: String,
        found: u64,
        supported: u32,
    },
    /// A report that could not be read: absent, not a regular file, over
    /// [`compare::MAX_REPORT_BYTES`]… The text includes the cause, so it is not a `source()`.
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Info,
    Skip,
    Warn,
    Fail,
}

impl Status {
    /// The one-character mark of the human report.
    pub fn mark(self) -> &'static str {
        match self {
            Self::Pass => "✓",
            Self::Info => "i",
            Self::Skip => "-",
            Self::Warn => "!",
            Self::Fail => "✗",
        }
    }
}

/// How to fix a finding: a command that takes effect now, and how to keep it after a reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fix {
    pub runtime: String,
    pub persist: String,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub area: String,
    pub title: String,
    pub status: Status,
    pub observed: String,
    pub expected: String,
    /// One sentence: the OS mechanism and its effect on ML work.
    pub why: String,
    pub fix: Option<Fix>,
    /// The files the judgment rests on.
    pub evidence: Vec<String>,
    /// Where the expected value comes from.
    pub source: String,
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub pass: usize,
    pub info: usize,
    pub skip: usize,
    pub warn: usize,
    pub fail: usize,
}

/// `osml doctor --json`: documented in `docs/doctor-json.md`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub osml_version: &'static str,
    pub profile: &'static Profile,
    pub host: HostSnapshot,
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

impl Report {
    /// Whether any check failed (exit code 1).
    pub fn failed(&self) -> bool {
        self.summary.fail > 0
    }
}

/// Runs the checks (all, or those named in `only`) against a snapshot.
pub fn diagnose(
    host: HostSnapshot,
    profile: &'static Profile,
    only: &[String],
) -> Result<Report, DoctorError> {
    for id in only {
        if !CHECKS.iter().any(|c| c.info.id == id) {
            return Err(DoctorError::UnknownCheck {
                id: id.clone(),
                known: CHECKS
                    .iter()
                    .map(|c| c.info.id)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let findings: Vec<Finding> = CHECKS
        .iter()
        .filter(|c| {
            if only.is_empty() {
                // The `watch.*` checks judge a window: only when one was watched.
                c.info.area() != "watch" || host.watch.is_some()
            } else {
                only.iter().any(|o| o == c.info.id)
            }
        })
        .map(|c| c.run(&host, profile))
        .collect();
    let mut summary = Summary::default();
    for f in &findings {
        *match f.status {
            Status::Pass => &mut summary.pass,
            Status::Info => &mut summary.info,
            Status::Skip => &mut summary.skip,
            Status::Warn => &mut summary.warn,
            Status::Fail => &mut summary.fail,
        } += 1;
    }
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        osml_version: env!("CARGO_PKG_VERSION"),
        profile,
        host,
        findings,
        summary,
    })
}

/// Renders a byte count for people: `64.0 MiB`, `15.6 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
