//! `bench`: how fast the loader delivers batches from one dataset on this machine, next to
//! this machine's single-thread memcpy bandwidth (and, cold, its sequential read bandwidth)
//! measured in the same run.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use osml_sys::{HugeBuffer, SyscallCounter};
use serde::Serialize;

use crate::loader::{Loader, LoaderConfig, LoaderStats};
use crate::{DataError, OpenOptions, TokenDataset, TokenSource};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub loader: LoaderConfig,
    /// Batches to time after the first.
    pub steps: u64,
    /// Batches run after the first and before timing.
    pub warmup: u64,
    /// Evict the dataset from the page cache first, and measure the disk's sequential read
    /// bandwidth on the same file.
    pub cold: bool,
    /// The `raw_syscalls:sys_enter` tracepoint id, to count system calls (`None`: not counted).
    pub syscall_tracepoint: Option<u64>,
}

/// The JSON of `osml data bench --json` (`schema_version` 1).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub schema_version: u32,
    pub path: String,
    pub mode: &'static str,
    pub batch_size: usize,
    pub seq_len: usize,
    pub workers: usize,
    pub output: crate::loader::Output,
    pub steps: u64,
    pub warmup: u64,
    pub cold: bool,
    /// From opening the dataset to the first batch in hand.
    pub first_batch_s: f64,
    pub tokens_per_s: f64,
    pub batches_per_s: f64,
    /// Bytes written into batch buffers per second.
    pub bytes_written_per_s: f64,
    /// Single-thread memcpy bandwidth of this machine, measured in this run.
    pub memcpy_bytes_per_s: f64,
    pub ratio_to_memcpy: f64,
    /// Sequential `read(2)` bandwidth of the dataset file from a cold cache (cold runs only).
    pub disk_read_bytes_per_s: Option<f64>,
    /// Bytes of token data the batches cover per second over the disk's bandwidth (cold only).
    pub ratio_to_disk: Option<f64>,
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    pub cpu_us_per_batch: f64,
    pub minor_faults_per_batch: f64,
    pub major_faults_per_batch: f64,
    pub context_switches_per_batch: f64,
    /// System calls per batch over every batch (first, warm-up and timed), set-up included, or
    /// null with `syscalls_unavailable` saying why.
    pub syscalls_per_batch: Option<f64>,
    pub syscalls_unavailable: Option<String>,
    pub loader: LoaderStats,
}

/// Copies between two warm 256 MiB huge-page buffers, several times; bytes per second
/// (median of 5 after a warm-up).
pub fn memcpy_bandwidth() -> Result<f64, DataError> {
    const LEN: usize = 256 << 20;
    let (mut a, _) = HugeBuffer::new(LEN, false)?;
    let (mut b, _) = HugeBuffer::new(LEN, false)?;
    a.as_mut_slice().fill(1);
    b.as_mut_slice().fill(2);
    let mut rates = Vec::new();
    for rep in 0..6 {
        let t = Instant::now();
        b.as_mut_slice().copy_from_slice(a.as_slice());
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(b.as_slice()[LEN / 2]);
        if rep > 0 {
            rates.push(LEN as f64 / s);
        }
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

/// Sequential read bandwidth of `path` from a cold page cache, with 8 MiB `read(2)` calls.
fn disk_read_bandwidth(path: &Path) -> Result<f64, DataError> {
    osml_sys::evict_from_page_cache(path)?;
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut buf = vec![0u8; 8 << 20];
    let t = Instant::now();
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The system-call counter, or why there is none.
fn open_counter(tracepoint: Option<u64>) -> (Option<SyscallCounter>, Option<String>) {
    match tracepoint {
        None => (
            None,
            Some(
                "the raw_syscalls:sys_enter tracepoint is not visible (tracefs not mounted?)"
                    .to_owned(),
            ),
        ),
        Some(id) => match SyscallCounter::open(id) {
            Ok(c) => (Some(c), None),
            Err(e) => (
                None,
                Some(format!(
                    "{e} (needs root, CAP_PERFMON or kernel.perf_event_paranoid <= 1)"
                )),
            ),
        },
    }
}

/// Runs the benchmark.
pub fn run(path: &Path, open: OpenOptions, opts: &BenchOptions) -> Result<BenchReport, DataError> {
    let memcpy = memcpy_bandwidth()?;
    let mut disk = None;
    if opts.cold {
        let probe = TokenDataset::open(path, open)?;
        let files = probe.paths();
        drop(probe);
        disk = Some(disk_read_bandwidth(&files[0])?);
        for f in &files {
            osml_sys::evict_from_page_cache(f)?;
        }
    }
    let (mut counter, mut unavailable) = open_counter(opts.syscall_tracepoint);
    let start_count = counter.as_mut().and_then(|c| c.read().ok());

    let t0 = Instant::now();
    let ds = Arc::new(TokenDataset::open(path, open)?);
    let cfg = &opts.loader;
    let mut loader = Loader::new(Arc::clone(&ds), cfg, None)?;
    let first = loader.next_batch()?;
    let first_batch_s = t0.elapsed().as_secs_f64();
    let elem = first.bytes().len() / (cfg.batch_size * (cfg.seq_len + 1));
    drop(first);
    for _ in 0..opts.warmup {
        drop(loader.next_batch()?);
    }

    let usage0 = osml_sys::usage(osml_sys::UsageOf::Process)?;
    let mut latencies = Vec::with_capacity(usize::try_from(opts.steps).unwrap_or(0));
    let run = Instant::now();
    for _ in 0..opts.steps {
        let t = Instant::now();
        let b = loader.next_batch()?;
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(b.bytes().first());
    }
    let secs = run.elapsed().as_secs_f64().max(1e-9);
    let usage1 = osml_sys::usage(osml_sys::UsageOf::Process)?;
    let stats = loader.stats();
    drop(loader); // joins the workers, whose system calls then join the count
    let syscalls = match (counter.as_mut(), start_count) {
        (Some(c), Some(s)) => c.read().ok().map(|e| e.saturating_sub(s)),
        _ => None,
    };
    if syscalls.is_none() && unavailable.is_none() {
        unavailable = Some("the counter could not be read".into());
    }
    latencies.sort_by(f64::total_cmp);
    let steps = opts.steps.max(1) as f64;
    let batch_bytes = (cfg.batch_size * (cfg.seq_len + 1) * elem) as f64;
    let bytes_written_per_s = batch_bytes * opts.steps as f64 / secs;
    let token_bytes_per_s =
        (cfg.batch_size * (cfg.seq_len + 1) * ds.dtype().size()) as f64 * opts.steps as f64 / secs;
    let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / steps;
    Ok(BenchReport {
        schema_version: 1,
        path: path.display().to_string(),
        mode: cfg.mode.name(),
        batch_size: cfg.batch_size,
        seq_len: cfg.seq_len,
        workers: cfg.workers,
        output: cfg.output,
        steps: opts.steps,
        warmup: opts.warmup,
        cold: opts.cold,
        first_batch_s,
        tokens_per_s: (cfg.batch_size * cfg.seq_len) as f64 * opts.steps as f64 / secs,
        batches_per_s: opts.steps as f64 / secs,
        bytes_written_per_s,
        memcpy_bytes_per_s: memcpy,
        ratio_to_memcpy: bytes_written_per_s / memcpy,
        disk_read_bytes_per_s: disk,
        ratio_to_disk: disk.map(|d| token_bytes_per_s / d),
        latency_p50_us: percentile(&latencies, 0.5),
        latency_p99_us: percentile(&latencies, 0.99),
        cpu_us_per_batch: per(usage0.cpu_us, usage1.cpu_us),
        minor_faults_per_batch: per(usage0.minor_faults, usage1.minor_faults),
        major_faults_per_batch: per(usage0.major_faults, usage1.major_faults),
        context_switches_per_batch: per(
            usage0.voluntary_switches + usage0.involuntary_switches,
            usage1.voluntary_switches + usage1.involuntary_switches,
        ),
        syscalls_per_batch: syscalls.map(|n| n as f64 / (steps + 1.0 + opts.warmup as f64)),
        syscalls_unavailable: if syscalls.is_some() {
            None
        } else {
            unavailable
        },
        loader: stats,
    })
}
