//! Atomic writers: everything goes to a temporary file in the destination's directory
//! (`osml_sys::atomic::TempBeside`: created `0666` less the umask, removed if the process is
//! ended by SIGINT, SIGTERM or SIGHUP), is fsync'd, then renamed over the destination, so a
//! reader sees the old dataset or the new one, never half of one. A writer dropped before
//! [`MegatronWriter::finish`] leaves nothing.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use osml_sys::atomic::TempBeside;

use crate::megatron::{self, HEADER_LEN, MAGIC};
use crate::{DType, DataError};

/// The temporary file that becomes `path`; a failure names the directory it is made in, or
/// `path` itself when that is what was refused (a FIFO, device or directory in its place).
fn temp_beside(path: &Path) -> Result<TempBeside, DataError> {
    TempBeside::new(path, ".osml-").map_err(|e| {
        if osml_sys::file::rejection(&e).is_some() {
            DataError::write(path, e)
        } else {
            DataError::write(osml_sys::atomic::parent_dir(path), e)
        }
    })
}

/// Syncs and renames `tmp` over `dest`.
fn persist(tmp: TempBeside, dest: &Path) -> Result<(), DataError> {
    tmp.persist(dest).map_err(|e| DataError::write(dest, e))?;
    Ok(())
}

/// Appends tokens to `out` in `dtype`, refusing ids the type cannot hold.
fn encode(dtype: DType, tokens: &[u32], out: &mut Vec<u8>) -> Result<(), DataError> {
    let max = dtype.max_token();
    if let Some(&t) = tokens.iter().find(|&&t| u64::from(t) > max) {
        return Err(DataError::Usage(format!(
            "token id {t} does not fit {dtype} (max {max}): write int32"
        )));
    }
    out.reserve(tokens.len() * dtype.size());
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        clippy::cast_precision_loss
    )]
    for &t in tokens {
        match dtype {
            DType::U8 => out.push(t as u8),
            DType::I8 => out.push((t as i8).to_le_bytes()[0]),
            DType::U16 => out.extend_from_slice(&(t as u16).to_le_bytes()),
            DType::I16 => out.extend_from_slice(&(t as i16).to_le_bytes()),
            DType::U32 => out.extend_from_slice(&t.to_le_bytes()),
            DType::I32 => out.extend_from_slice(&(t as i32).to_le_bytes()),
            DType::U64 => out.extend_from_slice(&u64::from(t).to_le_bytes()),
            DType::I64 => out.extend_from_slice(&i64::from(t).to_le_bytes()),
            DType::F32 => out.extend_from_slice(&(t as f32).to_le_bytes()),
            DType::F64 => out.extend_from_slice(&f64::from(t).to_le_bytes()),
        }
    }
    Ok(())
}

/// What a writer produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub tokens: u64,
    pub documents: u64,
    pub bytes: u64,
}

/// Writes a Megatron `.bin` + `.idx` pair, one sequence per document (as
/// `tools/preprocess_data.py` does).
pub struct MegatronWriter {
    dtype: DType,
    idx_path: PathBuf,
    bin_path: PathBuf,
    bin: BufWriter<TempBeside>,
    lengths: Vec<i32>,
    scratch: Vec<u8>,
    tokens: u64,
}

impl MegatronWriter {
    /// Starts `prefix.bin` and `prefix.idx` (given as the prefix, or either file's path).
    pub fn create(prefix: &Path, dtype: DType) -> Result<Self, DataError> {
        if dtype.megatron_code().is_none() {
            return Err(DataError::Usage(format!(
                "Megatron files cannot hold {dtype}"
            )));
        }
        let (idx_path, bin_path) = megatron::paths(prefix);
        Ok(Self {
            dtype,
            bin: BufWriter::with_capacity(1 << 20, temp_beside(&bin_path)?),
            idx_path,
            bin_path,
            lengths: Vec::new(),
            scratch: Vec::new(),
            tokens: 0,
        })
    }

    /// Appends one document.
    pub fn add_document(&mut self, tokens: &[u32]) -> Result<(), DataError> {
        let len = i32::try_from(tokens.len()).map_err(|_| {
            DataError::Usage(format!(
                "a document of {} tokens exceeds the format's int32 sequence length",
                tokens.len()
            ))
        })?;
        self.scratch.clear();
        encode(self.dtype, tokens, &mut self.scratch)?;
        self.bin
            .write_all(&self.scratch)
            .map_err(|e| DataError::write(&self.bin_path, e))?;
        self.lengths.push(len);
        self.tokens += tokens.len() as u64;
        Ok(())
    }

    /// Writes the index, syncs both files and renames them into place (`.bin` first, so the
    /// new `.idx` never describes an old `.bin`).
    pub fn finish(self) -> Result<Written, DataError> {
        let bin = self
            .bin
            .into_inner()
            .map_err(|e| DataError::write(&self.bin_path, e.into_error()))?;
        let s = self.lengths.len();
        let mut idx = BufWriter::new(temp_beside(&self.idx_path)?);
        let mut head = Vec::with_capacity(HEADER_LEN);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&1u64.to_le_bytes());
        head.push(self.dtype.megatron_code().unwrap_or(0));
        head.extend_from_slice(&(s as u64).to_le_bytes());
        head.extend_from_slice(&(s as u64 + 1).to_le_bytes());
        let io = |e| DataError::write(&self.idx_path, e);
        idx.write_all(&head).map_err(io)?;
        for l in &self.lengths {
            idx.write_all(&l.to_le_bytes()).map_err(io)?;
        }
        let size = self.dtype.size() as u64;
        let mut ptr = 0u64;
        for &l in &self.lengths {
            idx.write_all(&ptr.to_le_bytes()).map_err(io)?;
            ptr += u64::from(l.unsigned_abs()) * size;
        }
        for d in 0..=s as u64 {
            idx.write_all(&d.to_le_bytes()).map_err(io)?;
        }
        let idx = idx.into_inner().map_err(|e| io(e.into_error()))?;
        let bytes = ptr + (HEADER_LEN + 12 * s + 8 * (s + 1)) as u64;
        persist(bin, &self.bin_path)?;
        persist(idx, &self.idx_path)?;
        Ok(Written {
            files: vec![self.bin_path, self.idx_path],
            tokens: self.tokens,
            documents: s as u64,
            bytes,
        })
    }
}

/// Writes a headerless token file (nanoGPT's `train.bin`).
pub struct RawWriter {
    dtype: DType,
    path: PathBuf,
    out: BufWriter<TempBeside>,
    scratch: Vec<u8>,
    tokens: u64,
    documents: u64,
}

impl RawWriter {
    pub fn create(path: &Path, dtype: DType) -> Result<Self, DataError> {
        Ok(Self {
            dtype,
            out: BufWriter::with_capacity(1 << 20, temp_beside(path)?),
            path: path.to_path_buf(),
            scratch: Vec::new(),
            tokens: 0,
            documents: 0,
        })
    }

    /// Appends one document's tokens (the format keeps no boundary).
    pub fn add_document(&mut self, tokens: &[u32]) -> Result<(), DataError> {
        self.scratch.clear();
        encode(self.dtype, tokens, &mut self.scratch)?;
        self.out
            .write_all(&self.scratch)
            .map_err(|e| DataError::write(&self.path, e))?;
        self.tokens += tokens.len() as u64;
        self.documents += 1;
        Ok(())
    }

    pub fn finish(self) -> Result<Written, DataError> {
        let f = self
            .out
            .into_inner()
            .map_err(|e| DataError::write(&self.path, e.into_error()))?;
        persist(f, &self.path)?;
        Ok(Written {
            files: vec![self.path],
            tokens: self.tokens,
            documents: self.documents,
            bytes: self.tokens * self.dtype.size() as u64,
        })
    }
}

/// Writes a 1-D `.npy` (version 1.0 header) atomically; for tests and small exports.
pub fn write_npy(path: &Path, dtype: DType, tokens: &[u32]) -> Result<(), DataError> {
    let mut f = temp_beside(path)?;
    let mut bytes = crate::npy::header_bytes(dtype, tokens.len());
    encode(dtype, tokens, &mut bytes)?;
    f.write_all(&bytes).map_err(|e| DataError::write(path, e))?;
    persist(f, path)
}

/// Writes one llm.c shard ([`crate::llmc`]): the header's place is written first and filled
/// in by [`LlmcWriter::finish`], when the count is known, before the rename.
pub struct LlmcWriter {
    dtype: DType,
    path: PathBuf,
    out: BufWriter<TempBeside>,
    scratch: Vec<u8>,
    tokens: u64,
    documents: u64,
    max_tokens: u64,
}

impl LlmcWriter {
    /// Starts `path`, of `uint16` (version 1) or `uint32` (version 7) tokens.
    pub fn create(path: &Path, dtype: DType) -> Result<Self, DataError> {
        Self::with_limit(path, dtype, crate::llmc::MAX_TOKENS)
    }

    fn with_limit(path: &Path, dtype: DType, max_tokens: u64) -> Result<Self, DataError> {
        if crate::llmc::header(dtype, 0).is_none() {
            return Err(DataError::Usage(format!(
                "llm.c files hold uint16 or uint32 tokens, not {dtype}"
            )));
        }
        let mut out = BufWriter::with_capacity(1 << 20, temp_beside(path)?);
        out.write_all(&[0u8; crate::llmc::HEADER_BYTES])
            .map_err(|e| DataError::write(path, e))?;
        Ok(Self {
            dtype,
            path: path.to_path_buf(),
            out,
            scratch: Vec::new(),
            tokens: 0,
            documents: 0,
            max_tokens,
        })
    }

    /// Tokens written so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Appends one document's tokens (the format keeps no boundary). Refuses to take the file
    /// past the count its int32 header can hold.
    pub fn add_document(&mut self, tokens: &[u32]) -> Result<(), DataError> {
        let after = self.tokens + tokens.len() as u64;
        if after > self.max_tokens {
            return Err(DataError::Usage(format!(
                "{}: an llm.c file holds at most {} tokens (its header counts them in an int32), \
                 and this document would take it to {after}: write it as shards of fewer tokens",
                self.path.display(),
                self.max_tokens
            )));
        }
        self.scratch.clear();
        encode(self.dtype, tokens, &mut self.scratch)?;
        self.out
            .write_all(&self.scratch)
            .map_err(|e| DataError::write(&self.path, e))?;
        self.tokens = after;
        self.documents += 1;
        Ok(())
    }

    /// Writes the header with the count, syncs and renames the file into place.
    pub fn finish(self) -> Result<Written, DataError> {
        use std::os::unix::fs::FileExt;
        let f = self
            .out
            .into_inner()
            .map_err(|e| DataError::write(&self.path, e.into_error()))?;
        let head = crate::llmc::header(self.dtype, self.tokens)
            .ok_or_else(|| DataError::Usage("llm.c header out of range".into()))?;
        f.as_file()
            .write_all_at(&head, 0)
            .map_err(|e| DataError::write(&self.path, e))?;
        persist(f, &self.path)?;
        Ok(Written {
            files: vec![self.path],
            tokens: self.tokens,
            documents: self.documents,
            bytes: crate::llmc::HEADER_BYTES as u64 + self.tokens * self.dtype.size() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(bytes: &[u8]) -> Vec<i32> {
        bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn llmc_files_have_llm_c_headers() {
        let dir = tempfile::tempdir().unwrap();
        for (dtype, magic, version, size) in [
            (DType::U16, 20_240_520, 1, 2),
            (DType::U32, 20_240_801, 7, 4),
        ] {
            let path = dir.path().join(format!("{dtype}.bin"));
            let mut w = LlmcWriter::create(&path, dtype).unwrap();
            w.add_document(&[7, 8, 9]).unwrap();
            w.add_document(&[]).unwrap();
            w.add_document(&[65_535]).unwrap();
            let written = w.finish().unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(written.bytes, bytes.len() as u64);
            assert_eq!(bytes.len(), 1024 + 4 * size);
            let head = ints(&bytes[..1024]);
            assert_eq!(head[..3], [magic, version, 4]);
            assert!(head[3..].iter().all(|&v| v == 0));
            assert_eq!(crate::llmc::parse_header(&bytes), Ok((dtype, 4)));
            let tokens: Vec<u32> = bytes[1024..]
                .chunks_exact(size)
                .map(|c| {
                    if size == 2 {
                        u32::from(u16::from_le_bytes([c[0], c[1]]))
                    } else {
                        u32::from_le_bytes(c.try_into().unwrap())
                    }
                })
                .collect();
            assert_eq!(tokens, [7, 8, 9, 65_535]);
        }
        assert!(LlmcWriter::create(&dir.path().join("x.bin"), DType::I32).is_err());
        assert!(matches!(
            LlmcWriter::create(&dir.path().join("y.bin"), DType::U16)
                .unwrap()
                .add_document(&[70_000]),
            Err(DataError::Usage(_))
        ));
    }

    #[test]
    fn llmc_refuses_more_tokens_than_its_header_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.bin");
        let mut w = LlmcWriter::with_limit(&path, DType::U16, 5).unwrap();
        w.add_document(&[1, 2, 3]).unwrap();
        let err = w.add_document(&[4, 5, 6]).unwrap_err();
        assert!(matches!(err, DataError::Usage(_)), "{err}");
        assert!(err.to_string().contains("shards"), "{err}");
        w.add_document(&[4, 5]).unwrap();
        assert_eq!(w.finish().unwrap().tokens, 5);
        assert_eq!(crate::llmc::header(DType::U16, 1 << 31), None);
        assert!(crate::llmc::header(DType::U16, (1 << 31) - 1).is_some());
    }
}
