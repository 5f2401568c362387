//! Parquet inputs: one string column (`Utf8`, `LargeUtf8` or `Utf8View`) read row group by
//! row group, only that column decoded, a few thousand rows at a time, so memory holds a
//! batch of rows, never the file. Null rows are skipped and counted.
//!
//! The reader is the `parquet` crate's; a file it cannot make sense of (not Parquet, a
//! truncated footer, a corrupt page) is an invalid input naming the file and, past the
//! footer, the row group. The decoder is run under `catch_unwind`: a malformed file that
//! trips an assertion inside it is reported the same way, never a crash.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use osml_data::{DataError, InputAt};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;

use crate::input::{ReadStats, Reading, Unit};

/// Rows per record batch: small enough that a batch of long rows stays a few batches' worth
/// of [`crate::PackOptions::batch_bytes`], large enough that per-batch costs vanish.
const BATCH_ROWS: usize = 256;

fn invalid(path: &Path, at: InputAt, reason: String) -> DataError {
    DataError::Input {
        path: path.to_path_buf(),
        at,
        reason,
    }
}

/// A reader error: an OS error is a file that cannot be read; anything else is the file's
/// contents.
fn reader_error(path: &Path, at: InputAt, e: &ParquetError) -> DataError {
    if let ParquetError::External(inner) = e {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return DataError::io(path, std::io::Error::from_raw_os_error(code));
            }
        }
    }
    invalid(path, at, format!("not a readable Parquet file: {e}"))
}

fn panicked(path: &Path, at: InputAt, what: &str) -> DataError {
    invalid(
        path,
        at,
        format!("not a readable Parquet file: the Parquet reader failed on its {what}"),
    )
}

pub(crate) fn read(
    path: &Path,
    file: &File,
    how: &Reading<'_>,
    emit: &mut dyn FnMut(Unit) -> Result<(), DataError>,
) -> Result<ReadStats, DataError> {
    let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let meta = catch_unwind(AssertUnwindSafe(|| {
        ArrowReaderMetadata::load(file, ArrowReaderOptions::new())
    }))
    .map_err(|_| panicked(path, InputAt::File, "footer"))?
    .map_err(|e| reader_error(path, InputAt::File, &e))?;
    let schema = meta.schema();
    let Some((index, column)) = schema.column_with_name(how.field) else {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(invalid(
            path,
            InputAt::File,
            format!(
                "no column \"{}\"; its columns are: {} (use --field to name the text column)",
                how.field,
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        ));
    };
    if !matches!(
        column.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Err(invalid(
            path,
            InputAt::File,
            format!(
                "column \"{}\" holds {}, not strings",
                how.field,
                column.data_type()
            ),
        ));
    }
    let mask = ProjectionMask::roots(meta.parquet_schema(), [index]);
    let groups = meta.metadata().num_row_groups();
    let mut stats = ReadStats::default();
    let mut counted = 0u64;
    for group in 0..groups {
        let at = InputAt::RowGroup(group);
        let clone = file.try_clone().map_err(|e| DataError::io(path, e))?;
        let mut reader = ParquetRecordBatchReaderBuilder::new_with_metadata(clone, meta.clone())
            .with_projection(mask.clone())
            .with_row_groups(vec![group])
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| reader_error(path, at, &e))?;
        let mut rows = 0u64;
        loop {
            let next = catch_unwind(AssertUnwindSafe(|| reader.next()))
                .map_err(|_| panicked(path, at, "data"))?;
            let batch = match next {
                None => break,
                Some(Ok(batch)) => batch,
                Some(Err(e)) => {
                    let e = ParquetError::from(e);
                    let mut err = reader_error(path, at, &e);
                    if let DataError::Input { reason, .. } = &mut err {
                        *reason = format!("{reason} (after {rows} rows of the group)");
                    }
                    return Err(err);
                }
            };
            rows += batch.num_rows() as u64;
            stats.null_rows += emit_rows(&batch, emit)?;
        }
        let stored = u64::try_from(meta.metadata().row_group(group).compressed_size()).unwrap_or(0);
        let stored = stored.min(file_len - counted);
        counted += stored;
        how.read.fetch_add(stored, Ordering::Relaxed);
    }
    // The footer, and what the row groups' sizes leave out: the file is read to its end.
    how.read.fetch_add(file_len - counted, Ordering::Relaxed);
    Ok(stats)
}

/// Hands each non-null row of the batch's one column to `emit`; returns the nulls.
fn emit_rows(
    batch: &RecordBatch,
    emit: &mut dyn FnMut(Unit) -> Result<(), DataError>,
) -> Result<u64, DataError> {
    let column = batch.column(0);
    let mut nulls = 0;
    let mut each = |value: Option<&str>| {
        if let Some(text) = value {
            emit(Unit::Text(text.to_owned()))
        } else {
            nulls += 1;
            Ok(())
        }
    };
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().iter().try_for_each(&mut each)?,
        DataType::LargeUtf8 => column.as_string::<i64>().iter().try_for_each(&mut each)?,
        _ => column.as_string_view().iter().try_for_each(&mut each)?,
    }
    Ok(nulls)
}
