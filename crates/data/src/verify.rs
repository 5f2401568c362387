//! `verify`: full validation, every token id checked, then every byte read back with `read(2)`
//! (so a failing disk is an error, not a `SIGBUS` through a mapping) and checksummed with
//! XXH3-64.
//!
//! What it can and cannot tell: none of the formats stores a checksum, so a flipped byte in
//! the token data that leaves a valid id is not corruption verify can see. It checks the
//! structure (header, counts against sizes, every length, pointer and document boundary of a
//! Megatron index), that every token is an id osml can deliver (not negative, below 2^63),
//! and that every byte can be read; the checksum it prints is what to compare against the
//! one recorded when the dataset was made (`osml data verify --expect-checksum`).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{DType, DataError, FileFormat, Format, OpenOptions, TokenDataset, TokenSource};

/// The JSON of `osml data verify --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub schema_version: u32,
    /// The source as named (its entries joined by spaces).
    pub path: String,
    /// The source's entries as named (a path, glob or directory each).
    pub source: Vec<String>,
    pub format: Format,
    pub dtype: DType,
    pub tokens: u64,
    pub documents: u64,
    /// Each shard, in stream order: which one is bad is named by the error itself.
    pub shards: Vec<ShardCheck>,
    pub files: Vec<Checksum>,
    /// XXH3-64 of every file's bytes in `files` order (data first), hexadecimal.
    pub checksum: String,
    /// What was checked, in words (the same list for every dataset of a format).
    pub checked: Vec<&'static str>,
    /// Oddities that do not make the dataset unreadable (bytes after the last sequence).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShardCheck {
    pub path: String,
    pub tokens: u64,
    /// Documents the shard records (flat formats: none).
    pub documents: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Checksum {
    pub path: String,
    pub bytes: u64,
    /// XXH3-64 of the whole file, hexadecimal.
    pub xxh3_64: String,
}

fn checksum(path: &Path, all: &mut xxhash_rust::xxh3::Xxh3) -> Result<Checksum, DataError> {
    let mut f = osml_sys::file::open_regular(path).map_err(|e| DataError::io(path, e))?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        all.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(Checksum {
        path: path.display().to_string(),
        bytes,
        xxh3_64: format!("{:016x}", h.digest()),
    })
}

/// Tokens checked at a time by [`verify`].
const WINDOW: usize = 1 << 20;

/// Opens (validating everything the format describes) and reads back every byte.
pub fn verify(entries: &[PathBuf], options: &OpenOptions) -> Result<Verification, DataError> {
    let ds = TokenDataset::open_source(entries, options)?;
    let mut warnings = Vec::new();
    for m in ds.shards().iter().filter_map(crate::Shard::as_megatron) {
        let described = m.tokens() * m.dtype().size() as u64;
        let actual = m.bin().len() as u64;
        if actual > described {
            warnings.push(format!(
                "{}: {} bytes after the last sequence in the .bin (the index describes {described} of {actual})",
                m.bin().path().display(),
                actual - described
            ));
        }
    }
    // Windows keep the scan of a huge dataset cache-sized.
    let max = DType::I64.max_token();
    if crate::Tokens::may_not_fit(ds.dtype(), max) {
        let mut start = 0u64;
        while start < ds.num_tokens() {
            let len =
                usize::try_from((ds.num_tokens() - start).min(WINDOW as u64)).unwrap_or(WINDOW);
            if let Some((i, value)) = ds.window(start, len).and_then(|t| t.first_unfit(max)) {
                return Err(crate::loader::unfit_token(
                    &ds,
                    start + i as u64,
                    value,
                    max,
                ));
            }
            start += len as u64;
        }
    }
    let mut all = xxhash_rust::xxh3::Xxh3::new();
    let files = ds
        .paths()
        .iter()
        .map(|p| checksum(p, &mut all))
        .collect::<Result<Vec<_>, _>>()?;
    for (c, f) in files.iter().zip(ds.files()) {
        if c.bytes != f.len() as u64 {
            return Err(DataError::invalid(
                f.path(),
                FileFormat::Dataset,
                format!(
                    "changed while being verified ({} bytes mapped, {} read)",
                    f.len(),
                    c.bytes
                ),
            ));
        }
    }
    let shards = ds
        .shards()
        .iter()
        .map(|s| ShardCheck {
            path: s.path().display().to_string(),
            tokens: s.num_tokens(),
            documents: s.recorded_documents().map(|d| d as u64),
        })
        .collect();
    let source: Vec<String> = entries.iter().map(|p| p.display().to_string()).collect();
    Ok(Verification {
        schema_version: 1,
        path: source.join(" "),
        source,
        shards,
        format: ds.format(),
        dtype: ds.dtype(),
        tokens: ds.num_tokens(),
        documents: ds.num_documents() as u64,
        files,
        checksum: format!("{:016x}", all.digest()),
        checked: checked(ds.format()),
        warnings,
    })
}

/// What [`verify`] checks for a format.
fn checked(format: Format) -> Vec<&'static str> {
    let mut c = match format {
        Format::Megatron => vec![
            "the .idx header: magic, version, dtype code",
            "the .idx size against its sequence and document counts",
            "every sequence length non-negative and every pointer where the one before it ends",
            "the document index non-decreasing from 0 to the sequence count",
            "the .bin at least as long as the index describes",
        ],
        Format::Npy => vec![
            "the .npy header as numpy parses it: a 1-D C-order little-endian integer array",
            "the data after the header exactly as long as the header's shape says",
        ],
        Format::Bin => vec!["the file a whole number of tokens of its dtype"],
        Format::Llmc => vec![
            "the header: llm.c's magic with its version (20240520 v1 uint16, 20240801 v7 uint32)",
            "the header's token count against the file's size",
        ],
        Format::Arrow => vec![
            "the Arrow IPC stream: schema and every record batch decoded and validated",
            "the column a list of integers, with no null document or token",
        ],
    };
    c.push("every shard of one format and one dtype");
    c.extend([
        "every token id non-negative and below 2^63",
        "every byte readable with read(2), and checksummed (no stored checksum exists to compare it with: pass --expect-checksum)",
    ]);
    c
}
