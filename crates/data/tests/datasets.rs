//! Readers and writers, end to end on files in a temporary directory: one dataset
//! through every format, every kind of bad input, and byte mutations of a valid index.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::similar_names,
    clippy::type_complexity,
    clippy::semicolon_if_nothing_returned,
    clippy::format_push_string
)]

use std::path::{Path, PathBuf};

use osml_data::write::{write_npy, MegatronWriter, RawWriter};
use osml_data::{DType, DataError, Format, OpenOptions, TokenDataset, TokenSource};
use proptest::prelude::*;

fn docs() -> Vec<Vec<u32>> {
    vec![
        vec![1, 2, 3],
        vec![],
        vec![50_256],
        (0..1000).map(|i| i * 7 % 50_000).collect(),
        vec![9, 8],
    ]
}

fn megatron(dir: &Path, dtype: DType, docs: &[Vec<u32>]) -> PathBuf {
    let prefix = dir.join(format!("ds-{dtype}"));
    let mut w = MegatronWriter::create(&prefix, dtype).unwrap();
    for d in docs {
        w.add_document(d).unwrap();
    }
    w.finish().unwrap();
    prefix
}

fn open(p: &Path) -> Result<TokenDataset, DataError> {
    TokenDataset::open(p, OpenOptions::default())
}

#[test]
fn one_dataset_reads_the_same_through_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let docs = docs();
    let flat: Vec<u32> = docs.concat();
    let m = megatron(dir.path(), DType::U16, &docs);
    let bin = dir.path().join("flat.bin");
    let mut w = RawWriter::create(&bin, DType::U16).unwrap();
    for d in &docs {
        w.add_document(d).unwrap();
    }
    w.finish().unwrap();
    let npy = dir.path().join("flat.npy");
    write_npy(&npy, DType::U16, &flat).unwrap();

    let sets = [open(&m).unwrap(), open(&bin).unwrap(), open(&npy).unwrap()];
    assert_eq!(
        sets.iter().map(TokenDataset::format).collect::<Vec<_>>(),
        [Format::Megatron, Format::Bin, Format::Npy]
    );
    let want: Vec<i64> = flat.iter().map(|&t| i64::from(t)).collect();
    for ds in &sets {
        assert_eq!(ds.dtype(), DType::U16);
        assert_eq!(ds.num_tokens(), flat.len() as u64);
        assert_eq!(ds.window(0, flat.len()).unwrap().to_vec(), want);
        // Windows that cross document boundaries, at every offset near them.
        for start in 0..8u64 {
            let t = ds.window(start, 5).unwrap().to_vec();
            assert_eq!(t, want[start as usize..start as usize + 5]);
        }
        assert!(
            ds.window(flat.len() as u64 - 2, 3).is_none(),
            "past the end"
        );
        assert!(ds.window(u64::MAX, 1).is_none());
    }
    let m = &sets[0];
    assert_eq!(m.num_documents(), docs.len());
    for (i, d) in docs.iter().enumerate() {
        let got: Vec<i64> = m.document(i).unwrap().to_vec();
        assert_eq!(
            got,
            d.iter().map(|&t| i64::from(t)).collect::<Vec<_>>(),
            "document {i}"
        );
    }
    assert!(m.document(docs.len()).is_none());
}

#[test]
fn every_megatron_dtype_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [
        DType::U8,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F32,
        DType::F64,
        DType::U16,
    ] {
        let docs = vec![vec![1, 2, 3], vec![], vec![100, 101]];
        let ds = open(&megatron(dir.path(), dtype, &docs)).unwrap();
        assert_eq!(ds.dtype(), dtype);
        assert_eq!(ds.document(2).unwrap().to_vec(), [100, 101], "{dtype}");
        assert_eq!(ds.document(1).unwrap().len(), 0);
    }
}

#[test]
fn writers_refuse_ids_the_dtype_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = MegatronWriter::create(&dir.path().join("x"), DType::U16).unwrap();
    let err = w.add_document(&[70_000]).unwrap_err();
    assert!(err.to_string().contains("does not fit uint16"), "{err}");
    drop(w);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "an unfinished writer leaves nothing"
    );
}

/// A valid index for three documents, and its `.bin`.
fn valid(dir: &Path) -> PathBuf {
    megatron(dir, DType::U16, &[vec![1, 2, 3], vec![4], vec![5, 6]])
}

fn idx_of(prefix: &Path) -> PathBuf {
    prefix.with_extension("idx").with_file_name(format!(
        "{}.idx",
        prefix.file_name().unwrap().to_str().unwrap()
    ))
}

fn bin_of(prefix: &Path) -> PathBuf {
    prefix.with_file_name(format!(
        "{}.bin",
        prefix.file_name().unwrap().to_str().unwrap()
    ))
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

fn expect_invalid(prefix: &Path, want: &str) {
    match open(prefix) {
        Err(e @ DataError::Invalid { .. }) => {
            assert!(e.to_string().contains(want), "{e} lacks {want:?}")
        }
        other => panic!("expected Invalid containing {want:?}, got {other:?}"),
    }
}

#[test]
fn bad_megatron_files_are_clear_errors() {
    let cases: [(&str, &dyn Fn(&Path), &str); 9] = [
        (
            "truncated .bin",
            &|p| rewrite(&bin_of(p), |b| b.truncate(b.len() - 2)),
            "truncated",
        ),
        (
            "truncated .idx",
            &|p| rewrite(&idx_of(p), |b| b.truncate(b.len() - 3)),
            "truncated",
        ),
        (
            "short header",
            &|p| rewrite(&idx_of(p), |b| b.truncate(20)),
            "34-byte header",
        ),
        (
            "wrong magic",
            &|p| rewrite(&idx_of(p), |b| b[0] = b'X'),
            "magic",
        ),
        (
            "version 2",
            &|p| rewrite(&idx_of(p), |b| b[9] = 2),
            "version 2",
        ),
        (
            "dtype code 9",
            &|p| rewrite(&idx_of(p), |b| b[17] = 9),
            "dtype code 9",
        ),
        (
            "sizes past the end",
            &|p| rewrite(&idx_of(p), |b| b[34 + 8] = 200),
            "truncated, or the .idx belongs to another .bin",
        ),
        (
            "decreasing pointers",
            &|p| {
                rewrite(&idx_of(p), |b| {
                    // pointer of sequence 2 (after 3 lengths) set to 0
                    let at = 34 + 12 + 16;
                    b[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
                })
            },
            "decreasing or overlapping",
        ),
        (
            "counts too large",
            &|p| rewrite(&idx_of(p), |b| b[18] = 50),
            "need",
        ),
    ];
    for (name, corrupt, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let p = valid(dir.path());
        corrupt(&p);
        eprintln!("case {name}");
        expect_invalid(&p, want);
    }
}

#[test]
fn bad_npy_and_raw_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("a.npy");
    write_npy(&npy, DType::U16, &[1, 2, 3]).unwrap();
    let text = |p: &Path| match open(p) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{} opened", p.display()),
    };
    let body = std::fs::read(&npy).unwrap();
    let patched = |from: &str, to: &str| {
        let at = body
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap();
        let mut b = body.clone();
        b.splice(at..at + from.len(), to.bytes());
        let p = dir
            .path()
            .join(format!("{}.npy", to.trim().replace('\'', "")));
        std::fs::write(&p, b).unwrap();
        p
    };
    assert!(text(&patched("'<u2'", "'>u2'")).contains("big-endian"));
    // A 1-D array is the same bytes in either order: numpy reads it, and so does osml.
    let fortran = open(&patched("False", "True ")).unwrap();
    assert_eq!(fortran.window(0, 3).unwrap().to_vec(), [1, 2, 3]);
    assert!(text(&patched("(3,)", "(3, 1)")).contains("2 dimensions"));
    let short = dir.path().join("short.npy");
    std::fs::write(&short, &body[..body.len() - 1]).unwrap();
    assert!(text(&short).contains("truncated"));
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    assert!(text(&empty).contains("empty"));
    let odd = dir.path().join("odd.bin");
    std::fs::write(&odd, [1, 2, 3]).unwrap();
    assert!(text(&odd).contains("not a whole number of uint16 tokens"));
    // A directory is a source of the dataset files in it: none is a source error; a missing
    // file is an I/O error, not a format error.
    let d = dir.path().join("sub.bin");
    std::fs::create_dir(&d).unwrap();
    assert!(matches!(
        open(&d).unwrap_err(),
        DataError::Invalid {
            format: osml_data::FileFormat::Source,
            ..
        }
    ));
    assert!(open(&dir.path().join("missing.bin")).unwrap_err().is_io());
    assert!(open(&dir.path().join("missing")).unwrap_err().is_io());
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
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Any corruption of a valid index is either refused or still reads inside the files.
    #[test]
    fn mutated_indices_never_panic(edits in proptest::collection::vec((0usize..200, any::<u8>()), 1..6), cut in proptest::option::of(0usize..200)) {
        let dir = tempfile::tempdir().unwrap();
        let p = valid(dir.path());
        rewrite(&idx_of(&p), |b| mutate(b, &edits, cut));
        if let Ok(ds) = open(&p) {
            for i in 0..ds.num_documents() {
                let d = ds.document(i).unwrap();
                prop_assert!(d.len() <= ds.num_tokens() as usize);
            }
            let n = ds.num_tokens();
            prop_assert!(ds.window(0, usize::try_from(n).unwrap()).is_some());
        }
    }
}

/// Real `.npy` files to mutate: osml's own, and headers in the shapes numpy writes for each
/// version (spaces padding to 64 bytes, a trailing newline).
fn npy_fixtures(dir: &Path) -> Vec<PathBuf> {
    let own = dir.join("own.npy");
    write_npy(&own, DType::U16, &[1, 2, 3, 50_256]).unwrap();
    let mut out = vec![own];
    for (major, descr, values) in [(1u8, "<i4", 3usize), (2, "|u1", 5), (3, "<u8", 2)] {
        let dict =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({values},), }}");
        let pre = if major == 1 { 10 } else { 12 };
        let total = (pre + dict.len() + 1).next_multiple_of(64);
        let header = format!("{dict}{}\n", " ".repeat(total - pre - dict.len() - 1));
        let mut b = b"\x93NUMPY".to_vec();
        b.extend_from_slice(&[major, 0]);
        if major == 1 {
            b.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
        } else {
            b.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
        }
        b.extend_from_slice(header.as_bytes());
        let size: usize = descr[2..].parse().unwrap();
        b.extend(std::iter::repeat_n(1u8, values * size));
        let p = dir.join(format!("v{major}.npy"));
        std::fs::write(&p, b).unwrap();
        out.push(p);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Any corruption of a real `.npy` header (bytes overwritten with anything, UTF-8 lead
    /// bytes and Python syntax included, or the file cut) is refused or reads inside the file.
    #[test]
    fn mutated_npy_files_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((0usize..128, prop_oneof![any::<u8>(), proptest::sample::select(b"'\"(){}[],:#\\\n \xc3\xe9\x80TrueFalse0123456789_xLu<>|=".to_vec())]), 1..6),
        cut in proptest::option::of(0usize..160),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = npy_fixtures(dir.path()).swap_remove(which);
        rewrite(&p, |b| mutate(b, &edits, cut));
        if let Ok(ds) = open(&p) {
            let n = ds.num_tokens();
            prop_assert!(ds.window(0, usize::try_from(n).unwrap()).is_some());
            prop_assert!(n as usize * ds.dtype().size() <= std::fs::metadata(&p).unwrap().len() as usize);
        }
    }
}
