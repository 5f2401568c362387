//! Memory `pack` takes for a Parquet input much larger than its batches: the peak resident
//! set while it packs, against a bound well under the file's size (a size, not a timing).
//! Its own test binary, so no other test allocates meanwhile.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use osml_pack::{pack, OutputFormat, PackOptions, Tokenizer};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

fn status_bytes(field: &str) -> usize {
    let status = String::from_utf8(std::fs::read("/proc/self/status").unwrap()).unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib << 10
}

const ROW: usize = 16 << 10;
const ROWS_PER_GROUP: usize = 512;
const GROUPS: usize = 12;
/// What packing may take beyond what it held before: the pipeline's batch (text, and 4
/// bytes of ids per byte with the bytes tokenizer), one record batch, one page. Reading the
/// whole file (96 MiB of text) or a whole row group's column (8 MiB) per batch would pass it.
const MAX_GROWTH: usize = 40 << 20;

#[test]
fn a_parquet_file_is_streamed_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .build();
    let mut w = None;
    for g in 0..GROUPS {
        let rows: StringArray = (0..ROWS_PER_GROUP)
            .map(|r| {
                Some(
                    char::from(b'a' + ((g + r) % 26) as u8)
                        .to_string()
                        .repeat(ROW),
                )
            })
            .collect();
        let batch = RecordBatch::try_from_iter([("text", Arc::new(rows) as ArrayRef)]).unwrap();
        let writer = w.get_or_insert_with(|| {
            ArrowWriter::try_new(
                std::fs::File::create(&path).unwrap(),
                batch.schema(),
                Some(props.clone()),
            )
            .unwrap()
        });
        writer.write(&batch).unwrap();
        writer.flush().unwrap();
    }
    w.unwrap().close().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > (GROUPS * ROWS_PER_GROUP * ROW) as u64);

    let opts = PackOptions {
        tokenizer: Tokenizer::Bytes,
        format: OutputFormat::Bin,
        workers: 2,
        batch_bytes: 1 << 20,
        ..PackOptions::default()
    };
    let before = status_bytes("VmRSS:");
    // "5" resets the peak to the current resident set (proc(5), /proc/pid/clear_refs).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let s = pack(&[path], &dir.path().join("out"), &opts, &mut |_| {}).unwrap();
    let taken = status_bytes("VmHWM:").saturating_sub(before);
    assert_eq!(s.written.documents, (GROUPS * ROWS_PER_GROUP) as u64);
    assert!(
        taken <= MAX_GROWTH,
        "peak RSS grew {} MiB packing a {} MiB Parquet file (bound {} MiB)",
        taken >> 20,
        size >> 20,
        MAX_GROWTH >> 20
    );
    eprintln!(
        "parquet_memory: peak RSS grew {} MiB for a {} MiB file",
        taken >> 20,
        size >> 20
    );
}
