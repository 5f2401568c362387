//! `osml data pack`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use osml_data::DataError;
use osml_doctor::human_bytes;
use osml_pack::{pack, OutputFormat, PackOptions, Tokenizer, TxtDocuments};

use super::grouped;
use crate::cli::PackArgs;

/// The one place raw pack flags become validated options.
fn options(a: &PackArgs) -> Result<PackOptions, DataError> {
    let tokenizer = Tokenizer::from_name(&a.tokenizer)
        .ok_or_else(|| DataError::Usage(format!("unknown tokenizer {}", a.tokenizer)))?;
    if a.shard_tokens == Some(0) {
        return Err(DataError::Usage("--shard-tokens must be at least 1".into()));
    }
    if a.workers == Some(0) {
        return Err(DataError::Usage("--workers must be at least 1".into()));
    }
    Ok(PackOptions {
        tokenizer,
        format: match a.format.as_str() {
            "bin" => OutputFormat::Bin,
            "llmc" => OutputFormat::Llmc,
            _ => OutputFormat::Megatron,
        },
        shard_tokens: a.shard_tokens,
        field: a.field.clone(),
        eod: !a.no_eod,
        workers: a
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
        txt_documents: match a.txt_documents.as_str() {
            "line" => TxtDocuments::Line,
            "paragraph" => TxtDocuments::Paragraph,
            _ => TxtDocuments::File,
        },
        ..PackOptions::default()
    })
}

pub fn run(a: &PackArgs) -> Result<ExitCode> {
    let opts = options(a)?;
    // Progress on stderr, only for a person watching a terminal.
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:20} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let summary = pack(&a.inputs, &a.output, &opts, &mut |p| {
        bar.set_length(p.total_bytes);
        bar.set_position(p.input_bytes);
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{} docs {:.1} Mtok/s",
            grouped(p.documents),
            p.tokens as f64 / secs / 1e6
        ));
    })?;
    bar.finish_and_clear();
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        let w = &summary.written;
        let secs = summary.seconds.max(1e-9);
        writeln!(
            out,
            "packed {} documents, {} tokens ({}, {}) from {} of text in {:.2} s: {:.1} MB/s, {:.2} M tokens/s with {} worker(s)",
            grouped(w.documents),
            grouped(w.tokens),
            summary.tokenizer.name(),
            summary.dtype,
            human_bytes(summary.text_bytes),
            summary.seconds,
            summary.text_bytes as f64 / secs / 1e6,
            w.tokens as f64 / secs / 1e6,
            opts.workers
        )?;
        if summary.null_rows > 0 {
            writeln!(out, "  skipped {} null row(s)", grouped(summary.null_rows))?;
        }
        if summary.shards.is_empty() {
            for f in &w.files {
                writeln!(out, "  wrote {}", f.display())?;
            }
        } else {
            writeln!(out, "  {} shard(s):", summary.shards.len())?;
            for s in &summary.shards {
                let names: Vec<String> = s.files.iter().map(|f| f.display().to_string()).collect();
                writeln!(
                    out,
                    "  wrote {}: {} tokens, {} documents",
                    names.join(" + "),
                    grouped(s.tokens),
                    grouped(s.documents)
                )?;
            }
            if summary.oversized_documents > 0 {
                writeln!(
                    out,
                    "  {} document(s) longer than --shard-tokens, each a shard of its own",
                    grouped(summary.oversized_documents)
                )?;
            }
            for f in &summary.removed_stale {
                writeln!(out, "  removed stale shard {}", f.display())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
