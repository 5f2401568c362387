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
use crate::plan::{Action, Plan};

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Host(String),
    #[error("the journal is unreadable: {0}")]
    Journal(String),
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
/// each persist file's content.
pub fn verify(target: &Target<'_>, plan: &Plan) -> Vec<Check> {
    let mut out: Vec<Check> = plan
        .settings
        .iter()
        .filter(|s| !matches!(&s.action, Action::Skip { reason } if reason.starts_with("this kernel has no")))
        .map(|s| {
            let current = if s.path == "/dev/shm" {
                s.current.clone()
            } else {
                apply::current_value(target, s)
            };
            Check {
                name: s.name.clone(),
                path: s.path.clone(),
                ok: s.action == Action::Keep,
                current,
                target: s.target.clone(),
                note: match &s.action {
                    Action::Skip { reason } => Some(reason.clone()),
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
