//! The one route from an error to an exit code.
//!
//! Subcommands return `Ok(code)` for an outcome (0, or 1 for failed checks, drift, a
//! difference) and `Err` for everything else. An error carries its type through `anyhow`, and
//! [`code`] picks the documented exit code from the first typed cause in its chain; nothing is
//! decided by a message's wording. README.md's exit-code table lists what this returns.

use std::io::Write;
use std::process::ExitCode;

use osml_data::DataError;

/// A request the command cannot honour as given: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Usage {
    pub message: String,
    /// What to do instead, printed on its own line.
    pub hint: Option<String>,
}

impl Usage {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// A command `osml run` could not start: 127 when it does not exist, 126 otherwise (the
/// shell's convention, `bash(1)` "EXIT STATUS").
#[derive(Debug, thiserror::Error)]
#[error("cannot run {command}: {error}")]
pub struct CannotRun {
    pub command: String,
    pub error: std::io::Error,
}

/// The exit code of an error: the first cause in the chain that has a documented code.
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<DataError>() {
            return crate::data::exit_code(e);
        }
        if cause.is::<Usage>() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<osml_tune::TuneError>() {
            // A change that failed its check and was undone is a failed outcome, as a failed
            // doctor check is; every other tune error is 2.
            return if matches!(e, osml_tune::TuneError::RolledBack(_)) {
                1
            } else {
                2
            };
        }
        if let Some(e) = cause.downcast_ref::<CannotRun>() {
            return if e.error.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    }
    2
}

/// What to do about an error, if osml knows.
fn hint(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<DataError>() {
            return crate::data::hint(e).map(str::to_owned);
        }
        if let Some(osml_tune::TuneError::NoJournal(_)) = cause.downcast_ref() {
            return Some("nothing to revert: osml tune --apply writes the journal".to_owned());
        }
        cause.downcast_ref::<Usage>().and_then(|u| u.hint.clone())
    })
}

/// Whether the error is a write into a closed pipe (`osml doctor | head -1`), which is how a
/// reader says it has seen enough: not an error, exit 0.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            // serde_json's error hides the io::Error it wraps from `source()`.
            .or_else(|| e.downcast_ref::<serde_json::Error>()?.io_error_kind())
            == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints `err` (once, causes joined by `: `) and its hint to stderr, and returns its code.
/// A closed stderr is ignored: the code still tells the caller what happened.
pub fn report(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(
        stderr,
        "osml: error: {}",
        crate::output::escape(&format!("{err:#}"))
    );
    if let Some(h) = hint(err) {
        let _ = writeln!(stderr, "osml: hint: {h}");
    }
    ExitCode::from(code(err))
}
