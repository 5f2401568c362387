//! Arrow IPC files and `save_to_disk` directories, written here with arrow-rs's own writers:
//! every document read back exactly, and every kind of bad file refused with its name.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::{Float32Type, Int32Type, Int64Type, UInt16Type, UInt8Type};
use arrow_array::ArrowPrimitiveType;
use arrow_array::{
    ArrayRef, GenericListArray, Int32Array, ListArray, OffsetSizeTrait, RecordBatch, StringArray,
};
use arrow_ipc::writer::{FileWriter, StreamWriter};
use osml_data::{save_to_disk_files, ArrowTokens, DType, DataError, FileFormat, Tokens};
use proptest::prelude::*;

type Docs = Vec<Vec<i64>>;

/// A list column of `docs` with value type `T`, `List` or `LargeList` by `O`.
fn list<T, O>(docs: &[Vec<i64>]) -> GenericListArray<O>
where
    T: ArrowPrimitiveType,
    T::Native: TryFrom<i64>,
    <T::Native as TryFrom<i64>>::Error: std::fmt::Debug,
    O: OffsetSizeTrait,
{
    GenericListArray::<O>::from_iter_primitive::<T, _, _>(docs.iter().map(|d| {
        Some(
            d.iter()
                .map(|&t| Some(T::Native::try_from(t).unwrap()))
                .collect::<Vec<_>>(),
        )
    }))
}

/// Columns nullable, as `datasets` declares them (pyarrow's default).
fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true)))
        .unwrap()
}

fn write_stream(path: &Path, batches: &[RecordBatch]) {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &batches[0].schema()).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    drop(w);
    std::fs::write(path, out).unwrap();
}

fn write_file(path: &Path, batches: &[RecordBatch]) {
    let mut out = Vec::new();
    let mut w = FileWriter::try_new(&mut out, &batches[0].schema()).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    drop(w);
    std::fs::write(path, out).unwrap();
}

/// Every document as osml reads it: the pieces concatenated, cut at the document ranges.
fn read_docs(a: &ArrowTokens) -> Docs {
    let bytes = a.map().bytes();
    let size = a.dtype().size();
    let mut stream = Vec::new();
    for &(at, n) in a.pieces() {
        let run = &bytes[at..at + n as usize * size];
        stream.extend(Tokens::new(a.dtype(), run).to_vec());
    }
    assert_eq!(stream.len() as u64, a.tokens());
    let docs: Docs = (0..a.num_documents())
        .map(|i| {
            let (s, e) = a.document_range(i).unwrap();
            stream[s as usize..e as usize].to_vec()
        })
        .collect();
    assert_eq!(a.document_range(a.num_documents()), None);
    // The ranges tile the stream.
    let mut end = 0;
    for i in 0..a.num_documents() {
        let (s, e) = a.document_range(i).unwrap();
        assert_eq!(s, end, "document {i}");
        assert!(e >= s);
        end = e;
    }
    assert_eq!(end, a.tokens());
    docs
}

fn chunks() -> Vec<Docs> {
    vec![
        vec![vec![1, 2, 3], vec![], vec![50_256]],
        vec![(0..1000).map(|i| i * 7 % 30_000).collect(), vec![9, 8]],
        vec![],
        vec![vec![], vec![]],
        vec![vec![4], vec![], vec![5, 6, 7, 8, 9]],
    ]
}

fn invalid(r: Result<ArrowTokens, DataError>, path: &Path) -> String {
    match r {
        Err(
            e @ DataError::Invalid {
                format: FileFormat::Arrow,
                ..
            },
        ) => {
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            msg
        }
        Err(e) => panic!("not an Invalid Arrow error: {e:?}"),
        Ok(a) => panic!("opened: {} documents", a.num_documents()),
    }
}

#[test]
fn several_batches_with_empty_documents_and_a_text_column_read_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("data-00000-of-00001.arrow");
    let batches: Vec<RecordBatch> = chunks()
        .iter()
        .map(|c| {
            let text: StringArray = c.iter().map(|d| Some(format!("{d:?}"))).collect();
            batch(vec![
                ("text", Arc::new(text) as ArrayRef),
                ("input_ids", Arc::new(list::<Int32Type, i32>(c)) as ArrayRef),
            ])
        })
        .collect();
    write_stream(&p, &batches);
    let a = ArrowTokens::open(&p, "input_ids").unwrap();
    let want: Docs = chunks().concat();
    assert_eq!(a.dtype(), DType::I32);
    assert_eq!(a.num_documents(), want.len());
    assert_eq!(a.tokens(), want.iter().map(Vec::len).sum::<usize>() as u64);
    assert_eq!(read_docs(&a), want);
    // One piece per batch with tokens: batches 0, 1 and 4.
    assert_eq!(a.pieces().len(), 3);
    assert_eq!(
        a.pieces().iter().map(|p| p.1).collect::<Vec<_>>(),
        [4, 1002, 6]
    );
    // The pieces are where the file holds the tokens: the first one's bytes are 1, 2, 3, 50256.
    let (at, _) = a.pieces()[0];
    let file = std::fs::read(&p).unwrap();
    let le: Vec<u8> = [1i32, 2, 3, 50_256]
        .iter()
        .flat_map(|t| t.to_le_bytes())
        .collect();
    assert_eq!(&file[at..at + 16], &le[..]);
    assert_eq!(a.map().path(), p);
}

#[test]
fn int64_large_lists_in_the_file_format_read_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.arrow");
    let big = |c: &Docs| -> Docs {
        c.iter()
            .map(|d| d.iter().map(|t| t + (1 << 40)).collect())
            .collect()
    };
    let batches: Vec<RecordBatch> = chunks()
        .iter()
        .map(|c| {
            batch(vec![(
                "ids",
                Arc::new(list::<Int64Type, i64>(&big(c))) as ArrayRef,
            )])
        })
        .collect();
    write_file(&p, &batches);
    assert!(std::fs::read(&p).unwrap().starts_with(b"ARROW1"));
    let a = ArrowTokens::open(&p, "ids").unwrap();
    assert_eq!(a.dtype(), DType::I64);
    let want: Docs = chunks().iter().flat_map(big).collect();
    assert_eq!(read_docs(&a), want);
}

#[test]
fn uint16_and_uint8_lists_read_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Docs = vec![vec![65_535, 0, 7], vec![], vec![255]];
    for (name, stream) in [("s.arrow", true), ("f.arrow", false)] {
        let p = dir.path().join(name);
        let b = batch(vec![
            ("u16", Arc::new(list::<UInt16Type, i32>(&docs)) as ArrayRef),
            (
                "u8",
                Arc::new(list::<UInt8Type, i64>(&[vec![255], vec![], vec![1, 2]])) as ArrayRef,
            ),
        ]);
        let batches = [b.clone(), b];
        if stream {
            write_stream(&p, &batches);
        } else {
            write_file(&p, &batches);
        }
        let a = ArrowTokens::open(&p, "u16").unwrap();
        assert_eq!(a.dtype(), DType::U16);
        assert_eq!(read_docs(&a), [docs.clone(), docs.clone()].concat());
        let a = ArrowTokens::open(&p, "u8").unwrap();
        assert_eq!(a.dtype(), DType::U8);
        let u8s: Docs = vec![vec![255], vec![], vec![1, 2]];
        assert_eq!(read_docs(&a), [u8s.clone(), u8s].concat());
    }
}

#[test]
fn a_sliced_list_whose_offsets_do_not_start_at_zero_reads_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sliced.arrow");
    let all: Docs = vec![
        vec![1, 2],
        vec![3],
        vec![],
        vec![4, 5, 6],
        vec![7],
        vec![8, 9],
    ];
    let whole = list::<Int32Type, i32>(&all);
    let part = whole.slice(1, 4); // [3], [], [4, 5, 6], [7]
    assert_ne!(part.value_offsets()[0], 0);
    let part2 = list::<Int32Type, i32>(&all).slice(4, 2);
    write_stream(
        &p,
        &[
            batch(vec![("input_ids", Arc::new(part) as ArrayRef)]),
            batch(vec![("input_ids", Arc::new(part2) as ArrayRef)]),
        ],
    );
    let a = ArrowTokens::open(&p, "input_ids").unwrap();
    assert_eq!(read_docs(&a), [&all[1..5], &all[4..6]].concat());
}

#[test]
fn a_stream_without_rows_has_no_tokens_and_no_documents() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.arrow");
    let b = batch(vec![(
        "input_ids",
        Arc::new(list::<Int32Type, i32>(&[])) as ArrayRef,
    )]);
    // Schema and end-of-stream marker only.
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &b.schema()).unwrap();
    w.finish().unwrap();
    drop(w);
    std::fs::write(&p, &out).unwrap();
    let a = ArrowTokens::open(&p, "input_ids").unwrap();
    assert_eq!((a.tokens(), a.num_documents(), a.pieces().len()), (0, 0, 0));
    assert_eq!(a.document_range(0), None);
    // One batch of zero rows.
    write_stream(&p, &[b]);
    let a = ArrowTokens::open(&p, "input_ids").unwrap();
    assert_eq!((a.tokens(), a.num_documents()), (0, 0));
}

#[test]
fn a_null_document_is_refused_with_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nulls.arrow");
    let good = list::<Int32Type, i32>(&[vec![1], vec![2, 3]]);
    let with_null = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(4)]),
        Some(vec![]),
        None,
        Some(vec![Some(5)]),
    ]);
    write_stream(
        &p,
        &[
            batch(vec![("input_ids", Arc::new(good.clone()) as ArrayRef)]),
            batch(vec![("input_ids", Arc::new(with_null) as ArrayRef)]),
        ],
    );
    let msg = invalid(ArrowTokens::open(&p, "input_ids"), &p);
    assert!(msg.contains("document 4 "), "{msg}");
    assert!(msg.contains("null"), "{msg}");

    let null_token = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(4)]),
        Some(vec![Some(6), None, Some(7)]),
    ]);
    write_stream(
        &p,
        &[
            batch(vec![("input_ids", Arc::new(good) as ArrayRef)]),
            batch(vec![("input_ids", Arc::new(null_token) as ArrayRef)]),
        ],
    );
    let msg = invalid(ArrowTokens::open(&p, "input_ids"), &p);
    assert!(msg.contains("document 3 "), "{msg}");
    assert!(msg.contains("null token at its position 1"), "{msg}");
}

#[test]
fn a_null_outside_the_referenced_values_is_no_null_token() {
    // The values array of a sliced list may hold nulls before and after the slice.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("outside.arrow");
    let l = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![None]),
        Some(vec![Some(1), Some(2)]),
        Some(vec![None, Some(3)]),
    ])
    .slice(1, 1);
    write_stream(&p, &[batch(vec![("input_ids", Arc::new(l) as ArrayRef)])]);
    // The writer may or may not keep the values outside the slice; either way the one document
    // reads as written.
    let a = ArrowTokens::open(&p, "input_ids").unwrap();
    assert_eq!(read_docs(&a), vec![vec![1, 2]]);
}

#[test]
fn wrong_columns_are_refused_saying_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cols.arrow");
    let text: StringArray = vec![Some("hello"), Some("world")].into_iter().collect();
    let floats =
        ListArray::from_iter_primitive::<Float32Type, _, _>(vec![Some(vec![Some(1.0)]), None]);
    write_stream(
        &p,
        &[batch(vec![
            ("text", Arc::new(text) as ArrayRef),
            ("score", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
            ("emb", Arc::new(floats) as ArrayRef),
        ])],
    );
    let msg = invalid(ArrowTokens::open(&p, "text"), &p);
    assert!(msg.contains("is text"), "{msg}");
    assert!(msg.contains("osml data pack"), "{msg}");
    let msg = invalid(ArrowTokens::open(&p, "score"), &p);
    assert!(msg.contains("of type Int32"), "{msg}");
    let msg = invalid(ArrowTokens::open(&p, "emb"), &p);
    assert!(msg.contains("list of Float32"), "{msg}");
    let msg = invalid(ArrowTokens::open(&p, "input_ids"), &p);
    assert!(
        msg.contains(r#"no column "input_ids"; its columns are "text", "score", "emb""#),
        "{msg}"
    );
    assert!(msg.contains("--column"), "{msg}");
}

fn small_stream(dir: &Path) -> PathBuf {
    small(dir, true)
}

/// Two batches of short documents and an int column, in the stream or the file format.
fn small(dir: &Path, stream: bool) -> PathBuf {
    let p = dir.join("small.arrow");
    let batches: Vec<RecordBatch> = chunks()[..2]
        .iter()
        .map(|c| {
            let short: Docs = c
                .iter()
                .map(|d| d.iter().take(5).copied().collect())
                .collect();
            batch(vec![
                (
                    "input_ids",
                    Arc::new(list::<Int32Type, i32>(&short)) as ArrayRef,
                ),
                (
                    "n",
                    Arc::new(Int32Array::from(vec![1; c.len()])) as ArrayRef,
                ),
            ])
        })
        .collect();
    if stream {
        write_stream(&p, &batches);
    } else {
        write_file(&p, &batches);
    }
    p
}

#[test]
fn every_truncation_of_a_stream_or_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = small_stream(dir.path());
    let f = dir.path().join("small-file.arrow");
    write_file(
        &f,
        &[batch(vec![(
            "input_ids",
            Arc::new(list::<Int32Type, i64>(&chunks()[0])) as ArrayRef,
        )])],
    );
    for src in [p, f] {
        let full = std::fs::read(&src).unwrap();
        assert!(ArrowTokens::open(&src, "input_ids").is_ok());
        let cut = dir.path().join("cut.arrow");
        for len in 0..full.len() {
            std::fs::write(&cut, &full[..len]).unwrap();
            let msg = invalid(ArrowTokens::open(&cut, "input_ids"), &cut);
            assert!(!msg.is_empty());
        }
    }
}

#[test]
fn garbage_and_bad_magic_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.arrow");
    for bytes in [
        &b"not an arrow file at all\n"[..],
        &[0u8; 64][..],
        &[0xff; 64][..],
        b"ARROW1\0\0garbage garbage garbage garbage",
        b"PAR1 looks like parquet PAR1",
    ] {
        std::fs::write(&p, bytes).unwrap();
        invalid(ArrowTokens::open(&p, "input_ids"), &p);
    }
    std::fs::write(&p, b"").unwrap();
    let msg = invalid(ArrowTokens::open(&p, "input_ids"), &p);
    assert!(msg.contains("empty"), "{msg}");
    std::fs::write(&p, b"hello").unwrap();
    let msg = invalid(ArrowTokens::open(&p, "input_ids"), &p);
    assert!(msg.contains("not an Arrow IPC stream or file"), "{msg}");
    // A missing file is an I/O error, not an invalid one.
    let e = ArrowTokens::open(&dir.path().join("missing.arrow"), "input_ids").unwrap_err();
    assert!(e.is_io(), "{e:?}");
}

/// Overwrites bytes at `edits` (offsets wrap around the file) and cuts the file at `cut`.
fn mutate(b: &mut Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) {
    for (at, v) in edits {
        let n = b.len().max(1);
        if let Some(x) = b.get_mut(*at % n) {
            *x = *v;
        }
    }
    if let Some(c) = cut {
        b.truncate(c.min(b.len()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Any corruption of a small valid stream or file is refused or reads inside the file.
    #[test]
    fn mutated_streams_and_files_never_panic(
        stream in any::<bool>(),
        edits in proptest::collection::vec((0usize..2000, any::<u8>()), 1..6),
        cut in proptest::option::of(0usize..2000),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = small(dir.path(), stream);
        let mut b = std::fs::read(&p).unwrap();
        mutate(&mut b, &edits, cut);
        std::fs::write(&p, &b).unwrap();
        if let Ok(a) = ArrowTokens::open(&p, "input_ids") {
            let size = a.dtype().size();
            for &(at, n) in a.pieces() {
                prop_assert!(at + n as usize * size <= b.len());
            }
            for i in 0..a.num_documents() {
                let (s, e) = a.document_range(i).unwrap();
                prop_assert!(s <= e && e <= a.tokens());
            }
        }
    }
}

fn save_dir(dir: &Path, state: &str, files: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("state.json"), state).unwrap();
    for f in files {
        std::fs::write(dir.join(f), b"").unwrap();
    }
}

#[test]
fn save_to_disk_files_are_listed_in_state_json_order() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("ds");
    // As datasets writes it (json.dump(state, indent=2, sort_keys=True)), files listed out of
    // name order to show the order is state.json's.
    let state = r#"{
  "_data_files": [
    {"filename": "data-00001-of-00002.arrow"},
    {"filename": "data-00000-of-00002.arrow"}
  ],
  "_fingerprint": "abc",
  "_format_columns": null,
  "_format_kwargs": {},
  "_format_type": null,
  "_output_all_columns": false,
  "_split": null
}"#;
    save_dir(
        &d,
        state,
        &["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"],
    );
    assert_eq!(
        save_to_disk_files(&d).unwrap().unwrap(),
        [
            d.join("data-00001-of-00002.arrow"),
            d.join("data-00000-of-00002.arrow")
        ]
    );
    // No state.json: not a save_to_disk directory.
    assert!(save_to_disk_files(root.path()).unwrap().is_none());
}

#[test]
fn bad_save_to_disk_directories_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let hf_invalid = |dir: &Path| -> String {
        match save_to_disk_files(dir) {
            Err(
                e @ DataError::Invalid {
                    format: FileFormat::HfDataset,
                    ..
                },
            ) => e.to_string(),
            other => panic!("{other:?}"),
        }
    };
    let d = root.path().join("missing");
    save_dir(
        &d,
        r#"{"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}"#,
        &[],
    );
    let msg = hf_invalid(&d);
    assert!(
        msg.contains("data-00000-of-00001.arrow") && msg.contains("missing"),
        "{msg}"
    );

    let d = root.path().join("escape");
    save_dir(&d, r#"{"_data_files": [{"filename": "../x.arrow"}]}"#, &[]);
    assert!(hf_invalid(&d).contains("not a file name"));

    let d = root.path().join("notjson");
    save_dir(&d, "{", &[]);
    assert!(hf_invalid(&d).contains("state.json"));

    let d = root.path().join("indices");
    save_dir(
        &d,
        r#"{"_data_files": [{"filename": "a.arrow"}], "_indices_data_files": [{"filename": "i.arrow"}]}"#,
        &["a.arrow"],
    );
    assert!(hf_invalid(&d).contains("flatten_indices"));

    let d = root.path().join("dict");
    std::fs::create_dir_all(d.join("train")).unwrap();
    std::fs::write(
        d.join("dataset_dict.json"),
        r#"{"splits": ["train", "test"]}"#,
    )
    .unwrap();
    let msg = hf_invalid(&d);
    assert!(msg.contains(r#"splits "train", "test""#), "{msg}");
    assert!(
        msg.contains(&d.join("train").display().to_string()),
        "{msg}"
    );
}
