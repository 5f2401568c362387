//! Parquet inputs, llm.c output and shards, end to end: files written here with the parquet
//! crate's own `ArrowWriter`, packed, and the output compared with tiktoken-rs's ids.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::format_collect
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Int64Array, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use osml_data::{DataError, InputAt, OpenOptions, TokenDataset, TokenSource};
use osml_pack::{pack, OutputFormat, PackOptions, PackSummary, Tokenizer};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Rows of text: unicode, empty, nulls, and (when `big`) one row of about 20 MB.
fn texts(big: bool) -> Vec<Option<String>> {
    let mut rows: Vec<Option<String>> = Vec::new();
    for i in 0..300 {
        rows.push(match i % 7 {
            0 => None,
            1 => Some(String::new()),
            2 => Some(format!("Grüße aus Köln, 東京 {i} 🚀 — naïve café")),
            3 => Some(format!("  leading spaces\nand\ttabs {i}\r\n")),
            _ => Some(format!(
                "document {i}: the quick brown fox {}",
                "jumps ".repeat(i % 13)
            )),
        });
    }
    if big {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let words = [
            "alpha ",
            "beta ",
            "γάμμα ",
            "delta\n",
            "42 ",
            "ε ",
            "zeta, ",
            "東京 ",
        ];
        let mut s = String::new();
        while s.len() < 20 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(words[(x % words.len() as u64) as usize]);
        }
        rows.insert(150, Some(s));
    }
    rows
}

#[derive(Clone, Copy)]
enum Kind {
    Utf8,
    Large,
    View,
}

fn column(kind: Kind, rows: &[Option<String>]) -> ArrayRef {
    let it = rows.iter().map(Option::as_deref);
    match kind {
        Kind::Utf8 => Arc::new(it.collect::<StringArray>()),
        Kind::Large => Arc::new(it.collect::<LargeStringArray>()),
        Kind::View => Arc::new(it.collect::<StringViewArray>()),
    }
}

/// Writes `rows` as column `text` (beside an int column `id`), `per_group` rows a row group.
fn write_parquet(
    path: &Path,
    kind: Kind,
    rows: &[Option<String>],
    per_group: usize,
    compression: Compression,
) {
    let ids: ArrayRef = Arc::new((0..rows.len() as i64).collect::<Int64Array>());
    let batch = RecordBatch::try_from_iter([("id", ids), ("text", column(kind, rows))]).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(per_group))
        .set_compression(compression)
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    // In slices, so that row groups are cut at `per_group` rows.
    let mut at = 0;
    while at < batch.num_rows() {
        let n = per_group.min(batch.num_rows() - at);
        w.write(&batch.slice(at, n)).unwrap();
        w.flush().unwrap();
        at += n;
    }
    w.close().unwrap();
}

fn bin_opts(tokenizer: Tokenizer, workers: usize) -> PackOptions {
    PackOptions {
        tokenizer,
        format: OutputFormat::Bin,
        workers,
        batch_bytes: 4096,
        ..PackOptions::default()
    }
}

fn run(input: &Path, out: &Path, opts: &PackOptions) -> Result<PackSummary, DataError> {
    pack(&[input.to_path_buf()], out, opts, &mut |_| {})
}

fn tokens_of(bin: &Path) -> Vec<i64> {
    let ds = TokenDataset::open(bin, OpenOptions::default()).unwrap();
    ds.window(0, ds.num_tokens() as usize)
        .map_or_else(Vec::new, |w| w.to_vec())
}

#[test]
fn parquet_packs_to_tiktokens_ids_whatever_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let rows = texts(true);
    let tok = Tokenizer::Gpt2;
    let mut want: Vec<i64> = Vec::new();
    for t in rows.iter().flatten() {
        want.extend(tok.encode_uncached(t).into_iter().map(i64::from));
        want.push(i64::from(tok.eod()));
    }
    let nulls = rows.iter().filter(|r| r.is_none()).count() as u64;
    for (kind, compression) in [
        (Kind::Utf8, Compression::SNAPPY),
        (Kind::Large, Compression::UNCOMPRESSED),
        (
            Kind::View,
            Compression::ZSTD(parquet::basic::ZstdLevel::default()),
        ),
    ] {
        let input = dir.path().join("in.parquet");
        write_parquet(&input, kind, &rows, 40, compression);
        let mut outs = Vec::new();
        for workers in [1, 2, 3] {
            let out = dir.path().join(format!("w{workers}.bin"));
            let mut last = None;
            let s = pack(
                std::slice::from_ref(&input),
                &out,
                &bin_opts(tok, workers),
                &mut |p| last = Some(p),
            )
            .unwrap();
            let last = last.unwrap();
            let size = std::fs::metadata(&input).unwrap().len();
            assert_eq!(
                (last.input_bytes, last.total_bytes),
                (size, size),
                "progress counts the file"
            );
            assert_eq!(s.null_rows, nulls);
            assert_eq!(s.written.documents, rows.len() as u64 - nulls);
            outs.push(std::fs::read(&out).unwrap());
        }
        assert!(
            outs.windows(2).all(|w| w[0] == w[1]),
            "worker counts differ"
        );
        let got = tokens_of(&dir.path().join("w1.bin"));
        assert!(
            got == want,
            "ids differ from tiktoken's ({} vs {})",
            got.len(),
            want.len()
        );
    }
}

fn expect_input(err: &DataError, path: &Path) -> (InputAt, String) {
    match err {
        DataError::Input {
            path: p,
            at,
            reason,
        } => {
            assert_eq!(p, path);
            (*at, reason.clone())
        }
        other => panic!("not an input error: {other:?}"),
    }
}

#[test]
fn bad_parquet_inputs_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let opts = bin_opts(Tokenizer::Bytes, 2);
    let good = dir.path().join("good.parquet");
    write_parquet(
        &good,
        Kind::Utf8,
        &texts(false),
        50,
        Compression::UNCOMPRESSED,
    );
    let bytes = std::fs::read(&good).unwrap();

    let text = dir.path().join("text.parquet");
    std::fs::write(&text, "{\"text\": \"not parquet\"}\n").unwrap();
    let (at, reason) = expect_input(&run(&text, &out, &opts).unwrap_err(), &text);
    assert_eq!(at, InputAt::File, "{reason}");

    let empty = dir.path().join("empty.parquet");
    std::fs::write(&empty, "").unwrap();
    expect_input(&run(&empty, &out, &opts).unwrap_err(), &empty);

    for cut in [bytes.len() / 2, bytes.len() - 3, 12] {
        let truncated = dir.path().join("truncated.parquet");
        std::fs::write(&truncated, &bytes[..cut]).unwrap();
        expect_input(&run(&truncated, &out, &opts).unwrap_err(), &truncated);
    }

    // The text column's first page header overwritten.
    let meta = parquet::arrow::arrow_reader::ArrowReaderMetadata::load(
        &std::fs::File::open(&good).unwrap(),
        parquet::arrow::arrow_reader::ArrowReaderOptions::new(),
    )
    .unwrap();
    let page = meta.metadata().row_group(0).column(1).data_page_offset() as usize;
    let mut corrupt = bytes.clone();
    corrupt[page..page + 24].fill(0xff);
    let path = dir.path().join("corrupt.parquet");
    std::fs::write(&path, &corrupt).unwrap();
    let (at, reason) = expect_input(&run(&path, &out, &opts).unwrap_err(), &path);
    assert_eq!(at, InputAt::RowGroup(0), "{reason}");

    let missing = PackOptions {
        field: "body".into(),
        ..opts.clone()
    };
    let (_, reason) = expect_input(&run(&good, &out, &missing).unwrap_err(), &good);
    assert!(
        reason.contains("id, text") && reason.contains("--field"),
        "{reason}"
    );

    let ints = PackOptions {
        field: "id".into(),
        ..opts.clone()
    };
    let (_, reason) = expect_input(&run(&good, &out, &ints).unwrap_err(), &good);
    assert!(
        reason.contains("Int64") && reason.contains("not strings"),
        "{reason}"
    );
    assert!(!dir.path().join("o.bin").exists(), "no output on failure");
}

/// llm.c's header (`dev/data/data_common.py`): 256 int32, magic, version, token count.
fn read_llmc(path: &Path) -> (i32, i32, Vec<u32>) {
    let b = std::fs::read(path).unwrap();
    let head: Vec<i32> = b[..1024]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(head[3..].iter().all(|&v| v == 0));
    let size = if head[1] == 1 { 2 } else { 4 };
    assert_eq!(b.len() - 1024, head[2] as usize * size, "count = size");
    let tokens = b[1024..]
        .chunks_exact(size)
        .map(|c| {
            if size == 2 {
                u32::from(u16::from_le_bytes([c[0], c[1]]))
            } else {
                u32::from_le_bytes(c.try_into().unwrap())
            }
        })
        .collect();
    (head[0], head[1], tokens)
}

#[test]
fn llmc_output_puts_the_eot_token_before_each_document() {
    let dir = tempfile::tempdir().unwrap();
    let docs = ["hello world", "", "second document é"];
    let input = dir.path().join("in.jsonl");
    let lines: String = docs
        .iter()
        .map(|d| format!("{{\"text\": \"{d}\"}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    for (tok, magic, version) in [
        (Tokenizer::Gpt2, 20_240_520, 1),
        (Tokenizer::Cl100kBase, 20_240_801, 7),
    ] {
        let out = dir.path().join(tok.name());
        let opts = PackOptions {
            tokenizer: tok,
            format: OutputFormat::Llmc,
            workers: 2,
            ..PackOptions::default()
        };
        let s = run(&input, &out, &opts).unwrap();
        let mut want = Vec::new();
        for d in docs {
            want.push(tok.eod());
            want.extend(tok.encode_uncached(d));
        }
        let path = dir.path().join(format!("{}.bin", tok.name()));
        assert_eq!(s.written.files, std::slice::from_ref(&path));
        let (m, v, tokens) = read_llmc(&path);
        assert_eq!((m, v), (magic, version));
        assert_eq!(tokens, want);
    }
}

fn shard_files(dir: &Path, stem: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("{stem}_"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn shards_cut_at_document_boundaries_and_concatenate_to_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    // Bytes tokenizer: a document of n bytes is n + 1 tokens.
    let lens = [3usize, 5, 1, 30, 2, 2, 2, 9, 0, 4];
    let input = dir.path().join("in.jsonl");
    let lines: String = lens
        .iter()
        .map(|&n| format!("{{\"text\": \"{}\"}}\n", "x".repeat(n)))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let limit = 10u64;
    for format in [
        OutputFormat::Megatron,
        OutputFormat::Bin,
        OutputFormat::Llmc,
    ] {
        let sub = dir.path().join(format!("{format:?}"));
        std::fs::create_dir(&sub).unwrap();
        let whole = sub.join("whole");
        let base = PackOptions {
            tokenizer: Tokenizer::Bytes,
            format,
            workers: 2,
            batch_bytes: 16,
            ..PackOptions::default()
        };
        run(&input, &whole, &base).unwrap();
        // Stale shards of an earlier, longer pack, and a file that only looks like one.
        for name in [
            "s_000011.bin",
            "s_000011.idx",
            "s_000012.bin",
            "s_0000x1.bin",
            "s_000001.txt",
        ] {
            std::fs::write(sub.join(name), "old").unwrap();
        }
        let opts = PackOptions {
            shard_tokens: Some(limit),
            ..base.clone()
        };
        let s = run(&input, &sub.join("s"), &opts).unwrap();
        assert_eq!(s.oversized_documents, 1, "the 31-token document");
        let mut stale = vec![
            sub.join("s_000011.bin"),
            sub.join("s_000011.idx"),
            sub.join("s_000012.bin"),
        ];
        stale.sort();
        assert_eq!(s.removed_stale, stale);
        assert!(sub.join("s_0000x1.bin").exists() && sub.join("s_000001.txt").exists());
        // Greedy cuts: [4,6] [2] [31] [3,3,3] [10] [1,5].
        let docs: Vec<u64> = s.shards.iter().map(|w| w.documents).collect();
        let toks: Vec<u64> = s.shards.iter().map(|w| w.tokens).collect();
        assert_eq!(docs, [2, 1, 1, 3, 1, 2], "{format:?}");
        assert_eq!(toks, [10, 2, 31, 9, 10, 6], "{format:?}");
        assert_eq!(s.written.tokens, toks.iter().sum::<u64>());
        let mut concatenated: Vec<u32> = Vec::new();
        for (i, shard) in s.shards.iter().enumerate() {
            let bin = sub.join(format!("s_{i:06}.bin"));
            assert_eq!(shard.files[0], bin);
            let tokens: Vec<u32> = if format == OutputFormat::Llmc {
                read_llmc(&bin).2
            } else {
                let ds = TokenDataset::open(
                    if format == OutputFormat::Megatron {
                        shard.files[0].with_extension("")
                    } else {
                        bin.clone()
                    }
                    .as_path(),
                    OpenOptions::default(),
                )
                .unwrap();
                if format == OutputFormat::Megatron {
                    assert_eq!(ds.num_documents() as u64, shard.documents);
                }
                ds.window(0, ds.num_tokens() as usize)
                    .unwrap()
                    .to_vec()
                    .into_iter()
                    .map(|t| t as u32)
                    .collect()
            };
            assert_eq!(tokens.len() as u64, shard.tokens);
            concatenated.extend(tokens);
        }
        let whole_tokens: Vec<u32> = if format == OutputFormat::Llmc {
            read_llmc(&sub.join("whole.bin")).2
        } else {
            tokens_of(&sub.join("whole.bin"))
                .into_iter()
                .map(|t| t as u32)
                .collect()
        };
        assert_eq!(concatenated, whole_tokens, "{format:?}");
        let files = shard_files(&sub, "s");
        let per = if format == OutputFormat::Megatron {
            2
        } else {
            1
        };
        assert_eq!(files.len(), 6 * per + 2, "{files:?}");
    }
}
