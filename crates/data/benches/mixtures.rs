//! Mixtures measured against one source in the same run.
//!
//! `cargo bench -p osml-data --bench mixtures` (`OSML_BENCH_DIR` puts the files on another
//! disk; `OSML_BENCH_CONTEND=N` runs N busy threads beside it, as on a shared host;
//! `OSML_BENCH_ROUNDS` and `OSML_BENCH_STEPS` change the rounds and the batches of each):
//!
//! 1. Loader tokens/s of a 10-source mixture with document fields (`documents`: position
//!    ids, `cu_seqlens`, sources, offsets) against one source of the same tokens without them,
//!    both Megatron datasets warm in the page cache, random windows, in interleaved rounds;
//!    median of the rounds and the ratio of the medians; and the mixture with the fields but
//!    `positions: false` (no `position_ids`).
//! 2. The same pair over one source of 200 M tokens (400 MB of tokens, 400 k documents): the
//!    tokens and the document index far larger than the caches, as real datasets are.
//! 3. Opening a mixture of 100 sparse raw sources (100 M tokens each: 10 B tokens, 20 GB
//!    mapped, nothing read) with odd weights and taking the first batch, against one source.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{loadavg, median};
use osml_data::loader::{Loader, LoaderConfig};
use osml_data::mixture::{Mixture, Part, Weights};
use osml_data::write::MegatronWriter;
use osml_data::{DType, OpenOptions, TokenDataset};

const SOURCES: usize = 10;
const SOURCE_TOKENS: usize = 2_500_000;
const ROUNDS: usize = 5;
const STEPS: usize = 20_000;
const LARGE_TOKENS: usize = 200_000_000;

/// A positive count from the environment variable `name`, `default` when it is unset.
fn from_env(name: &str, default: usize) -> usize {
    let Ok(v) = std::env::var(name) else {
        return default;
    };
    match v.parse() {
        Ok(n) if n > 0 => n,
        _ => panic!("{name}={v:?} is not a positive whole number"),
    }
}

fn token(i: usize) -> u32 {
    ((i.wrapping_mul(2_654_435_761) >> 7) % 50_257) as u32
}

/// Documents of 1..1,000 tokens (mean ~500: a few boundaries per 1,024-token window).
fn write_megatron(prefix: &Path, from: usize, n: usize) {
    let mut w = MegatronWriter::create(prefix, DType::U16).unwrap();
    let (mut at, mut len) = (from, 300usize);
    // Tokens made a million at a time: the large source would need 800 MB at once.
    let mut chunk = (from, Vec::new());
    while at < from + n {
        let end = (at + len).min(from + n);
        if end > chunk.0 + chunk.1.len() {
            chunk = (
                at,
                (at..(at + 1_000_000).min(from + n)).map(token).collect(),
            );
        }
        w.add_document(&chunk.1[at - chunk.0..end - chunk.0])
            .unwrap();
        at = end;
        len = len * 7919 % 999 + 1;
    }
    w.finish().unwrap();
}

fn open(p: &Path) -> Arc<TokenDataset> {
    Arc::new(TokenDataset::open(p, OpenOptions::default()).unwrap())
}

fn warm(paths: &[PathBuf]) {
    for p in paths {
        for ext in ["bin", "idx"] {
            std::hint::black_box(std::fs::read(p.with_extension(ext)).unwrap().len());
        }
    }
}

/// Which document fields the loader writes.
#[derive(Debug, Clone, Copy)]
enum Fields {
    None,
    All,
    /// `cu_seqlens`, sources and offsets, no `position_ids`.
    NoPositions,
}

fn tokens_per_s(mixture: Mixture, fields: Fields, steps: usize) -> f64 {
    let cfg = LoaderConfig {
        batch_size: 12,
        seq_len: 1024,
        workers: 1,
        documents: !matches!(fields, Fields::None),
        positions: !matches!(fields, Fields::NoPositions),
        ..LoaderConfig::default()
    };
    let mut loader = Loader::with_mixture(mixture, &cfg, None).unwrap();
    for _ in 0..200 {
        drop(loader.next_batch().unwrap());
    }
    let t = Instant::now();
    for _ in 0..steps {
        std::hint::black_box(loader.next_batch().unwrap().bytes().first());
    }
    (steps * 12 * 1024) as f64 / t.elapsed().as_secs_f64()
}

fn weights(n: usize) -> Weights {
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    // Odd weights of three decimals: 0.137, 0.421, …
    let texts: Vec<String> = (0..n)
        .map(|i| format!("0.{:03}", (i * 7919 + 137) % 997 + 1))
        .collect();
    Weights::parse(&names, &texts).unwrap()
}

fn open_mixture(dir: &Path, n: usize) -> (Duration, Duration) {
    const BIG: u64 = 100_000_000;
    let mut paths = Vec::new();
    for s in 0..n {
        let p = dir.join(format!("source_{s:03}.bin"));
        if !p.exists() {
            std::fs::File::create(&p).unwrap().set_len(2 * BIG).unwrap();
        }
        paths.push(p);
    }
    let t = Instant::now();
    let parts = paths
        .iter()
        .enumerate()
        .map(|(i, p)| Part::whole(format!("s{i}"), open(p)))
        .collect();
    let mixture = Mixture::new(parts, weights(n)).unwrap();
    let opened = t.elapsed();
    let cfg = LoaderConfig {
        batch_size: 12,
        seq_len: 1024,
        workers: 1,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::with_mixture(mixture, &cfg, None).unwrap();
    drop(loader.next_batch().unwrap());
    (opened, t.elapsed())
}

/// Section 1: one source, the mixture, the mixture with its fields, in interleaved rounds.
fn mixture_section(
    one: &PathBuf,
    sources: &[PathBuf],
    rounds: usize,
    steps: usize,
    threads: usize,
) {
    let load0 = loadavg();
    let (mut single, mut plain, mut mixed, mut cu_only) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mix = |fields: Fields| {
        let parts = sources
            .iter()
            .enumerate()
            .map(|(i, p)| Part::whole(format!("s{i}"), open(p)))
            .collect();
        tokens_per_s(
            Mixture::new(parts, weights(SOURCES)).unwrap(),
            fields,
            steps,
        )
    };
    for _ in 0..rounds {
        warm(std::slice::from_ref(one));
        single.push(tokens_per_s(
            Mixture::single(open(one)),
            Fields::None,
            steps,
        ));
        warm(sources);
        plain.push(mix(Fields::None));
        mixed.push(mix(Fields::All));
        cu_only.push(mix(Fields::NoPositions));
    }
    let (s, p, m) = (
        median(single.clone()),
        median(plain.clone()),
        median(mixed.clone()),
    );
    println!(
        "loader, B=12 T=1024 int64, 1 worker, random windows, {rounds} interleaved rounds of {steps} batches, {} busy threads beside it; load average {load0} → {}",
        threads,
        loadavg()
    );
    println!("| source | median tokens/s (min–max) | ratio |");
    println!("|---|---|---|");
    let fmt = common::rate_cell;
    println!(
        "| one Megatron source, {} M tokens (baseline) | {} | 1.00 |",
        SOURCES * SOURCE_TOKENS / 1_000_000,
        fmt(&single, s)
    );
    println!(
        "| {SOURCES}-source mixture of the same tokens | {} | {:.2} |",
        fmt(&plain, p),
        p / s
    );
    println!(
        "| {SOURCES}-source mixture of the same tokens, documents=true | {} | {:.2} |",
        fmt(&mixed, m),
        m / s
    );
    let c = median(cu_only.clone());
    println!(
        "| {SOURCES}-source mixture of the same tokens, documents=true, positions=false | {} | {:.2} |",
        fmt(&cu_only, c),
        c / s
    );
    // Each round's pair was measured seconds apart: the median of the rounds' own
    // ratios is steadier than the ratio of the medians while the host's speed drifts; the
    // fastest quarter of each is what the code does when nothing else takes the core.
    let paired = median(mixed.iter().zip(&single).map(|(m, s)| m / s).collect());
    let fast = |rates: &[f64]| {
        let mut sorted = rates.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let quarter = sorted.len().div_ceil(4);
        sorted[..quarter].iter().sum::<f64>() / quarter as f64
    };
    println!(
        "documents=true against the baseline: median of the rounds' ratios {paired:.2}, ratio of the fastest quarters {:.2}",
        fast(&mixed) / fast(&single)
    );
    let paired_cu = median(cu_only.iter().zip(&single).map(|(c, s)| c / s).collect());
    println!("documents=true, positions=false: median of the rounds' ratios {paired_cu:.2}");
}

/// Section 2: one source larger than the caches, with and without the fields.
fn large_source(dir: &Path, rounds: usize, steps: usize) {
    let large = dir.join("large");
    write_megatron(&large, 0, LARGE_TOKENS);
    let load_large = loadavg();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        warm(std::slice::from_ref(&large));
        without.push(tokens_per_s(
            Mixture::single(open(&large)),
            Fields::None,
            steps,
        ));
        with.push(tokens_per_s(
            Mixture::single(open(&large)),
            Fields::All,
            steps,
        ));
    }
    println!();
    println!(
        "one source of {} M tokens, larger than the caches, {rounds} interleaved rounds of {steps} batches; load average {load_large} → {}",
        LARGE_TOKENS / 1_000_000,
        loadavg()
    );
    println!("| source | median tokens/s (min–max) | ratio |");
    println!("|---|---|---|");
    let w0 = median(without.clone());
    println!(
        "| without document fields (baseline) | {} | 1.00 |",
        common::rate_cell(&without, w0)
    );
    let w1 = median(with.clone());
    println!(
        "| documents=true | {} | {:.2} |",
        common::rate_cell(&with, w1),
        w1 / w0
    );
    let paired_large = median(with.iter().zip(&without).map(|(a, b)| a / b).collect());
    println!("documents=true against the baseline: median of the rounds' ratios {paired_large:.2}");
    std::fs::remove_file(large.with_extension("bin")).unwrap();
}

fn main() {
    let root =
        std::env::var_os("OSML_BENCH_DIR").unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    let dir = tempfile::tempdir_in(&root).unwrap();
    let contend = common::Contend::from_env();

    let one = dir.path().join("all");
    write_megatron(&one, 0, SOURCES * SOURCE_TOKENS);
    let sources: Vec<PathBuf> = (0..SOURCES)
        .map(|s| {
            let p = dir.path().join(format!("part{s}"));
            write_megatron(&p, s * SOURCE_TOKENS, SOURCE_TOKENS);
            p
        })
        .collect();
    let (rounds, steps) = (
        from_env("OSML_BENCH_ROUNDS", ROUNDS),
        from_env("OSML_BENCH_STEPS", STEPS),
    );
    mixture_section(&one, &sources, rounds, steps, contend.threads);
    large_source(dir.path(), rounds, steps);

    let big = tempfile::tempdir_in(&root).unwrap();
    let load1 = loadavg();
    let (one_open, one_first) = open_mixture(big.path(), 1);
    std::fs::remove_file(big.path().join("source_000.bin")).unwrap();
    let (opens, firsts): (Vec<_>, Vec<_>) = (0..5).map(|_| open_mixture(big.path(), 100)).unzip();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!();
    println!("opening sparse raw sources of 100 M tokens each, odd weights of 3 decimals, median of 5; load average {load1}");
    println!("| source | open ms | open + first batch ms |");
    println!("|---|---|---|");
    println!("| 1 source | {:.2} | {:.2} |", ms(one_open), ms(one_first));
    println!(
        "| mixture of 100 sources (10 B tokens) | {:.2} | {:.2} |",
        ms(med(opens)),
        ms(med(firsts))
    );
    drop(contend);
}
