//! `osml data bench`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use osml_data::bench::{run as run_bench, BenchOptions, BenchReport, Contention};
use osml_data::loader::{LoaderConfig, Output};
use osml_data::sampler::Mode;
use osml_data::DataError;
use osml_doctor::human_bytes;
use osml_host::{CpuList, HostRoot};

use super::open_options;
use crate::cli::BenchArgs;

/// The one place raw bench flags become a validated configuration.
fn options(a: &BenchArgs) -> Result<BenchOptions, DataError> {
    let cpus = match &a.cpus {
        Some(list) => CpuList::parse(list)
            .map_err(|e| DataError::Usage(format!("--cpus {list}: {e}")))?
            .ids()
            .to_vec(),
        None => Vec::new(),
    };
    let mode = Mode::parse(&a.mode, a.block)?;
    let output = match a.output.as_str() {
        "i32" => Output::I32,
        "source" => Output::Source,
        _ => Output::I64,
    };
    // tracefs, where the kernel publishes tracepoint ids, is read like any host fact.
    let syscall_tracepoint = osml_host::syscall_tracepoint_id(&HostRoot::live());
    Ok(BenchOptions {
        loader: LoaderConfig {
            batch_size: a.batch_size,
            seq_len: a.seq_len,
            mode,
            seed: a.seed,
            workers: a.workers.unwrap_or_else(osml_data::loader::default_workers),
            prefetch: a.prefetch.unwrap_or(0),
            output,
            cpus,
            lock_memory: a.mlock,
            populate: a.populate,
            ..LoaderConfig::default()
        },
        steps: a.steps,
        warmup: a.warmup,
        cold: a.cold,
        contend: a.contend,
        syscall_tracepoint,
    })
}

pub fn run(a: &BenchArgs) -> Result<ExitCode> {
    let opts = options(a)?;
    let report = run_bench(&a.dataset.paths, &open_options(&a.dataset), &opts)?;
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    if a.dataset.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_human(&mut out, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn rate(bytes_per_s: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let b = bytes_per_s as u64;
    format!("{}/s", human_bytes(b))
}

fn write_human(out: &mut impl Write, r: &BenchReport) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {} mode, B={} T={} {:?} output, {} worker(s), {} steps after {} warm-up{}",
        r.path,
        r.mode,
        r.batch_size,
        r.seq_len,
        r.output,
        r.workers,
        r.steps,
        r.warmup,
        if r.cold { ", cold page cache" } else { "" }
    )?;
    writeln!(
        out,
        "  first batch      {:.1} ms after opening",
        r.first_batch_s * 1e3
    )?;
    writeln!(
        out,
        "  throughput       {:.2} M tokens/s, {:.0} batches/s",
        r.tokens_per_s / 1e6,
        r.batches_per_s
    )?;
    writeln!(
        out,
        "  written          {} into batch buffers = {:.0}% of single-thread memcpy ({})",
        rate(r.bytes_written_per_s),
        100.0 * r.ratio_to_memcpy,
        rate(r.memcpy_bytes_per_s)
    )?;
    if let (Some(d), Some(q)) = (r.disk_read_bytes_per_s, r.ratio_to_disk) {
        writeln!(
            out,
            "  vs disk          token data at {:.0}% of sequential read ({})",
            100.0 * q,
            rate(d)
        )?;
    }
    writeln!(
        out,
        "  batch latency    p50 {:.1} µs, p99 {:.1} µs",
        r.latency_p50_us, r.latency_p99_us
    )?;
    writeln!(
        out,
        "  per batch        {:.1} µs CPU, {:.2} minor / {:.3} major faults, {:.2} context switches",
        r.cpu_us_per_batch,
        r.minor_faults_per_batch,
        r.major_faults_per_batch,
        r.context_switches_per_batch
    )?;
    match (r.syscalls_per_batch, &r.syscalls_unavailable) {
        (Some(s), _) => writeln!(out, "  system calls     {s:.3} per batch (set-up included)")?,
        (None, Some(why)) => writeln!(out, "  system calls     not counted: {why}")?,
        (None, None) => {}
    }
    let l = &r.loader;
    writeln!(
        out,
        "  waits            consumer {:.1} ms, workers {:.1} ms; {} WILLNEED hints, {} populated",
        l.consumer_wait_s * 1e3,
        l.worker_wait_s * 1e3,
        l.willneed_calls,
        human_bytes(l.populated_bytes)
    )?;
    writeln!(
        out,
        "  buffers          huge pages {}{}",
        if l.huge_pages { "requested" } else { "refused" },
        match (&l.locked, &l.lock_error) {
            (true, _) => ", locked".to_owned(),
            (false, Some(e)) => format!(", not locked: {e}"),
            _ => String::new(),
        }
    )?;
    if let Some(e) = &l.pin_error {
        writeln!(out, "  pinning failed   {e}")?;
    }
    if let Some(c) = &r.contended {
        write_contended(out, c)?;
    }
    Ok(())
}

fn write_contended(out: &mut impl Write, c: &Contention) -> std::io::Result<()> {
    writeln!(
        out,
        "contended: {} CPU-bound thread(s) pinned to CPU {}, {} rounds of {} batches interleaved with idle ones (medians)",
        c.competitors,
        c.cpus
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        c.rounds,
        c.steps_per_round
    )?;
    writeln!(
        out,
        "  throughput       {:.2} M tokens/s contended vs {:.2} idle = {:.2}×",
        c.tokens_per_s / 1e6,
        c.idle_tokens_per_s / 1e6,
        c.tokens_ratio
    )?;
    writeln!(
        out,
        "  loader CPU       {:.1} µs per batch contended vs {:.1} idle = {:.2}×",
        c.cpu_us_per_batch, c.idle_cpu_us_per_batch, c.cpu_ratio
    )?;
    if let (Some(s), Some(i)) = (c.syscalls_per_batch, c.idle_syscalls_per_batch) {
        writeln!(
            out,
            "  system calls     {s:.3} per batch contended vs {i:.3} idle"
        )?;
    }
    writeln!(
        out,
        "  competitors      got {:.0}% of the work they do alone ({:.1} M iterations/s vs {:.1})",
        100.0 * c.competitor_share,
        c.competitor_rate / 1e6,
        c.competitor_rate_alone / 1e6
    )?;

    Ok(())
}
