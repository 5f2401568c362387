//! Sources of many shards against one file, measured in the same run.
//!
//! `cargo bench -p osml-data --bench shards` (set `OSML_BENCH_DIR` to put the files on
//! another disk; `OSML_BENCH_CONTEND=N` runs N busy threads beside it, as on a shared host):
//!
//! 1. Loader tokens/s over 20 llm.c shards against the same tokens in one raw `.bin`, random
//!    windows, both warm in the page cache, in interleaved rounds (one file, shards, one file,
//!    …), median of the rounds and the ratio of the medians.
//! 2. Opening 1,000 llm.c shards of 100 M tokens each (sparse files: 200 GB mapped, nothing
//!    read but headers) and taking the first batch, against opening 1 such shard.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_precision_loss
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{loadavg, median};
use osml_data::loader::{Loader, LoaderConfig};
use osml_data::{OpenOptions, TokenDataset};

const SHARDS: usize = 20;
const SHARD_TOKENS: usize = 2_500_000;
const ROUNDS: usize = 7;
const STEPS: usize = 30_000;

fn llmc_header(tokens: usize) -> Vec<u8> {
    let mut header = [0i32; 256];
    header[0] = osml_data::llmc::MAGIC_U16;
    header[1] = osml_data::llmc::VERSION_U16;
    header[2] = i32::try_from(tokens).unwrap();
    header.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Token `i` of the stream: varied, below GPT-2's vocabulary.
fn token(i: usize) -> u16 {
    u16::try_from((i.wrapping_mul(2_654_435_761) >> 7) % 50_257).unwrap()
}

fn build_pair(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let one = dir.join("all.bin");
    let mut all = std::io::BufWriter::new(std::fs::File::create(&one).unwrap());
    let mut shards = Vec::new();
    for s in 0..SHARDS {
        let p = dir.join(format!("shard_{s:06}.bin"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        f.write_all(&llmc_header(SHARD_TOKENS)).unwrap();
        for i in s * SHARD_TOKENS..(s + 1) * SHARD_TOKENS {
            let b = token(i).to_le_bytes();
            f.write_all(&b).unwrap();
            all.write_all(&b).unwrap();
        }
        shards.push(p);
    }
    all.flush().unwrap();
    (one, shards)
}

/// Reads every file once, so that both sources are measured warm (the host's reclaimer
/// evicts idle page cache).
fn warm(paths: &[PathBuf]) {
    for p in paths {
        std::hint::black_box(std::fs::read(p).unwrap().len());
    }
}

fn tokens_per_s(source: &[PathBuf]) -> f64 {
    let ds = Arc::new(TokenDataset::open_source(source, &OpenOptions::default()).unwrap());
    let cfg = LoaderConfig {
        batch_size: 12,
        seq_len: 1024,
        workers: 1,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(ds, &cfg, None).unwrap();
    for _ in 0..200 {
        drop(loader.next_batch().unwrap());
    }
    let t = Instant::now();
    for _ in 0..STEPS {
        std::hint::black_box(loader.next_batch().unwrap().bytes().first());
    }
    (STEPS * 12 * 1024) as f64 / t.elapsed().as_secs_f64()
}

fn open_many(dir: &Path, n: usize) -> (Duration, Duration) {
    const BIG: usize = 100_000_000;
    let mut paths = Vec::new();
    for s in 0..n {
        let p = dir.join(format!("fineweb_train_{s:06}.bin"));
        if !p.exists() {
            let mut f = std::fs::File::create(&p).unwrap();
            f.write_all(&llmc_header(BIG)).unwrap();
            f.set_len((1024 + 2 * BIG) as u64).unwrap();
        }
        paths.push(p);
    }
    let t = Instant::now();
    let ds = TokenDataset::open(&dir.join("fineweb_train_*.bin"), OpenOptions::default()).unwrap();
    let opened = t.elapsed();
    assert_eq!(ds.shards().len(), n);
    let cfg = LoaderConfig {
        batch_size: 12,
        seq_len: 1024,
        workers: 1,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(Arc::new(ds), &cfg, None).unwrap();
    drop(loader.next_batch().unwrap());
    (opened, t.elapsed())
}

fn main() {
    let root =
        std::env::var_os("OSML_BENCH_DIR").unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    let dir = tempfile::tempdir_in(&root).unwrap();
    let contend = common::Contend::from_env();

    let (one, shards) = build_pair(dir.path());
    let load0 = loadavg();
    let (mut single, mut many) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        warm(std::slice::from_ref(&one));
        single.push(tokens_per_s(std::slice::from_ref(&one)));
        warm(&shards);
        many.push(tokens_per_s(&shards));
    }
    let (s, m) = (median(single.clone()), median(many.clone()));
    println!(
        "loader, B=12 T=1024 int64, 1 worker, random windows, {ROUNDS} interleaved rounds of {STEPS} batches, {} busy threads beside it; load average {load0} → {}",
        contend.threads,
        loadavg()
    );
    println!("| source | median tokens/s (min–max) | ratio |");
    println!("|---|---|---|");
    let fmt = common::rate_cell;
    println!(
        "| one raw .bin, {} M tokens (baseline) | {} | 1.00 |",
        SHARDS * SHARD_TOKENS / 1_000_000,
        fmt(&single, s)
    );
    println!(
        "| {SHARDS} llm.c shards of the same tokens | {} | {:.2} |",
        fmt(&many, m),
        m / s
    );

    let big = tempfile::tempdir_in(&root).unwrap();
    let load1 = loadavg();
    let (one_open, one_first) = open_many(big.path(), 1);
    std::fs::remove_file(big.path().join("fineweb_train_000000.bin")).unwrap();
    let (opens, firsts): (Vec<_>, Vec<_>) = (0..5).map(|_| open_many(big.path(), 1000)).unzip();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!();
    println!("opening sparse llm.c shards of 100 M tokens (200 MB) each, median of 5 (first run creates the files); load average {load1}");
    println!("| source | open ms | open + first batch ms |");
    println!("|---|---|---|");
    println!("| 1 shard | {:.2} | {:.2} |", ms(one_open), ms(one_first));
    println!(
        "| 1,000 shards (glob) | {:.2} | {:.2} |",
        ms(med(opens)),
        ms(med(firsts))
    );
    drop(contend);
}
