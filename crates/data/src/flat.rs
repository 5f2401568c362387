//! Flat token arrays: nanoGPT's headerless `.bin`, numpy's `.npy` and llm.c's shards.

use std::path::Path;

use osml_sys::MappedFile;

use crate::{DType, DataError, FileFormat};

/// A mapped file holding one array of tokens after an optional header.
#[derive(Debug)]
pub struct FlatTokens {
    map: MappedFile,
    dtype: DType,
    /// Bytes before the first token (the `.npy` header).
    offset: usize,
    tokens: u64,
}

impl FlatTokens {
    /// A raw token file of `dtype`: its size must be a whole number of tokens.
    pub fn open_raw(path: &Path, dtype: DType) -> Result<Self, DataError> {
        Self::from_raw_map(crate::source::map(path)?, dtype)
    }

    /// [`FlatTokens::open_raw`] over a file already mapped.
    pub(crate) fn from_raw_map(map: MappedFile, dtype: DType) -> Result<Self, DataError> {
        let path = map.path().to_path_buf();
        let path = path.as_path();
        let bad = |r: String| DataError::invalid(path, FileFormat::RawBin, r);
        if map.is_empty() {
            return Err(bad("the file is empty: no tokens".into()));
        }
        if !map.len().is_multiple_of(dtype.size()) {
            return Err(bad(format!(
                "{} bytes is not a whole number of {dtype} tokens ({} bytes each): truncated, or another dtype (--dtype; raw_dtype in Python)",
                map.len(),
                dtype.size()
            )));
        }
        let tokens = (map.len() / dtype.size()) as u64;
        Ok(Self {
            map,
            dtype,
            offset: 0,
            tokens,
        })
    }

    /// A `.npy` file holding a 1-D little-endian integer array (header versions 1 to 3).
    pub fn open_npy(path: &Path) -> Result<Self, DataError> {
        let map = crate::source::map(path)?;
        let header = crate::npy::parse_header(map.bytes())
            .map_err(|r| DataError::invalid(path, FileFormat::Npy, r))?;
        let data = map.len() - header.data_offset;
        let want = header.len.checked_mul(header.dtype.size());
        if want != Some(data) {
            return Err(DataError::invalid(
                path,
                FileFormat::Npy,
                format!(
                    "the header says {} {} values ({} bytes) but {data} bytes follow it{}",
                    header.len,
                    header.dtype,
                    want.map_or_else(|| "too many".into(), |w| w.to_string()),
                    if want.is_some_and(|w| w > data) {
                        " (truncated?)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Ok(Self {
            map,
            dtype: header.dtype,
            offset: header.data_offset,
            tokens: header.len as u64,
        })
    }

    /// An llm.c shard ([`crate::llmc`]): its header checked, its token count against its size.
    pub fn open_llmc(path: &Path) -> Result<Self, DataError> {
        Self::from_llmc_map(crate::source::map(path)?)
    }

    pub(crate) fn from_llmc_map(map: MappedFile) -> Result<Self, DataError> {
        let (dtype, tokens) = crate::llmc::parse_header(map.bytes())
            .map_err(|r| DataError::invalid(map.path(), FileFormat::Llmc, r))?;
        Ok(Self {
            map,
            dtype,
            offset: crate::llmc::HEADER_BYTES,
            tokens,
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// The token bytes.
    pub fn data(&self) -> &[u8] {
        &self.map.bytes()[self.offset..]
    }

    pub(crate) fn map(&self) -> &MappedFile {
        &self.map
    }
}
