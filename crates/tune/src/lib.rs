//! `osml tune`: apply a profile to a host, verify it, and revert it exactly.
//!
//! [`plan::build`] turns the profile table doctor judges with into settings (current → target,
//! the file written at run time, how it persists); targets that are minimums or maximums never
//! move a value the wrong way. [`apply::apply`] journals every previous value and file first,
//! applies, re-reads, and rolls back on any failure; [`apply::revert`] restores the journal.
//! No shell is run: values are file writes, `/dev/shm` is a `mount(2)` remount.
//!
//! ```no_run
//! use osml_host::{HostRoot, HostSnapshot};
//!
//! let root = HostRoot::live();
//! let plan = osml_tune::plan::build(&root, &HostSnapshot::gather(&root), &osml_doctor::TRAINING);
//! for s in &plan.settings {
//!     println!("{}: {:?} -> {}", s.name, s.current, s.target);
//! }
//! ```

pub mod apply;
pub mod plan;

use serde::Serialize;

use crate::apply::Target;
use crate::plan::{Action, Plan, SkipKind};

/// What went wrong. Each message includes its cause, so none also exposes it as `source()`
/// (which would print it twice under `{:#}`).
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
    #[error("{0}")]
    Host(String),
    #[error("the journal is unreadable: {0}")]
    Journal(String),
    #[error("{path} has schema_version {found}; this osml reads only {supported}, so it does not revert it (use the osml that wrote it)")]
    JournalVersion {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("another osml tune is applying, reverting or verifying on {root} (it holds the lock on {}): nothing was read or changed; run again when it has finished", apply::JOURNAL_DIR)]
    Locked { root: String },
    #[error("no journal at {0}: nothing was applied with osml tune --apply (or it was reverted)")]
    NoJournal(String),
    #[error("these settings did not read back as written: {0}")]
    Verify(String),
    #[error("apply failed: {0}")]
    RolledBack(String),
}

/// One line of `--verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub path: String,
    pub current: Option<String>,
    pub target: String,
    pub ok: bool,
    /// Why it differs and is not osml's to change, e.g. pinned by the command line.
    pub note: Option<String>,
}

/// Compares the host with the profile's targets, as `tuned-adm verify` does: each value, and
/// each persist file's content. A setting this kernel lacks is not listed; one that does not
/// apply here (`vm.swappiness` without swap) is listed as ok, with the reason.
pub fn verify(target: &Target<'_>, plan: &Plan) -> Vec<Check> {
    let mut out: Vec<Check> = plan
        .settings
        .iter()
        .filter(|s| {
            !matches!(
                &s.action,
                Action::Skip {
                    kind: SkipKind::Absent,
                    ..
                }
            )
        })
        .map(|s| {
            let current = if s.path == "/dev/shm" {
                s.current.clone()
            } else {
                apply::current_value(target, s)
            };
            Check {
                name: s.name.clone(),
                path: s.path.clone(),
                ok: matches!(
                    s.action,
                    Action::Keep
                        | Action::Skip {
                            kind: SkipKind::NotApplicable,
                            ..
                        }
                ),
                current,
                target: s.target.clone(),
                note: match &s.action {
                    Action::Skip { reason, .. } => Some(reason.clone()),
                    _ => None,
                },
            }
        })
        .collect();
    for f in &plan.files {
        out.push(Check {
            name: format!("persisted in {}", f.path),
            path: f.path.clone(),
            current: Some(
                if f.current.is_some() {
                    "present"
                } else {
                    "absent"
                }
                .to_owned(),
            ),
            target: "osml's content".to_owned(),
            ok: !f.changes(),
            note: None,
        });
    }
    out
}

/// Whether this process may change kernel settings (effective uid 0).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}
