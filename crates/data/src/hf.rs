//! Hugging Face `Dataset.save_to_disk` directories: which `.arrow` files hold the rows, in order.
//!
//! What `datasets` writes (`src/datasets/arrow_dataset.py`, `Dataset.save_to_disk`, and what
//! `Dataset.load_from_disk` reads back): `state.json` (`config.DATASET_STATE_JSON_FILENAME`)
//! whose `"_data_files"` is a list of `{"filename": "data-00000-of-00002.arrow"}` in row
//! order (`load_from_disk` concatenates the tables in that order), `dataset_info.json`
//! (features, not needed here) and the data files themselves, each an Arrow IPC stream.
//! `DatasetDict.save_to_disk` (`src/datasets/dataset_dict.py`) writes instead
//! `dataset_dict.json` (`config.DATASETDICT_JSON_FILENAME`, `{"splits": [...]}`) and one such
//! directory per split.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::{DataError, FileFormat};

/// `state.json` and `dataset_dict.json` are a few KiB; a cap keeps a wrong file from being
/// read whole.
const JSON_LIMIT: u64 = 16 << 20;

#[derive(Deserialize)]
struct State {
    #[serde(rename = "_data_files")]
    data_files: Vec<DataFile>,
    /// Written by `datasets` before 2.0 when the dataset had an indices mapping (a `select` or
    /// `shuffle` not flattened): the rows are then not the files' rows in order.
    #[serde(rename = "_indices_data_files", default)]
    indices_data_files: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct DataFile {
    filename: String,
}

#[derive(Deserialize)]
struct DatasetDict {
    splits: Vec<String>,
}

/// The data files of a `Dataset.save_to_disk` directory, in the order its `state.json` lists
/// them (`_data_files[].filename`), checked to exist; `Ok(None)` when `dir` has no
/// `state.json`. A `DatasetDict` directory (`dataset_dict.json`, split subdirectories) is
/// refused naming its splits. An empty `_data_files` gives an empty list.
pub fn save_to_disk_files(dir: &Path) -> Result<Option<Vec<PathBuf>>, DataError> {
    let dict = dir.join("dataset_dict.json");
    if dict.is_file() {
        let splits = read_json::<DatasetDict>(&dict).map(|d| d.splits);
        let reason = match splits {
            Ok(splits) if !splits.is_empty() => format!(
                "{} is a DatasetDict (dataset_dict.json) with splits {}: name one split's directory, such as {}",
                dir.display(),
                splits
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                dir.join(&splits[0]).display()
            ),
            Ok(_) => format!(
                "{} is a DatasetDict (dataset_dict.json) with no splits",
                dir.display()
            ),
            Err(e) => return Err(e),
        };
        return Err(DataError::invalid(&dict, FileFormat::HfDataset, reason));
    }
    let state_path = dir.join("state.json");
    match std::fs::symlink_metadata(&state_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let state: State = read_json(&state_path)?;
    let bad = |r: String| DataError::invalid(&state_path, FileFormat::HfDataset, r);
    if state
        .indices_data_files
        .as_ref()
        .is_some_and(|v| !v.is_null())
    {
        return Err(bad("it has an indices mapping (\"_indices_data_files\", written by datasets before 2.0 for a select or shuffle): its rows are not the data files' rows in order; save it again after `ds = ds.flatten_indices()`".into()));
    }
    let mut files = Vec::with_capacity(state.data_files.len());
    for (i, f) in state.data_files.iter().enumerate() {
        let name = Path::new(&f.filename);
        let mut parts = name.components();
        if !matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(_)), None)
        ) {
            return Err(bad(format!(
                "_data_files[{i}].filename {:?} is not a file name in the directory",
                f.filename
            )));
        }
        let path = dir.join(name);
        if !path.is_file() {
            return Err(bad(format!(
                "_data_files[{i}] is {:?}, but {} is missing or not a file: the directory is incomplete (copy it again, or save it again with save_to_disk)",
                f.filename,
                path.display()
            )));
        }
        files.push(path);
    }
    Ok(Some(files))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, DataError> {
    let bytes =
        osml_sys::file::read_bounded(path, JSON_LIMIT).map_err(|e| DataError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        DataError::invalid(
            path,
            FileFormat::HfDataset,
            format!("not the JSON `datasets` writes there: {e}"),
        )
    })
}
