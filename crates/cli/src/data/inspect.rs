//! `osml data inspect`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use osml_data::inspect::{inspect, Inspection};
use osml_data::mixture::{Mixture, SourceUse, Subset};
use osml_data::{MixtureSpec, SourceSpec, TokenDataset, TokenSource};
use osml_doctor::human_bytes;
use serde::Serialize;

use super::{grouped, open_options};
use crate::cli::InspectArgs;

pub fn run(args: &InspectArgs) -> Result<ExitCode> {
    let a = &args.dataset;
    let spec = MixtureSpec::detect(&a.paths)?;
    if spec.is_some() || args.split.is_some() || args.tokens.is_some() {
        return run_mixture(args, spec);
    }
    let ds = TokenDataset::open_source(&a.paths, &open_options(a))?;
    let report = inspect(&ds, &a.paths)?;
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_human(&mut out, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `inspect --json` of a mixture (schema in docs/data-json.md).
#[derive(Debug, Serialize)]
struct MixtureReport {
    schema_version: u32,
    split: Option<String>,
    subset: &'static str,
    /// Whether the weights' shares, the first ones and the schedule's, are exact (else
    /// rounded to a period of 2^18 samples).
    exact_weights: bool,
    /// The most that rounding moved a source's share in any of them, relative to its given
    /// share (0 when exact): `Mixture::rounding`.
    largest_share_change: f64,
    sources: Vec<SourceReport>,
    /// With --tokens: the run described.
    run: Option<RunReport>,
}

#[derive(Debug, Serialize)]
struct SourceReport {
    name: String,
    format: &'static str,
    dtype: String,
    shards: usize,
    /// Documents `[first, last)` of the source read under the split.
    first_document: u64,
    documents: u64,
    tokens: u64,
    weight: f64,
}

#[derive(Debug, Serialize)]
struct RunReport {
    tokens: u64,
    seq_len: u64,
    samples: u64,
    global_batch: u64,
    sources: Vec<SourceUse>,
}

fn run_mixture(args: &InspectArgs, spec: Option<MixtureSpec>) -> Result<ExitCode> {
    let a = &args.dataset;
    let subset = Subset::parse(&args.subset)?;
    let spec = spec.unwrap_or_else(|| MixtureSpec {
        sources: vec![SourceSpec {
            name: a
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            paths: a.paths.clone(),
            weight: "1".into(),
        }],
        ..MixtureSpec::default()
    });
    let mixture: Mixture = spec.open(&open_options(a), args.split.as_deref(), Some(subset))?;
    let weights = mixture.weights().normalized();
    let sources = mixture
        .parts()
        .iter()
        .zip(&weights)
        .map(|(p, &weight)| SourceReport {
            name: p.name.clone(),
            format: p.dataset.format().name(),
            dtype: p.dataset.dtype().to_string(),
            shards: p.dataset.shards().len(),
            first_document: p.documents.start as u64,
            documents: (p.documents.end - p.documents.start) as u64,
            tokens: p.num_tokens(),
            weight,
        })
        .collect();
    let run = match args.tokens {
        None => None,
        Some(tokens) => {
            let usage = |m: String| Err(osml_data::DataError::Usage(m).into());
            let global_batch = match args.global_batch {
                Some(g) => g,
                None if !mixture.scheduled().is_empty() => {
                    return usage(
                        "the mixture changes weights at steps: give --global-batch N (samples per step, batch size × world size) to place them".into(),
                    );
                }
                None => 1,
            };
            if args.seq_len == 0 || global_batch == 0 {
                return usage("--seq-len and --global-batch must be at least 1".into());
            }
            let samples = tokens / args.seq_len;
            Some(RunReport {
                tokens,
                seq_len: args.seq_len,
                samples,
                global_batch,
                sources: mixture.plan(args.seq_len, samples, global_batch)?,
            })
        }
    };
    let report = MixtureReport {
        schema_version: 1,
        split: args.split.clone().or(spec.split.clone()),
        subset: subset.name(),
        exact_weights: mixture.rounding().is_none(),
        largest_share_change: mixture.rounding().unwrap_or(0.0),
        sources,
        run,
    };
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_mixture(&mut out, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_mixture(out: &mut impl Write, r: &MixtureReport) -> std::io::Result<()> {
    let split = r
        .split
        .as_ref()
        .map_or_else(String::new, |s| format!(", split {s}, {} subset", r.subset));
    writeln!(
        out,
        "mixture of {} source{}{split}{}",
        r.sources.len(),
        if r.sources.len() == 1 { "" } else { "s" },
        if r.exact_weights {
            String::new()
        } else {
            format!(
                " (weights rounded to shares of 2^18, moving a source's share by up to {})",
                percent(r.largest_share_change)
            )
        }
    )?;
    let width = r
        .sources
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(6);
    writeln!(
        out,
        "  {:width$}  {:>7}  {:>16}  {:>12}  format",
        "source", "weight", "tokens", "documents"
    )?;
    for s in &r.sources {
        writeln!(
            out,
            "  {:width$}  {:>7.4}  {:>16}  {:>12}  {} {} · {} shard{}",
            s.name,
            s.weight,
            grouped(s.tokens),
            grouped(s.documents),
            s.format,
            s.dtype,
            s.shards,
            if s.shards == 1 { "" } else { "s" }
        )?;
    }
    if let Some(run) = &r.run {
        writeln!(
            out,
            "a run of {} tokens: {} samples of {} tokens",
            grouped(run.tokens),
            grouped(run.samples),
            run.seq_len
        )?;
        writeln!(
            out,
            "  {:width$}  {:>16}  {:>10}  (epochs above 1: the source repeats)",
            "source", "samples", "epochs"
        )?;
        for s in &run.sources {
            writeln!(
                out,
                "  {:width$}  {:>16}  {:>10.3}",
                s.name,
                grouped(s.samples),
                s.epochs
            )?;
        }
    }
    Ok(())
}

/// Shards listed one per line up to this many; past it, the first and last few.
const SHARD_LINES: usize = 40;

fn write_shards(out: &mut impl Write, r: &Inspection) -> std::io::Result<()> {
    writeln!(out, "  shards        {}", grouped(r.shards.len() as u64))?;
    let n = r.shards.len();
    for (i, s) in r.shards.iter().enumerate() {
        if n > SHARD_LINES && i == SHARD_LINES / 2 {
            writeln!(
                out,
                "    … {} more (--json lists every shard)",
                grouped((n - SHARD_LINES + 10) as u64)
            )?;
        }
        if n > SHARD_LINES && i >= SHARD_LINES / 2 && i < n - 10 {
            continue;
        }
        let docs = s
            .documents
            .map_or_else(String::new, |d| format!(" · {} documents", grouped(d)));
        writeln!(
            out,
            "    {}  {} tokens{docs} · {} ({} in page cache)",
            s.path,
            grouped(s.tokens),
            human_bytes(s.bytes),
            human_bytes(s.resident_bytes)
        )?;
    }
    Ok(())
}

fn write_human(out: &mut impl Write, r: &Inspection) -> std::io::Result<()> {
    writeln!(out, "{} ({}, {})", r.path, r.format.name(), r.dtype)?;
    writeln!(out, "  tokens        {}", grouped(r.tokens))?;
    let seq = r
        .sequences
        .filter(|&s| s != r.documents)
        .map_or_else(String::new, |s| format!(" in {} sequences", grouped(s)));
    writeln!(
        out,
        "  documents     {}{seq}{}{}",
        grouped(r.documents),
        r.eod_token
            .map_or_else(String::new, |t| format!(" (split at token {t})")),
        if r.sequence_modes {
            " (with sequence modes)"
        } else {
            ""
        }
    )?;
    let l = r.document_lengths;
    writeln!(
        out,
        "  doc length    min {} · median {} · p99 {} · max {} · mean {:.1} tokens",
        grouped(l.min),
        grouped(l.median),
        grouped(l.p99),
        grouped(l.max),
        l.mean
    )?;
    let most = r
        .histogram
        .iter()
        .map(|b| b.count)
        .max()
        .unwrap_or(1)
        .max(1);
    for b in &r.histogram {
        let bar = "█".repeat(usize::try_from(b.count * 30 / most).unwrap_or(30).max(1));
        let range = if b.to == 1 {
            "0".to_owned()
        } else {
            format!("{}–{}", grouped(b.from), grouped(b.to - 1))
        };
        writeln!(out, "    {range:>15}  {:>10}  {bar}", grouped(b.count))?;
    }
    let total: u64 = r.files.iter().map(|f| f.bytes).sum();
    if r.shards.len() > 1 {
        write_shards(out, r)?;
    }
    for f in r.files.iter().filter(|_| r.shards.len() == 1) {
        writeln!(
            out,
            "  file          {}  {}  ({} in page cache)",
            f.path,
            human_bytes(f.bytes),
            human_bytes(f.resident_bytes)
        )?;
    }
    writeln!(
        out,
        "  page cache    {} of {} ({:.0}%) in RAM now",
        human_bytes(r.resident_bytes),
        human_bytes(total),
        100.0 * r.resident_fraction
    )?;
    Ok(())
}

/// A relative change as a percentage, to two decimals below 10% (`less than 0.01%` under it).
fn percent(x: f64) -> String {
    let p = x * 100.0;
    if p < 0.01 {
        "less than 0.01%".into()
    } else if p < 10.0 {
        format!("{p:.2}%")
    } else {
        format!("{p:.0}%")
    }
}
