//! `osml data pack` of Parquet files as a user runs it: the summary's fields, shards, and
//! the exit code and message of every bad Parquet input.

#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;

mod support;

use support::osml_in;

fn write_parquet(path: &Path) {
    let texts: StringArray = (0..100)
        .map(|i| (i % 10 != 3).then(|| format!("row {i} with some words")))
        .collect();
    let ids: Int64Array = (0..100).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(ids) as ArrayRef),
        ("text", Arc::new(texts) as ArrayRef),
    ])
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(30))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_packs_into_llmc_shards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_parquet(&d.join("in.parquet"));
    let out = osml_in(d)
        .args([
            "data",
            "pack",
            "in.parquet",
            "-o",
            "s",
            "--format",
            "llmc",
            "--shard-tokens",
            "200",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["null_rows"], 10);
    assert_eq!(s["written"]["documents"], 90);
    assert_eq!(s["format"], "llmc");
    let shards = s["shards"].as_array().unwrap();
    assert!(shards.len() > 1, "{s}");
    for (i, shard) in shards.iter().enumerate() {
        let name = format!("s_{i:06}.bin");
        assert!(shard["files"][0].as_str().unwrap().ends_with(&name));
        let bytes = std::fs::read(d.join(&name)).unwrap();
        assert_eq!(&bytes[..4], 20_240_520i32.to_le_bytes());
        assert!(shard["tokens"].as_u64().unwrap() <= 200);
    }
    let human = osml_in(d)
        .args(["data", "pack", "in.parquet", "-o", "h", "--format", "bin"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("skipped 10 null row(s)"), "{text}");
}

#[test]
fn bad_parquet_inputs_exit_1_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_parquet(&d.join("good.parquet"));
    let good = std::fs::read(d.join("good.parquet")).unwrap();
    std::fs::write(d.join("text.parquet"), "not parquet at all\n").unwrap();
    std::fs::write(d.join("cut.parquet"), &good[..good.len() / 2]).unwrap();
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "text.parquet",
            &[],
            "text.parquet: not a readable Parquet file",
        ),
        (
            "cut.parquet",
            &[],
            "cut.parquet: not a readable Parquet file",
        ),
        (
            "good.parquet",
            &["--field", "body"],
            "no column \"body\"; its columns are: id, text",
        ),
        (
            "good.parquet",
            &["--field", "id"],
            "column \"id\" holds Int64, not strings",
        ),
    ];
    for (input, extra, want) in cases {
        let out = osml_in(d)
            .args(["data", "pack", input, "-o", "o"])
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{input} {extra:?}: {stderr}");
        assert!(stderr.contains(want), "{input} {extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!d.join("o.idx").exists() && !d.join("o.bin").exists());
}
