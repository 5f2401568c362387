//! Where `pack`'s tokens go: one dataset, or numbered shards (`PREFIX_000000.bin`, …) cut at
//! document boundaries. Each file is written through osml-data's atomic writers (a
//! temporary file beside it, registered for removal on SIGINT/SIGTERM/SIGHUP, renamed into
//! place when whole), a shard as soon as the next one starts.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use osml_data::write::{LlmcWriter, MegatronWriter, RawWriter, Written};
use osml_data::{DType, DataError};

use crate::OutputFormat;

enum Writer {
    Megatron(MegatronWriter),
    Bin(RawWriter),
    Llmc(LlmcWriter),
}

impl Writer {
    /// `dest` is the prefix for Megatron, the `.bin` for the others.
    fn create(format: OutputFormat, dest: &Path, dtype: DType) -> Result<Self, DataError> {
        Ok(match format {
            OutputFormat::Megatron => Self::Megatron(MegatronWriter::create(dest, dtype)?),
            OutputFormat::Bin => Self::Bin(RawWriter::create(dest, dtype)?),
            OutputFormat::Llmc => Self::Llmc(LlmcWriter::create(dest, dtype)?),
        })
    }

    fn add(&mut self, tokens: &[u32]) -> Result<(), DataError> {
        match self {
            Self::Megatron(w) => w.add_document(tokens),
            Self::Bin(w) => w.add_document(tokens),
            Self::Llmc(w) => w.add_document(tokens),
        }
    }

    fn finish(self) -> Result<Written, DataError> {
        match self {
            Self::Megatron(w) => w.finish(),
            Self::Bin(w) => w.finish(),
            Self::Llmc(w) => w.finish(),
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p: OsString = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// `output` without a `.bin` or `.idx` extension: the prefix every file is named from.
fn prefix_of(output: &Path) -> PathBuf {
    if output.extension().is_some_and(|e| e == "bin" || e == "idx") {
        output.with_extension("")
    } else {
        output.to_path_buf()
    }
}

/// What the output came to.
pub(crate) struct Done {
    pub written: Written,
    pub shards: Vec<Written>,
    pub oversized_documents: u64,
    pub removed_stale: Vec<PathBuf>,
}

pub(crate) struct Output {
    format: OutputFormat,
    dtype: DType,
    prefix: PathBuf,
    shard_tokens: Option<u64>,
    current: Writer,
    current_tokens: u64,
    current_documents: u64,
    index: usize,
    shards: Vec<Written>,
    oversized: u64,
}

impl Output {
    /// Creates the first (or only) file, so an output that cannot be written fails before
    /// any tokenizing.
    pub(crate) fn start(
        output: &Path,
        format: OutputFormat,
        dtype: DType,
        shard_tokens: Option<u64>,
    ) -> Result<Self, DataError> {
        let prefix = prefix_of(output);
        let first = match shard_tokens {
            Some(_) => shard_dest(format, &prefix, 0),
            None if format == OutputFormat::Megatron => output.to_path_buf(),
            None => with_suffix(&prefix, ".bin"),
        };
        Ok(Self {
            current: Writer::create(format, &first, dtype)?,
            format,
            dtype,
            prefix,
            shard_tokens,
            current_tokens: 0,
            current_documents: 0,
            index: 0,
            shards: Vec::new(),
            oversized: 0,
        })
    }

    /// Appends one document; with shards, a new shard starts first when this document would
    /// take the current one past its size (unless the current one is still empty).
    pub(crate) fn add(&mut self, tokens: &[u32]) -> Result<(), DataError> {
        let len = tokens.len() as u64;
        if let Some(limit) = self.shard_tokens {
            if self.current_documents > 0 && self.current_tokens + len > limit {
                self.index += 1;
                let next = Writer::create(
                    self.format,
                    &shard_dest(self.format, &self.prefix, self.index),
                    self.dtype,
                )?;
                let done = std::mem::replace(&mut self.current, next).finish()?;
                self.shards.push(done);
                self.current_tokens = 0;
                self.current_documents = 0;
            }
            if len > limit {
                self.oversized += 1;
            }
        }
        self.current.add(tokens)?;
        self.current_tokens += len;
        self.current_documents += 1;
        Ok(())
    }

    /// Finishes the last file and, with shards, removes stale shards of the same prefix.
    pub(crate) fn finish(mut self) -> Result<Done, DataError> {
        let last = self.current.finish()?;
        if self.shard_tokens.is_none() {
            return Ok(Done {
                written: last,
                shards: Vec::new(),
                oversized_documents: 0,
                removed_stale: Vec::new(),
            });
        }
        self.shards.push(last);
        let removed_stale = remove_stale(&self.prefix, self.format, self.index)?;
        let mut written = Written {
            files: Vec::new(),
            tokens: 0,
            documents: 0,
            bytes: 0,
        };
        for s in &self.shards {
            written.files.extend(s.files.iter().cloned());
            written.tokens += s.tokens;
            written.documents += s.documents;
            written.bytes += s.bytes;
        }
        Ok(Done {
            written,
            shards: self.shards,
            oversized_documents: self.oversized,
            removed_stale,
        })
    }
}

/// Shard `index`'s destination: its prefix for Megatron, its `.bin` for the others.
fn shard_dest(format: OutputFormat, prefix: &Path, index: usize) -> PathBuf {
    let name = with_suffix(prefix, &format!("_{index:06}"));
    if format == OutputFormat::Megatron {
        name
    } else {
        with_suffix(&name, ".bin")
    }
}

/// Removes `PREFIX_NNNNNN.bin` and `.idx` numbered past `last` (an earlier pack into more
/// shards left them, and a glob over the prefix would take them in), and, for the formats
/// without an index, every `PREFIX_NNNNNN.idx` (an earlier Megatron pack's, which a reader
/// would pair with the new `.bin`). Only regular files whose whole name has that form.
fn remove_stale(
    prefix: &Path,
    format: OutputFormat,
    last: usize,
) -> Result<Vec<PathBuf>, DataError> {
    let dir = osml_sys::atomic::parent_dir(prefix);
    let Some(stem) = prefix.file_name() else {
        return Ok(Vec::new());
    };
    let mut start = stem.as_bytes().to_vec();
    start.push(b'_');
    #[allow(clippy::disallowed_methods)] // the output directory of pack, not a host fact
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        let Some(rest) = name.as_bytes().strip_prefix(start.as_slice()) else {
            continue;
        };
        let (digits, ext) = match rest.iter().rposition(|&b| b == b'.') {
            Some(dot) => (&rest[..dot], &rest[dot + 1..]),
            None => continue,
        };
        if digits.len() < 6 || !digits.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Some(number) = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
        else {
            continue;
        };
        let stale = match ext {
            b"bin" => number > last,
            b"idx" => number > last || format != OutputFormat::Megatron,
            _ => false,
        };
        if !stale || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = prefix.with_file_name(&name);
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DataError::Io {
                    path,
                    access: osml_data::Access::Write,
                    error: e,
                })
            }
        }
    }
    removed.sort();
    Ok(removed)
}
