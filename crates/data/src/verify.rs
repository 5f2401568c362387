//! `verify`: full validation, then every byte read back with `read(2)` (so a failing disk
//! is an error, not a `SIGBUS` through a mapping) and checksummed with XXH3-64.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::{DType, DataError, Format, OpenOptions, TokenDataset, TokenSource};

/// The JSON of `osml data verify --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub schema_version: u32,
    pub path: String,
    pub format: Format,
    pub dtype: DType,
    pub tokens: u64,
    pub documents: u64,
    pub files: Vec<Checksum>,
    /// Oddities that do not make the dataset unreadable (bytes after the last sequence).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Checksum {
    pub path: String,
    pub bytes: u64,
    /// XXH3-64 of the whole file, hexadecimal.
    pub xxh3_64: String,
}

fn checksum(path: &Path) -> Result<Checksum, DataError> {
    let mut f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(Checksum {
        path: path.display().to_string(),
        bytes,
        xxh3_64: format!("{:016x}", h.digest()),
    })
}

/// Opens (validating everything the format describes) and reads back every byte.
pub fn verify(path: &Path, options: OpenOptions) -> Result<Verification, DataError> {
    let ds = TokenDataset::open(path, options)?;
    let mut warnings = Vec::new();
    if let Some(m) = ds.as_megatron() {
        let described = m.tokens() * m.dtype().size() as u64;
        let actual = ds.stream_bytes().len() as u64;
        if actual > described {
            warnings.push(format!(
                "{} bytes after the last sequence in the .bin (the index describes {described} of {actual})",
                actual - described
            ));
        }
    }
    let files = ds
        .paths()
        .iter()
        .map(|p| checksum(p))
        .collect::<Result<Vec<_>, _>>()?;
    for (c, f) in files.iter().zip(ds.files()) {
        if c.bytes != f.len() as u64 {
            return Err(DataError::invalid(
                f.path(),
                "dataset",
                format!(
                    "changed while being verified ({} bytes mapped, {} read)",
                    f.len(),
                    c.bytes
                ),
            ));
        }
    }
    Ok(Verification {
        schema_version: 1,
        path: path.display().to_string(),
        format: ds.format(),
        dtype: ds.dtype(),
        tokens: ds.num_tokens(),
        documents: ds.num_documents() as u64,
        files,
        warnings,
    })
}
