//! `osml data`: pack, inspect, verify, show, bench. The exit codes of the data engine's errors
//! (used by [`crate::exit`]): 1 invalid dataset or input, 2 usage, 3 a file that cannot be read
//! or written.

mod bench;
mod inspect;
mod pack;
mod show;
mod verify;

use std::process::ExitCode;

use anyhow::Result;
use osml_data::{Access, DType, DataError, FileFormat, Format, OpenOptions};

use crate::cli::{DataCommand, DatasetArgs};

pub fn run(command: &DataCommand) -> Result<ExitCode> {
    match command {
        DataCommand::Pack(a) => pack::run(a),
        DataCommand::Inspect(a) => inspect::run(a),
        DataCommand::Verify(a) => verify::run(a),
        DataCommand::Show(a) => show::run(a),
        DataCommand::Bench(a) => bench::run(a),
    }
}

/// The documented exit code of a data error.
pub fn exit_code(e: &DataError) -> u8 {
    match e {
        DataError::Invalid { .. } | DataError::Input { .. } => 1,
        DataError::Io { .. } | DataError::System { .. } => 3,
        DataError::Loader(osml_data::loader::LoaderError::Step { error, .. }) => exit_code(error),
        DataError::Usage(_) | DataError::Loader(_) => 2,
    }
}

/// What to do about a data error, chosen by what failed: the kind of file, whether it was
/// being read or written, and the OS error's kind.
pub fn hint(e: &DataError) -> Option<&'static str> {
    use std::io::ErrorKind;
    match e {
        DataError::Io { access, error, .. } => match (access, error.kind()) {
            _ if osml_sys::file::rejection(error).is_some() => {
                Some("give a regular file: not a directory, FIFO or device")
            }
            (Access::Read, ErrorKind::NotFound) => {
                Some("check the path; a Megatron dataset is named by its prefix, .idx or .bin")
            }
            (Access::Write, ErrorKind::NotFound) => {
                Some("the output directory does not exist: create it first (mkdir -p)")
            }
            (Access::Read, ErrorKind::PermissionDenied) => {
                Some("the file is not readable by this user")
            }
            (Access::Write, ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem) => {
                Some("the output directory is not writable by this user")
            }
            (Access::Write, ErrorKind::StorageFull | ErrorKind::QuotaExceeded) => {
                Some("the output's filesystem is full: free space or write elsewhere")
            }
            _ => None,
        },
        DataError::System { error, .. } if error.kind() == ErrorKind::OutOfMemory => {
            Some("not enough memory: close other programs or use fewer workers")
        }
        DataError::Invalid {
            format: FileFormat::RawBin,
            ..
        } => Some(
            "a raw .bin has no header: pass --dtype (uint16 is nanoGPT's), or --format if it is something else",
        ),
        DataError::Invalid {
            format: FileFormat::Unknown,
            ..
        } => Some("pass --format bin, npy, llmc, arrow or megatron (a raw .bin also takes --dtype)"),
        DataError::Invalid {
            format: FileFormat::Source,
            ..
        } => Some("name shards of one format: a quoted glob, a directory, or a list of paths"),
        DataError::Loader(osml_data::loader::LoaderError::Step { error, .. }) => hint(error),
        _ => None,
    }
}

/// Validated open options from the shared dataset flags.
pub fn open_options(a: &DatasetArgs) -> OpenOptions {
    OpenOptions {
        // clap allows only the formats' names.
        format: a.format.as_deref().and_then(Format::from_name),
        dtype: DType::from_name(&a.dtype),
        column: Some(a.column.clone()),
        eod_token: a.eod_token,
    }
}

/// `1234567` as `1,234,567`.
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
