//! `bench`: how fast the loader delivers batches from one dataset on this machine, next to
//! this machine's single-thread memcpy bandwidth (and, cold, its sequential read bandwidth)
//! measured in the same run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// CPU-bound competitor threads for the contended rounds (0: none).
    pub contend: usize,
    /// The `raw_syscalls:sys_enter` tracepoint id, to count system calls (`None`: not counted).
    pub syscall_tracepoint: Option<u64>,
}

/// The loader next to CPU-bound competitors (`osml data bench --contend N`): rounds with and
/// without them, interleaved, each `steps_per_round` batches; figures are medians over rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Contention {
    pub competitors: usize,
    /// The CPUs the competitors are pinned to (the first of this process's allowed CPUs).
    pub cpus: Vec<usize>,
    pub rounds: u32,
    pub steps_per_round: u64,
    pub tokens_per_s: f64,
    pub idle_tokens_per_s: f64,
    /// Contended over idle tokens/s.
    pub tokens_ratio: f64,
    /// The loader's own CPU (the process's, less the competitors' threads) per batch.
    pub cpu_us_per_batch: f64,
    pub idle_cpu_us_per_batch: f64,
    pub cpu_ratio: f64,
    pub syscalls_per_batch: Option<f64>,
    pub idle_syscalls_per_batch: Option<f64>,
    /// Competitor iterations per second with the loader idle, and while the loader ran.
    pub competitor_rate_alone: f64,
    pub competitor_rate: f64,
    /// `competitor_rate / competitor_rate_alone`: how much the loader took from them.
    pub competitor_share: f64,
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
    /// With `contend`: the rounds with competitors against the idle ones.
    pub contended: Option<Contention>,
}

/// Batch latencies in logarithmic buckets of 1% width: fixed memory for any number of steps.
struct Latencies {
    buckets: Vec<u64>,
    count: u64,
}

impl Latencies {
    /// ln(1 ns)…ln(10^13 ns) in steps of 0.01.
    const BUCKETS: usize = 3000;

    fn new() -> Self {
        Self {
            buckets: vec![0; Self::BUCKETS],
            count: 0,
        }
    }

    fn add(&mut self, d: Duration) {
        let ns = d.as_nanos().max(1) as f64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = ((ns.ln() * 100.0) as usize).min(Self::BUCKETS - 1);
        self.buckets[i] += 1;
        self.count += 1;
    }

    /// The `q` quantile in µs (the bucket's lower edge; within 1%).
    fn quantile_us(&self, q: f64) -> f64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count.max(1));
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return (i as f64 / 100.0).exp() / 1e3;
            }
        }
        0.0
    }
}

/// Threads that spin on arithmetic, each pinned to one CPU, counting rounds of work.
struct Competitors {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    threads: Vec<JoinHandle<u64>>,
    started: Instant,
}

impl Competitors {
    fn start(cpus: &[usize]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let threads = cpus
            .iter()
            .map(|&cpu| {
                let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
                std::thread::spawn(move || {
                    let _ = osml_sys::pin_current_thread(&[cpu]);
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        }
                        std::hint::black_box(x);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    osml_sys::usage(osml_sys::UsageOf::Thread).map_or(0, |u| u.cpu_us)
                })
            })
            .collect();
        Self {
            stop,
            done,
            threads,
            started: Instant::now(),
        }
    }

    /// Stops them: (rounds of work per second, their CPU time in µs).
    fn stop(self) -> (f64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let cpu = self
            .threads
            .into_iter()
            .map(|t| t.join().unwrap_or(0))
            .sum();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        (self.done.load(Ordering::Relaxed) as f64 / secs, cpu)
    }
}

/// One timed run of `steps` batches.
struct Phase {
    secs: f64,
    cpu_us: u64,
    syscalls: Option<u64>,
}

/// The contended and idle rounds: each a loader of its own, restored where the previous one
/// stopped, and dropped at the end of its round, because the syscall counter adds a thread's
/// calls when the thread exits.
struct Rounds<'a> {
    ds: &'a Arc<TokenDataset>,
    cfg: &'a LoaderConfig,
    state: crate::loader::LoaderState,
    steps: u64,
    counter: &'a mut Option<SyscallCounter>,
}

impl Rounds<'_> {
    fn phase(&mut self) -> Result<Phase, DataError> {
        let usage0 = osml_sys::usage(osml_sys::UsageOf::Process)?;
        let sys0 = self.counter.as_mut().and_then(|c| c.read().ok());
        let mut loader = Loader::restore(Arc::clone(self.ds), self.cfg, &self.state)?;
        let t0 = Instant::now();
        for _ in 0..self.steps {
            std::hint::black_box(loader.next_batch()?.bytes().first());
        }
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        self.state = loader.state();
        drop(loader);
        let usage1 = osml_sys::usage(osml_sys::UsageOf::Process)?;
        let sys1 = self.counter.as_mut().and_then(|c| c.read().ok());
        Ok(Phase {
            secs,
            cpu_us: usage1.cpu_us.saturating_sub(usage0.cpu_us),
            syscalls: sys0.zip(sys1).map(|(a, b)| b.saturating_sub(a)),
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Rounds of `steps` batches alone and next to `n` competitors, interleaved.
fn contend(run: &mut Rounds<'_>, n: usize, tokens_per_batch: f64) -> Result<Contention, DataError> {
    const ROUNDS: u32 = 3;
    let steps = run.steps;
    let allowed = osml_sys::allowed_cpus()?;
    let cpus: Vec<usize> = allowed.iter().copied().cycle().take(n).collect();
    let (mut idle, mut busy) = (Vec::new(), Vec::new());
    let (mut alone_rates, mut busy_rates) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        idle.push(run.phase()?);
        // The competitors alone (no loader runs between rounds).
        let c = Competitors::start(&cpus);
        std::thread::sleep(Duration::from_millis(300));
        alone_rates.push(c.stop().0);
        let c = Competitors::start(&cpus);
        let mut p = run.phase()?;
        let (rate, their_cpu) = c.stop();
        p.cpu_us = p.cpu_us.saturating_sub(their_cpu);
        busy_rates.push(rate);
        busy.push(p);
    }
    let steps_f = steps.max(1) as f64;
    let tps = |ps: &[Phase]| {
        median(
            ps.iter()
                .map(|p| tokens_per_batch * steps_f / p.secs)
                .collect(),
        )
    };
    let cpu = |ps: &[Phase]| median(ps.iter().map(|p| p.cpu_us as f64 / steps_f).collect());
    let sys = |ps: &[Phase]| {
        ps.iter()
            .map(|p| p.syscalls.map(|s| s as f64 / steps_f))
            .collect::<Option<Vec<_>>>()
            .map(median)
    };
    let (t_busy, t_idle) = (tps(&busy), tps(&idle));
    let (c_busy, c_idle) = (cpu(&busy), cpu(&idle));
    let (alone, during) = (median(alone_rates), median(busy_rates));
    Ok(Contention {
        competitors: n,
        cpus,
        rounds: ROUNDS,
        steps_per_round: steps,
        tokens_per_s: t_busy,
        idle_tokens_per_s: t_idle,
        tokens_ratio: t_busy / t_idle.max(1e-9),
        cpu_us_per_batch: c_busy,
        idle_cpu_us_per_batch: c_idle,
        cpu_ratio: c_busy / c_idle.max(1e-9),
        syscalls_per_batch: sys(&busy),
        idle_syscalls_per_batch: sys(&idle),
        competitor_rate_alone: alone,
        competitor_rate: during,
        competitor_share: during / alone.max(1e-9),
    })
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
    let mut f = osml_sys::file::open_regular(path).map_err(|e| DataError::io(path, e))?;
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

/// `steps` batches timed one by one: latencies, seconds, and resource use before and after.
fn timed(
    loader: &mut Loader,
    steps: u64,
) -> Result<(Latencies, f64, osml_sys::Usage, osml_sys::Usage), DataError> {
    let usage0 = osml_sys::usage(osml_sys::UsageOf::Process)?;
    let mut latencies = Latencies::new();
    let run = Instant::now();
    for _ in 0..steps {
        let t = Instant::now();
        let b = loader.next_batch()?;
        latencies.add(t.elapsed());
        std::hint::black_box(b.bytes().first());
    }
    let secs = run.elapsed().as_secs_f64().max(1e-9);
    let usage1 = osml_sys::usage(osml_sys::UsageOf::Process)?;
    Ok((latencies, secs, usage0, usage1))
}

/// A source's entries as one string, as the user named them.
fn joined(source: &[PathBuf]) -> String {
    source
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the benchmark.
#[allow(clippy::too_many_lines)]
pub fn run(
    source: &[PathBuf],
    open: &OpenOptions,
    opts: &BenchOptions,
) -> Result<BenchReport, DataError> {
    // A bad path or configuration fails before the memcpy measurement (1 s, 0.5 GB).
    let probe = Arc::new(TokenDataset::open_source(source, open)?);
    Loader::validate(
        &crate::mixture::Mixture::single(Arc::clone(&probe)),
        &opts.loader,
    )?;
    let cpus = osml_sys::allowed_cpus()?.len();
    if opts.contend > 4 * cpus {
        return Err(DataError::Usage(format!(
            "{} competitor threads is more than 4 per CPU this process may use ({cpus})",
            opts.contend
        )));
    }
    let files = probe.paths();
    drop(probe);
    let memcpy = memcpy_bandwidth()?;
    let mut disk = None;
    if opts.cold {
        disk = Some(disk_read_bandwidth(&files[0])?);
        for f in &files {
            osml_sys::evict_from_page_cache(f)?;
        }
    }
    let (mut counter, mut unavailable) = open_counter(opts.syscall_tracepoint);
    let start_count = counter.as_mut().and_then(|c| c.read().ok());

    let t0 = Instant::now();
    let ds = Arc::new(TokenDataset::open_source(source, open)?);
    let cfg = &opts.loader;
    let mut loader = Loader::new(Arc::clone(&ds), cfg, None)?;
    let first = loader.next_batch()?;
    let first_batch_s = t0.elapsed().as_secs_f64();
    let elem = first.bytes().len() / (cfg.batch_size * (cfg.seq_len + 1));
    drop(first);
    for _ in 0..opts.warmup {
        drop(loader.next_batch()?);
    }

    let (latencies, secs, usage0, usage1) = timed(&mut loader, opts.steps)?;
    let stats = loader.stats();
    let tokens_per_batch = (cfg.batch_size * cfg.seq_len) as f64;

    let resume_at = loader.state();
    drop(loader); // joins the workers, whose system calls then join the count
    let syscalls = match (counter.as_mut(), start_count) {
        (Some(c), Some(s)) => c.read().ok().map(|e| e.saturating_sub(s)),
        _ => None,
    };
    let contended = (opts.contend > 0)
        .then(|| {
            let mut rounds = Rounds {
                ds: &ds,
                cfg,
                state: resume_at,
                steps: opts.steps,
                counter: &mut counter,
            };
            contend(&mut rounds, opts.contend, tokens_per_batch)
        })
        .transpose()?;
    if syscalls.is_none() && unavailable.is_none() {
        unavailable = Some("the counter could not be read".into());
    }
    let steps = opts.steps.max(1) as f64;
    let batch_bytes = (cfg.batch_size * (cfg.seq_len + 1) * elem) as f64;
    let bytes_written_per_s = batch_bytes * opts.steps as f64 / secs;
    let token_bytes_per_s =
        (cfg.batch_size * (cfg.seq_len + 1) * ds.dtype().size()) as f64 * opts.steps as f64 / secs;
    let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / steps;
    Ok(BenchReport {
        schema_version: 1,
        path: joined(source),
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
        latency_p50_us: latencies.quantile_us(0.5),
        latency_p99_us: latencies.quantile_us(0.99),
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
        contended,
    })
}
