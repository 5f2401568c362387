//! Sources of many shards: llm.c shards, globs, directories, lists, the end-of-document
//! split, and the loader over them, against the tokens concatenated by hand.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use osml_data::loader::{Loader, LoaderConfig};
use osml_data::sampler::{Mode, Sampler};
use osml_data::write::{write_npy, MegatronWriter, RawWriter};
use osml_data::{DType, DataError, FileFormat, Format, OpenOptions, TokenDataset, TokenSource};
use proptest::prelude::*;

/// An llm.c shard exactly as `dev/data/data_common.py` of karpathy/llm.c writes one: 256
/// little-endian int32 (magic, version, token count, zeros), then the tokens.
fn write_llmc(path: &Path, tokens: &[u32], wide: bool) {
    let mut header = [0i32; 256];
    header[0] = if wide { 20_240_801 } else { 20_240_520 };
    header[1] = if wide { 7 } else { 1 };
    header[2] = i32::try_from(tokens.len()).unwrap();
    let mut b: Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
    for &t in tokens {
        if wide {
            b.extend_from_slice(&t.to_le_bytes());
        } else {
            b.extend_from_slice(&u16::try_from(t).unwrap().to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

/// Shard `i`'s tokens: lengths differ, and each starts with the EOT token as llm.c's do.
fn shard_tokens(i: u32) -> Vec<u32> {
    let n = 50 + (i * 37) % 90;
    std::iter::once(50_256)
        .chain((0..n).map(|j| (i * 1000 + j) % 50_000))
        .collect()
}

fn twenty_shards(dir: &Path) -> Vec<u32> {
    let mut all = Vec::new();
    for i in 0..20 {
        let t = shard_tokens(i);
        write_llmc(&dir.join(format!("fineweb_train_{i:06}.bin")), &t, false);
        all.extend(t);
    }
    all
}

fn glob(dir: &Path, pattern: &str) -> PathBuf {
    dir.join(pattern)
}

fn open(p: &Path) -> Result<TokenDataset, DataError> {
    TokenDataset::open(p, OpenOptions::default())
}

fn widen(v: &[u32]) -> Vec<i64> {
    v.iter().map(|&t| i64::from(t)).collect()
}

#[test]
fn a_glob_of_llmc_shards_reads_as_their_concatenation() {
    let dir = tempfile::tempdir().unwrap();
    let all = twenty_shards(dir.path());
    let ds = open(&glob(dir.path(), "fineweb_train_*.bin")).unwrap();
    assert_eq!(ds.format(), Format::Llmc);
    assert_eq!(ds.dtype(), DType::U16);
    assert_eq!(ds.shards().len(), 20);
    assert_eq!(ds.num_tokens(), all.len() as u64);
    let n = usize::try_from(ds.num_tokens()).unwrap();
    assert_eq!(ds.window(0, n).unwrap().to_vec(), widen(&all));
    // Every window of 64, at every offset: the ones that cross a shard boundary included.
    let want = widen(&all);
    let mut crossing = 0;
    for start in 0..=all.len() - 64 {
        let w = ds.window(start as u64, 64).unwrap();
        assert_eq!(w.to_vec(), want[start..start + 64], "window at {start}");
        crossing += usize::from(w.contiguous().is_none());
        let mut bytes = vec![0u8; 64 * 2];
        w.copy_bytes(&mut bytes);
        let back: Vec<i64> = bytes
            .chunks(2)
            .map(|c| i64::from(u16::from_le_bytes([c[0], c[1]])))
            .collect();
        assert_eq!(back, want[start..start + 64]);
    }
    let mut bounds = Vec::new();
    let mut at = 0;
    for i in 0..19 {
        at += shard_tokens(i).len();
        bounds.push(at);
    }
    let want_crossing = (0..=all.len() - 64)
        .filter(|&s| bounds.iter().any(|&b| s < b && b < s + 64))
        .count();
    assert_eq!(crossing, want_crossing);
    assert!(ds.window(all.len() as u64 - 63, 64).is_none());
    // Each shard is one document without an end-of-document token.
    assert_eq!(ds.num_documents(), 20);
    assert_eq!(ds.document(3).unwrap().to_vec(), widen(&shard_tokens(3)));
    // The same files as a directory, and as a list in sorted order, are the same source.
    let by_dir = open(dir.path()).unwrap();
    assert_eq!(by_dir.window(0, n).unwrap().to_vec(), want);
    let mut list: Vec<PathBuf> = (0..20)
        .map(|i| dir.path().join(format!("fineweb_train_{i:06}.bin")))
        .collect();
    let by_list = TokenDataset::open_source(&list, &OpenOptions::default()).unwrap();
    assert_eq!(by_list.window(0, n).unwrap().to_vec(), want);
    // A list keeps its order.
    list.reverse();
    let reversed = TokenDataset::open_source(&list, &OpenOptions::default()).unwrap();
    assert_eq!(
        reversed.window(0, shard_tokens(19).len()).unwrap().to_vec(),
        widen(&shard_tokens(19))
    );
    let (shard, local) = ds.locate(shard_tokens(0).len() as u64 + 2).unwrap();
    assert!(shard.path().ends_with("fineweb_train_000001.bin"));
    assert_eq!(local, 2);
}

#[test]
fn the_end_of_document_token_splits_documents_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    twenty_shards(dir.path());
    let options = OpenOptions {
        eod_token: Some(50_256),
        ..OpenOptions::default()
    };
    let ds = TokenDataset::open(&glob(dir.path(), "*.bin"), options).unwrap();
    // llm.c's convention: the token opens each document.
    assert_eq!(ds.num_documents(), 20);
    for i in 0..20 {
        assert_eq!(
            ds.document(i).unwrap().to_vec(),
            widen(&shard_tokens(i as u32))
        );
    }
    assert!(ds.document(20).is_none());
    // nanoGPT's: the token closes each document, and a document may span two files.
    let flat: Vec<u32> = [1, 2, 0, 3, 0, 4, 5, 6, 0, 0, 7].to_vec();
    for (name, part) in [("a.bin", &flat[..4]), ("b.bin", &flat[4..])] {
        let mut w = RawWriter::create(&dir.path().join("closing").join(name), DType::U16)
            .or_else(|_| {
                std::fs::create_dir_all(dir.path().join("closing")).unwrap();
                RawWriter::create(&dir.path().join("closing").join(name), DType::U16)
            })
            .unwrap();
        w.add_document(part).unwrap();
        w.finish().unwrap();
    }
    let ds = TokenDataset::open(
        &dir.path().join("closing"),
        OpenOptions {
            eod_token: Some(0),
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let docs: Vec<Vec<i64>> = (0..ds.num_documents())
        .map(|i| ds.document(i).unwrap().to_vec())
        .collect();
    assert_eq!(
        docs,
        [
            vec![1, 2, 0],
            vec![3, 0],
            vec![4, 5, 6, 0],
            vec![0],
            vec![7]
        ]
    );
    // Formats that record documents refuse the split.
    let m = dir.path().join("m");
    let mut w = MegatronWriter::create(&m, DType::U16).unwrap();
    w.add_document(&[1, 2]).unwrap();
    w.finish().unwrap();
    let e = TokenDataset::open(
        &m,
        OpenOptions {
            eod_token: Some(0),
            ..OpenOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, DataError::Usage(_)), "{e}");
}

#[test]
fn megatron_shards_keep_their_documents() {
    let dir = tempfile::tempdir().unwrap();
    let mut want = Vec::new();
    for s in 0..3u32 {
        let mut w =
            MegatronWriter::create(&dir.path().join(format!("part_{s}")), DType::U16).unwrap();
        for d in 0..=s {
            let doc: Vec<u32> = (0..=d + s).map(|t| s * 100 + d * 10 + t).collect();
            w.add_document(&doc).unwrap();
            want.push(widen(&doc));
        }
        w.finish().unwrap();
    }
    // The glob matches both files of each pair: each pair is one shard.
    let ds = open(&glob(dir.path(), "part_*")).unwrap();
    assert_eq!(ds.format(), Format::Megatron);
    assert_eq!(ds.shards().len(), 3);
    let got: Vec<Vec<i64>> = (0..ds.num_documents())
        .map(|i| ds.document(i).unwrap().to_vec())
        .collect();
    assert_eq!(got, want);
    assert_eq!(open(dir.path()).unwrap().num_documents(), want.len());
}

fn source_error(e: &DataError) -> bool {
    matches!(
        e,
        DataError::Invalid {
            format: FileFormat::Source,
            ..
        }
    )
}

#[test]
fn bad_sources_are_refused_with_the_offending_paths() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let e = open(&glob(p, "nothing_*.bin")).unwrap_err();
    assert!(
        source_error(&e) && e.to_string().contains("matches no file"),
        "{e}"
    );
    // Mixed formats in a directory.
    write_llmc(&p.join("a.bin"), &[1, 2, 3], false);
    write_npy(&p.join("b.npy"), DType::U16, &[1, 2]).unwrap();
    let e = open(p).unwrap_err();
    let msg = e.to_string();
    assert!(source_error(&e), "{e}");
    assert!(msg.contains("b.npy") && msg.contains("a.bin"), "{msg}");
    // Mixed dtypes (an llm.c v1 and a v7 shard).
    std::fs::remove_file(p.join("b.npy")).unwrap();
    write_llmc(&p.join("c.bin"), &[70_000], true);
    let e = open(p).unwrap_err();
    assert!(source_error(&e) && e.to_string().contains("uint32"), "{e}");
    // The same shard twice in a list.
    let twice = [p.join("a.bin"), p.join("a.bin")];
    let e = TokenDataset::open_source(&twice, &OpenOptions::default()).unwrap_err();
    assert!(source_error(&e) && e.to_string().contains("twice"), "{e}");
    // One bad shard among good ones names that shard.
    std::fs::remove_file(p.join("c.bin")).unwrap();
    let mut bad = std::fs::read(p.join("a.bin")).unwrap();
    bad.truncate(bad.len() - 2);
    std::fs::write(p.join("z.bin"), bad).unwrap();
    let e = open(&glob(p, "*.bin")).unwrap_err();
    match &e {
        DataError::Invalid { path, format, .. } => {
            assert!(path.ends_with("z.bin"), "{e}");
            assert_eq!(*format, FileFormat::Llmc);
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("truncated"), "{e}");
    // A hidden file or a README in a directory is not a shard.
    std::fs::remove_file(p.join("z.bin")).unwrap();
    std::fs::write(p.join("README.md"), "notes").unwrap();
    std::fs::write(p.join(".a.bin.tmp"), "x").unwrap();
    assert_eq!(open(p).unwrap().shards().len(), 1);
}

#[test]
fn bad_llmc_headers_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.bin");
    let check = |b: Vec<u8>, want: &str| {
        std::fs::write(&p, b).unwrap();
        let e = TokenDataset::open(
            &p,
            OpenOptions {
                format: Some(Format::Llmc),
                ..OpenOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Invalid {
                    format: FileFormat::Llmc,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(want), "{e}");
    };
    write_llmc(&p, &[1, 2, 3], false);
    let good = std::fs::read(&p).unwrap();
    let mut b = good.clone();
    b[0] ^= 1;
    check(b, "not an llm.c shard");
    let mut b = good.clone();
    b[8] = 9; // the count
    check(b, "truncated");
    let mut b = good.clone();
    b.extend_from_slice(&[0, 0]);
    check(b, "8 bytes follow");
    check(good[..100].to_vec(), "shorter than the 1024-byte header");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Any corruption of an llm.c header (or the file cut) is refused or reads inside the file.
    #[test]
    fn mutated_llmc_shards_never_panic(
        edits in proptest::collection::vec((0usize..16, any::<u8>()), 1..6),
        cut in proptest::option::of(0usize..1100),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.bin");
        write_llmc(&p, &[5, 6, 7, 8], false);
        let mut b = std::fs::read(&p).unwrap();
        for (at, v) in &edits {
            b[*at] = *v;
        }
        if let Some(c) = cut {
            b.truncate(c.min(b.len()));
        }
        std::fs::write(&p, &b).unwrap();
        if let Ok(ds) = open(&p) {
            let n = ds.num_tokens();
            prop_assert!(ds.window(0, usize::try_from(n).unwrap()).is_some());
            prop_assert!(n as usize * ds.dtype().size() <= b.len());
        }
    }
}

#[test]
fn the_loader_over_shards_delivers_every_window_once_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let all = widen(&twenty_shards(dir.path()));
    let ds = Arc::new(open(&glob(dir.path(), "*.bin")).unwrap());
    let seq = 16;
    let cfg = LoaderConfig {
        batch_size: 4,
        seq_len: seq,
        mode: Mode::Epoch { block: None },
        workers: 2,
        ..LoaderConfig::default()
    };
    let windows = (all.len() - 1) / seq;
    let steps = windows / 4;
    let sampler = Sampler::new(cfg.mode, 0, seq as u64, ds.num_tokens()).unwrap();
    let mut loader = Loader::new(Arc::clone(&ds), &cfg, None).unwrap();
    let mut seen = vec![0u32; windows];
    for _ in 0..steps {
        let b = loader.next_batch().unwrap();
        for r in 0..b.rows() {
            let start = usize::try_from(sampler.window_start(b.sample_index(r).unwrap())).unwrap();
            assert_eq!(b.row_i64(r), all[start..=start + seq], "row at {start}");
            seen[start / seq] += 1;
        }
    }
    assert!(seen.iter().all(|&c| c <= 1), "a window came twice");
    assert_eq!(seen.iter().sum::<u32>() as usize, steps * 4);
}

/// `document_starts_in` against the documents listed by hand, on a source of two Megatron
/// shards of ~200 K tokens each: enough for several blocks of its lazily filled index of
/// starts (64 Ki tokens), with empty documents, documents longer than a block, and windows
/// that start, end or straddle a block or shard boundary or a document start.
#[test]
fn document_starts_match_the_index_across_blocks_and_shards() {
    let dir = tempfile::tempdir().unwrap();
    let mut starts = Vec::new(); // global starts of the documents, as the loader sees them
    let mut total = 0u64;
    let (mut entries, mut shard_ends) = (Vec::new(), Vec::new());
    for shard in 0..2u64 {
        let prefix = dir.path().join(format!("s{shard}"));
        let mut w = MegatronWriter::create(&prefix, DType::U16).unwrap();
        let (mut len, mut made) = (700usize, 0usize);
        let mut k = 0u64;
        while made < 200_000 {
            k += 1;
            // Mostly short documents; an empty one now and then; one longer than a block.
            let n = match k % 97 {
                13 => 0,
                50 if shard == 0 && made < 100_000 => 90_000,
                _ => len,
            };
            starts.push(total + made as u64);
            w.add_document(&vec![7u32; n]).unwrap();
            made += n;
            len = len * 7919 % 1999 + 1;
        }
        w.finish().unwrap();
        total += made as u64;
        shard_ends.push(total);
        entries.push(prefix.with_extension("bin"));
    }
    let ds = TokenDataset::open_source(&entries, &OpenOptions::default()).unwrap();
    assert_eq!(ds.num_tokens(), total);
    let want = |from: u64, to: u64| -> Vec<u64> {
        let mut v: Vec<u64> = starts
            .iter()
            .copied()
            .filter(|&s| s > from && s < to)
            .collect();
        v.dedup(); // an empty document starts where the next does
        v
    };
    let got = |from: u64, to: u64| -> Vec<u64> {
        let mut v = Vec::new();
        ds.document_starts_in(from, to, |s| v.push(s));
        v
    };
    let shard_end = shard_ends[0];
    let mut probes: Vec<u64> = vec![0, 1, shard_end - 1, shard_end, total - 1024];
    for b in 1..8u64 {
        let at = b << 16;
        probes.extend([at - 1025, at - 1024, at - 1, at, at + 1]);
    }
    probes.extend(
        starts
            .iter()
            .step_by(37)
            .flat_map(|&s| [s.saturating_sub(1024), s.saturating_sub(1), s]),
    );
    probes.extend((0..2000u64).map(|i| i * 2_654_435_761 % (total - 1024)));
    for from in probes {
        for t in [1u64, 64, 1024, 70_000] {
            let to = (from + t).min(total);
            assert_eq!(got(from, to), want(from, to), "window [{from}, {to})");
        }
    }
}

/// A Megatron pair written field by field: documents of `docs[d]` sequences, sequence `i`
/// of `lengths[i]` uint16 tokens (the writer makes one sequence per document only).
fn write_raw_megatron(prefix: &Path, lengths: &[u32], docs: &[usize]) {
    let mut idx = b"MMIDIDX\x00\x00".to_vec();
    idx.extend(1u64.to_le_bytes());
    idx.push(8); // uint16
    idx.extend((lengths.len() as u64).to_le_bytes());
    idx.extend((docs.len() as u64 + 1).to_le_bytes());
    for &n in lengths {
        idx.extend(n.to_le_bytes());
    }
    let mut at = 0u64;
    for &n in lengths {
        idx.extend(at.to_le_bytes());
        at += 2 * u64::from(n);
    }
    let mut seq = 0u64;
    idx.extend(seq.to_le_bytes());
    for &d in docs {
        seq += d as u64;
        idx.extend(seq.to_le_bytes());
    }
    std::fs::write(prefix.with_extension("idx"), idx).unwrap();
    std::fs::write(prefix.with_extension("bin"), vec![0u8; at as usize]).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// `document_starts_in` against the starts computed from the index, on corpora the
    /// search takes different paths through: documents of one sequence each (the pointers
    /// are walked) or of several (each start through the document index); tiny documents,
    /// so a 4 Ki-token block holds more than the search counts one by one, and long ones,
    /// so blocks hold none; empty sequences.
    #[test]
    fn document_starts_match_the_index_for_any_layout(
        lengths in proptest::collection::vec(
            prop_oneof![3 => 0u32..4, 3 => 1u32..600, 1 => 3_000u32..20_000], 50..1500),
        per_doc in proptest::collection::vec(1usize..4, 1..1500),
        one_each in any::<bool>(),
        tiny in any::<bool>(),
        probes in proptest::collection::vec(any::<u64>(), 50),
    ) {
        // Tiny: hundreds of documents in every block, which the search bisects.
        let lengths: Vec<u32> = if tiny {
            lengths.iter().map(|n| n % 8).collect()
        } else {
            lengths
        };
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("m");
        // Group the sequences into documents (one each, or 1-3 each), covering all of them.
        let mut docs = Vec::new();
        let mut left = lengths.len();
        for &k in per_doc.iter().cycle() {
            if left == 0 {
                break;
            }
            let k = if one_each { 1 } else { k.min(left) };
            docs.push(k);
            left -= k;
        }
        write_raw_megatron(&prefix, &lengths, &docs);
        let ds = open(&prefix.with_extension("idx")).unwrap();
        let total = ds.num_tokens();
        prop_assume!(total > 0);
        let mut starts = Vec::new();
        let (mut seq, mut at) = (0usize, 0u64);
        for &k in &docs {
            starts.push(at);
            for _ in 0..k {
                at += u64::from(lengths[seq]);
                seq += 1;
            }
        }
        for p in probes {
            let from = p % total;
            for t in [1u64, 100, 1024, 9_000] {
                let to = (from + t).min(total);
                let mut want: Vec<u64> =
                    starts.iter().copied().filter(|&s| s > from && s < to).collect();
                want.dedup();
                let mut got = Vec::new();
                ds.document_starts_in(from, to, |s| got.push(s));
                prop_assert_eq!(&got, &want, "window [{}, {})", from, to);
            }
        }
    }
}
