//! `pack` end to end on files in a temporary directory: every input kind, worker counts, bad
//! inputs, and the datasets it writes read back through osml-data.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::format_push_string,
    clippy::similar_names
)]

use std::io::Write;
use std::path::{Path, PathBuf};

use osml_data::{DType, DataError, OpenOptions, TokenDataset, TokenSource};
use osml_pack::{pack, OutputFormat, PackOptions, PackSummary, Tokenizer, TxtDocuments};

fn open(p: &Path) -> Result<TokenDataset, DataError> {
    TokenDataset::open(p, OpenOptions::default())
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    prefix.with_file_name(format!(
        "{}{suffix}",
        prefix.file_name().unwrap().to_str().unwrap()
    ))
}

fn idx_of(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".idx")
}

fn bin_of(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".bin")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn pack_to(inputs: &[PathBuf], out: &Path, opts: &PackOptions) -> PackSummary {
    pack(inputs, out, opts, &mut |_| {}).unwrap()
}

#[test]
fn pack_is_the_same_whatever_the_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!(
            "{{\"text\": \"document {i}: h\u{e9}llo w\u{f6}rld \u{1F600} {}\"}}\n",
            "x".repeat(i % 37)
        ));
    }
    let input = write(dir.path(), "in.jsonl", &text);
    let mut outs = Vec::new();
    for workers in [1, 2, 4] {
        let out = dir.path().join(format!("w{workers}"));
        let opts = PackOptions {
            workers,
            batch_bytes: 1000,
            ..PackOptions::default()
        };
        let s = pack_to(std::slice::from_ref(&input), &out, &opts);
        assert_eq!(s.written.documents, 400);
        outs.push((
            std::fs::read(bin_of(&out)).unwrap(),
            std::fs::read(idx_of(&out)).unwrap(),
        ));
    }
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
    let ds = open(&dir.path().join("w1")).unwrap();
    assert_eq!(ds.num_documents(), 400);
    let first = ds.document(0).unwrap().to_vec();
    assert_eq!(*first.last().unwrap(), 50_256, "end of document appended");
    let expect: Vec<i64> = Tokenizer::Gpt2
        .encode("document 0: h\u{e9}llo w\u{f6}rld \u{1F600} ")
        .iter()
        .map(|&t| i64::from(t))
        .collect();
    assert_eq!(first[..first.len() - 1], expect);
}

#[test]
fn pack_reads_txt_modes_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let txt = write(dir.path(), "a.txt", "para one\nline two\n\n\npara two\n");
    let count = |mode| {
        let out = dir.path().join("t");
        let opts = PackOptions {
            txt_documents: mode,
            tokenizer: Tokenizer::Bytes,
            ..PackOptions::default()
        };
        pack_to(std::slice::from_ref(&txt), &out, &opts);
        let ds = open(&out).unwrap();
        (0..ds.num_documents())
            .map(|i| ds.document(i).unwrap().len())
            .collect::<Vec<_>>()
    };
    // Bytes tokenizer: length = bytes + 1 for the end-of-document id.
    assert_eq!(count(TxtDocuments::File), [30]);
    assert_eq!(count(TxtDocuments::Line), [9, 9, 9]);
    assert_eq!(count(TxtDocuments::Paragraph), [18, 9]);

    let gz = dir.path().join("b.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(b"{\"body\": \"hi\"}\n\n{\"body\": \"\"}\n")
        .unwrap();
    enc.finish().unwrap();
    let out = dir.path().join("g");
    let opts = PackOptions {
        field: "body".into(),
        eod: false,
        format: OutputFormat::Bin,
        tokenizer: Tokenizer::Bytes,
        ..PackOptions::default()
    };
    let s = pack_to(&[gz], &out, &opts);
    assert_eq!(
        (s.written.documents, s.written.tokens),
        (2, 2),
        "an empty document stays, with no tokens"
    );
    assert_eq!(
        std::fs::read(dir.path().join("g.bin")).unwrap(),
        [b'h', 0, b'i', 0]
    );
}

#[test]
fn pack_reports_bad_lines_with_their_number() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "x.jsonl",
        "{\"text\": \"a\"}\n{\"txt\": \"b\"}\n",
    );
    let err = pack(
        &[input],
        &dir.path().join("o"),
        &PackOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Input {
                at: osml_data::InputAt::Line(2),
                ..
            }
        ),
        "{err}"
    );
    assert!(!dir.path().join("o.idx").exists(), "no output on failure");
    let err = pack(
        &[write(dir.path(), "x.csv", "a")],
        &dir.path().join("o"),
        &PackOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown input type"));
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, [0xff, 0xfe, b'a']).unwrap();
    let err = pack(
        &[bad],
        &dir.path().join("o"),
        &PackOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn vocabularies_pick_megatrons_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "a.txt", "tokens");
    for (tok, dtype) in [
        (Tokenizer::Gpt2, DType::U16),
        (Tokenizer::Cl100kBase, DType::I32),
        (Tokenizer::O200kBase, DType::I32),
        (Tokenizer::Bytes, DType::U16),
    ] {
        let out = dir.path().join(tok.name());
        let s = pack_to(
            std::slice::from_ref(&input),
            &out,
            &PackOptions {
                tokenizer: tok,
                ..PackOptions::default()
            },
        );
        assert_eq!(s.dtype, dtype);
        let ds = open(&out).unwrap();
        assert_eq!(
            ds.document(0)
                .unwrap()
                .get(ds.document(0).unwrap().len() - 1),
            Some(i64::from(tok.eod()))
        );
    }
}

/// One long whitespace-free JSON line (base64-like, as minified blobs are) packs to exactly
/// tiktoken's ids for its text, streamed without a copy of the parsed object.
#[test]
fn a_long_whitespace_free_line_packs_to_tiktokens_ids() {
    let dir = tempfile::tempdir().unwrap();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let text: String = (0..(1usize << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(alphabet[usize::try_from(x % 64).unwrap()])
        })
        .collect();
    let input = dir.path().join("blob.jsonl");
    std::fs::write(&input, format!("{{\"id\": 1, \"text\": \"{text}\"}}\n")).unwrap();
    let opts = PackOptions {
        format: OutputFormat::Bin,
        eod: false,
        workers: 1,
        ..PackOptions::default()
    };
    pack(&[input], &dir.path().join("out"), &opts, &mut |_| {}).unwrap();
    let ds = TokenDataset::open(&dir.path().join("out.bin"), OpenOptions::default()).unwrap();
    let want: Vec<i64> = tiktoken_rs::r50k_base_singleton()
        .encode_ordinary(&text)
        .into_iter()
        .map(i64::from)
        .collect();
    let n = usize::try_from(ds.num_tokens()).unwrap();
    assert_eq!(ds.window(0, n).unwrap().to_vec(), want);
}
