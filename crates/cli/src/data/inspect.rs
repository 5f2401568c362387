//! `osml data inspect`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use osml_data::inspect::{inspect, Inspection};
use osml_data::TokenDataset;
use osml_doctor::human_bytes;

use super::{grouped, open_options};
use crate::cli::DatasetArgs;

pub fn run(a: &DatasetArgs) -> Result<ExitCode> {
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
