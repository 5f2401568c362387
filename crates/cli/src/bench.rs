//! `osml bench`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use osml_bench::Report;

use crate::cli::OsBenchArgs;

pub fn run(a: &OsBenchArgs) -> Result<ExitCode> {
    let dir = a.dir.clone().unwrap_or_else(std::env::temp_dir);
    // Progress on stderr, only for a person watching a terminal.
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:20} {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let outcome = osml_bench::run(&a.only, a.quick, &dir, &mut |i, n, id| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
        bar.set_message(id.to_owned());
    });
    bar.finish_and_clear();
    let report = outcome?;
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if a.markdown {
        write_markdown(&mut out, &report)?;
    } else {
        write_human(&mut out, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn figure(median: f64) -> String {
    if median >= 100.0 {
        format!("{median:.0}")
    } else if median >= 10.0 {
        format!("{median:.1}")
    } else {
        format!("{median:.2}")
    }
}

fn write_human(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "osml bench{}: median of repetitions, ± MAD-based spread",
        if r.quick { " (quick)" } else { "" }
    )?;
    for w in &r.warnings {
        writeln!(out, "  warning: {}", crate::output::escape(w))?;
    }
    for x in &r.results {
        let fig = format!("{} {}", figure(x.summary.median), x.unit);
        writeln!(
            out,
            "  {:<18} {:>12} ± {:<8} {}",
            x.id,
            fig,
            figure(x.summary.spread),
            x.what
        )?;
        writeln!(out, "  {:<18} {:>12}   {:<8} → {}", "", "", "", x.meaning)?;
        if let Some(k) = x.extra.get("ns_per_kib") {
            writeln!(
                out,
                "  {:<18} {:>12}   {:<8}   ({k:.1} ns per KiB)",
                "", "", ""
            )?;
        }
        if let Some(why) = &x.unreliable {
            writeln!(
                out,
                "  {:<18} {:>12}   {:<8}   unreliable: {why}",
                "", "", ""
            )?;
        }
    }
    for (id, why) in &r.skipped {
        writeln!(out, "  {id:<18} skipped: {why}")?;
    }
    Ok(())
}

fn write_markdown(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    for w in &r.warnings {
        writeln!(out, "> **warning:** {}\n", crate::output::escape(w))?;
    }
    writeln!(
        out,
        "| id | median | spread | min–max | n | what it means |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    for x in &r.results {
        writeln!(
            out,
            "| `{}` | {} {} | ± {} | {}–{} | {} | {}{} |",
            x.id,
            figure(x.summary.median),
            x.unit,
            figure(x.summary.spread),
            figure(x.summary.min),
            figure(x.summary.max),
            x.summary.samples,
            x.meaning,
            x.unreliable
                .as_ref()
                .map_or_else(String::new, |u| format!(" (unreliable: {u})"))
        )?;
    }
    for (id, why) in &r.skipped {
        writeln!(out, "| `{id}` | skipped | | | | {why} |")?;
    }
    Ok(())
}
