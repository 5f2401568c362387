//! PLACEHOLDER until the Arrow reader lands (replaced at merge).
use std::path::{Path, PathBuf};

use crate::{DType, DataError};

#[derive(Debug)]
pub struct ArrowTokens {
    map: osml_sys::MappedFile,
}

impl ArrowTokens {
    pub fn open(path: &Path, _column: &str) -> Result<Self, DataError> {
        let map = crate::source::map(path)?;
        let _ = &map;
        Err(DataError::Usage("arrow: not yet".into()))
    }
    pub fn dtype(&self) -> DType {
        DType::I64
    }
    pub fn tokens(&self) -> u64 {
        0
    }
    pub fn num_documents(&self) -> usize {
        0
    }
    pub fn document_range(&self, _i: usize) -> Option<(u64, u64)> {
        None
    }
    pub fn pieces(&self) -> &[(usize, u64)] {
        &[]
    }
    pub fn map(&self) -> &osml_sys::MappedFile {
        &self.map
    }
}

#[allow(clippy::unnecessary_wraps)]
pub fn save_to_disk_files(_dir: &Path) -> Result<Option<Vec<PathBuf>>, DataError> {
    Ok(None)
}
