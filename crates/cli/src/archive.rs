//! `--root` and `--capture` paths, through [`osml_host::capture`] (which the Python binding
//! uses too), with the flag named in the error.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use osml_host::capture;
pub use osml_host::capture::OpenedRoot;
use osml_host::Recorded;

/// Opens `--root PATH`: a directory, or an archive unpacked under `osml_host::capture`'s limits.
pub fn open_root(path: &Path) -> Result<OpenedRoot> {
    capture::open(path).context("--root")
}

/// Writes `--capture DEST` from what a recording root read; returns the number of entries.
pub fn write_capture(dest: &Path, recorded: &BTreeMap<String, Recorded>) -> Result<usize> {
    capture::write(dest, recorded).with_context(|| format!("--capture {}", dest.display()))
}
